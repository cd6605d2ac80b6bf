"""Text corpora for ``dataselect embed --text-column``: find the files, stream them, check them.

A corpus is one file or a directory of files (.jsonl, .csv/.tsv, .txt with one document a line,
Parquet). :class:`TextCorpus` streams it as pyarrow tables of at most ``batch_size`` rows holding
the text column, the id column (if any) and the pass-through columns; nothing holds more than a
batch and a block of the file. :class:`TextScan` is pass 1: it checks every batch (types, UTF-8,
null or empty texts, ids) and says, once the corpus has been read, whether it can be embedded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from ._checks import check_unique_ids
from .errors import InputError
from . import io
from .io import open_parquet

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

    A file ending in ``.gz`` (or another compression pyarrow knows) is decompressed. Undecodable bytes raise an :class:`InputError` naming the line (1-based).
    """
    line, carry = 1, b""
    with pa.input_stream(path) as f:  # a .gz (or .bz2, .zst) file is decompressed on the way
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
    import pyarrow.compute as pc

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


def jsonl_tables(path: str) -> Iterator[tuple[int, pa.Table]]:
    """Yield ``(number of its first line, table)`` for each block of a JSON-lines file, types inferred per block.

    A parse error, or a field whose type changes within a block, raises an :class:`InputError`
    naming the line; blocks may infer different types (unify them with :func:`rebatch`).
    """
    for line, block in line_chunks(path):
        if not block.strip():
            continue
        try:
            yield line, pajson.read_json(pa.BufferReader(block))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(_json_error(_first_line(str(exc)), line), path) from None


def _json_error(msg: str, line: int) -> str:
    """A one-line message for a JSON parse error of the block that starts at ``line``."""
    m = re.search(r"Column\(/(.+?)\) changed from (\w+) to (\w+) in row (\d+)", msg)
    if m:  # rows count the block's objects: row r is line `line + r` unless blank lines come between
        return (f"field '{m.group(1)}' changes from {m.group(2)} to {m.group(3)} near line {line + int(m.group(4))};"
                " give it one type in every record")
    return f"not a readable JSON-lines file ({msg}; in the lines from {line}); one JSON object per line"


def csv_tables(path: str, columns: list[str] | None, column_types: dict[str, pa.DataType], *,
               delimiter: str | None = None, check_encoding: bool = True) -> Iterator[pa.Table]:
    """Stream a CSV file (TSV for a ``.tsv`` name or ``delimiter="\\t"``) as tables, one per block of the file.

    Parameters
    ----------
    path : str
        A ``.gz`` file is decompressed.
    columns : list of str or None
        Columns to read (None: all).
    column_types : dict
        Types given to some columns; the others are inferred by pyarrow from the first block.
    delimiter : str or None
        Default: tab for a ``.tsv`` (or ``.tsv.gz``) name, else comma.
    check_encoding : bool, default=True
        Read the file once first to name the line of undecodable bytes (pyarrow would read them as binary).

    A file pyarrow cannot parse, or a value a later block cannot convert to the type the first
    block gave its column, raises an :class:`InputError`; an empty file yields nothing.
    """
    delim = delimiter or ("\t" if path.lower().removesuffix(".gz").endswith(".tsv") else ",")
    if check_encoding:
        for _ in line_chunks(path):
            pass
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_BLOCK),
                                parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(column_types=column_types,
                                                                     include_columns=columns))
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowKeyError) as exc:
        if "Empty CSV file" in str(exc):
            return
        kind = "TSV" if delim == "\t" else "CSV"
        raise InputError(f"not a readable {kind} file ({_first_line(str(exc))})", path) from None


def _parquet_tables(path: str, columns: list[str], batch_size: int) -> Iterator[pa.Table]:
    pf = open_parquet(path, "corpus")
    for batch in pf.iter_batches(columns=columns, batch_size=batch_size):
        yield pa.Table.from_batches([batch])


def file_columns(path: str, text_column: str) -> list[str] | None:
    """The column names of one corpus file (a .txt file has one, the text), or None for a file without rows."""
    low = path.lower()
    if low.endswith(".txt"):
        return [text_column]
    if low.endswith((".parquet", ".pq")):
        return open_parquet(path, "corpus").schema_arrow.names
    if low.endswith(".jsonl"):
        blocks = jsonl_tables(path)
        try:
            return next((t.column_names for _, t in blocks), None)  # the fields of the first block
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
        yield from (_select(t, columns) for _, t in jsonl_tables(path))
    elif low.endswith((".csv", ".tsv")):
        yield from (_select(t, columns) for t in csv_tables(path, columns, {text_column: pa.string()}))
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


# --------------------------------------------------------------------------- pass 1: checks


def text_array(t: pa.Table, column: str, path: str, row0: int = 0) -> pa.Array:
    """The text column as a pyarrow ``string`` array; other types, and bytes that are not UTF-8, are refused.

    ``row0`` is the row of the file where ``t`` starts, for the message.
    """
    col = t.column(column).combine_chunks()
    typ = col.type
    if pa.types.is_dictionary(typ):
        col, typ = col.dictionary_decode(), typ.value_type
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        try:
            return col.cast(pa.string())
        except pa.ArrowInvalid:
            bad = next(i for i, v in enumerate(col.to_pylist()) if v is not None and not _is_utf8(v))
            raise InputError(f"undecodable bytes in column '{column}' (not UTF-8) at row {row0 + bad}; "
                             "re-encode the texts as UTF-8", path) from None
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)
            or pa.types.is_null(typ)):
        raise InputError(f"column '{column}' holds {typ}, not text; name the text column with --text-column", path)
    col = col if pa.types.is_string(typ) else col.cast(pa.string())
    try:
        col.validate(full=True)  # Parquet strings are not checked on read
    except pa.ArrowInvalid:
        return text_array(pa.table({column: col.view(pa.binary())}), column, path, row0)
    return col


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _id_array(t: pa.Table, column: str, path: str) -> pa.Array:
    col = t.column(column).combine_chunks()
    if pa.types.is_null(col.type):  # all null in this batch: pass 1 names the first null id
        return col
    return io.id_type(col, path, column)  # nulls and duplicates are checked across batches in pass 1


def batch_ids(corpus: TextCorpus, t: pa.Table, first: int, path: str) -> pa.Array:
    """Ids of a batch: its id column, or the rows' positions in the corpus (from ``first``, counted from 0)."""
    if corpus.id_column is None:
        return pa.array(np.arange(first, first + t.num_rows, dtype=np.int64))
    return _id_array(t, corpus.id_column, path)


def empty_mask(text: pa.Array) -> np.ndarray:
    """True where a text is null or only whitespace."""
    import pyarrow.compute as pc

    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    return pc.fill_null(blank, True).to_numpy(zero_copy_only=False)


@dataclass
class TextScan:
    """Pass 1 over a corpus: :meth:`add` checks each batch, :meth:`check` judges the whole.

    Attributes
    ----------
    rows : int
        Rows read. ``docs``: rows kept (all, or the non-empty ones with ``skip_empty``).
    empty, empty_ids : int, list
        Null or whitespace-only texts: how many, and the ids of the first 10.
    id_type : pyarrow.DataType or None
        int64 or string, from the id column; None for positions.
    keep_schema : pyarrow.Schema or None
        The pass-through columns, their types unified over every batch.
    """

    corpus: TextCorpus
    skip_empty: bool = False
    rows: int = 0
    docs: int = 0
    empty: int = 0
    empty_ids: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    id_type: pa.DataType | None = None
    keep_schema: pa.Schema | None = None
    #: What the documents are for, in the message of a corpus without any ("embed", "score", …).
    purpose: str = "embed"

    def add(self, f: str, row0: int, t: pa.Table) -> pa.Array:
        """Check one batch (rows ``row0``… of file ``f``); return its kept texts."""
        c = self.corpus
        text = text_array(t, c.text_column, f, row0)
        ids = batch_ids(c, t, self.rows, f)
        empty = empty_mask(text)
        if empty.any():
            self.empty += int(empty.sum())
            self.empty_ids += ids.filter(pa.array(empty)).slice(0, 10 - len(self.empty_ids)).to_pylist()
        keep = ~empty if self.skip_empty else np.ones(len(empty), dtype=bool)
        if c.id_column is not None:  # positions are unique by construction
            self._add_ids(ids, keep, f, row0)
        if c.keep_columns:
            self._add_keep_schema(t.select(c.keep_columns).schema, f)
        self.rows += t.num_rows
        self.docs += int(keep.sum())
        return text.filter(pa.array(keep))

    def _add_ids(self, ids: pa.Array, keep: np.ndarray, f: str, row0: int) -> None:
        kept = ids.filter(pa.array(keep))
        if kept.null_count:
            row = row0 + int(np.flatnonzero(~ids.is_valid().to_numpy(zero_copy_only=False) & keep)[0])
            raise InputError(f"id column '{self.corpus.id_column}' is null at row {row}; every document needs an id",
                             f)
        if len(kept) and self.id_type is not None and kept.type != self.id_type:
            raise InputError(f"id column '{self.corpus.id_column}' holds {kept.type} here but {self.id_type} in an "
                             "earlier file; use one id type", f)
        if len(kept):
            self.id_type = kept.type
            self.ids.append(kept)

    def _add_keep_schema(self, schema: pa.Schema, f: str) -> None:
        try:
            self.keep_schema = schema if self.keep_schema is None else pa.unify_schemas(
                [self.keep_schema, schema], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            raise InputError(f"a --keep-columns column changes type ({_first_line(str(exc))}); make it one type",
                             f) from None

    def check(self) -> None:
        """Refuse the corpus when pass 1 found null or empty texts (without skip_empty), no document, or duplicate ids."""
        c, path = self.corpus, self.corpus.path
        if self.empty and not self.skip_empty:
            shown = ", ".join(repr(v) for v in self.empty_ids)
            more = f" and {self.empty - len(self.empty_ids)} more" if self.empty > len(self.empty_ids) else ""
            which = "ids" if c.id_column else "rows, counted from 0,"
            texts = "text" if self.empty == 1 else "texts"
            raise InputError(f"column '{c.text_column}' has {self.empty} null or empty {texts} ({which} {shown}"
                             f"{more}); fill or drop them, or pass --skip-empty", path)
        if self.docs == 0:
            what = "every text is empty" if self.rows else "the corpus has no rows"
            raise InputError(f"no documents to {self.purpose}: {what}", path)
        if self.ids:
            check_unique_ids(pa.concat_arrays(self.ids), path=path, column=c.id_column)
