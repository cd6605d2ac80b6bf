"""Score methods, one module each, registered by name (``score --method NAME``).

A method declares the inputs it needs, its parameters and direction, a global ``prepare`` step
and a block function (:class:`~.base.ScoreMethod`). The scores file's metadata names the method
and its parameters.

Adding a method: write ``methods/<name>.py`` with a :class:`~.base.ScoreMethod` subclass, its
tests, and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import inspect

from ..errors import InputError
from .aum import AUM
from .base import Clusters, ExampleMethod, Inputs, ScoreMethod
from .datamap import DataMap
from .dsir import DSIR, DSIRClusters
from .el2n import EL2N
from .forgetting import Forgetting
from .grand import GraNd
from .leverage import Leverage
from .loss import Loss
from .pvi import PVI
from .sensitivity import Sensitivity
from .tracin import TracInSelf
from .uncertainty import Entropy, LeastConfidence, Margin
from .vog import VoG

#: name → method class; the order is the order of ``--help``.
REGISTRY: dict[str, type[ScoreMethod]] = {
    Sensitivity.name: Sensitivity,
    Loss.name: Loss,
    EL2N.name: EL2N,
    GraNd.name: GraNd,
    Margin.name: Margin,
    Entropy.name: Entropy,
    LeastConfidence.name: LeastConfidence,
    Forgetting.name: Forgetting,
    AUM.name: AUM,
    DataMap.name: DataMap,
    VoG.name: VoG,
    TracInSelf.name: TracInSelf,
    PVI.name: PVI,
    Leverage.name: Leverage,
    DSIR.name: DSIR,
    DSIRClusters.name: DSIRClusters,
}

DEFAULT = Sensitivity.name


def get(name: str | None, **params) -> ScoreMethod:
    """The method registered under ``name`` (default: ``sensitivity``), made with ``params``.

    A parameter left at None or False counts as not given; one given that the method does not take
    is refused, naming its option (``--lambda does not apply to --method distance``).
    """
    name = name or DEFAULT
    if name not in REGISTRY:
        raise InputError(f"--method must be one of {', '.join(REGISTRY)}; got {name!r}")
    cls = REGISTRY[name]
    takes = inspect.signature(cls.__init__).parameters
    given = {key: v for key, v in params.items() if v is not None and v is not False}
    for key in given:
        if key not in takes:
            option = "--lambda" if key == "lam" else "--" + key.replace("_", "-")
            raise InputError(f"{option} does not apply to --method {name}")
    return cls(**given)


def help_text() -> str:
    """One line per registered method, for ``--help``."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in REGISTRY.items())


__all__ = ["REGISTRY", "DEFAULT", "Clusters", "ExampleMethod", "Inputs", "ScoreMethod", "get", "help_text"]
