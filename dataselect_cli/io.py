"""The Parquet data contract: read and validate inputs, write outputs with metadata (atomically, staged by
:mod:`dataselect_cli.outputs`).

Every file this tool writes carries the key ``dataselect`` in its Parquet schema metadata: a JSON
object with ``schema_version``, ``command``, ``params``, ``seed``, ``version``, ``inputs`` (a
fingerprint of each input file) and ``summary`` (the numbers the next step needs). It holds no
timestamp and no output path, so the same run written twice, to any path, gives identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, grid
from ._checks import check_unique_ids
from .errors import InputError, with_article
from .outputs import MANIFEST, _atomic_file, _atomic_write, resuming, staged

SCHEMA_VERSION = 1
#: Bytes read at a time from a column chunk (see :func:`open_parquet`).
READ_BUFFER = 1 << 22
META_KEY = b"dataselect"
#: Rows per row group of every file written: the block grid's default.
ROW_GROUP_SIZE = grid.BLOCK_ROWS


# --------------------------------------------------------------------------- files and metadata


def fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Return ``{"name", "bytes", "sha256"}`` of a file: what the metadata records of an input.

    An output this command has written but not yet committed (:func:`~dataselect_cli.outputs.outputs`) is read from its
    staged temp file."""
    real = staged(path)
    if not os.path.isfile(real):
        raise InputError("no such file", str(path))
    with open(real, "rb", buffering=0) as f:
        digest = sha256_of(f)
    return {"name": Path(path).name, "bytes": os.path.getsize(real), "sha256": digest}


def sha256_of(f) -> str:
    """The SHA-256 (hex) of an open binary file from its position to its end, read into one reused 1 MiB
    buffer (a background hash, :class:`~dataselect_cli.dataset.PendingFingerprints`, holds 1 MiB whatever the
    file)."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while m := f.readinto(buf):
        h.update(view[:m])
    return h.hexdigest()


#: What to do about a file that is not Parquet, by what the file is for: each names a step that can
#: make such a file (``dataselect embed`` makes embeddings, never losses or data).
PARQUET_HINTS = {
    "embeddings": "convert it with 'dataselect embed'",
    "input": "pass an embeddings file (made by 'dataselect embed') or a scores file (made by 'dataselect score')",
    "clusters": "pass a clusters file written by 'dataselect cluster'",
    "centers": "pass the centers file written by 'dataselect cluster' with the clusters file",
    "scores": "pass a scores file written by 'dataselect score'",
    "selected": "pass a selection written by 'dataselect sample'",
    "selection": "pass a selection written by 'dataselect sample'",
    "losses": "write it as Parquet, CSV or JSONL with columns id, loss (the format follows the extension, "
              "or --losses-format)",
    "data": "write it as Parquet, CSV, TSV or JSONL with an id column (the format follows the extension, or --format)",
    "table": "write it as Parquet with an id column",
    "vectors": "'dataselect embed' reads .npy, .npz, .csv, .tsv, .jsonl or Parquet; name the file by its format",
    "corpus": "'dataselect embed --text-column' reads .jsonl, .csv, .tsv, .txt or Parquet; name the file by its "
              "format",
}


def open_parquet(path: str | os.PathLike, what: str | None = None) -> pq.ParquetFile:
    """Open a Parquet file, turning a missing or non-Parquet file into an :class:`InputError`.

    ``what`` (a key of :data:`PARQUET_HINTS`: embeddings, losses, data, …) says what the file is for,
    so that the message names a step that can make a readable one.
    """
    p = str(path)
    real = staged(p)
    if not os.path.exists(real):
        raise InputError("no such file", p)
    if os.path.isdir(p):
        raise InputError("is a directory; pass a Parquet file", p)
    try:
        # buffered reads stream a column chunk page by page: without them pyarrow loads a whole row
        # group's column chunk before decoding the first batch (a file written with pyarrow's default
        # layout is one row group: 1.5 GB of buffer for 1M × 384 float32)
        return pq.ParquetFile(real, buffer_size=READ_BUFFER, pre_buffer=False)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = PARQUET_HINTS.get(what or "", "pass a Parquet file")
        raise InputError(f"not a readable Parquet file ({first}); {hint}", p) from None


def read_meta(path: str | os.PathLike, what: str | None = None) -> dict[str, Any]:
    """Return the ``dataselect`` metadata of a file this tool wrote, or ``{}``: a Parquet file's schema
    metadata, or the top-level ``dataselect`` key of a JSON report (``estimate --report``)."""
    if str(path).lower().endswith(".json"):
        try:
            with open(staged(path), encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError) as exc:
            raise InputError(f"not a readable JSON report ({exc})", str(path)) from None
        return obj.get(META_KEY.decode(), {}) if isinstance(obj, dict) else {}
    if os.path.isdir(staged(path)):  # a directory output: its manifest (parts.py); {} for a user's directory
        manifest = read_manifest(path)
        return manifest.get(META_KEY.decode(), {}) if manifest else {}
    meta = open_parquet(path, what).schema_arrow.metadata or {}
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else {}


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a directory output (:mod:`dataselect_cli.parts`), or None when ``path`` holds none."""
    p = os.path.join(staged(path), MANIFEST)
    if not os.path.isfile(p):
        return None
    try:
        with open(p, encoding="utf-8") as f:
            obj = json.load(f)
        if not isinstance(obj, dict) or not isinstance(obj.get("parts"), list):
            raise ValueError("no list of parts")
    except (OSError, ValueError) as exc:
        raise InputError(f"has an unreadable {MANIFEST} ({exc}); re-run the command that wrote it", str(path)) \
            from None
    return obj


def make_meta(command: str, params: dict, inputs: dict[str, str | os.PathLike | dict], summary: dict | None = None,
              seed: int | None = None) -> dict[str, Any]:
    """Build the metadata object of an output file (see the module docstring).

    ``inputs`` maps a role to a file's path, or to a fingerprint already computed (a dict; see
    :func:`dataselect_cli.dataset.input_fingerprints` for directories); None is left out.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "params": params,
        "seed": seed,
        "version": __version__,
        "inputs": {role: p if isinstance(p, dict) else fingerprint(p) for role, p in inputs.items() if p is not None},
        "summary": summary or {},
    }


def up_to_date(outs: list[str | os.PathLike], command: str, params: dict, inputs: dict[str, dict],
               seed: int | None = None) -> dict[str, Any] | None:
    """With ``--resume`` on: the metadata of ``outs`` when every one exists and was written by the same
    command, parameters, seed, tool version and inputs (by sha256); else None (redo the step).

    ``inputs`` maps roles to fingerprints (:func:`fingerprint`), computed once by the caller (or
    being computed: :class:`~dataselect_cli.dataset.PendingFingerprints`, waited for only when every
    output exists).
    """
    if not resuming() or not all(os.path.exists(out) for out in outs):  # a file, or a directory output
        return None
    want = json.loads(meta_bytes(make_meta(command, params, inputs, None, seed)))
    want.pop("summary")
    found = None
    for out in outs:
        try:
            meta = read_meta(out)
        except InputError:
            return None
        if {key: meta.get(key) for key in want} != want or (found is not None and meta != found):
            return None
        found = meta
    return found




def meta_bytes(meta: dict[str, Any]) -> bytes:
    """The metadata as stored under the ``dataselect`` key: compact JSON, keys sorted."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=json_default).encode()


class _RowGroups:
    """Buffer incoming tables and write them as row groups of exactly ``size`` rows (the last one shorter).

    So a streamed file has the same bytes however its rows arrived (in batches of 3 or of 10⁶).
    """

    def __init__(self, writer: pq.ParquetWriter, size: int):
        self.writer, self.size = writer, size
        self.parts: list[pa.Table] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.parts.append(table)
        self.rows += table.num_rows
        if self.rows >= self.size:
            self._flush(self.rows - self.rows % self.size)

    def close(self) -> None:
        if self.rows:
            self._flush(self.rows)

    def _flush(self, rows: int) -> None:
        whole = pa.concat_tables(self.parts)
        # one contiguous chunk per row group: page boundaries must not follow the input's batches
        self.writer.write_table(whole.slice(0, rows).combine_chunks(), row_group_size=self.size)
        rest = whole.slice(rows)
        self.parts, self.rows = ([rest] if rest.num_rows else []), rest.num_rows


@contextmanager
def parquet_stream(path: str | os.PathLike, schema: pa.Schema, meta: dict[str, Any]) -> Iterator[Callable[[pa.Table], None]]:
    """Write a Parquet file table by table, atomically: yield a ``write(table)`` function.

    Parameters
    ----------
    path : path-like
        The output; it appears only when the ``with`` block ends without an exception (temp file
        in the same directory, fsync, rename), and an exception leaves no file behind.
    schema : pyarrow.Schema
        The schema of every table written; ``meta`` goes into its metadata under ``dataselect``.
    meta : dict

    Notes
    -----
    Rows go out in row groups of ``ROW_GROUP_SIZE``, whatever the sizes of the tables written, so
    the bytes equal those of the same rows written in one piece.
    """
    md = dict(schema.metadata or {})
    md[META_KEY] = meta_bytes(meta)
    schema = schema.with_metadata(md)
    with _atomic_file(path) as f:
        writer = pq.ParquetWriter(f, schema, **write_options(schema))
        try:
            groups = _RowGroups(writer, ROW_GROUP_SIZE)
            yield lambda table: groups.write(table.cast(schema))
            groups.close()
        finally:
            writer.close()


def write_table(table: pa.Table, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write ``table`` with ``meta`` in its schema metadata to ``path``, atomically."""
    md = dict(table.schema.metadata or {})
    md[META_KEY] = meta_bytes(meta)
    table = table.replace_schema_metadata(md)
    _atomic_write(path, lambda f: write_parquet(table, f))


def write_parquet(table: pa.Table, f) -> None:
    """Write ``table`` to the open file ``f`` as every output is written: row groups of ROW_GROUP_SIZE and
    :func:`write_options`."""
    pq.write_table(table, f, row_group_size=ROW_GROUP_SIZE, **write_options(table.schema))


def write_options(schema: pa.Schema) -> dict[str, Any]:
    """The Parquet encoding of every output (:func:`write_parquet`, :func:`parquet_stream`): zstd, and dictionary
    pages only for the top-level columns of repeated values (labels, clusters, strings, …), not for ``id`` (unique
    by the data contract), floating-point numbers or any nested column (vectors of floats).

    A dictionary of unique or continuous values is wasted work: pyarrow hashes every value into it until it fills,
    then falls back to plain pages. On the 2M-row scores file of ``score --method el2n`` (id, score, label) the write
    took 0.63 s with a dictionary for every column and 0.20 s without those, and the file shrank from 25.2 to
    17.6 MB (docs/performance.md). The values read back are the same either way.
    """
    return {"compression": "zstd",
            "use_dictionary": [f.name for f in schema if f.name != "id" and not pa.types.is_floating(f.type)
                               and not pa.types.is_nested(f.type)]}


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file (a report) atomically."""
    _atomic_write(path, lambda f: f.write(text), mode="w")


def write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write a binary file (a PNG) atomically."""
    _atomic_write(path, lambda f: f.write(data))


def json_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays (``default=`` of :func:`json.dumps`)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


# --------------------------------------------------------------------------- columns


def require_columns(pf: pq.ParquetFile, columns: list[str], path: str, what: str) -> None:
    """Raise an :class:`InputError` naming the first of ``columns`` missing from the file."""
    names = pf.schema_arrow.names
    for c in columns:
        if c not in names:
            raise InputError(f"missing column '{c}' ({with_article(what)} file needs {', '.join(columns)}; "
                             f"found {', '.join(names) or 'none'})", path)


def read_ids(pf, path: str, column: str = "id") -> pa.Array:
    """Read the id column of a ParquetFile or a :class:`~dataselect_cli.dataset.ParquetDataset`
    as int64 or string, checking for nulls and duplicates."""
    col = pf.read_column(column) if hasattr(pf, "read_column") else pf.read(columns=[column]).column(column)
    return normalize_ids(col.combine_chunks(), path, column)


def id_type(col: pa.Array, path: str, column: str = "id") -> pa.Array:
    """Ids cast to the contract's types, int64 or string (the one place that does it); an
    :class:`InputError` for another type or an unsigned id int64 cannot hold."""
    t = col.type
    if pa.types.is_integer(t):
        if t == pa.uint64() and len(col):
            import pyarrow.compute as pc

            if (pc.max(col).as_py() or 0) > 2**63 - 1:
                raise InputError(f"column '{column}' holds unsigned ids above 2^63 − 1, which int64 cannot hold; "
                                 "store them as strings", path)
        return col if t == pa.int64() else col.cast(pa.int64())  # (a cast loads pyarrow.compute)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return col.cast(pa.string())
    if not pa.types.is_string(t):
        raise InputError(f"column '{column}' has type {t}; ids must be integers or strings", path)
    return col


def normalize_ids(col: pa.Array, path: str, column: str = "id") -> pa.Array:
    """Ids as int64 or string (:func:`id_type`); an :class:`InputError` for a null or a duplicate too."""
    col = check_id_nulls(id_type(col, path, column), path, column)
    check_unique_ids(col, path=path, column=column)
    return col


def check_id_nulls(col: pa.Array, path: str, column: str = "id", row0: int = 0) -> pa.Array:
    """``col`` (ids whose first row is row ``row0``); an :class:`InputError` naming the first null."""
    if col.null_count:
        row = row0 + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column '{column}' is null at row {row}; every row needs an id", path)
    return col


def embedding_type(d: int) -> pa.DataType:
    """The contract's embedding type, ``fixed_size_list<float32>[d]``."""
    return pa.list_(pa.float32(), d)


def embedding_array(x: np.ndarray) -> pa.FixedSizeListArray:
    """Wrap an (n, d) float32 matrix as a ``fixed_size_list<float32>[d]`` array without copying."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def embedding_dim(t: pa.DataType, path: str, column: str) -> tuple[int | None, str | None]:
    """Return (d, note) for an embedding column of type ``t``: d for a fixed-size list, None for a
    variable list; a note when the values are converted to float32."""
    if pa.types.is_fixed_size_list(t):
        vt = t.value_type
        if not pa.types.is_floating(vt):
            raise InputError(f"column '{column}' holds {vt} values; expected float32 vectors", path)
        note = None if vt == pa.float32() else f"column '{column}' is {t}; converted to float32"
        return t.list_size, note
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        vt = t.value_type
        if not (pa.types.is_floating(vt) or pa.types.is_integer(vt)):
            raise InputError(f"column '{column}' holds {vt} values; expected float32 vectors", path)
        return None, f"column '{column}' is {t}; converted to fixed_size_list<float32>"
    raise InputError(f"column '{column}' has type {t}; expected fixed_size_list<float32>[d] "
                     "(convert with 'dataselect embed')", path)


def _here(path: str, row: int, locate: Callable[[int], tuple[str, int]] | None) -> tuple[str, int]:
    return locate(row) if locate else (path, row)


def list_block(arr: pa.Array, path: str, column: str, row0: int, d: int | None,
               locate: Callable[[int], tuple[str, int]] | None = None) -> tuple[np.ndarray, int]:
    """Turn one batch of a list column into a float32 (m, d) block, checking nulls and lengths.

    ``row0`` is the batch's first row; ``locate(row)`` gives (file, row in file) for messages.
    """
    import pyarrow.compute as pc

    if arr.null_count:
        f, row = _here(path, row0 + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0]), locate)
        raise InputError(f"column '{column}' is null at row {row}; every row needs a vector", f)
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).to_numpy()
        if d is None:
            d = int(lengths[0]) if len(lengths) else 0
        bad = lengths != d
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            f, row = _here(path, row0 + i, locate)
            raise InputError(f"column '{column}' is ragged: row {row} has {int(lengths[i])} values, "
                             f"the first row has {d}; all vectors need the same length", f)
    flat = arr.flatten()
    if flat.null_count:
        raise InputError(f"column '{column}' holds null values inside a vector; fill or drop them", path)
    vals = flat.to_numpy(zero_copy_only=False)
    if vals.dtype != np.float32:
        with np.errstate(over="ignore"):
            vals = vals.astype(np.float32)  # a float64 beyond float32's range becomes inf, refused next
    return vals.reshape(len(arr), d), d


def lookup(ids: pa.Array, keys: pa.Array, path: str, what: str, hint: str = "") -> np.ndarray:
    """Positions of ``keys`` in ``ids``; an :class:`InputError` listing up to 10 keys not found (then ``hint``)."""
    import pyarrow.compute as pc

    if ids.type != keys.type:
        raise InputError(f"ids are {ids.type} here but {keys.type} in the {what}; use the same id type in both", path)
    pos = pc.index_in(keys, value_set=ids)
    if pos.null_count:
        missing = pc.filter(keys, pos.is_null())
        shown = ", ".join(repr(v) for v in missing.slice(0, 10).to_pylist())
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        ids_have = "id has" if len(missing) == 1 else "ids have"
        raise InputError(f"{len(missing)} {what} {ids_have} no row here: {shown}{more}{hint}", path)
    return pos.to_numpy().astype(np.int64)

