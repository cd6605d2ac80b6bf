"""Turn numeric inputs into the embeddings table of the data contract.

Readers return ``(ids or None, x float32 (n, d), passthrough pyarrow.Table or None)``; the
caller validates and writes. Supported: ``.npy``, ``.npz``, ``.csv``/``.tsv`` of numbers,
``.jsonl`` with a vector field, and Parquet with a list column. Text corpora are read by
:mod:`dataselect_cli.corpus` and encoded by :mod:`dataselect_cli.encoders`.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from .errors import InputError
from .io import list_block, open_parquet

NUMERIC_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".jsonl", ".parquet", ".pq")


def _as_matrix(a: np.ndarray, path: str, what: str) -> np.ndarray:
    if a.ndim != 2:
        raise InputError(f"{what} has shape {a.shape}; expected a 2-D array (rows × dimensions)", path)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{what} has dtype {a.dtype}; expected numbers", path)
    return np.ascontiguousarray(a, dtype=np.float32)


def read_npy(path: str) -> np.ndarray:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npy file ({exc})", path) from None
    return _as_matrix(a, path, "the array")


def read_npz(path: str, array: str | None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if array is None:
                if len(names) != 1:
                    raise InputError(f"holds {len(names)} arrays ({', '.join(names)}); pick one with --array NAME", path)
                array = names[0]
            if array not in names:
                raise InputError(f"has no array '{array}' (it holds {', '.join(names)})", path)
            return _as_matrix(z[array], path, f"array '{array}'")
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npz file ({exc})", path) from None


def read_delimited(path: str, id_column: str | None) -> tuple[pa.Array | None, np.ndarray]:
    delim = "\t" if path.endswith(".tsv") else ","
    try:
        t = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delim))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable {'TSV' if delim == chr(9) else 'CSV'} file ({str(exc).splitlines()[0]})", path) from None
    ids, t = _split_ids(t, id_column, path)
    for name, col in zip(t.column_names, t.columns):
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise InputError(f"column '{name}' is {col.type}, not a number; every column but the id must be a vector "
                             "component (drop it, or name it with --id-column)", path)
        if col.null_count:
            raise InputError(f"column '{name}' has {col.null_count} empty cells; fill or drop those rows", path)
    if t.num_columns == 0:
        raise InputError("has no numeric columns; expected one column per vector component", path)
    x = np.column_stack([c.to_numpy().astype(np.float32) for c in t.columns]) if t.num_rows else np.empty((0, t.num_columns), np.float32)
    return ids, np.ascontiguousarray(x)


def read_jsonl(path: str, field: str, id_column: str | None) -> tuple[pa.Array | None, np.ndarray, pa.Table]:
    try:
        t = pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable JSON-lines file ({str(exc).splitlines()[0]})", path) from None
    return _from_table(t, path, field, id_column)


def read_parquet_vectors(path: str, field: str, id_column: str | None) -> tuple[pa.Array | None, np.ndarray, pa.Table]:
    t = open_parquet(path, "vectors").read()
    return _from_table(t, path, field, id_column)


def _split_ids(t: pa.Table, id_column: str | None, path: str) -> tuple[pa.Array | None, pa.Table]:
    name = id_column or "id"
    if name not in t.column_names:
        if id_column is not None:
            raise InputError(f"missing id column '{id_column}' (columns: {', '.join(t.column_names)})", path)
        return None, t
    ids = t.column(name).combine_chunks()
    return ids, t.drop_columns([name])


def _from_table(t: pa.Table, path: str, field: str, id_column: str | None):
    if field not in t.column_names:
        raise InputError(f"missing vector column '{field}' (columns: {', '.join(t.column_names)}); "
                         "name it with --column", path)
    ids, t = _split_ids(t, id_column, path)
    col = t.column(field).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise InputError(f"column '{field}' is {col.type}; expected a list of numbers per row", path)
    vt = col.type.value_type
    if not (pa.types.is_floating(vt) or pa.types.is_integer(vt) or pa.types.is_null(vt)):
        raise InputError(f"column '{field}' holds {vt} values; expected numbers", path)
    x, _ = list_block(col, path, field, 0, None) if len(col) else (np.empty((0, 0), np.float32), 0)
    return ids, np.ascontiguousarray(x), t.drop_columns([field])


def read_vectors(source, *, column: str = "embedding", array: str | None = None,
                 id_column: str | None = None) -> tuple[pa.Array | None, np.ndarray, pa.Table | None]:
    """Read vectors from any supported numeric file, or from a Parquet dataset already opened
    (:class:`~dataselect_cli.pqdataset.ParquetDataset`); see the module docstring."""
    if not isinstance(source, (str, os.PathLike)):  # Parquet files, one schema
        return _from_table(source.read(), source.path, column, id_column)
    path = str(source)
    if not os.path.exists(path):
        raise InputError("no such file", path)
    low = path.lower()
    if low.endswith(".npy"):
        return None, read_npy(path), None
    if low.endswith(".npz"):
        return None, read_npz(path, array), None
    if low.endswith((".csv", ".tsv")):
        ids, x = read_delimited(path, id_column)
        return ids, x, None
    if low.endswith(".jsonl"):
        return read_jsonl(path, column, id_column)
    if low.endswith((".parquet", ".pq")):
        return read_parquet_vectors(path, column, id_column)
    hint = "; for a text corpus pass --text-column" if low.endswith(".txt") or os.path.isdir(path) else ""
    raise InputError(f"unknown input type; expected one of {', '.join(NUMERIC_SUFFIXES)}{hint}", path)


def normalize(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Scale rows to unit L2 norm in place; zero rows stay zero. Returns (x, number of zero rows)."""
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    norms[zero] = 1.0
    x /= norms[:, None]
    return x, int(zero.sum())
