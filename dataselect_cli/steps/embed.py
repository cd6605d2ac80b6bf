"""``dataselect embed``: numeric vectors or a text corpus → an embeddings file (id, embedding)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

from .. import corpus as corpus_mod, embed as embed_mod, encoders, io, options, outputs
from .._checks import check_embeddings
from ..fingerprints import input_fingerprints
from ..pqdataset import ParquetDataset, has_parquet
from ..errors import InputError
from ..progress import Progress, silent
from .common import Note, quiet, skip


def _numeric_source(path: str) -> str | ParquetDataset:
    """A Parquet input (a file or a directory of files) opened once, or the path of another numeric file."""
    if has_parquet(path) or (os.path.isfile(path) and path.lower().endswith((".parquet", ".pq"))):
        return ParquetDataset(path, "vectors")
    return path


def embed_file(input_path: str, out: str, *, column: str = "embedding", array: str | None = None,
               id_column: str | None = None, normalize: bool = False, note: Note = quiet) -> dict[str, Any]:
    """Convert a numeric file (.npy, .npz, .csv, .tsv, .jsonl, Parquet list column) to embeddings."""
    params = {"column": column, "array": array, "id_column": id_column, "normalize": normalize}
    outputs.check_output_path(out, [input_path])
    source = _numeric_source(input_path)
    # a missing file or a directory without Parquet files: read_vectors says what is wrong
    inputs = input_fingerprints({"input": source}) \
        if isinstance(source, ParquetDataset) or os.path.isfile(input_path) else {}
    if inputs and (done := skip([out], "embed", params, inputs, None, note)) is not None:
        return done
    ids, x, rest = embed_mod.read_vectors(source, column=column, array=array, id_column=id_column)
    n, d = x.shape
    ids = pa.array(np.arange(n, dtype=np.int64)) if ids is None else io.normalize_ids(ids, input_path,
                                                                                       id_column or "id")
    check_embeddings(x, ids, path=input_path)
    zero = 0
    if normalize:
        if not x.flags.writeable:  # a memory-mapped .npy
            x = x.copy()
        x, zero = embed_mod.normalize(x)
        if zero:
            note(f"warning: {zero} zero vectors could not be normalised and stay zero")
    cols = {"id": ids, "embedding": io.embedding_array(x)}
    if rest is not None:
        for name in rest.column_names:
            if name not in cols:
                cols[name] = rest.column(name)
    summary = {"n": n, "d": d, "normalized": normalize, "zero_vectors": zero}
    io.write_table(pa.table(cols), out, io.make_meta("embed", params, inputs, summary))
    return summary


def embed_text_file(input_path: str, out: str, *, text_column: str, model: str = options.TEXT_MODEL, dim: int | None = None,
                    batch_size: int = options.TEXT_BATCH, keep_columns: tuple[str, ...] | list[str] = (),
                    id_column: str | None = None, skip_empty: bool = False, seed: int = options.SEED, note: Note = quiet,
                    progress: Progress = silent) -> dict[str, Any]:
    """``dataselect embed --text-column``: embed a text corpus, streaming it twice, into an embeddings file.

    Parameters
    ----------
    input_path : str
        A .jsonl, .csv, .tsv, .txt (one document a line) or Parquet file, or a directory of them.
    out : str
        Embeddings Parquet file (id, embedding, then ``keep_columns``), written row group by row
        group and atomically.
    text_column : str
    model : str, default="hash"
        ``hash``, ``minilm`` or a local sentence-transformers model directory.
    dim : int or None
        Dimensions of the hash encoder (default 256); not allowed with a model.
    batch_size : int, default=options.TEXT_BATCH (8192)
        Documents read and encoded at a time; the hash output does not depend on it.
    keep_columns : sequence of str
    id_column : str or None
        Default: ``id`` when the (first) file has it, else the rows' positions 0..n-1.
    skip_empty : bool
        Drop null and whitespace-only texts instead of refusing them.
    seed : int
        Seed of the hash encoder's projection.
    note, progress : callables
        One-line notes; a progress reporter ``progress(description, total, unit)`` giving ``advance(k)``
        (:mod:`dataselect_cli.progress`; silent by default).

    Returns
    -------
    dict
        The summary, also recorded in the output's metadata.

    Notes
    -----
    Pass 1 checks every batch (types, UTF-8, null or empty texts, ids) and lets the encoder count
    (document frequencies for ``hash``); pass 2 encodes and writes. Nothing is written until pass 1
    has accepted the whole corpus, and a failure in pass 2 removes the partial file.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be a positive number of documents; got {batch_size}")
    encoder = encoders.make_encoder(model, dim, seed)
    corpus = corpus_mod.open_text_corpus(input_path, text_column, id_column, keep_columns)
    outputs.check_output_path(out, [input_path, *corpus.files])
    fps = {f: io.fingerprint(f) for f in corpus.files}
    scan = corpus_mod.TextScan(corpus, skip_empty)
    with progress("pass 1: reading", None, "docs") as advance:
        for f, row0, t in corpus.tables(batch_size):
            encoder.observe(scan.add(f, row0, t))
            advance(t.num_rows)
    scan.check()
    d = encoder.fit(scan.docs)
    schema = pa.schema([("id", scan.id_type or pa.int64()), ("embedding", io.embedding_type(d)),
                        *(scan.keep_schema or [])])
    zero = getattr(encoder, "zero_docs", 0)
    summary = {"n": scan.docs, "d": d, "rows": scan.rows, "skipped_empty": scan.empty if skip_empty else 0,
               "zero_vectors": zero, "files": len(corpus.files), "model": encoder.name}
    params = {"text_column": text_column, "id_column": corpus.id_column, "keep_columns": list(keep_columns),
              "skip_empty": skip_empty, **encoder.params()}
    if encoder.name != "hash":
        params["batch_size"] = batch_size  # padding within a batch can move a model's output in the last bits
    inputs = {"input": fps[input_path]} if corpus.files == [input_path] else \
        {f"input/{os.path.basename(f)}": fp for f, fp in fps.items()}
    meta = io.make_meta("embed", params, inputs, summary, seed if encoder.name == "hash" else None)
    if (done := skip([out], "embed", params, inputs, meta["seed"], note)) is not None:
        return done
    with io.parquet_stream(out, schema, meta) as write, progress("pass 2: embedding", scan.docs, "docs") as advance:
        for table in _embed_batches(corpus, encoder, batch_size, skip_empty, advance):
            write(table)  # the writer casts to the schema (e.g. a pass-through column null in one file)
    if summary["skipped_empty"]:
        note(f"skipped {summary['skipped_empty']} null or empty texts (--skip-empty)")
    if zero:
        note(f"warning: {zero} documents have no word (only punctuation or symbols); their hash embeddings are zero "
             "vectors")
    return summary


def _embed_batches(corpus: corpus_mod.TextCorpus, encoder, batch_size: int, skip_empty: bool,
                   advance: Callable[[int], None]) -> Iterator[pa.Table]:
    """Pass 2: the output tables (id, embedding, pass-through columns), batch by batch."""
    first = 0
    for f, row0, t in corpus.tables(batch_size):
        text = corpus_mod.text_array(t, corpus.text_column, f, row0)
        ids = corpus_mod.batch_ids(corpus, t, first, f)
        first += t.num_rows
        if skip_empty:
            keep = pa.array(~corpus_mod.empty_mask(text))
            t, text, ids = t.filter(keep), text.filter(keep), ids.filter(keep)
        if len(text):
            x = encoder.encode(text, advance)
            yield pa.table([ids, io.embedding_array(x), *(t.column(c) for c in corpus.keep_columns)],
                           names=["id", "embedding", *corpus.keep_columns])
