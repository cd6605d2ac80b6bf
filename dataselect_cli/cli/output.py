"""Where a command speaks: notes and progress on stderr, results (a summary, or one JSON object) on stdout.

Progress (:mod:`dataselect_cli.progress`) takes one of three forms, chosen once per command: nothing
with ``--quiet``; a rich bar per stage when stderr is a terminal; plain lines otherwise (a CI log:
one when a stage starts, at most one every 10 s, one when it ends). In a log, the lines of the first
:data:`HOLD` seconds wait until the command succeeds (or has run that long, or a note is due), so that
a command failing fast on bad input still prints one line, its error; a stage that began and ended
while held shows as its one end line.
"""

from __future__ import annotations

import json
from typing import Any, ContextManager

import typer

from ..progress import EVERY, Advance, Lines, silent

#: Seconds during which a command's progress lines in a log are held back (see the module's docstring).
HOLD = EVERY


class Out:
    """Where a command speaks: notes and progress on stderr, results on stdout."""

    def __init__(self, quiet: bool = False, as_json: bool = False):
        self.quiet, self.as_json = quiet, as_json
        if quiet:  # no progress: rich is not even imported (start-up, docs/performance.md)
            self._progress: Any = silent
            return
        from rich.console import Console

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        if err.is_terminal:
            from .bars import Bars

            self._progress = Bars(err)
        else:
            self._progress = Lines(lambda line: typer.echo(line, err=True), hold=HOLD)

    def note(self, msg: str) -> None:
        if msg.startswith("warning") or not self.quiet:
            self._flush()
            typer.echo(msg, err=True)

    def _flush(self) -> None:
        """Write the progress lines held back (in a log), before anything that follows them."""
        if isinstance(self._progress, Lines):
            self._progress.flush()

    def progress(self, description: str, total: int | None = None, unit: str = "blocks") -> ContextManager[Advance]:
        """One stage's progress on stderr, yielding ``advance(k)``: a bar on a terminal, plain lines in a log,
        nothing with --quiet (the reporter of :mod:`dataselect_cli.progress`)."""
        return self._progress(description, total, unit)

    def result(self, data: dict[str, Any], lines: list[str]) -> None:
        """Print the command's result once its outputs are in place (:func:`dataselect_cli.outputs.outputs`).

        Every file the command wrote is named: ``outputs`` in the JSON, and in the text summary
        those its lines do not name already. A step skipped by ``--resume`` (``data["skipped"]``)
        says so in its first line ("up to date, skipped") instead of "wrote".
        """
        from .. import outputs

        data = dict(data)
        files = list(dict.fromkeys([*data.get("outputs", []), *outputs.pending_outputs()]))
        if files:
            data["outputs"] = files
        lines = list(lines)
        if data.get("skipped"):
            if lines and lines[0].startswith("wrote "):
                lines[0] = "up to date, skipped (--resume): " + lines[0][len("wrote "):]
            else:
                lines.insert(0, "up to date, skipped (--resume): " + ", ".join(files))
        else:
            data["skipped"] = False
        said = "\n".join(lines)
        extra = [f for f in files if f not in said]
        if extra and lines:
            lines.append("also wrote " + ", ".join(extra))

        def show() -> None:
            self._flush()  # progress lines held back (see cli.output), now that the command has succeeded
            if self.as_json:
                typer.echo(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))
            else:
                for line in lines:
                    typer.echo(line)

        if not outputs.after_commit(show):
            show()


def __getattr__(name: str) -> Any:
    """:class:`~.bars.Bars`, :class:`~.bars.RateColumn` and :func:`~.bars.progress_columns`, still importable from
    here (and from :mod:`dataselect_cli.cli`), loaded with rich's progress on first use."""
    if name in ("Bars", "RateColumn", "progress_columns"):
        from . import bars

        return getattr(bars, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
