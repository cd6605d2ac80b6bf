"""The progress bars of a terminal (:class:`Bars`, one rich bar per stage) and their columns; imported only when
a command's progress goes to a terminal (:class:`~dataselect_cli.cli.output.Out`), so that other runs do not load
rich's progress machinery."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from ..progress import Advance


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
