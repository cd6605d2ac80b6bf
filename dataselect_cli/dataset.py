"""Block sources and whole inputs read into memory, over the Parquet reader of :mod:`dataselect_cli.pqdataset`.

Sources give the blocks to the engines (:mod:`dataselect_cli.engine`): :class:`ArraySource` from a
matrix in memory, :class:`EmbeddingSource` from the ``embedding`` column of a dataset,
:class:`TableSource` from some columns of a dataset. Sources pickle by path, so a Dask worker
re-opens the files itself. The readers (:func:`read_embeddings`, :func:`read_losses`, :func:`read_table`,
:func:`open_table`) open and check a whole input.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from . import grid, io
from ._checks import check_losses, first_bad_value
from .errors import InputError
from .pqdataset import DECODE_ROWS, ParquetDataset, prefetch
from .scratch import Spill, empty_block, round_up
from .tables import TextTable, table_format


# --------------------------------------------------------------------------- sources


class ArraySource:
    """Blocks of an (n, d) float32 matrix held in memory (already validated)."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.n, self.d = x.shape

    def iter_blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for b in range(b0, b1):
            yield b, self.x[b * block_rows : (b + 1) * block_rows]

    def take(self, rows: np.ndarray | None, block_rows: int) -> np.ndarray:
        """Rows ``rows`` (sorted), or every row when None."""
        return self.x if rows is None else self.x[rows]


#: Bytes of float32 vectors decoded at a time at most (one batch; with its list levels and the reader's buffers
#: the batch holds about 11 MiB of Arrow memory at 1 MiB of values, d = 384: docs/performance.md).
DECODE_BYTES = 1 << 20


def decode_rows(d: int) -> int:
    """Rows of d-dimensional float32 vectors decoded at a time: at most
    :data:`~dataselect_cli.pqdataset.DECODE_ROWS` and :data:`DECODE_BYTES` (a batch's Arrow memory), at least one."""
    return max(1, min(DECODE_ROWS, DECODE_BYTES // max(4 * d, 1)))


#: Threads that decode an input read whole into memory (:meth:`EmbeddingSource.take`), at most.
READ_THREADS = 4
#: Matrix bytes per decoding thread, at least: a thread's reader, batch and allocator caches cost up to about
#: 40 MiB of resident memory (measured at d = 64–384: 27 MiB for the first thread, 13–38 MiB for each other one
#: with pyarrow's mimalloc pool), so the threads cost at most an eighth of the matrix beside it.
READ_THREAD_BYTES = 320 << 20


def read_threads(nbytes: int) -> int:
    """Threads decoding a matrix of ``nbytes`` read whole into memory: the cores this process may run on, at
    most :data:`READ_THREADS` and one per :data:`READ_THREAD_BYTES` of the matrix, at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, READ_THREADS, nbytes // READ_THREAD_BYTES))


def keeps(count: int, block_bytes: int, keep_bytes: int) -> bool:
    """Whether a block of ``block_bytes`` is kept after ``count`` kept blocks, within ``keep_bytes``
    (:meth:`EmbeddingSource.keep_blocks`: the kept blocks are a prefix of the grid, counted at the size of
    the block being kept)."""
    return (count + 1) * block_bytes <= keep_bytes


class EmbeddingSource:
    """Blocks of the embedding column of a dataset, decoded to float32 and checked block by block.

    Parameters
    ----------
    ds : ParquetDataset
    column : str, default="embedding"

    Attributes
    ----------
    n, d : int
    note : str or None
        Set when the column is converted (e.g. ``list<double>`` → float32); say it once the run succeeds.
    checked : bool
        Whether a pass has read and checked every row: later passes then decode without checking again
        (validated once, at the boundary; a Dask worker gets the flag with the source).
    keep_bytes : int
        Bytes of decoded blocks kept in memory for the later passes (:meth:`keep_blocks`; default 0).
    spill : Spill or None
        Where the checking pass writes the blocks it does not keep, for the later passes to read back
        instead of decoding them again (:meth:`spill_to`; default None).
    """

    def __init__(self, ds: ParquetDataset, column: str = "embedding"):
        self.ds, self.column = ds, column
        self.n = ds.n
        self.checked = False
        self.keep_bytes = 0
        self._kept: dict[int, np.ndarray] = {}  # the first blocks of the grid _kept_grid, read-only
        self._kept_grid: int | None = None
        self.spill: Spill | None = None
        d, self.note = io.embedding_dim(ds.schema.field(column).type, ds.path, column)
        if d is None and ds.n:  # a variable-size list: the first row gives d (ragged rows are refused later)
            first = next(ds.iter_tables([column], 0, 1, 1)).column(0).combine_chunks()
            d = io.list_block(first, ds.path, column, 0, None)[1]
        self.d = d or 0

    def __getstate__(self) -> dict[str, Any]:
        # a Dask worker reads its own blocks
        return {**self.__dict__, "keep_bytes": 0, "_kept": {}, "_kept_grid": None, "spill": None}

    def keep_blocks(self, nbytes: int) -> None:
        """Keep up to ``nbytes`` of decoded blocks in memory: the first blocks of the next pass that reads
        them stay (read-only), and the later passes of the same grid take them from memory instead of
        decoding them again; the other blocks are still read from the files in every pass."""
        self.keep_bytes = max(0, int(nbytes))

    def spill_bytes(self, block_rows: int) -> int:
        """Bytes of the blocks of the grid ``block_rows`` that the next pass would not keep in memory
        (:meth:`keep_blocks`), each rounded up to :data:`~dataselect_cli.scratch.ALIGN`: what :meth:`spill_to` writes to disk."""
        kept = 0
        while kept < self.n and keeps(kept // block_rows, min(block_rows, self.n - kept) * self.d * 4,
                                      self.keep_bytes):
            kept += min(block_rows, self.n - kept)
        whole, tail = divmod(self.n - kept, block_rows)
        return whole * round_up(block_rows * self.d * 4) + round_up(tail * self.d * 4)

    def spill_to(self, path: str, block_rows: int) -> None:
        """Have the pass that checks the values write each block of the grid ``block_rows`` it does not keep
        to the scratch file ``path`` (:class:`Spill`), and the later passes read those blocks back from
        there instead of decoding the Parquet files again. The bytes are the same float32 values."""
        self.spill = Spill(path, self.d, block_rows)

    def iter_blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Blocks b0..b1−1 as float32 (rows, d) matrices, decoded (or read back from the spill,
        :meth:`spill_to`) one block ahead in a thread (:func:`~dataselect_cli.pqdataset.prefetch`) unless kept
        (:meth:`keep_blocks`); an :class:`InputError` at the first bad row (until a pass has checked them all)."""
        m = b0
        while m < b1 and block_rows == self._kept_grid and m in self._kept:
            m += 1
        if m == b0:
            return prefetch(self._read(b0, b1, block_rows))
        return self._kept_then_read(b0, m, b1, block_rows)

    def _kept_then_read(self, b0: int, m: int, b1: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for b in range(b0, m):
            yield b, self._kept[b]
        if m < b1:
            yield from prefetch(self._read(m, b1, block_rows))

    def _read(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Blocks b0..b1−1: read back from the spill where it holds them, the others (runs of them) decoded."""
        sp, b = self.spill, b0
        while b < b1:
            if sp is not None and sp.holds(b, block_rows):
                x = sp.read(b, min(block_rows, self.n - b * block_rows))
                if x is not None:
                    yield b, x
                    b += 1
                    continue
            e = b + 1
            while e < b1 and not (sp is not None and sp.holds(e, block_rows)):
                e += 1
            yield from self._blocks(b, e, block_rows)
            b = e

    def _keep(self, b: int, x: np.ndarray, block_rows: int) -> None:
        """Keep block b of the grid ``block_rows`` when the kept blocks stay a prefix within :attr:`keep_bytes`."""
        if self._kept_grid not in (None, block_rows) or b != len(self._kept) or \
                not keeps(len(self._kept), x.nbytes, self.keep_bytes):
            return
        x.flags.writeable = False  # shared by every later pass
        self._kept[b], self._kept_grid = x, block_rows

    def _blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        start, stop = b0 * block_rows, min(self.n, b1 * block_rows)
        b, row0, x, filled = b0, start, None, 0
        # batch by batch straight into the block: at most one batch of Arrow memory, whatever the row groups
        for batch in self.ds.iter_batches([self.column], start, stop, decode_rows(self.d)):
            col, pos = batch.column(0), 0
            del batch
            while pos < len(col):
                if x is None:
                    x, filled = empty_block(min(block_rows, stop - row0), self.d), 0
                m = min(len(col) - pos, len(x) - filled)
                x[filled : filled + m] = io.list_block(col.slice(pos, m), self.ds.path, self.column, row0 + filled,
                                                       self.d, locate=self.ds.locate)[0]
                filled, pos = filled + m, pos + m
                if filled == len(x):
                    if not self.checked:
                        self._check(x, row0)
                    if self.keep_bytes:
                        self._keep(b, x, block_rows)
                    if not self.checked and self.spill is not None and self.spill.block_rows == block_rows \
                            and not (self._kept_grid == block_rows and b in self._kept):
                        self.spill.write(b, x)  # checked just now: the later passes read it back
                    yield b, x
                    b, row0, x = b + 1, row0 + len(x), None
            del col
        # Arrow's pool gives its freed pages back once a pass ends, not after every batch: the batches are of one
        # size, so the pool reuses the same pages for the next one. Trimming after each batch made every batch
        # fault its pages in again: 1.03M page faults and 7 s of system time in a streamed 1M × 384 `cluster`
        # against 48k and 4 s, at the same peak RSS within 1 % (docs/performance.md)
        pa.default_memory_pool().release_unused()
        if start == 0 and stop == self.n:  # every row was read and checked
            self.checked = True

    def _check(self, x: np.ndarray, row0: int) -> None:
        """An :class:`InputError` at the first row of ``x`` (rows row0.. of the dataset) holding a bad value
        (the id for the message read with handles of its own: any thread may call this)."""
        bad = first_bad_value(x)
        if bad is not None:
            file, row = self.ds.locate(row0 + bad[0])
            raise InputError(f"column '{self.column}' has {bad[1]} at row {row}"
                             f"{self.ds.reopened().id_of(row0 + bad[0])}; {bad[2]}", file)

    def _fill(self, ds: ParquetDataset, out: np.ndarray, start: int, stop: int, at: list[int], stopped,
              ahead: bool = False) -> None:
        """Decode rows [start, stop) of ``ds`` into the same rows of ``out`` batch by batch, checking each batch.

        ``at[0]`` is kept at the first row of the batch being decoded (for the caller's message order);
        ``stopped(row)`` says whether to stop before the batch starting at ``row``; ``ahead``: the next batch
        is decoded in a thread (:func:`~dataselect_cli.pqdataset.prefetch`) while this one is converted, checked and
        copied.
        """
        batches = ds.iter_batches([self.column], start, stop, decode_rows(self.d))
        batches = prefetch(batches) if ahead else batches
        try:
            for batch in batches:
                col, row = batch.column(0), at[0]
                del batch
                x = out[row : row + len(col)]
                x[...] = io.list_block(col, ds.path, self.column, row, self.d, locate=ds.locate)[0]
                del col
                if not self.checked:
                    self._check(x, row)
                at[0] = row + len(x)
                if stopped(at[0]):
                    return
        finally:  # now, not when the error that stopped it is dropped: the read-ahead thread and the file let go
            batches.close()

    def _read_all(self, out: np.ndarray, threads: int) -> None:
        """Every row into ``out``, the row groups shared among ``threads`` threads (each with its own file
        handles, decoding its row groups batch by batch straight into ``out``); the error of the lowest row.

        Each thread takes the next row group in row order and reads it in order, so that when a thread fails
        at a batch every earlier batch has been read (or failed) by some thread: the error raised is the one
        a single thread reading the file in order would raise. Row groups after a failed batch are not read.
        With fewer row groups than threads (pyarrow's default layout writes up to 1,048,576 rows as one), each
        thread decodes its next batch in a second thread while it copies and checks the last one.
        """
        units = self.ds.ranges(0, self.n)
        ahead = threads > len(units)
        lock, first = threading.Lock(), [self.n, None]  # (row of the earliest failed batch, its exception)
        nxt = iter(units)
        halt = threading.Event()  # the caller was interrupted

        def stopped(row: int) -> bool:
            return halt.is_set() or row >= first[0]

        def work(ds: ParquetDataset) -> None:
            while True:
                with lock:
                    unit = next(nxt, None)
                if unit is None or stopped(unit[0]):
                    return
                lo, hi = unit
                at = [lo]
                try:
                    self._fill(ds, out, lo, hi, at, stopped, ahead)
                except Exception as exc:  # noqa: BLE001 - the earliest is raised by the caller
                    with lock:
                        if at[0] < first[0]:
                            first[:] = [at[0], exc]
                    return

        helpers = [threading.Thread(target=work, args=(self.ds.reopened(),), daemon=True,
                                    name=f"dataselect-read-{i}") for i in range(min(threads, len(units)) - 1)]
        for t in helpers:
            t.start()
        try:
            work(self.ds)
        except BaseException:  # interrupted: the helpers stop after their batch
            halt.set()
            raise
        finally:
            for t in helpers:
                t.join()
        if first[1] is not None:
            raise first[1]

    def take(self, rows: np.ndarray | None, block_rows: int, threads: int | None = None) -> np.ndarray:
        """Rows ``rows`` (sorted; every row when None) in one pass that also checks every block.

        Every row (``rows`` None) is decoded on ``threads`` threads (default :func:`read_threads`), one row
        group at a time each, straight into the matrix: the peak is the matrix and a batch of Arrow memory
        per thread, and the matrix and any error are those of one thread reading in order.
        """
        m = self.n if rows is None else len(rows)
        out = np.empty((m, self.d), dtype=np.float32)
        filled = 0
        if rows is None:
            self._read_all(out, read_threads(out.nbytes) if threads is None else threads)
            self.checked = True
            return out
        for b, x in self.iter_blocks(0, grid.n_blocks(self.n, block_rows), block_rows):
            lo, hi = np.searchsorted(rows, [b * block_rows, b * block_rows + len(x)])
            out[filled : filled + hi - lo] = x[rows[lo:hi] - b * block_rows]
            filled += hi - lo
        return out


class TableSource:
    """Blocks of some columns of a dataset as ``{name: numpy array}`` (ids stay Arrow arrays)."""

    def __init__(self, ds: ParquetDataset, columns: list[str], arrow: tuple[str, ...] = ("id",)):
        self.ds, self.columns, self.arrow = ds, columns, arrow
        self.n = ds.n

    def iter_blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, dict[str, Any]]]:
        for b, t in enumerate(self.ds.iter_tables(self.columns, b0 * block_rows, min(self.n, b1 * block_rows),
                                                  block_rows), start=b0):
            yield b, {c: (t.column(c).combine_chunks() if c in self.arrow else t.column(c).to_numpy())
                      for c in self.columns}


class MemorySource:
    """Blocks of columns held in memory (numpy or Arrow arrays of one length) as ``{name: slice}``."""

    def __init__(self, columns: dict[str, Any]):
        self.columns = columns
        self.n = len(next(iter(columns.values())))

    def iter_blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, dict[str, Any]]]:
        for b in range(b0, b1):
            yield b, {c: v[b * block_rows : (b + 1) * block_rows] for c, v in self.columns.items()}


def open_input(path: str | os.PathLike, what: str | None = None):
    """A Parquet input (a file or a directory of files), or the rows a ``synthetic:N,D,SEED`` spec
    generates (:mod:`dataselect_cli.synthetic`, for scale tests)."""
    from .synthetic import SyntheticDataset, is_synthetic

    return SyntheticDataset(str(path)) if is_synthetic(path) else ParquetDataset(path, what)


def open_embeddings(path, column: str = "embedding", spill: str | None = None
                    ) -> tuple[ParquetDataset, Any, EmbeddingSource]:
    """Open an embeddings file or directory (or a :class:`ParquetDataset` already open): (dataset,
    ids checked for type, nulls and duplicates, source of the vectors); an :class:`InputError` for
    missing columns, no rows or d = 0. With ``spill`` (a folder) the ids are checked block by block
    through files there (:mod:`dataselect_cli.uniqueids`) and not kept: ids is then None."""
    from .uniqueids import check_unique_ids_spilled

    ds = open_input(path, "embeddings") if isinstance(path, (str, os.PathLike)) else path
    ds.require(["id", column], "embeddings")
    if spill is None:
        ids = io.read_ids(ds, ds.path)
    else:
        ids = None
        blocks = (t.column(0).combine_chunks() for t in ds.iter_tables(["id"], 0, ds.n, grid.BLOCK_ROWS))
        check_unique_ids_spilled(blocks, ds.n, spill, ds.path)
    if ds.n == 0:
        raise InputError("no embeddings: the file has 0 rows; embed some data first", ds.path)
    src = EmbeddingSource(ds, column)
    if src.d == 0:
        raise InputError(f"column '{column}' holds empty vectors (d = 0); re-embed the data", ds.path)
    return ds, ids, src


# --------------------------------------------------------------------------- whole inputs in memory


def read_embeddings(path: str | os.PathLike, *, column: str = "embedding", warn=None) -> tuple[pa.Array, np.ndarray]:
    """Read and validate an embeddings file, or a directory of them, into memory.

    Parameters
    ----------
    path : path-like
        Parquet file (or directory of Parquet files with one schema) with an ``id`` column (int64
        or string, unique) and an ``embedding`` column.
    column : str, default="embedding"
    warn : callable or None
        Called with a one-line note when the vectors are converted (e.g. from list<double>).

    Returns
    -------
    ids : pyarrow.Array of length n
    x : ndarray of shape (n, d), float32, C-contiguous
        Decoded batch by batch into one preallocated array, so peak memory is the matrix plus
        one batch.
    """
    ds, ids, src = open_embeddings(path, column)
    x = src.take(None, grid.BLOCK_ROWS)
    pa.default_memory_pool().release_unused()
    if src.note and warn:  # only once the file is valid: a failed run prints one line, the error
        warn(f"{ds.path}: {src.note}")
    return ids, x


def open_table(path: str | os.PathLike, fmt: str | None = None, *, what: str, id_column: str = "id",
               numbers: tuple[str, ...] = (), option: str = "--format", as_text: bool = False):
    """Open a table of rows with an id column: Parquet (a file or a directory) or a CSV, TSV or JSON-lines file.

    Parameters
    ----------
    path : path-like
    fmt : {"parquet", "csv", "tsv", "jsonl"} or None
        None: from the extension (:func:`dataselect_cli.tables.table_format`).
    what : str
        What the table is for ("losses", "data"), for messages.
    id_column : str, default="id"
    numbers : tuple of str
        Columns that must hold numbers (a CSV file's are parsed row by row).
    option : str
        The option that names the format, for messages.
    as_text : bool
        Read a CSV file's columns as text (see :class:`~dataselect_cli.tables.TextTable`).

    Returns
    -------
    ParquetDataset or TextTable
        Both read the same way: ``n``, ``schema``, ``require``, ``read_column``, ``iter_tables``, ``fingerprints``.
    """
    fmt = table_format(path, fmt, option)
    if fmt == "parquet":
        return ParquetDataset(path, what)
    return TextTable(path, fmt, id_column=id_column, numbers=numbers, as_text=as_text)


def take_sorted(table, columns: list[str], rows: np.ndarray, block_rows: int = grid.BLOCK_ROWS
                ) -> Iterator[tuple[int, int, pa.Table]]:
    """The rows at positions ``rows`` (sorted) of ``columns`` of a Parquet dataset or text table, in one
    sequential pass: for each block holding some, (lo, hi, those rows), the rows being ``rows[lo:hi]``."""
    start = 0
    for t in table.iter_tables(columns, 0, table.n, block_rows):
        lo, hi = np.searchsorted(rows, [start, start + t.num_rows])
        if hi > lo:
            yield int(lo), int(hi), t.take(pa.array(rows[lo:hi] - start))
        start += t.num_rows
        if hi == len(rows):
            return


def read_losses(path: str | os.PathLike, fmt: str | None = None) -> tuple[pa.Array, np.ndarray]:
    """Read and validate a losses table (``id``, ``loss``: a number, finite, >= 0; ids unique).

    Parquet (a file or a directory of files), CSV, TSV or JSON lines, by the extension or ``fmt``
    (``--losses-format``); every format gets the same checks and messages.
    """
    pf = open_table(path, fmt, what="losses", numbers=("loss",), option="--losses-format")
    p = pf.path
    pf.require(["id", "loss"], "losses")
    ids = io.read_ids(pf, p)
    col = pf.read_column("loss").combine_chunks()
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
        raise InputError(f"column 'loss' has type {col.type}; losses must be numbers", p)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column 'loss' is null at row {row} (id {ids[row].as_py()!r}); give every row a loss", p)
    loss = col.cast(pa.float64()).to_numpy()
    check_losses(loss, ids, path=p)
    return ids, loss


def read_table(path: str | os.PathLike, required: list[str], what: str) -> tuple[pa.Table, dict[str, Any]]:
    """Read a whole table (a file or a directory of files), checking ``required`` columns; return
    (table, the first file's ``dataselect`` metadata)."""
    ds = ParquetDataset(path, what)
    ds.require(required, what)
    return ds.read(), ds.metadata


class RowsSource:
    """Blocks of some rows of another block source, each block passed through a row-wise function.

    Parameters
    ----------
    src : block source
        An :class:`ArraySource`, :class:`EmbeddingSource` or another ``RowsSource``.
    rows : ndarray of int64, sorted, or None
        The rows kept (None: every row); block b holds kept rows [b·block_rows, (b+1)·block_rows).
    fn : callable or None
        A module-level (picklable) function applied to each block of vectors, row by row (e.g.
        scaling to unit norm), so its result does not depend on the grid.
    """

    def __init__(self, src, rows: np.ndarray | None = None, fn=None):
        self.src, self.rows, self.fn = src, rows, fn
        self.n = src.n if rows is None else len(rows)
        self.d = src.d

    def _out(self, x: np.ndarray) -> np.ndarray:
        return x if self.fn is None else self.fn(x)

    def iter_blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        if self.rows is None:
            for b, x in self.src.iter_blocks(b0, b1, block_rows):
                yield b, self._out(x)
            return
        want = self.rows[b0 * block_rows : min(self.n, b1 * block_rows)]
        if not len(want):
            return
        parts: list[np.ndarray] = []
        have, b = 0, b0
        for ub, x in self.src.iter_blocks(int(want[0]) // block_rows, int(want[-1]) // block_rows + 1, block_rows):
            lo, hi = np.searchsorted(want, [ub * block_rows, ub * block_rows + len(x)])
            parts.append(x[want[lo:hi] - ub * block_rows])
            have += hi - lo
            while have >= block_rows or (have and b * block_rows + have == b0 * block_rows + len(want)):
                whole = np.concatenate(parts)
                take = min(block_rows, have)
                yield b, self._out(whole[:take])
                parts, have, b = [whole[take:]], have - take, b + 1

    def take(self, rows: np.ndarray | None, block_rows: int) -> np.ndarray:
        """Rows ``rows`` (sorted positions among the kept rows; every kept row when None)."""
        inner = self.rows if rows is None else (rows if self.rows is None else self.rows[rows])
        return self._out(self.src.take(inner, block_rows))
