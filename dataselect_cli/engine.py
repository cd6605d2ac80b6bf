"""Engines: where the blocks of a pass are computed. They move data; they do no math.

An engine has one method, ``map_blocks(fn, source, block_rows, shared, fold=None)``: call
``fn(b, block, **shared)`` on every block b of ``source`` (see :mod:`dataselect_cli.dataset`) and
yield the results **in block order**. The caller combines them in that order, so the results do
not depend on the engine (:mod:`dataselect_cli.grid`). ``fold``, where given, is a reduction of
consecutive blocks' results (a list in, a list of the same length out, e.g. a design's statistics
compacted) that the caller would apply anyway: an engine that gathers a range of blocks' results
at once applies it where they are computed, so that what travels to the caller and is held there
at once stays small.

* :class:`LocalEngine` reads the blocks one after the other in this process.
* :class:`DaskEngine` sends ranges of blocks to a Dask cluster (``--scheduler ADDRESS``), or to a
  ``LocalCluster`` of ``--workers`` processes. Workers read the files themselves, so they need the
  same paths. A task is pure (files + arguments → result), so a task lost with its worker is
  simply computed again elsewhere, with the same result; what a pass scatters to the workers, lost
  with the last worker holding it, is sent again and the pass's unfinished tasks resubmitted.

:func:`map_pass` runs a pass as a stage of a progress reporter (:mod:`dataselect_cli.progress`): it
counts the blocks on the client as their results arrive, so every engine reports alike.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

from . import grid, options
from .dataset import MemorySource
from .errors import InputError
from .progress import Progress, silent

ENGINES = ("local", "dask")
RESUBMITS = 3  # times a Dask pass is submitted again after the data it shares was lost with a worker


class LocalEngine:
    """Compute every block in this process, in order."""

    name = "local"

    def map_blocks(self, fn: Callable, source, block_rows: int, shared: dict[str, Any],
                   fold: Callable[[list], list] | None = None) -> Iterator[Any]:
        """The results one block at a time, as computed (``fold`` is not needed: nothing is gathered)."""
        for b, block in source.iter_blocks(0, grid.n_blocks(source.n, block_rows), block_rows):
            yield fn(b, block, **shared)

    def info(self) -> dict[str, Any]:
        return {"engine": "local"}

    def close(self) -> None:
        pass


def into_first(results: list, reduce: Callable[[list], Any]) -> list:
    """A ``fold`` that reduces a range's results (those not None) to one, in the first slot, with None in the
    others: the same length, so the caller still takes one result a block and skips the Nones."""
    got = [r for r in results if r is not None]
    return [reduce(got)] + [None] * (len(results) - 1) if got else results


def _run_range(fn: Callable, source, b0: int, b1: int, grid_rows: int, fold: Callable[[list], list] | None = None,
               **shared) -> list:
    """A Dask task: blocks b0..b1−1 of ``source`` (blocks of ``grid_rows`` rows), their results folded by ``fold``."""
    out = [fn(b, block, **shared) for b, block in source.iter_blocks(b0, b1, grid_rows)]
    return fold(out) if fold is not None and out else out


class DaskEngine:
    """Compute ranges of blocks on a Dask cluster.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``); None starts a ``LocalCluster``.
    workers : int, default=2
        Worker processes of the ``LocalCluster`` (one thread each).
    partitions : int or None
        Tasks per pass; default 4 per worker. Any number gives the same results.
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int = options.WORKERS, partitions: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--engine dask needs the dask extra: pip install 'dataselect[dask]'") from None
        if workers < 1:
            raise InputError(f"--workers must be >= 1; got {workers}")
        if partitions is not None and partitions < 1:
            raise InputError(f"--partitions must be >= 1; got {partitions}")
        self._cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check --scheduler") \
                    from None
        else:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", silence_logs=logging.CRITICAL)
            self.client = Client(self._cluster)
        self.scheduler = scheduler
        self.workers = len(self.client.scheduler_info().get("workers", {})) or workers
        self.partitions = partitions or 4 * self.workers

    def map_blocks(self, fn: Callable, source, block_rows: int, shared: dict[str, Any],
                   fold: Callable[[list], list] | None = None) -> Iterator[Any]:
        nb = grid.n_blocks(source.n, block_rows)
        if nb == 0:
            return
        parts = min(self.partitions, nb)
        edges = [round(i * nb / parts) for i in range(parts + 1)]
        from distributed.client import FutureCancelledError  # importable: __init__ checked the extra

        ranges = [(b0, b1) for b0, b1 in zip(edges[:-1], edges[1:]) if b1 > b0]
        done = 0  # ranges whose results were yielded
        for attempt in range(RESUBMITS + 1):
            sent, futures = self._submit(fn, source, ranges[done:], block_rows, shared, fold)
            try:
                for f in futures:
                    yield from f.result()
                    f.release()
                    done += 1
                return
            except FutureCancelledError:
                # what the pass scattered was lost with a worker: the Active Memory Manager trims a
                # broadcast's copies to the workers running its tasks, so the last copy can go with one
                # worker, and the tasks that need it are cancelled. The client still holds it: send it again
                # and submit the ranges not yet yielded (a task is pure, so the results are the same)
                if attempt == RESUBMITS:
                    raise
                self.client.wait_for_workers(1, timeout=60)
            finally:
                for f in [*futures, *sent]:
                    f.release()

    def _submit(self, fn: Callable, source, ranges: list[tuple[int, int]], block_rows: int, shared: dict[str, Any],
                fold: Callable[[list], list] | None) -> tuple[list, list]:
        """The pass's shared values (and a source held in memory) scattered, and one task per range of blocks."""
        # scatter([v]): a list, so that a dict argument travels as one object, not as named pieces. A
        # source of columns held in memory (a one-step run's scores) is as big as its rows, so it is
        # scattered once too; a file-backed source pickles by path and travels with each task
        big = {key: self.client.scatter([v], broadcast=True, hash=False)[0] for key, v in shared.items()}
        src = self.client.scatter([source], broadcast=True, hash=False)[0] if isinstance(source, MemorySource) \
            else source
        futures = [self.client.submit(_run_range, fn, src, b0, b1, block_rows, fold, pure=False, **big)
                   for b0, b1 in ranges]
        return [*big.values(), *([src] if src is not source else [])], futures

    def info(self) -> dict[str, Any]:
        return {"engine": "dask", "scheduler": self.scheduler or "LocalCluster", "workers": self.workers,
                "partitions": self.partitions}

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def map_pass(engine, stage: str, fn: Callable, source, block_rows: int, shared: dict[str, Any],
             progress: Progress = silent, fold: Callable[[list], list] | None = None) -> Iterator[Any]:
    """``engine.map_blocks(fn, source, block_rows, shared, fold)`` reported as the stage ``stage`` of ``progress``:
    one unit a block, counted here, on the caller's side, as the caller takes each block's result (on
    Dask, as the tasks' results arrive, in block order). The results are those of ``map_blocks``."""
    with progress(stage, grid.n_blocks(source.n, block_rows), "blocks") as advance:
        for result in engine.map_blocks(fn, source, block_rows, shared, fold):
            yield result
            advance(1)


def make_engine(name: str = options.ENGINE, scheduler: str | None = None, workers: int = options.WORKERS,
                partitions: int | None = None):
    """``--engine``: a :class:`LocalEngine` or a :class:`DaskEngine`."""
    if name == "local":
        if scheduler:
            raise InputError("--scheduler needs --engine dask")
        return LocalEngine()
    if name == "dask":
        return DaskEngine(scheduler, workers, partitions)
    raise InputError(f"--engine must be one of {', '.join(ENGINES)}; got {name!r}")
