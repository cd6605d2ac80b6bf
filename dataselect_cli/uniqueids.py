"""The id-uniqueness check without every id in one process: hash-partitioned buckets spilled to disk.

:func:`~dataselect_cli._checks.check_unique_ids` counts all ids at once: 8 bytes a row or more, some
gigabytes at 10⁹ rows. With a directory output (:mod:`dataselect_cli.parts`) the ids are checked in
two passes instead:

1. the id column is read block by block; each id goes, with its row number, to one of P bucket files
   chosen by a hash of the id, so that equal ids land in the same bucket;
2. each bucket is loaded alone and sorted by (id, row); an id found more than once is a duplicate,
   and its first row is kept.

The check is exact (the hash only decides which bucket, never whether two ids are equal) and says
what :func:`~dataselect_cli._checks.check_unique_ids` says of the same input: the repeated id whose
first occurrence comes first, how many times it appears, and how many ids are repeated. Memory: one
block and one bucket of about :data:`BUCKET_ROWS` rows (P = n / BUCKET_ROWS buckets, at most
:data:`MAX_BUCKETS`, so beyond 5·10⁸ rows a bucket grows with n); disk: 16 bytes a row for integer
ids (8 + the string's bytes for strings), removed after the check.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import numpy as np
import pyarrow as pa

from . import io
from ._checks import raise_duplicate

#: Rows per bucket aimed at (the memory of the second pass: about 16 bytes a row for integer ids).
BUCKET_ROWS = 1 << 20
#: Bucket files open at once at most (file handles).
MAX_BUCKETS = 512
#: Per-position multipliers of the string hash (fixed odd constants).
_POW = np.random.default_rng(0x5EED).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64, wrapping)."""
    h = h.copy()
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def id_hash(ids: pa.Array) -> np.ndarray:
    """A 64-bit hash of each id (int64 or string, no nulls), vectorised: equal ids have equal hashes."""
    if pa.types.is_integer(ids.type):
        return _mix(ids.to_numpy().astype(np.int64).view(np.uint64))
    _, obuf, dbuf = ids.buffers()
    offsets = np.frombuffer(obuf, dtype=np.int32)[ids.offset : ids.offset + len(ids) + 1].astype(np.int64)
    data = np.frombuffer(dbuf, dtype=np.uint8) if dbuf is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    first = offsets[:-1] - offsets[0]
    pos = np.arange(int(offsets[-1] - offsets[0])) - np.repeat(first, lengths)  # position of each byte in its id
    w = (data[offsets[0] : offsets[-1]].astype(np.uint64) + np.uint64(1)) * _POW[pos % len(_POW)]
    h = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    full = lengths > 0
    if full.any():
        h[full] += np.add.reduceat(w, first[full])
    return _mix(h)


def _write(f, ids: pa.Array, rows: np.ndarray) -> None:
    """Append one record to a bucket file: [m, string bytes], the ids, their rows."""
    if pa.types.is_integer(ids.type):
        np.array([len(ids), -1], dtype=np.int64).tofile(f)
        ids.to_numpy().astype(np.int64).tofile(f)
    else:
        _, obuf, dbuf = ids.buffers()
        offsets = np.frombuffer(obuf, dtype=np.int32)[ids.offset : ids.offset + len(ids) + 1]
        np.array([len(ids), int(offsets[-1] - offsets[0])], dtype=np.int64).tofile(f)
        np.diff(offsets).astype(np.int32).tofile(f)
        if dbuf is not None:
            f.write(memoryview(np.frombuffer(dbuf, dtype=np.uint8)[offsets[0] : offsets[-1]]))
    rows.astype(np.int64).tofile(f)


def _read(path: str, string: bool) -> tuple[pa.Array, np.ndarray]:
    """Every record of a bucket file: (ids, rows)."""
    ids: list[pa.Array] = []
    rows: list[np.ndarray] = []
    with open(path, "rb") as f:
        while True:
            head = np.fromfile(f, dtype=np.int64, count=2)
            if len(head) < 2:
                break
            m, nbytes = int(head[0]), int(head[1])
            if string:
                lengths = np.fromfile(f, dtype=np.int32, count=m)
                offsets = np.r_[0, np.cumsum(lengths, dtype=np.int64)].astype(np.int32)
                data = f.read(nbytes)
                ids.append(pa.StringArray.from_buffers(m, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)))
            else:
                ids.append(pa.array(np.fromfile(f, dtype=np.int64, count=m)))
            rows.append(np.fromfile(f, dtype=np.int64, count=m))
    if not ids:
        return pa.array([], pa.string() if string else pa.int64()), np.empty(0, np.int64)
    return pa.concat_arrays(ids), np.concatenate(rows)


def _repeats(ids: pa.Array, rows: np.ndarray) -> tuple[int, tuple[int, object, int] | None]:
    """(ids repeated in this bucket, (first row, id, count) of the one whose first row comes first, or None)."""
    import pyarrow.compute as pc

    m = len(ids)
    if m < 2:
        return 0, None
    order = pc.sort_indices(pa.table({"id": ids, "row": rows}), sort_keys=[("id", "ascending"), ("row", "ascending")])
    sid, srow = ids.take(order), rows[order.to_numpy()]
    same = pc.equal(sid.slice(1), sid.slice(0, m - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ~same])
    counts = np.diff(np.r_[starts, m])
    rep = starts[counts > 1]
    if not len(rep):
        return 0, None
    j = int(np.argmin(srow[rep]))
    return len(rep), (int(srow[rep[j]]), sid[int(rep[j])].as_py(), int(counts[counts > 1][j]))


def check_unique_ids_spilled(blocks: Iterator[pa.Array], n: int, folder: str, path: str, column: str = "id",
                             bucket_rows: int | None = None) -> None:
    """Check that the ids of ``blocks`` (the id column, block by block, in row order; n rows in all) are
    non-null, of an id type and unique, spilling them to bucket files under ``folder`` (made here, removed
    after; ``bucket_rows``: rows a bucket aims at, default :data:`BUCKET_ROWS`); an
    :class:`~dataselect_cli.errors.InputError` as :func:`dataselect_cli.io.normalize_ids` gives."""
    p = max(1, min(MAX_BUCKETS, -(-n // (bucket_rows or BUCKET_ROWS))))
    os.makedirs(folder, exist_ok=True)
    names = [os.path.join(folder, f"bucket-{i:04d}.bin") for i in range(p)]
    string = False
    try:
        files = [open(name, "wb") for name in names]
        try:
            row0 = 0
            for col in blocks:
                col = io.check_id_nulls(io.id_type(col, path, column), path, column, row0)
                string = not pa.types.is_integer(col.type)
                bucket = (id_hash(col) % np.uint64(p)).astype(np.int64)
                order = np.argsort(bucket, kind="stable")
                ends = np.cumsum(np.bincount(bucket, minlength=p))
                ids, rows = col.take(pa.array(order)), row0 + order
                for i in np.flatnonzero(np.diff(np.r_[0, ends])):
                    lo, hi = (ends[i - 1] if i else 0), ends[i]
                    _write(files[i], ids.slice(lo, hi - lo), rows[lo:hi])
                row0 += len(col)
        finally:
            for f in files:
                f.close()
        repeated, first = 0, None
        for name in names:
            r, hit = _repeats(*_read(name, string))
            os.unlink(name)
            repeated += r
            if hit is not None and (first is None or hit[0] < first[0]):
                first = hit
        if first is not None:
            raise_duplicate(first[1], first[2], repeated, path, column)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
