"""Tables of rows in the formats users' scripts write: CSV, TSV and JSON lines, read and written block by block.

A losses file and ``apply``'s DATA may be Parquet (:class:`~dataselect_cli.pqdataset.ParquetDataset`)
or one of these; :class:`TextTable` offers the same reading interface (``path``, ``files``, ``n``,
``schema``, ``require``, ``read_column``, ``iter_tables``, ``fingerprints``), so each reader has one
code path and one set of checks for every format. :func:`table_format` picks the format from the
extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, each optionally ``.gz``; anything else is
Parquet) unless the user names it.

Types. A JSON-lines file carries its own (numbers, strings), unified over the whole file (an
integer field with a fraction in a later record becomes a double). A CSV file carries none: pyarrow
infers a column's type from the first block, except for two kinds of column read as text and
converted here, so that one rule holds for the whole file and a bad value is named by its row:

* the id column: int64 when every id is an integer written plainly (``12``, ``-3``), else string
  (``0012``, ``a7``): ids that were integers in the embeddings match, and ``0012`` is not taken
  for 12, as a Parquet string id would not be;
* the caller's numeric columns (``loss``): float64, an empty field being null.

Rows are counted from 0 (the first record after a CSV header), as in the messages about Parquet.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from . import io, outputs
from .corpus import csv_tables, jsonl_tables, rebatch
from .errors import InputError

#: The formats of ``--format`` / ``--losses-format``.
FORMATS = ("parquet", "csv", "tsv", "jsonl")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_PLAIN_INT = r"^-?(0|[1-9][0-9]*)$"


def table_format(path: str | os.PathLike, fmt: str | None = None, option: str = "--format") -> str:
    """The format of a table: ``fmt`` when given (checked), else from the extension of ``path``.

    ``.csv``, ``.tsv``, ``.jsonl`` and ``.ndjson`` (each also with ``.gz``) name their format; a
    directory and any other name are Parquet, as before text tables were read. ``option`` names the
    option in the message about an unknown ``fmt``.
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"{option} must be one of {', '.join(FORMATS)}; got {fmt!r}")
        return fmt
    return suffix_format(str(path)) or "parquet"


def suffix_format(path: str) -> str | None:
    """csv, tsv or jsonl from a file name (``.gz`` allowed), or None."""
    low = path.lower().removesuffix(".gz")
    return next((f for s, f in _SUFFIXES.items() if low.endswith(s)), None)


class TextTable:
    """A CSV, TSV or JSON-lines file as rows 0..n−1, streamed in blocks (see the module docstring).

    Parameters
    ----------
    path : str
    fmt : {"csv", "tsv", "jsonl"}
    id_column : str, default="id"
    numbers : tuple of str
        Columns that must hold numbers (float64 in a CSV file; checked row by row there).
    as_text : bool, default=False
        Read every CSV column as text (ids and ``numbers`` still converted), so that a CSV written
        back carries the values as they were (``007`` stays ``007``).

    Attributes
    ----------
    n : int
    schema : pyarrow.Schema
        Known after one pass over the file (the first use of ``n``, ``schema`` or ``read_column``),
        which also reads the ids.
    """

    def __init__(self, path: str | os.PathLike, fmt: str, *, id_column: str = "id", numbers: tuple[str, ...] = (),
                 as_text: bool = False):
        self.path, self.format, self.id_column = str(path), fmt, id_column
        self.numbers, self.as_text = tuple(numbers), as_text
        if not os.path.exists(self.path):
            raise InputError("no such file", self.path)
        if os.path.isdir(self.path):
            raise InputError(f"is a directory; only Parquet is read from a directory; pass one {fmt.upper()} file",
                             self.path)
        self.files = [self.path]
        self._scanned: tuple[int, pa.Schema, pa.Array | None] | None = None

    # ---- the pass that finds n, the schema and the ids

    @property
    def n(self) -> int:
        return self._scan()[0]

    @property
    def schema(self) -> pa.Schema:
        return self._scan()[1]

    @property
    def metadata(self) -> dict[str, Any]:
        """A text file carries no ``dataselect`` metadata."""
        return {}

    def _scan(self) -> tuple[int, pa.Schema, pa.Array | None]:
        """(n, schema, ids or None) from one pass over the file, made once."""
        if self._scanned is None:
            n, schemas, ids = 0, [], []
            for _, t in self._raw():
                n += t.num_rows
                schemas.append(t.schema)
                if self.id_column in t.column_names:
                    ids.append(t.column(self.id_column))
            schema = self._unify(schemas)
            id_col = None
            if ids:
                typ = schema.field(self.id_column).type  # JSON blocks may differ (null in one, int64 in the next)
                id_col = self._ids(pa.chunked_array([c.cast(typ) for col in ids for c in col.chunks], typ).combine_chunks())
                schema = schema.set(schema.get_field_index(self.id_column), pa.field(self.id_column, id_col.type))
            for c in self.numbers:
                if self.format != "jsonl" and c in schema.names:
                    schema = schema.set(schema.get_field_index(c), pa.field(c, pa.float64()))
            self._scanned = (n, schema, id_col)
        return self._scanned

    def _unify(self, schemas: list[pa.Schema]) -> pa.Schema:
        if not schemas:
            return pa.schema([])
        try:
            return pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"a field changes type within the file ({msg}); give it one type in every record",
                             self.path) from None

    def _ids(self, col: pa.Array) -> pa.Array:
        """A CSV id column read as text → int64 when every id is a plain integer, else string (empty = null)."""
        import pyarrow.compute as pc

        if self.format == "jsonl" or not pa.types.is_string(col.type):
            return col
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
        valid = col.drop_null()
        if len(valid) and pc.all(pc.match_substring_regex(valid, _PLAIN_INT)).as_py():
            try:
                return col.cast(pa.int64())
            except pa.ArrowInvalid:  # beyond int64: the ids stay strings
                pass
        return col

    # ---- reading

    def _header(self) -> list[str]:
        """The column names of a CSV file's header (none for an empty file)."""
        delim = "\t" if self.format == "tsv" else ","
        try:
            reader = pacsv.open_csv(self.path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                                    parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True))
        except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
            if "Empty CSV file" in str(exc):
                return []
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"not a readable {self.format.upper()} file ({msg})", self.path) from None
        return reader.schema.names

    def _raw(self, columns: list[str] | None = None, check_encoding: bool = True) -> Iterator[tuple[int, pa.Table]]:
        """``(first row, table)`` per block of the file as parsed: CSV ids and numbers still text."""
        row = 0
        if self.format == "jsonl":
            for _, t in jsonl_tables(self.path):
                if columns is not None:
                    t = pa.table([t.column(c) if c in t.column_names else pa.nulls(t.num_rows) for c in columns],
                                 names=columns)
                yield row, t
                row += t.num_rows
            return
        names = self._header()
        text = names if self.as_text else [self.id_column, *self.numbers]
        types = {c: pa.string() for c in text if c in names}
        for t in csv_tables(self.path, columns, types, delimiter="\t" if self.format == "tsv" else ",",
                            check_encoding=check_encoding):
            yield row, t
            row += t.num_rows

    def _typed(self, row0: int, t: pa.Table) -> pa.Table:
        """One block with the scan's types: ids as decided, numbers parsed, JSON types unified."""
        schema, id_col = self.schema, self._scan()[2]
        cols = []
        for name in t.column_names:
            col = t.column(name)
            if name == self.id_column and id_col is not None:
                col = id_col.slice(row0, t.num_rows)
            elif name in self.numbers and self.format != "jsonl":
                col = _numbers(col.combine_chunks(), self.path, name, row0, id_col)
            else:
                col = col.cast(schema.field(name).type)
            cols.append(col)
        return pa.table(cols, names=t.column_names)

    def blocks(self, columns: list[str]) -> Iterator[pa.Table]:
        """The rows of ``columns`` in blocks of the file (of varying sizes), typed as :attr:`schema` says."""
        self._scan()
        for row0, t in self._raw(columns, check_encoding=False):  # the scan checked the encoding
            yield self._typed(row0, t)

    def require(self, columns: list[str], what: str) -> None:
        """Raise an :class:`InputError` naming the first of ``columns`` the file lacks."""
        names = self._header() if self.format != "jsonl" else self.schema.names
        for c in columns:
            if c not in names:
                raise InputError(f"missing column '{c}' (a {what} file needs {', '.join(columns)}; found "
                                 f"{', '.join(names) or 'none'})", self.path)

    def read_column(self, column: str) -> pa.ChunkedArray:
        """One column, every row, in row order."""
        if column == self.id_column and self._scan()[2] is not None:
            return pa.chunked_array([self._scan()[2]])
        return pa.chunked_array([t.column(0).combine_chunks() for t in self.blocks([column])],
                                type=self.schema.field(column).type)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Every row of ``columns`` (default all), in row order."""
        columns = columns or self.schema.names
        parts = list(self.blocks(columns))
        return pa.concat_tables(parts) if parts else self.schema.select(columns).empty_table()

    def iter_tables(self, columns: list[str], start: int, stop: int, block_rows: int) -> Iterator[pa.Table]:
        """Rows [start, stop) of ``columns`` as tables of exactly ``block_rows`` rows (the last may be shorter)."""
        def window() -> Iterator[pa.Table]:
            pos = 0
            for t in self.blocks(columns):
                lo, hi = max(start - pos, 0), min(stop - pos, t.num_rows)
                pos += t.num_rows
                if hi > lo:
                    yield t.slice(lo, hi - lo)
                if pos >= stop:
                    return
        return rebatch(window(), block_rows)

    def fingerprints(self, role: str) -> dict[str, dict]:
        """The metadata's ``inputs`` entry: ``{role: fingerprint}`` (a text table is one file)."""
        return {role: io.fingerprint(self.path)}


def _numbers(col: pa.Array, path: str, column: str, row0: int, ids: pa.Array | None) -> pa.Array:
    """A CSV column read as text → float64 (empty = null); an :class:`InputError` naming the first row that is no number."""
    import pyarrow.compute as pc

    if not pa.types.is_string(col.type):
        return col.cast(pa.float64())
    col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
    try:
        return col.cast(pa.float64())
    except pa.ArrowInvalid:
        i, v = next((i, v) for i, v in enumerate(col.to_pylist()) if v is not None and not _is_number(v))
        where = f" (id {ids[row0 + i].as_py()!r})" if ids is not None else ""
        raise InputError(f"column '{column}' is not a number at row {row0 + i}{where}: {v!r}; write a number in "
                         "every row", path) from None


def _is_number(text: str) -> bool:
    """Whether pyarrow reads ``text`` as a float64 (as the cast of the whole column does)."""
    try:
        pa.array([text], pa.string()).cast(pa.float64())
        return True
    except pa.ArrowInvalid:
        return False


# --------------------------------------------------------------------------- writing


def check_writable(schema: pa.Schema, fmt: str, path: str) -> None:
    """Refuse, before any work, a CSV/TSV output whose columns CSV cannot hold (lists, structs, …)."""
    if fmt in ("csv", "tsv"):
        for f in schema:
            if pa.types.is_nested(f.type):
                raise InputError(f"column '{f.name}' holds {f.type}, which {fmt.upper()} cannot hold; write the "
                                 "output as .parquet or .jsonl", path)


@contextmanager
def text_stream(path: str | os.PathLike, fmt: str, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """Write a CSV, TSV or JSON-lines file table by table, atomically (as :func:`dataselect_cli.io.parquet_stream`).

    A text file has no place for the ``dataselect`` metadata, so ``--resume`` redoes a step whose
    output is one. Values are written by pyarrow's CSV writer (header first), or as one JSON object
    a line (non-finite floats as null, values JSON lacks as strings).
    """
    schema = schema.remove_metadata()
    check_writable(schema, fmt, str(path))
    mode = "wb" if fmt != "jsonl" else "w"
    with outputs._atomic_file(path, mode) as f:
        if fmt == "jsonl":
            yield lambda table: f.write(_jsonl(table.cast(schema)))
            return
        opts = pacsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",")
        with pacsv.CSVWriter(f, schema, write_options=opts) as writer:
            yield lambda table: writer.write_table(table.cast(schema))


def _jsonl(table: pa.Table) -> str:
    import pyarrow.compute as pc

    cols = {}
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_floating(col.type):  # JSON has no NaN or infinity
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
        cols[name] = col
    rows = pa.table(cols).to_pylist()
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"), default=_json_default) + "\n" for r in rows)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, bytes):
        return o.decode("utf-8", errors="replace")
    return str(o)  # dates, times, decimals


def output_format(path: str | os.PathLike) -> str:
    """The format of an output table from its name: csv, tsv or jsonl (``.ndjson`` too), else parquet.

    A compressed name (``.csv.gz``) is refused: the output is written plain.
    """
    p = str(path)
    if p.lower().endswith(".gz"):
        raise InputError("compressed output is not written; name it .parquet, .csv, .tsv or .jsonl (compress it "
                         "afterwards if you need)", p)
    return suffix_format(p) or "parquet"
