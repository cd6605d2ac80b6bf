"""Where a command speaks: notes and progress on stderr, results (a summary, or one JSON object) on stdout."""

from __future__ import annotations

import json
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text


class Out:
    """Where a command speaks: notes and progress on stderr, results on stdout."""

    def __init__(self, quiet: bool = False, as_json: bool = False):
        self.quiet, self.as_json = quiet, as_json
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def note(self, msg: str) -> None:
        if msg.startswith("warning") or not self.quiet:
            typer.echo(msg, err=True)

    def status(self, msg: str):
        if self.quiet or not self.err.is_terminal:
            return nullcontext()
        return self.err.status(msg)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr (documents, documents/s, ETA) yielding ``advance(k)``; silent when quiet or piped."""
        if self.quiet or not self.err.is_terminal:
            yield lambda _k: None
            return
        with Progress(*progress_columns(), console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda k: bar.advance(task, k)

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
            if self.as_json:
                typer.echo(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))
            else:
                for line in lines:
                    typer.echo(line)

        if not io.after_commit(show):
            show()


class RateColumn(ProgressColumn):
    """Documents per second of a task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("– docs/s" if speed is None else f"{speed:,.0f} docs/s", style="progress.data.speed")


def progress_columns() -> list[ProgressColumn]:
    """The columns of the progress bar: what, bar, done/total, documents/s, elapsed, ETA."""
    return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
