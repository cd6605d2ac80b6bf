"""The ``dataselect`` command line: the typer app (:mod:`.app`), its shared options (:mod:`.options`),
where it speaks (:mod:`.output`, the terminal's bars in :mod:`.bars`) and the commands (:mod:`.commands`).

A command imports what it runs inside its function (its step, faiss, torch, rich's progress), so that
``dataselect --help`` and each command start without loading what the others need."""

from . import commands  # noqa: F401 - registers the commands on the app
from .app import Terminated, app, main
from .output import Out

__all__ = ["Out", "RateColumn", "Terminated", "app", "main", "progress_columns"]


def __getattr__(name: str):
    """``RateColumn`` and ``progress_columns`` (:mod:`.bars`), loaded with rich's progress on first use."""
    if name in ("RateColumn", "progress_columns"):
        from . import bars

        return getattr(bars, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
