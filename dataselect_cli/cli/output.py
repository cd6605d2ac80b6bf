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
from contextlib import contextmanager
from typing import Any, ContextManager, Iterator

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from ..progress import EVERY, Advance, Lines, silent

#: Seconds during which a command's progress lines in a log are held back (see the module's docstring).
HOLD = EVERY


class Out:
    """Where a command speaks: notes and progress on stderr, results on stdout."""

    def __init__(self, quiet: bool = False, as_json: bool = False):
        self.quiet, self.as_json = quiet, as_json
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        if quiet:
            self._progress: Any = silent
        elif self.err.is_terminal:
            self._progress = Bars(self.err)
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
        """Print the command's result once its outputs are in place (:func:`dataselect_cli.io.outputs`).

        Every file the command wrote is named: ``outputs`` in the JSON, and in the text summary
        those its lines do not name already. A step skipped by ``--resume`` (``data["skipped"]``)
        says so in its first line ("up to date, skipped") instead of "wrote".
        """
        from .. import io

        data = dict(data)
        files = list(dict.fromkeys([*data.get("outputs", []), *io.pending_outputs()]))
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

        if not io.after_commit(show):
            show()


class Bars:
    """A rich progress bar per stage on a terminal console (kept on screen when the stage ends)."""

    def __init__(self, console: Console):
        self.console = console

    @contextmanager
    def __call__(self, description: str, total: int | None = None, unit: str = "blocks") -> Iterator[Advance]:
        with Progress(*progress_columns(), console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=total, unit=unit)
            yield lambda k: bar.advance(task, k)
            if total is None:  # a stage that could not count ahead ends full, showing what it did
                bar.update(task, total=bar.tasks[0].completed)


class RateColumn(ProgressColumn):
    """Units per second of a task, in the unit it names (``add_task(..., unit="blocks")``; documents by default)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = getattr(task, "fields", {}).get("unit", "docs")
        if speed is None:
            return Text(f"– {unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {unit}/s" if speed >= 10 else f"{speed:.2g} {unit}/s", style="progress.data.speed")


def progress_columns() -> list[ProgressColumn]:
    """The columns of the progress bar: what, bar, percent, done/total, rate in the stage's unit, elapsed, ETA."""
    return [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
