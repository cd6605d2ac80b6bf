"""Parquet inputs as one table of n rows, read block by block: a file or a directory of files.

A directory's ``*.parquet`` files (searched recursively, hidden ``.``/``_`` names skipped) are
taken in name order and must share one schema; a directory output of this tool is read by its
manifest, and refused without one (:mod:`dataselect_cli.parts`). Rows are addressed by their global position, and
:meth:`ParquetDataset.iter_tables` cuts them into pieces of exactly ``block_rows`` rows whatever the
files' row groups, so that every reader sees the same blocks (:mod:`dataselect_cli.grid`); :func:`prefetch`
produces the next pieces in a background thread while the caller works on the current one.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import io, parts
from .errors import InputError


#: Rows decoded at a time at most (one Parquet batch), whatever the files' row groups.
DECODE_ROWS = 16384


def has_parquet(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding ``.parquet`` files (at any depth)."""
    return os.path.isdir(path) and any(f.endswith(".parquet") for _, _, files in os.walk(path) for f in files)


class ParquetDataset:
    """A Parquet file, or a directory of Parquet files with one schema, as rows 0..n−1.

    Parameters
    ----------
    path : str
        A ``.parquet`` file or a directory (searched recursively for ``*.parquet``).
    what : str or None
        What the file is for (embeddings, losses, data, …: a key of :data:`~dataselect_cli.io.PARQUET_HINTS`),
        for the message about a file that is not Parquet.

    Attributes
    ----------
    path : str
    files : list of str
        In row order.
    n : int
        Rows in all (from the files' footers; nothing else is read when opening).
    schema : pyarrow.Schema
        The common schema (without metadata).
    """

    def __init__(self, path: str | os.PathLike, what: str | None = None):
        self.path, self.what = str(path), what
        if os.path.isdir(self.path):
            root = Path(self.path)
            self.files = sorted(str(p) for p in root.rglob("*.parquet")
                                if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))
            self.files = parts.dataset_files(self.path, self.files)  # a directory output of ours: its manifest
            if not self.files:
                raise InputError("is a directory without .parquet files; pass a Parquet file or a directory of them",
                                 self.path)
        else:
            self.files = [self.path]
        self._open: dict[int, pq.ParquetFile] = {}
        self.row_groups: list[tuple[int, int, int, int]] = []  # (file, row group, first row, rows)
        first = self._pf(0)
        self.schema = first.schema_arrow.remove_metadata()
        row = 0
        for i, f in enumerate(self.files):
            pf = self._pf(i)
            if i:
                _check_same_schema(self.schema, pf.schema_arrow, self.files[0], f)
            md = pf.metadata
            for rg in range(md.num_row_groups):
                rows = md.row_group(rg).num_rows
                if rows:
                    self.row_groups.append((i, rg, row, rows))
                    row += rows
            self._release(i)
        self.n = row

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}}

    def _pf(self, i: int) -> pq.ParquetFile:
        if i not in self._open:
            self._open[i] = io.open_parquet(self.files[i], self.what)
        return self._open[i]

    def reopened(self) -> "ParquetDataset":
        """The same dataset with handles of its own: for another thread (a ``pq.ParquetFile`` is not shared
        between threads); nothing is read."""
        other = copy.copy(self)
        other._open = {}
        return other

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Rows [start, stop) cut at the files' row-group boundaries: the pieces that decode independently."""
        return [(max(first, start), min(first + rows, stop)) for _, _, first, rows in self.row_groups
                if first < stop and first + rows > start]

    def _release(self, i: int) -> None:
        """Close file i of a directory after use (directories can hold thousands of files)."""
        if i and len(self.files) > 1:
            self._open.pop(i, None)

    @property
    def metadata(self) -> dict[str, Any]:
        """The ``dataselect`` metadata of the first file (``{}`` if it has none), or of a directory output's
        manifest."""
        return (parts.read_manifest(self.path) or {}).get("dataselect") or io.read_meta(self.files[0], self.what)

    def require(self, columns: list[str], what: str) -> None:
        """Raise an :class:`InputError` naming the first of ``columns`` the files lack."""
        io.require_columns(self._pf(0), columns, self.files[0] if len(self.files) == 1 else self.path, what)

    def locate(self, row: int) -> tuple[str, int]:
        """(file, row within that file) of a global row, for messages."""
        for fi, _rg, start, rows in self.row_groups:
            if start <= row < start + rows:
                file_start = next(s for f, _, s, _ in self.row_groups if f == fi)
                return self.files[fi], row - file_start
        return self.path, row

    def id_of(self, row: int) -> str:
        """`` (id X)`` of a global row for messages, or "" without an ``id`` column."""
        if self.schema.get_field_index("id") < 0:
            return ""
        return f" (id {next(self.iter_tables(['id'], row, row + 1, 1)).column(0)[0].as_py()!r})"

    def fingerprints(self, role: str) -> dict[str, dict]:
        """The metadata's ``inputs`` entries: ``{role: fp}``, or ``{role/relative path: fp}`` per file; one entry
        for a directory output of ours (:func:`dataselect_cli.parts.fingerprint`)."""
        if self.files == [self.path]:
            return {role: io.fingerprint(self.path)}
        if (fp := parts.fingerprint(self.path, self.files)) is not None:
            return {role: fp}
        return {f"{role}/{os.path.relpath(f, self.path)}": io.fingerprint(f) for f in self.files}

    def read_column(self, column: str) -> pa.ChunkedArray:
        """One column of every file, in row order."""
        parts = []
        for i in range(len(self.files)):
            parts.extend(self._pf(i).read(columns=[column]).column(column).chunks)
            self._release(i)
        return pa.chunked_array(parts, type=self.schema.field(column).type)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Every row of ``columns`` (default all), in row order, without the files' metadata."""
        parts = []
        for i in range(len(self.files)):
            parts.append(self._pf(i).read(columns=columns).replace_schema_metadata(None))
            self._release(i)
        return pa.concat_tables(parts)

    def iter_batches(self, columns: list[str], start: int, stop: int, batch_rows: int,
                     threads: bool = False) -> Iterator[pa.RecordBatch]:
        """Rows [start, stop) of ``columns`` as consecutive record batches of at most ``batch_rows`` rows each
        (``threads``: the columns of a batch decoded on pyarrow's threads).

        Whatever the size of the files' row groups, only one batch is decoded at a time and nothing
        is kept between batches: a caller that copies each batch out and drops it holds at most
        ``batch_rows`` rows of Arrow memory (plus the reader's :data:`~dataselect_cli.io.READ_BUFFER`).
        """
        for fi, rg, first, rows in self.row_groups:
            if first + rows <= start:
                continue
            if first >= stop:
                break
            pos = first
            try:
                for batch in self._pf(fi).iter_batches(batch_size=batch_rows, row_groups=[rg], columns=columns,
                                                       use_threads=threads):
                    lo, hi = max(start - pos, 0), min(stop - pos, batch.num_rows)
                    pos += batch.num_rows
                    if hi > lo:
                        yield batch.slice(lo, hi - lo)
                    del batch
                    if pos >= stop:
                        break
            finally:  # also when the caller stops early (next() of one table): the file is not kept open
                self._release(fi)

    def iter_tables(self, columns: list[str], start: int, stop: int, block_rows: int,
                    batch_rows: int | None = None, threads: bool = False) -> Iterator[pa.Table]:
        """Rows [start, stop) of ``columns`` as tables of exactly ``block_rows`` rows (the last may be shorter),
        decoded in batches of ``batch_rows`` rows (default at most :data:`DECODE_ROWS`; ``threads``: see
        :meth:`iter_batches`)."""
        buf: list[pa.Table] = []
        have = 0
        for batch in self.iter_batches(columns, start, stop, batch_rows or min(block_rows, DECODE_ROWS), threads):
            buf.append(pa.Table.from_batches([batch]))
            have += batch.num_rows
            del batch
            if have >= block_rows:
                whole = pa.concat_tables(buf)
                done = have - have % block_rows
                for s in range(0, done, block_rows):
                    yield whole.slice(s, block_rows)
                rest = whole.slice(done)
                del whole  # the block's batches are freed once the caller drops the block
                buf, have = ([rest] if rest.num_rows else []), rest.num_rows
        if have:
            yield pa.concat_tables(buf)


def _check_same_schema(ref: pa.Schema, other: pa.Schema, ref_file: str, file: str) -> None:
    if other.remove_metadata().equals(ref):
        return
    for field in ref:
        idx = other.get_field_index(field.name)
        if idx < 0:
            raise InputError(f"has no column '{field.name}' but {ref_file} has; every file of a directory needs the "
                             "same columns", file)
        if other.field(idx).type != field.type:
            raise InputError(f"column '{field.name}' is {other.field(idx).type} here but {field.type} in {ref_file}; "
                             "every file of a directory needs the same schema", file)
    extra = [f.name for f in other if ref.get_field_index(f.name) < 0]
    raise InputError(f"has column(s) {', '.join(map(repr, extra))} that {ref_file} lacks (or another column order); "
                     "every file of a directory needs the same schema", file)


# --------------------------------------------------------------------------- reading ahead


def prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Yield ``items``, producing the next ones in a background thread (at most ``depth`` ahead).

    Decoding Parquet releases the GIL, so the next block is read while this one is computed on:
    a streamed pass then costs about max(read, compute) instead of their sum. At most ``depth + 1``
    items exist at once: the one the consumer holds and ``depth`` read ahead (the reader starts an
    item only once the consumer has taken the previous one, not merely queued it). An exception in
    the reader is raised here; leaving the loop early stops the reader and waits for it (at most the item
    it is producing), so that no item outlives the loop.
    """
    q: queue.Queue = queue.Queue()
    stop = threading.Event()
    slots = threading.Semaphore(depth + 1)
    end = object()

    def wait() -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=0.1):
                return True
        return False

    def work() -> None:
        try:
            it = iter(items)
            while wait():
                item = next(it, end)
                q.put((True, item))
                if item is end:
                    return
                del item
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((False, exc))

    thread = threading.Thread(target=work, daemon=True, name="dataselect-prefetch")
    thread.start()
    try:
        first = True
        while True:
            ok, item = q.get()
            if not first:
                slots.release()  # the consumer drops the previous item as it takes this one
            first = False
            if not ok:
                raise item
            if item is end:
                return
            yield item
            del item
    finally:
        stop.set()
        # a consumer that left early: wait for the reader to finish the item it is on and drop what it queued,
        # so the next pass does not start while this one's blocks are still alive (the memory limit counts two)
        thread.join()
        while not q.empty():
            q.get_nowait()
