"""Sampling designs, one module each, registered by name (``sample --design NAME``).

A design draws on the block grid, gives each selected row its weight, and carries the estimator,
variance estimator and intervals that match those weights (:class:`~.base.Design`). The
selection's metadata names the design and its parameters; ``estimate`` and the report look the
design up here by that name.

Adding a design: write ``designs/<name>.py`` with a :class:`~.base.Design` subclass, its tests,
and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

from ..errors import InputError
from .base import Design, Drawn, Estimate, Interval, Plan, draw
from .iid import IID

#: name → design class; the order is the order of ``--help``.
REGISTRY: dict[str, type[Design]] = {
    IID.name: IID,
}

DEFAULT = IID.name


def get(name: str | None, **params) -> Design:
    """The design registered under ``name`` (default: ``iid``), made with ``params``."""
    name = name or DEFAULT
    if name not in REGISTRY:
        raise InputError(f"--design must be one of {', '.join(REGISTRY)}; got {name!r}")
    return REGISTRY[name](**params)


def help_text() -> str:
    """One line per registered design, for ``--help``."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in REGISTRY.items())


__all__ = ["REGISTRY", "DEFAULT", "Design", "Drawn", "Estimate", "Interval", "Plan", "draw", "get", "help_text"]
