"""Sampling designs, one module each, registered by name (``sample --design NAME``).

A design draws on the block grid, gives each selected row its weight, and carries the estimator,
variance estimator and intervals that match those weights (:class:`~.base.Design`). The
selection's metadata names the design and its parameters; ``estimate`` and the report look the
design up here by that name.

The designs by score (``top``, ``bottom``, ``middle``, ``threshold``, ``softmax``, ``linear``,
``gumbel-topk``, ``priority``, ``reweight``) read a scores file's ``score`` column (:mod:`._scored`);
``--stratify COL`` wraps any design marked ``stratifiable`` in :class:`~._stratify.Stratify` (see :func:`get`).

Adding a design: write ``designs/<name>.py`` with a :class:`~.base.Design` subclass, its tests,
and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import inspect

from ..errors import InputError
from .auto import Auto
from ._stratify import Stratify
from .base import Design, Drawn, Estimate, Interval, Plan, draw
from .bottom import Bottom
from .gumbel_topk import GumbelTopk
from .iid import IID
from .leverage import Leverage
from .linear import Linear
from .middle import Middle
from .mixture import Mixture
from .pareto import Pareto
from .poisson import Poisson
from .priority import Priority
from .reweight import Reweight
from .softmax import Softmax
from .stratified import Stratified
from .threshold import Threshold
from .top import Top
from .uniform import Uniform

#: name → design class; the order is the order of ``--help``.
REGISTRY: dict[str, type[Design]] = {
    IID.name: IID,
    Mixture.name: Mixture,
    Poisson.name: Poisson,
    Pareto.name: Pareto,
    Stratified.name: Stratified,
    Uniform.name: Uniform,
    Auto.name: Auto,
    Top.name: Top,
    Bottom.name: Bottom,
    Middle.name: Middle,
    Threshold.name: Threshold,
    Softmax.name: Softmax,
    Linear.name: Linear,
    GumbelTopk.name: GumbelTopk,
    Leverage.name: Leverage,
    Reweight.name: Reweight,
    Priority.name: Priority,
}

#: The options of ``--stratify`` (:mod:`._stratify`), taken by every design marked ``stratifiable``.
STRATIFY_OPTIONS = ("stratify", "min_per_stratum")

#: The default design: auto, which keeps uniform sampling unless the queried losses predict a real gain
#: (docs/designs/README.md: at least as good as uniform on every data set measured, iid was not).
DEFAULT = Auto.name


def repeats_rows(name: str | None) -> bool:
    """Whether the design named in a selection's report draws with replacement (its ``s`` counts draws,
    not rows); a selection written before designs were named is ``iid``'s."""
    cls = REGISTRY.get(name or IID.name)
    return bool(cls is not None and cls.with_replacement)


def get(name: str | None, **params) -> Design:
    """The design registered under ``name`` (default: ``iid``), made with ``params``.

    A parameter left at None counts as not given; one given that the design does not take is
    refused, naming its option (``--alpha does not apply to --design iid``). ``stratify`` (with
    ``allocation`` and ``min_per_stratum``) wraps a stratifiable design in :class:`~._stratify.Stratify`.
    """
    name = name or DEFAULT
    if name not in REGISTRY:
        raise InputError(f"--design must be one of {', '.join(REGISTRY)}; got {name!r}")
    cls = REGISTRY[name]
    takes = inspect.signature(cls.__init__).parameters
    given = {key: v for key, v in params.items() if v is not None}
    strata = {key: given.pop(key) for key in (*STRATIFY_OPTIONS, "allocation") if key in given
              and (key != "allocation" or "stratify" in given or key not in takes)}
    if strata and "stratify" not in strata:
        raise InputError(f"--{next(iter(strata)).replace('_', '-')} applies with --stratify COL")
    if strata and not cls.stratifiable:
        raise InputError(f"--stratify does not apply to --design {name}")
    for key in given:
        if key not in takes:
            raise InputError(f"--{key.replace('_', '-')} does not apply to --design {name}")
    design = cls(**given)
    return Stratify(design, **strata) if strata else design


def help_text() -> str:
    """One line per registered design, for ``--help``."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in REGISTRY.items())


__all__ = ["REGISTRY", "DEFAULT", "STRATIFY_OPTIONS", "Stratify", "Design", "Drawn", "Estimate", "Interval", "Plan", "draw", "get", "help_text", "repeats_rows"]
