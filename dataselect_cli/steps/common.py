"""What every step shares: how a run is carried out (:class:`Scale`), notes, ``--resume`` and opening embeddings."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from .. import grid, io, options, outputs
from ..dataset import ArraySource, EmbeddingSource, decode_rows, open_embeddings
from ..pqdataset import ParquetDataset
from ..engine import LocalEngine
from ..errors import InputError
from ..tables import table_format
from ..progress import Progress, silent

Note = Callable[[str], None]


def quiet(_: str) -> None:
    """The default ``note``: say nothing."""


@dataclass
class Scale:
    """How a run is carried out; apart from ``block_rows`` (recorded in the metadata) it never changes a result.

    Attributes
    ----------
    engine : LocalEngine or DaskEngine or None
        Where the passes over the rows run (default: this process).
    memory_limit : int
        Bytes. Embeddings taking at most half of it are read into memory once; larger ones are
        streamed block by block in every pass, except the first blocks that fit in what the run
        does not otherwise hold (:func:`room_to_keep`), kept from the first pass. The k-means fit
        rows must fit in half of it.
    block_rows : int
        The block grid (:mod:`dataselect_cli.grid`).
    progress : callable
        Reports each stage of the run (:mod:`dataselect_cli.progress`): silent by default; the
        command line passes a bar on a terminal, plain lines otherwise.
    scratch : str or None
        ``--scratch``: the directory where a streamed run spills the decoded blocks it does not keep
        (:func:`spill`); None: beside :attr:`output`; ``"none"``: no spill (every later pass decodes them).
    output : str or None
        The command's primary output, set by the steps that spill (``cluster``, one-step ``sample``): the
        scratch file is named after it, and goes beside it by default. None: no spill.
    """

    engine: Any = None
    memory_limit: int = options.parse_bytes(options.MEMORY_LIMIT)
    block_rows: int = grid.BLOCK_ROWS
    progress: Progress = silent
    scratch: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        self.engine = self.engine or LocalEngine()
        if self.block_rows < 1:
            raise InputError(f"--block-rows must be >= 1; got {self.block_rows}")
        if self.memory_limit < 1:
            raise InputError(f"--memory-limit must be positive; got {self.memory_limit}")
        if self.scratch not in (None, options.NO_SCRATCH):
            outputs.check_writable_dir(self.scratch, self.scratch, "--scratch")


#: Bytes a row is allowed, besides its vector, when a streamed run sizes the blocks it keeps between passes
#: (ids, labels, distances and a one-step run's score columns: about 130 measured, docs/performance.md).
ROW_BYTES = 160


def pass_bytes(scale: Scale, n: int, d: int) -> int:
    """Bytes a streamed pass over n rows of d float32 holds whatever n is: two blocks (the one computed
    on and the one read ahead, :func:`~dataselect_cli.pqdataset.prefetch`) and one decode batch."""
    rows = min(n, scale.block_rows)
    return (2 * rows + min(rows, decode_rows(d))) * d * 4


def room_to_keep(scale: Scale, n: int, d: int, fit_bytes: int) -> int:
    """Bytes of decoded blocks a streamed run may keep in memory between passes
    (:meth:`~dataselect_cli.dataset.EmbeddingSource.keep_blocks`): ``--memory-limit`` less what the run
    holds besides them: :func:`pass_bytes`, the k-means fit rows and their copies (``fit_bytes``),
    :data:`ROW_BYTES` a row, and an eighth of the limit for what is not counted (temporaries, the
    allocators' slack). 0 on Dask, whose workers read their own blocks."""
    if not isinstance(scale.engine, LocalEngine):
        return 0
    return max(0, scale.memory_limit * 7 // 8 - pass_bytes(scale, n, d) - fit_bytes - ROW_BYTES * n)


#: Disk space a spill leaves free at least, in bytes and as a share of the file system (the larger of the two):
#: a spill that would leave less is not written, and every later pass decodes the blocks instead.
SPILL_FREE_BYTES = 1 << 30
SPILL_FREE_SHARE = 0.05


def spill(src: Any, scale: Scale, note: Note) -> None:
    """Spill a streamed source's blocks: the pass that checks the values writes each block it does not keep
    in memory as raw float32 bytes to one scratch file (:class:`~dataselect_cli.scratch.Spill`), and the
    later passes read them back instead of decoding Parquet again (about 8 CPU seconds per million 384-d
    rows, against well under one CPU second, and 1–3 s of wall time mostly spent waiting for the disk,
    to read back 1 GiB: docs/performance.md); the values, and so every output, are the same.

    Only where it pays and is safe: an :class:`~dataselect_cli.dataset.EmbeddingSource` of Parquet files
    (not generated rows: ``synthetic:``) not yet checked, the local engine, ``scale.output`` set,
    ``scale.scratch`` not ``"none"``, some blocks not kept
    (:meth:`~dataselect_cli.dataset.EmbeddingSource.keep_blocks` first), and the scratch directory keeping
    at least :data:`SPILL_FREE_BYTES` or :data:`SPILL_FREE_SHARE` of its file system free (the larger)
    after it. The file,
    ``.OUTPUT.PID.XXXXXXXX.spill.tmp`` (:func:`dataselect_cli.outputs.scratch_file`), is removed when the command
    ends, whether it succeeds or fails; one left by a killed run is swept by the next run writing the same
    output.
    """
    if not isinstance(src, EmbeddingSource) or not isinstance(src.ds, ParquetDataset) or src.checked \
            or src.spill is not None or scale.output is None or scale.scratch == options.NO_SCRATCH \
            or not isinstance(scale.engine, LocalEngine):
        return
    nbytes = src.spill_bytes(scale.block_rows)
    if not nbytes:
        return
    folder = scale.scratch or os.path.dirname(os.path.realpath(scale.output))
    try:
        disk = shutil.disk_usage(folder)
    except OSError:
        return
    keep_free = max(SPILL_FREE_BYTES, int(SPILL_FREE_SHARE * disk.total))
    if disk.free < nbytes + keep_free:
        note(f"not spilling {gb(nbytes)} of decoded blocks to {folder}: {gb(disk.free)} free, it would leave less "
             f"than {gb(keep_free)}; every pass decodes them (--scratch DIR elsewhere)")
        return
    try:
        path = outputs.scratch_file(scale.output, folder)
    except OSError:
        return
    src.spill_to(path, scale.block_rows)


def gb(nbytes: float) -> str:
    """A size for messages: 1.50 GiB, 12.0 MiB, 800 KiB."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes / 1024:.3g} KiB"


def embeddings_source(path, scale: Scale, note: Note, spill: str | None = None
                      ) -> tuple[pa.Array | None, Any, ParquetDataset]:
    """(ids, block source, dataset) of an embeddings file or directory (or a dataset already open); the matrix is
    read into memory when it takes at most half of the memory limit and the engine is local, else streamed.
    With ``spill`` (a directory output's temp folder) nothing per row is held: the ids are checked through
    files there and not returned (None), and the vectors are streamed."""
    ds, ids, src = open_embeddings(path, spill=spill)
    size = ds.n * src.d * 4
    if spill is None and isinstance(scale.engine, LocalEngine) and size <= scale.memory_limit // 2:
        with scale.progress("reading embeddings", ds.n, "rows") as advance:
            source: Any = ArraySource(src.take(None, scale.block_rows))
            advance(ds.n)
        pa.default_memory_pool().release_unused()
    else:
        source = src
        if isinstance(scale.engine, LocalEngine) and spill is None:
            note(f"streaming {ds.n} × {src.d} embeddings ({gb(size)}, more than half of --memory-limit "
                 f"{gb(scale.memory_limit)}) block by block")
    if src.note:
        note(f"{ds.path}: {src.note}")
    return ids, source, ds


def skip(outs: list[str], command: str, params: dict, inputs: dict[str, dict], seed: int | None,
         note: Note) -> dict[str, Any] | None:
    """With ``--resume``: the stored summary when ``outs`` are up to date (:func:`io.up_to_date`), with
    ``skipped: True`` and ``outputs`` added (see :func:`unskipped`); else None, after refusing an existing
    output under ``--no-clobber``."""
    meta = io.up_to_date(outs, command, params, inputs, seed)
    if meta is None:
        outputs.check_clobber(outs)
        return None
    note(f"up to date, skipped (--resume): {', '.join(outs)}")
    return {**meta["summary"], "skipped": True, "outputs": list(outs)}


def unskipped(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary returned by :func:`skip` without the keys that describe this run (to write it into a report)."""
    return {key: v for key, v in summary.items() if key not in ("skipped", "outputs")}


def check_losses_format(losses: str | None, losses_format: str | None) -> None:
    """Refuse a ``--losses-format`` that is no format, or that comes without ``--losses``, before any work."""
    if losses_format is None:
        return
    table_format(losses or "", losses_format, "--losses-format")
    if not losses:
        raise InputError("--losses-format names the format of --losses; pass --losses too (or drop it)")


def default_centers_path(clusters_path: str | os.PathLike) -> str:
    """``clusters.parquet`` → ``clusters.centers.parquet``, next to it."""
    p = Path(clusters_path)
    return str(p.with_name(p.stem + ".centers.parquet"))
