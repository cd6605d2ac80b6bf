"""Progress of a run's stages: the interface the library reports through, silent by default.

A progress reporter is a callable ``progress(description, total=None, unit="blocks")`` that
returns a context manager for one stage (a pass over the blocks, the k-means++ seeding, …); the
context gives ``advance(k)``, to call as k more units are done. ``total`` is None when the stage
cannot count ahead (faiss's Lloyd iterations run inside one call).

* :func:`silent`: says nothing; the default of every library function, so that a Python caller
  sees nothing unless it asks.
* :class:`Lines`: plain lines for logs (stderr not a terminal): one when a stage starts, at most one
  every ``every`` seconds while it runs, one when it ends, with its time. The command line holds
  them back for the first seconds of a command, so that one failing fast on bad input prints only
  its error (one line), as before.
* the rich bar of the command line, on a terminal (:mod:`dataselect_cli.cli.output`).

Reporting never changes a result: a reporter only counts what the stage tells it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator

Advance = Callable[[int], None]
#: ``progress(description, total=None, unit="blocks")`` → a context manager giving ``advance(k)``.
Progress = Callable[..., ContextManager[Advance]]

#: Seconds between two lines of a running stage in :class:`Lines`.
EVERY = 10.0


def _nothing(_k: int) -> None:
    pass


@contextmanager
def silent(description: str, total: int | None = None, unit: str = "blocks") -> Iterator[Advance]:
    """The reporter that says nothing (the library default, and ``--quiet``)."""
    yield _nothing


def clock_text(seconds: float) -> str:
    """A duration as H:MM:SS (the form of rich's elapsed and ETA columns)."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def count(k: int, unit: str) -> str:
    """``1 block``, ``2 blocks``: a number of a plural unit."""
    return f"{k} {unit[:-1] if k == 1 and unit.endswith('s') else unit}"


class Lines:
    """Plain progress lines, for a log: a start line, at most one line every ``every`` seconds, an end line.

    Parameters
    ----------
    write : callable
        Takes one line (without its newline).
    clock : callable, default=time.monotonic
        Seconds; a test passes its own to check the throttle without sleeping.
    every : float, default=EVERY (10 s)
    hold : float, default=0
        Seconds from now during which lines are held back rather than written; :meth:`flush` writes
        them (when the command succeeds, or before a note), and so does the first line due after
        ``hold`` seconds. Held lines of a command that fails are never written.

    Examples
    --------
    >>> t = iter([0.0, 4.0, 12.0, 13.0, 15.0, 16.0])
    >>> report = Lines(print, clock=lambda: next(t))
    >>> with report("assign", 4) as advance:
    ...     for _ in range(4):
    ...         advance(1)
    assign: started, 4 blocks
    assign: 2/4 blocks (50%), ETA 0:00:12
    assign: done, 4 blocks in 0:00:16
    """

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 every: float = EVERY, hold: float = 0.0):
        self._write, self.clock, self.every = write, clock, every
        self.until = clock() + hold if hold > 0 else 0.0
        self.held: list[str] | None = [] if hold > 0 else None

    def say(self, line: str) -> None:
        """Write ``line``, or hold it back while the hold lasts."""
        if self.held is not None and self.clock() < self.until:
            self.held.append(line)
            return
        self.flush()
        self._write(line)

    def flush(self) -> None:
        """Write the lines held back, and hold no more."""
        held, self.held = self.held or [], None
        for line in held:
            self._write(line)

    @contextmanager
    def __call__(self, description: str, total: int | None = None, unit: str = "blocks") -> Iterator[Advance]:
        start = last = self.clock()
        done = 0
        started = f"{description}: started" + (f", {count(total, unit)}" if total is not None else "")
        self.say(started)

        def advance(k: int) -> None:
            nonlocal done, last
            done += k
            now = self.clock()
            if self.held is not None and now >= self.until:
                self.flush()
            if now - last >= self.every and (total is None or done < total):  # at the total, the end line speaks
                last = now
                self.say(self.running(description, done, total, unit, now - start))

        yield advance  # a stage that fails says nothing more: the error speaks
        ended = f"{description}: done, {count(done, unit)} in {clock_text(self.clock() - start)}"
        if self.held and self.held[-1] == started and self.clock() < self.until:
            self.held[-1] = ended  # a stage that began and ended while held: one line in the log, not two
        else:
            self.say(ended)

    @staticmethod
    def running(description: str, done: int, total: int | None, unit: str, elapsed: float) -> str:
        """The line of a running stage: ``assign: 12/40 blocks (30%), ETA 0:00:21``."""
        if not total:
            return f"{description}: {done} {unit}, {clock_text(elapsed)} elapsed"
        eta = elapsed * (total - done) / done if done else None
        return (f"{description}: {done}/{total} {unit} ({100 * done // total}%), "
                f"ETA {'-:--:--' if eta is None else clock_text(eta)}")
