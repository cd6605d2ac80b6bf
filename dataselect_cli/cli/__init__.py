"""The ``dataselect`` command line: the typer app (:mod:`.app`), its shared options (:mod:`.options`),
where it speaks (:mod:`.output`) and the commands (:mod:`.commands`)."""

from . import commands  # noqa: F401 - registers the commands on the app
from .app import Terminated, app, main
from .output import Out, RateColumn, progress_columns

__all__ = ["Out", "RateColumn", "Terminated", "app", "main", "progress_columns"]
