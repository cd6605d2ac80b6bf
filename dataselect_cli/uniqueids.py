"""The id-uniqueness check without every id in one process: hash-partitioned buckets spilled to disk.

:func:`~dataselect_cli._checks.check_unique_ids` counts all ids at once: 8 bytes a row or more, some
gigabytes at 10⁹ rows. With a directory output (:mod:`dataselect_cli.parts`) the ids are checked in
two passes instead:

1. the id column is read block by block; each id goes, with its row number, to one of P bucket files
   chosen by a hash of the id, so that equal ids land in the same bucket;
2. each bucket is loaded alone and sorted by (id, row); an id found more than once is a duplicate,
   and its first row is kept. A bucket of more than 2·:data:`BUCKET_ROWS` rows (P is at most
   :data:`MAX_BUCKETS`, so buckets hold more beyond 5·10⁸ rows) is first split the same way, record
   by record, on the hash mixed once more, into sub-buckets checked in turn.

The check is exact (the hash only decides which bucket, never whether two ids are equal) and says
what :func:`~dataselect_cli._checks.check_unique_ids` says of the same input: the repeated id whose
first occurrence comes first, how many times it appears, and how many ids are repeated. Memory: one
block and one bucket of about :data:`BUCKET_ROWS` rows whatever n (up to :data:`MAX_DEPTH` splits:
only ids that share 64 hash bits, in practice one id repeated millions of times, make a larger
one); disk: 16 bytes a row for integer ids (8 + the string's bytes for strings), twice that for a
while where buckets are split, removed after the check.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import numpy as np
import pyarrow as pa

from . import io
from ._checks import raise_duplicate

#: Rows per bucket aimed at (the memory of the second pass: about 60 bytes a row for integer ids, with the sort's
#: temporaries; measured peak of the check alone, 10⁶ to 10⁸ ids: 98 to 100 MiB, against 153 to 174 MiB with 2²⁰).
BUCKET_ROWS = 1 << 18
#: Bucket files open at once at most (file handles).
MAX_BUCKETS = 512
#: Times a bucket is split at most (each split hashes its ids again, another way).
MAX_DEPTH = 3
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
    """Append one record to a bucket file: [m, string bytes], the ids, their rows. Written through the file
    object's own buffer (``ndarray.tofile`` would open and close a C stream on a duplicate of the file
    descriptor for every array: three a record, hundreds of records a block)."""
    if pa.types.is_integer(ids.type):
        parts = [np.array([len(ids), -1], dtype=np.int64), ids.to_numpy().astype(np.int64, copy=False)]
    else:
        _, obuf, dbuf = ids.buffers()
        offsets = np.frombuffer(obuf, dtype=np.int32)[ids.offset : ids.offset + len(ids) + 1]
        parts = [np.array([len(ids), int(offsets[-1] - offsets[0])], dtype=np.int64),
                 np.diff(offsets).astype(np.int32)]
        if dbuf is not None:
            parts.append(np.frombuffer(dbuf, dtype=np.uint8)[offsets[0] : offsets[-1]])
    for a in (*parts, rows.astype(np.int64, copy=False)):
        f.write(memoryview(np.ascontiguousarray(a)).cast("B"))


def _records(path: str, string: bool) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """The records of a bucket file, in the order written: (ids, rows) each."""
    with open(path, "rb") as f:
        while True:
            head = np.fromfile(f, dtype=np.int64, count=2)
            if len(head) < 2:
                return
            m, nbytes = int(head[0]), int(head[1])
            if string:
                lengths = np.fromfile(f, dtype=np.int32, count=m)
                offsets = np.r_[0, np.cumsum(lengths, dtype=np.int64)].astype(np.int32)
                data = f.read(nbytes)
                ids = pa.StringArray.from_buffers(m, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
            else:
                ids = pa.array(np.fromfile(f, dtype=np.int64, count=m))
            yield ids, np.fromfile(f, dtype=np.int64, count=m)


def _read(path: str, string: bool) -> tuple[pa.Array | np.ndarray, np.ndarray]:
    """Every record of a bucket file: (ids, rows); integer ids as one int64 array read whole, its records sliced
    out of it (a few large allocations, not two a record: hundreds of buckets of thousands of records otherwise
    leave the allocators' slack growing with n)."""
    if not string:
        words = np.fromfile(path, dtype=np.int64)
        spans, pos = [], 0
        while pos < len(words):
            m = int(words[pos])
            spans.append((pos + 2, m))
            pos += 2 + 2 * m
        ids = np.concatenate([words[a : a + m] for a, m in spans]) if spans else words[:0]
        rows = np.concatenate([words[a + m : a + 2 * m] for a, m in spans]) if spans else words[:0]
        return ids, rows
    got = list(_records(path, string))
    if not got:
        return pa.array([], pa.string()), np.empty(0, np.int64)
    return pa.concat_arrays([ids for ids, _ in got]), np.concatenate([rows for _, rows in got])


def _partition(records: Iterator[tuple[pa.Array, np.ndarray]], folder: str, p: int, digit: int) -> list[str]:
    """Write (ids, rows) records to p bucket files under ``folder`` by :func:`id_hash` mod p, the hash mixed
    again at each ``digit`` (level) > 0 (equal ids, same file); the files' names."""
    names = [os.path.join(folder, f"bucket-{i:04d}.bin") for i in range(p)]
    os.makedirs(folder, exist_ok=True)
    files = [open(name, "wb") for name in names]
    try:
        for ids, rows in records:
            h = id_hash(ids)
            if digit:  # a sub-bucket's ids share h mod p of every level above: hash h again, another way each level
                h = _mix(h ^ np.uint64((0x9E3779B97F4A7C15 * digit) % 2**64))
            bucket = (h % np.uint64(p)).astype(np.int64)
            order = np.argsort(bucket, kind="stable")
            ends = np.cumsum(np.bincount(bucket, minlength=p))
            ids, rows = ids.take(pa.array(order)), rows[order]
            for i in np.flatnonzero(np.diff(np.r_[0, ends])):
                lo, hi = (ends[i - 1] if i else 0), ends[i]
                _write(files[i], ids.slice(lo, hi - lo), rows[lo:hi])
    finally:
        for f in files:
            f.close()
    return names


def _bucket_repeats(name: str, string: bool, bucket_rows: int, depth: int) -> tuple[int, tuple | None]:
    """:func:`_repeats` of a bucket file (removed after), split into sub-buckets first when it holds more than
    2·``bucket_rows`` rows (12 bytes a row or more on disk)."""
    big = os.path.getsize(name) > 24 * bucket_rows
    if not big or depth >= MAX_DEPTH:
        got = _repeats(*_read(name, string))
        os.unlink(name)
        return got
    sub = name[:-4]  # bucket-0007.bin → bucket-0007/
    p = max(2, min(MAX_BUCKETS, -(-os.path.getsize(name) // (12 * bucket_rows))))
    names = _partition(_records(name, string), sub, p, depth + 1)
    os.unlink(name)
    got = _buckets_repeats(names, string, bucket_rows, depth + 1)
    os.rmdir(sub)
    return got


def _buckets_repeats(names: list[str], string: bool, bucket_rows: int, depth: int) -> tuple[int, tuple | None]:
    """:func:`_bucket_repeats` of bucket files, combined: the ids repeated in all, and the repeated id whose
    first row comes first."""
    repeated, first = 0, None
    for name in names:
        r, hit = _bucket_repeats(name, string, bucket_rows, depth)
        repeated += r
        if hit is not None and (first is None or hit[0] < first[0]):
            first = hit
    return repeated, first


def _repeats(ids: pa.Array | np.ndarray, rows: np.ndarray) -> tuple[int, tuple[int, object, int] | None]:
    """(ids repeated in this bucket, (first row, id, count) of the one whose first row comes first, or None);
    ``ids`` int64 (numpy) or strings (Arrow)."""
    m = len(ids)
    if m < 2:
        return 0, None
    if isinstance(ids, np.ndarray):
        order = np.lexsort((rows, ids))
        sid = ids[order]
        same = sid[1:] == sid[:-1]
        if not same.any():  # the usual case: no temporaries of the bucket's size beyond these
            return 0, None
        srow = rows[order]
    else:
        import pyarrow.compute as pc

        order = pc.sort_indices(pa.table({"id": ids, "row": rows}),
                                sort_keys=[("id", "ascending"), ("row", "ascending")])
        sid, srow = ids.take(order), rows[order.to_numpy()]
        same = pc.equal(sid.slice(1), sid.slice(0, m - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ~same])
    counts = np.diff(np.r_[starts, m])
    rep = starts[counts > 1]
    if not len(rep):
        return 0, None
    j = int(np.argmin(srow[rep]))
    first = sid[int(rep[j])]
    return len(rep), (int(srow[rep[j]]), int(first) if isinstance(ids, np.ndarray) else first.as_py(),
                      int(counts[counts > 1][j]))


def check_unique_ids_spilled(blocks: Iterator[pa.Array], n: int, folder: str, path: str, column: str = "id",
                             bucket_rows: int | None = None) -> None:
    """Check that the ids of ``blocks`` (the id column, block by block, in row order; n rows in all) are
    non-null, of an id type and unique, spilling them to bucket files under ``folder`` (made here, removed
    after; ``bucket_rows``: rows a bucket aims at, default :data:`BUCKET_ROWS`); an
    :class:`~dataselect_cli.errors.InputError` as :func:`dataselect_cli.io.normalize_ids` gives."""
    bucket_rows = bucket_rows or BUCKET_ROWS
    p = max(1, min(MAX_BUCKETS, -(-n // bucket_rows)))
    kind = {"string": False}

    def records() -> Iterator[tuple[pa.Array, np.ndarray]]:
        row0 = 0
        for col in blocks:
            col = io.check_id_nulls(io.id_type(col, path, column), path, column, row0)
            kind["string"] = not pa.types.is_integer(col.type)
            yield col, row0 + np.arange(len(col), dtype=np.int64)
            row0 += len(col)

    try:
        names = _partition(records(), folder, p, 0)
        repeated, first = _buckets_repeats(names, kind["string"], bucket_rows, 0)
        if first is not None:
            raise_duplicate(first[1], first[2], repeated, path, column)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
