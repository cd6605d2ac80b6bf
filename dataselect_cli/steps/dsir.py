"""``dataselect score --method dsir``: a text corpus and target corpora → log importance weights.

The passes stream every corpus in batches of documents (nothing holds more than a batch, the
B-bucket count vectors and the output's columns):

1. each target: the checks of ``embed`` (types, UTF-8, null or empty texts), the counts of its
   hashed n-grams;
2. the raw corpus (``--text``): the same checks and its ids, the raw counts (the fit's, truncated
   as the package truncates with ``--fit-tokens``, and the whole corpus's, for the KL figures),
   every document's length;
3. the raw corpus again: every document's log importance weight.

Nothing is written before pass 2 has accepted the whole corpus. The output does not depend on the
batch size: counts are integers, and each document's values come from that document alone (so
``--block-rows`` and ``--engine`` change nothing either; the text passes run in this process, as
``embed``'s do).

The scores file holds ``id``, ``score`` (the log weight, −inf for a document shorter than
``--min-length``: weight 0, never drawn), ``log_importance_weight`` (one per target with
``--separate-targets``: ``log_importance_weight_0`` …, and then ``score`` is the weight toward
their mixture, log Σ_t π_t·w_t) and ``length``. Its metadata key ``dataselect.dsir`` keeps the
count vectors and the corpus path, from which ``sample`` reports the selection's KL reduction.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from .. import corpus as corpus_mod, dsir as dsir_mod, io, options, outputs
from ..errors import InputError
from ..methods.dsir import DSIR
from ..progress import Progress, silent
from .common import Note, Scale, quiet, skip

#: The key of the scores file's schema metadata that holds the fitted counts (:func:`kl_for_selection`).
META_KEY = b"dataselect.dsir"
BATCH = options.TEXT_BATCH


def _fingerprints(role: str, corpus: corpus_mod.TextCorpus) -> dict[str, dict]:
    """The fingerprints of a corpus's files: one ``role`` for a file, ``role/name`` for a directory's."""
    if corpus.files == [corpus.path]:
        return {role: io.fingerprint(corpus.path)}
    return {f"{role}/{os.path.basename(f)}": io.fingerprint(f) for f in corpus.files}


def _batches(corpus: corpus_mod.TextCorpus, scan: corpus_mod.TextScan | None, skip_empty: bool
             ) -> Iterator[tuple[pa.Array, pa.Array]]:
    """(texts, ids) of each batch: checked by ``scan`` (pass 1 of a corpus), or filtered as it was (later passes)."""
    first = 0
    for f, row0, t in corpus.tables(BATCH):
        if scan is not None:
            ids = corpus_mod.batch_ids(corpus, t, scan.rows, f)
            texts = scan.add(f, row0, t)
            keep = ~corpus_mod.empty_mask(corpus_mod.text_array(t, corpus.text_column, f, row0)) if skip_empty else None
        else:
            texts = corpus_mod.text_array(t, corpus.text_column, f, row0)
            ids = corpus_mod.batch_ids(corpus, t, first, f)
            keep = ~corpus_mod.empty_mask(texts) if skip_empty else None
            if keep is not None:
                texts = texts.filter(pa.array(keep))
        first += t.num_rows
        yield texts, (ids.filter(pa.array(keep)) if keep is not None else ids)


def _target_counts(method: DSIR, corpus: corpus_mod.TextCorpus, progress: Progress, cap: int | None
                   ) -> tuple[np.ndarray, int]:
    """(counts (B,), documents) of one target corpus, the first ``cap`` features (as the package) when given."""
    fz = method.featurizer
    scan = corpus_mod.TextScan(corpus, method.skip_empty, purpose="fit the target on")
    counts = np.zeros(fz.buckets, np.int64)
    shards, row = np.zeros(method.fit_shards, np.int64), 0
    with progress(f"target {corpus.path}", None, "docs") as advance:
        for texts, _ in _batches(corpus, scan, method.skip_empty):
            f = fz(texts)
            counts += dsir_mod.bucket_counts(f, fz.buckets, dsir_mod.fit_mask(f.tokens_per_doc(), row, shards, cap))
            row += len(texts)
            advance(len(texts))
    scan.check()
    if counts.sum() == 0:
        raise InputError("the target has no n-gram (every text is punctuation or symbols only); give a target with "
                         "words", corpus.path)
    return counts, scan.docs


def score_text_file(method: DSIR, out: str, *, text: str | None, targets: list[str] | None, prm: dict[str, Any],
                    note: Note = quiet, scale: Scale | None = None) -> dict[str, Any]:
    """Write the scores file of ``--method dsir``; return its summary (see the module docstring).

    Parameters
    ----------
    method : DSIR
    out : str
    text : str
        The raw corpus: a .jsonl, .csv, .tsv, .txt or Parquet file, or a directory of them.
    targets : list of str
        One or more target corpora (same formats and text column).
    prm : dict
        The parameters the file records (``--resume`` compares them).
    """
    scale = scale or Scale()
    if not text:
        raise InputError("--method dsir needs --text CORPUS, the raw documents to score (a .jsonl, .csv, .tsv, .txt "
                         "or Parquet file, or a directory of them)")
    if not targets:
        raise InputError("--method dsir needs --target CORPUS, documents like the ones to select (repeat --target "
                         "for several)")
    method.check_targets(len(targets))
    if method.featurizer.compat:
        dsir_mod.check_compat()
    raw = corpus_mod.open_text_corpus(text, method.text_column, method.id_column)
    tcs = [corpus_mod.open_text_corpus(t, method.text_column) for t in targets]
    outputs.check_output_path(out, [text, *targets, *raw.files, *(f for c in tcs for f in c.files)])
    fps = _fingerprints("text", raw)
    for i, c in enumerate(tcs):
        fps.update(_fingerprints("target" if len(tcs) == 1 else f"target{i}", c))
    if (done := skip([out], "score", prm, fps, None, note)) is not None:
        return done
    fz, progress = method.featurizer, scale.progress
    cap = method.fit_cap
    # pass 1: the targets (pooled ones fit on every feature, separate ones truncated like the raw fit, as the package)
    fitted = [_target_counts(method, c, progress, cap if method.separate_targets else None) for c in tcs]
    if method.separate_targets:
        target_counts = np.stack([c for c, _ in fitted])
        tokens = target_counts.sum(axis=1).astype(np.float64)
        proportions = np.array(method.proportions) if method.proportions else tokens / tokens.sum()
    else:
        target_counts = sum(c for c, _ in fitted)[None, :]
        proportions = np.ones(1)
    # pass 2: the raw corpus's checks, fit counts, whole counts and lengths
    scan = corpus_mod.TextScan(raw, method.skip_empty, purpose="score")
    fit = np.zeros(fz.buckets, np.int64)
    whole = np.zeros(fz.buckets, np.int64)
    shards, row, fit_docs, length = np.zeros(method.fit_shards, np.int64), 0, 0, []
    with progress("raw corpus: fit", None, "docs") as advance:
        for texts, _ in _batches(raw, scan, method.skip_empty):
            f = fz(texts)
            tok = f.tokens_per_doc()
            take = dsir_mod.fit_mask(tok, row, shards, cap)
            fit += dsir_mod.bucket_counts(f, fz.buckets, take)
            whole += dsir_mod.bucket_counts(f, fz.buckets)
            length.append(dsir_mod.lengths(f, fz.ngrams))
            fit_docs += int(take.sum())
            row += len(texts)
            advance(len(texts))
    scan.check()
    if fit.sum() == 0:
        raise InputError("the corpus has no n-gram (every text is punctuation or symbols only)", text)
    ratios = [dsir_mod.log_ratio(t, fit, method.laplace) for t in target_counts]
    # pass 3: the weights
    ids, logw = [], []
    with progress("raw corpus: weights", scan.docs, "docs") as advance:
        for texts, batch_ids in _batches(raw, None, method.skip_empty):
            f = fz(texts)
            logw.append(np.stack([dsir_mod.log_weights(f, r) for r in ratios]))
            ids.append(batch_ids)
            advance(len(texts))
    logw_all = np.concatenate(logw, axis=1)
    length_all = np.concatenate(length).astype(np.int64)
    short = length_all < method.min_length
    logw_mix = logw_all[0] if len(ratios) == 1 else dsir_mod.mixture_log_weight(logw_all, proportions)
    score = np.where(short, -np.inf, logw_mix)
    cols: dict[str, Any] = {"id": pa.concat_arrays(ids) if ids else pa.array([], pa.int64()), "score": score}
    if len(ratios) == 1:
        cols["log_importance_weight"] = logw_all[0]
    else:
        for i, w in enumerate(logw_all):
            cols[f"log_importance_weight_{i}"] = w
    cols["length"] = length_all
    kept = logw_mix[~short]
    q_raw = dsir_mod.distribution(whole)
    summary = {
        "n": int(len(score)), "rows": scan.rows, "skipped_empty": scan.empty if method.skip_empty else 0,
        "targets": [{"docs": d, "features": int(c.sum())} for c, d in fitted],
        "pooled_targets": not method.separate_targets and len(tcs) > 1,
        "target_proportions": [float(p) for p in proportions] if method.separate_targets else None,
        "raw_features": int(whole.sum()), "fit_features": int(fit.sum()), "fit_docs": fit_docs,
        "short": int(short.sum()), "min_length": method.min_length,
        "log_weight_range": [float(kept.min()), float(kept.max())] if len(kept) else None,
        "kl_target_raw": [dsir_mod.kl(dsir_mod.distribution(t, method.laplace), q_raw) for t in target_counts],
        "featurizer": fz.params(), "method": method.name, "direction": method.direction,
    }
    if summary["short"]:
        note(f"{summary['short']} of {summary['n']} documents are shorter than --min-length {method.min_length}: "
             "score −inf (never drawn); lower --min-length to keep them")
    extra = {"text": text, "targets": list(targets), "target_counts": [dsir_mod.pack_counts(c) for c in target_counts],
             "raw_counts": dsir_mod.pack_counts(whole), "laplace": method.laplace}
    table = pa.table(cols)
    table = table.replace_schema_metadata({META_KEY: json.dumps(extra, sort_keys=True).encode()})
    io.write_table(table, out, io.make_meta("score", prm, fps, summary))
    return summary


def kl_for_selection(scores_path: str, params: dict[str, Any], selected_ids: pa.Array, note: Note = quiet,
                     progress: Progress = silent) -> dict[str, Any] | None:
    """The KL reduction of a selection drawn from a ``dsir`` scores file (:func:`dataselect_cli.dsir.kl_reduction`).

    Streams the raw corpus the scores file names, featurises the selected documents with the same
    featuriser, and compares their distribution with the raw one against each target. None, with
    a note, when the corpus is no longer where it was or no longer the same file.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    md = pq.read_schema(scores_path).metadata or {}
    if META_KEY not in md:
        return None
    extra = json.loads(md[META_KEY])
    text = extra["text"]
    method = DSIR(**{k: params[k] for k in ("text_column", "id_column", "ngrams", "buckets", "skip_empty")},
                  tokenizer=params["tokenizer"] if not params.get("compat") else "words", compat=params.get("compat"))
    try:
        corpus = corpus_mod.open_text_corpus(text, method.text_column, method.id_column)
    except InputError:
        note(f"note: no KL reduction: the scored corpus {text} is not there any more")
        return None
    fz = method.featurizer
    want = pa.array(selected_ids)
    counts = np.zeros(fz.buckets, np.int64)
    found = 0
    with progress("KL reduction: selected documents", None, "docs") as advance:
        for texts, ids in _batches(corpus, None, method.skip_empty):
            hit = pc.is_in(ids, value_set=want).to_numpy(zero_copy_only=False)
            if hit.any():
                counts += dsir_mod.bucket_counts(fz(texts.filter(pa.array(hit))), fz.buckets)
                found += int(hit.sum())
            advance(len(texts))
    if found != len(want):
        note(f"note: no KL reduction: {text} holds {found} of the {len(want)} selected ids (it changed since scoring)")
        return None
    target = np.stack([dsir_mod.unpack_counts(c) for c in extra["target_counts"]])
    out = dsir_mod.kl_reduction(target, dsir_mod.unpack_counts(extra["raw_counts"]), counts, extra["laplace"])
    out["assumes"] = ("hashed n-gram distributions of the featuriser the scores were made with; the selection "
                      "unweighted (as a training set), every selected document once")
    out["unit"] = "nats"
    return out
