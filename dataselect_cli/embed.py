"""Read the inputs of ``dataselect embed``: numeric vectors, and text corpora streamed in batches.

Numeric readers return ``(ids or None, x float32 (n, d), passthrough pyarrow.Table or None)``;
the caller validates and writes. Supported: ``.npy``, ``.npz``, ``.csv``/``.tsv`` of numbers,
``.jsonl`` with a vector field, and Parquet with a list column.

Text readers (:func:`text_files`, :func:`file_columns`, :func:`read_text_file`) stream
``.jsonl``, ``.csv``/``.tsv``, ``.txt`` (one document a line) and Parquet files, or a directory
of them, as pyarrow tables; the encoders are in :mod:`dataselect_cli.encoders`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from .errors import InputError
from .io import _list_block, open_parquet

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
    t = open_parquet(path).read()
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
    x, _ = _list_block(col, path, field, 0, None) if len(col) else (np.empty((0, 0), np.float32), 0)
    return ids, np.ascontiguousarray(x), t.drop_columns([field])


def read_vectors(path: str, *, column: str = "embedding", array: str | None = None,
                 id_column: str | None = None) -> tuple[pa.Array | None, np.ndarray, pa.Table | None]:
    """Read vectors from any supported numeric file; see the module docstring."""
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


# --------------------------------------------------------------------------- text corpora
#
# A text corpus is one file or a directory of files (.jsonl, .csv/.tsv, .txt, Parquet). The
# readers stream it as pyarrow tables of at most ``batch_size`` rows holding the text column, the
# id column (if any) and the pass-through columns; nothing holds more than a batch and a block.

TEXT_SUFFIXES = (".jsonl", ".csv", ".tsv", ".txt", ".parquet", ".pq")
_BLOCK = 1 << 22  # bytes read at a time from a text file


def text_files(path: str) -> list[str]:
    """The files of a text corpus: ``path`` itself, or a directory's files of the text types in sorted order."""
    if not os.path.exists(path):
        raise InputError("no such file or directory", path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if not f.startswith(".") and f.lower().endswith(TEXT_SUFFIXES)
                       and os.path.isfile(os.path.join(path, f)))
        if not files:
            raise InputError(f"is a directory with no {', '.join(TEXT_SUFFIXES)} file; no documents to embed", path)
        return files
    if not path.lower().endswith(TEXT_SUFFIXES):
        raise InputError(f"unknown text input type; expected {', '.join(TEXT_SUFFIXES)} or a directory of them", path)
    return [path]


def _check_utf8(data: bytes, path: str, line0: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line0 + data.count(b"\n", 0, exc.start)
        raise InputError(f"undecodable bytes at line {line} (not UTF-8: {exc.reason}); re-encode the file as "
                         "UTF-8, e.g. iconv -f latin1 -t utf-8", path) from None


def line_chunks(path: str) -> Iterator[tuple[int, bytes]]:
    """Yield ``(number of its first line, block)`` of whole lines of a file, each checked to be UTF-8.

    Undecodable bytes raise an :class:`InputError` naming the line (1-based).
    """
    line, carry = 1, b""
    with open(path, "rb") as f:
        while chunk := f.read(_BLOCK):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
            _check_utf8(block, path, line)
            yield line, block
            line += block.count(b"\n")
    if carry:
        _check_utf8(carry, path, line)
        yield line, carry


def _first_line(msg: str) -> str:
    return msg.splitlines()[0] if msg else "unknown error"


def _txt_tables(path: str, text_column: str) -> Iterator[pa.Table]:
    first = True
    for _, block in line_chunks(path):
        lines = block.decode("utf-8").split("\n")
        if lines[-1] == "":
            lines.pop()  # the newline that ends the block
        if first and lines and lines[0].startswith("\ufeff"):
            lines[0] = lines[0][1:]  # a byte-order mark is not text
        first = False
        arr = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r")  # CRLF line ends
        yield pa.table({text_column: arr})


def _jsonl_tables(path: str) -> Iterator[pa.Table]:
    for line, block in line_chunks(path):
        if not block.strip():
            continue
        try:
            yield pajson.read_json(pa.BufferReader(block))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(_json_error(_first_line(str(exc)), line), path) from None


def _json_error(msg: str, line: int) -> str:
    """A one-line message for a JSON parse error of the block that starts at ``line``."""
    m = re.search(r"Column\(/(.+?)\) changed from (\w+) to (\w+) in row (\d+)", msg)
    if m:  # rows count the block's objects: row r is line `line + r` unless blank lines come between
        return (f"field '{m.group(1)}' changes from {m.group(2)} to {m.group(3)} near line {line + int(m.group(4))};"
                " give it one type in every record")
    return f"not a readable JSON-lines file ({msg}; in the lines from {line}); one JSON object per line"


def _csv_tables(path: str, columns: list[str], text_column: str) -> Iterator[pa.Table]:
    delim = "\t" if path.lower().endswith(".tsv") else ","
    for _ in line_chunks(path):  # check the encoding first: pyarrow would read bad bytes as binary
        pass
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_BLOCK),
                                parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(column_types={text_column: pa.string()},
                                                                     include_columns=columns))
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowKeyError) as exc:
        if "Empty CSV file" in str(exc):
            return
        kind = "TSV" if delim == "\t" else "CSV"
        raise InputError(f"not a readable {kind} file ({_first_line(str(exc))})", path) from None


def _parquet_tables(path: str, columns: list[str], batch_size: int) -> Iterator[pa.Table]:
    pf = open_parquet(path)
    for batch in pf.iter_batches(columns=columns, batch_size=batch_size):
        yield pa.Table.from_batches([batch])


def file_columns(path: str, text_column: str) -> list[str] | None:
    """The column names of one corpus file (a .txt file has one, the text), or None for a file without rows."""
    low = path.lower()
    if low.endswith(".txt"):
        return [text_column]
    if low.endswith((".parquet", ".pq")):
        return open_parquet(path).schema_arrow.names
    if low.endswith(".jsonl"):
        blocks = _jsonl_tables(path)
        try:
            return next((t.column_names for t in blocks), None)  # the fields of the first block
        finally:
            blocks.close()
    delim = "\t" if low.endswith(".tsv") else ","
    try:
        reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                                read_options=pacsv.ReadOptions(block_size=1 << 16))
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return None
        raise InputError(f"not a readable {'TSV' if delim == chr(9) else 'CSV'} file ({_first_line(str(exc))})",
                         path) from None
    return reader.schema.names


def read_text_file(path: str, columns: list[str], text_column: str, batch_size: int) -> Iterator[pa.Table]:
    """Stream one corpus file as tables (blocks of the file, not yet of ``batch_size`` rows) with ``columns``.

    Undecodable bytes and unparsable files raise an :class:`InputError` naming the file; the
    caller checks types, nulls and empties.
    """
    low = path.lower()
    if low.endswith(".txt"):
        yield from _txt_tables(path, text_column)
    elif low.endswith(".jsonl"):
        yield from (_select(t, columns) for t in _jsonl_tables(path))
    elif low.endswith((".csv", ".tsv")):
        yield from (_select(t, columns) for t in _csv_tables(path, columns, text_column))
    else:
        yield from (_select(t, columns) for t in _parquet_tables(path, columns, batch_size))


def _select(t: pa.Table, columns: list[str]) -> pa.Table:
    """The named columns of ``t`` in that order; a column a JSON block never mentions comes back as nulls."""
    cols = [t.column(c) if c in t.column_names else pa.nulls(t.num_rows) for c in columns]
    return pa.table(cols, names=columns)


def rebatch(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """Regroup a stream of tables of one schema into tables of exactly ``size`` rows (the last one shorter)."""
    parts: list[pa.Table] = []
    rows = 0
    for t in tables:
        parts.append(t)
        rows += t.num_rows
        while rows >= size:
            whole = _concat(parts)
            yield whole.slice(0, size)
            parts, rows = [whole.slice(size)], rows - size
    if rows:
        yield _concat(parts)


def _concat(parts: list[pa.Table]) -> pa.Table:
    # blocks of a JSON file infer their types apart: null or int64 in one, string or double in the next
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class TextCorpus:
    """A text corpus whose columns have been checked: the files and the columns to read from each.

    Attributes
    ----------
    path : str
        The file or directory the user named.
    files : list of str
    text_column : str
    id_column : str or None
        The given ``--id-column``; else ``id`` when the first file has one; else None (ids 0..n-1).
    keep_columns : list of str
        Columns passed through to the output.
    """

    path: str
    files: list[str]
    text_column: str
    id_column: str | None
    keep_columns: list[str]

    @property
    def columns(self) -> list[str]:
        """The columns read from every file: the text, the id, the pass-through ones (each once)."""
        return list(dict.fromkeys([self.text_column, *([self.id_column] if self.id_column else []),
                                   *self.keep_columns]))

    def tables(self, batch_size: int) -> Iterator[tuple[str, int, pa.Table]]:
        """Yield ``(file, row of the file where the table starts, table)``, tables of at most ``batch_size`` rows."""
        for f in self.files:
            row = 0
            try:
                for t in rebatch(read_text_file(f, self.columns, self.text_column, batch_size), batch_size):
                    yield f, row, t
                    row += t.num_rows
            except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
                raise InputError(f"a column changes type within the file ({_first_line(str(exc))}); give it one type",
                                 f) from None


def open_text_corpus(path: str, text_column: str, id_column: str | None = None,
                     keep_columns: Iterable[str] = ()) -> TextCorpus:
    """Find the files of a corpus and check that each has the text, id and pass-through columns."""
    files = text_files(path)
    keep = list(keep_columns)
    for c in keep:
        if c in ("id", "embedding") or keep.count(c) > 1:
            raise InputError(f"--keep-columns: '{c}' is {'given twice' if keep.count(c) > 1 else 'an output column'}"
                             "; drop it from the list")
    resolved, first = id_column, True
    for f in files:
        names = file_columns(f, text_column)
        if names is None:
            continue  # a file without rows adds no document
        if text_column not in names:
            raise InputError(f"missing text column '{text_column}' (columns: {', '.join(names) or 'none'}); "
                             "name it with --text-column", f)
        if first and id_column is None and "id" in names:
            resolved = "id"  # the default id column, when the first file has one
        first = False
        for c, opt in [(resolved, "--id-column"), *((k, "--keep-columns") for k in keep)]:
            if c is not None and c not in names:
                how = " (a .txt file has only its lines)" if f.lower().endswith(".txt") else ""
                raise InputError(f"missing column '{c}' named by {opt}{how} (columns: {', '.join(names)})", f)
    return TextCorpus(path, files, text_column, resolved, keep)
