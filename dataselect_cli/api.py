"""File-level operations, one per subcommand: read → core math → write. Shared by the CLI and
Python users; every function returns the summary it also records in its output's metadata.

>>> from dataselect_cli import api
>>> report = api.sample_file("emb.parquet", "selected.parquet", k=100, eps=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import numpy as np
import pyarrow as pa

from . import bounds, corpus as corpus_mod, embed as embed_mod, encoders, grid, io, report as report_mod
from ._checks import check_delta, check_embeddings, check_eps, check_k, check_unique_ids
from .cluster import (FIT_PER_CENTROID, INITS, MIN_POINTS_PER_CENTROID, Clustering, KMeansOptions, choose_probes,
                      cluster, resolve_sample)
from .dataset import ArraySource, MemorySource, ParquetDataset, TableSource, has_parquet, open_embeddings
from .engine import LocalEngine
from .errors import InputError
from .sample import check_block, draw_block, route, weights
from .scores import balanced_lambda, distance_term, prob_from_mass, score_block

Note = Callable[[str], None]
#: What the report says of how k-means was trained.
CLUSTERING_KEYS = ("init", "n_init", "n_train", "niter", "iterations", "tol", "nredo", "refine", "n_refine",
                   "points_per_centroid", "imbalance_factor", "obj", "refine_obj")


def _quiet(_: str) -> None:
    pass


#: Default --memory-limit: 4 GiB.
DEFAULT_MEMORY_LIMIT = 4 << 30


@dataclass
class Scale:
    """How a run is carried out; apart from ``block_rows`` (recorded in the metadata) it never changes a result.

    Attributes
    ----------
    engine : LocalEngine or DaskEngine or None
        Where the passes over the rows run (default: this process).
    memory_limit : int
        Bytes. Embeddings taking at most half of it are read into memory once; larger ones are
        streamed block by block in every pass. The k-means fit rows must fit in half of it.
    block_rows : int
        The block grid (:mod:`dataselect_cli.grid`).
    """

    engine: Any = None
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    block_rows: int = grid.BLOCK_ROWS

    def __post_init__(self) -> None:
        self.engine = self.engine or LocalEngine()
        if self.block_rows < 1:
            raise InputError(f"--block-rows must be >= 1; got {self.block_rows}")
        if self.memory_limit < 1:
            raise InputError(f"--memory-limit must be positive; got {self.memory_limit}")


def _gb(nbytes: float) -> str:
    """A size for messages: 1.50 GiB, 12.0 MiB, 800 KiB."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes / 1024:.3g} KiB"


def _open_embeddings(path: str, scale: Scale, note: Note) -> tuple[pa.Array, Any, ParquetDataset]:
    """(ids, block source, dataset) of an embeddings file or directory; the matrix is read into
    memory when it takes at most half of the memory limit and the engine is local, else streamed."""
    ds, ids, src = open_embeddings(path)
    size = ds.n * src.d * 4
    if isinstance(scale.engine, LocalEngine) and size <= scale.memory_limit // 2:
        source: Any = ArraySource(src.take(None, scale.block_rows))
        pa.default_memory_pool().release_unused()
    else:
        source = src
        if isinstance(scale.engine, LocalEngine):
            note(f"streaming {ds.n} × {src.d} embeddings ({_gb(size)}, more than half of --memory-limit "
                 f"{_gb(scale.memory_limit)}) block by block")
    if src.note:
        note(f"{ds.path}: {src.note}")
    return ids, source, ds


def _skip(outs: list[str], command: str, params: dict, inputs: dict[str, dict], seed: int | None,
          note: Note) -> dict[str, Any] | None:
    """With ``--resume``: the stored summary when ``outs`` are up to date (:func:`io.up_to_date`), else None."""
    meta = io.up_to_date(outs, command, params, inputs, seed)
    if meta is None:
        return None
    note(f"up to date, skipped (--resume): {', '.join(outs)}")
    return meta["summary"]


def default_centers_path(clusters_path: str | os.PathLike) -> str:
    """``clusters.parquet`` → ``clusters.centers.parquet``, next to it."""
    p = Path(clusters_path)
    return str(p.with_name(p.stem + ".centers.parquet"))


# --------------------------------------------------------------------------- embed


def embed_file(input_path: str, out: str, *, column: str = "embedding", array: str | None = None,
               id_column: str | None = None, normalize: bool = False, note: Note = _quiet) -> dict[str, Any]:
    """Convert a numeric file (.npy, .npz, .csv, .tsv, .jsonl, Parquet list column) to embeddings."""
    params = {"column": column, "array": array, "id_column": id_column, "normalize": normalize}
    # a missing file or a directory without Parquet files: read_vectors says what is wrong
    inputs = io.input_fingerprints({"input": input_path}) if os.path.isfile(input_path) or has_parquet(input_path) \
        else {}
    if inputs and (done := _skip([out], "embed", params, inputs, None, note)) is not None:
        return done
    io.check_output_path(out, [input_path])
    ids, x, rest = embed_mod.read_vectors(input_path, column=column, array=array, id_column=id_column)
    n, d = x.shape
    if ids is None:
        ids = pa.array(np.arange(n, dtype=np.int64))
    elif pa.types.is_integer(ids.type):
        ids = ids.cast(pa.int64())
    elif pa.types.is_large_string(ids.type):
        ids = ids.cast(pa.string())
    elif not pa.types.is_string(ids.type):
        raise InputError(f"id column has type {ids.type}; ids must be integers or strings", input_path)
    if ids.null_count:
        raise InputError("the id column has empty values; every row needs an id", input_path)
    check_unique_ids(ids, path=input_path)
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


# --------------------------------------------------------------------------- embed: text


Progress = Callable[[str, "int | None"], ContextManager[Callable[[int], None]]]


@contextmanager
def _no_progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    yield lambda _k: None


def embed_text_file(input_path: str, out: str, *, text_column: str, model: str = "hash", dim: int | None = None,
                    batch_size: int = 8192, keep_columns: tuple[str, ...] | list[str] = (),
                    id_column: str | None = None, skip_empty: bool = False, seed: int = 0, note: Note = _quiet,
                    progress: Progress = _no_progress) -> dict[str, Any]:
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
    batch_size : int, default=8192
        Documents read and encoded at a time; the hash output does not depend on it.
    keep_columns : sequence of str
    id_column : str or None
        Default: ``id`` when the (first) file has it, else the rows' positions 0..n-1.
    skip_empty : bool
        Drop null and whitespace-only texts instead of refusing them.
    seed : int
        Seed of the hash encoder's projection.
    note, progress : callables
        One-line notes; a progress factory ``progress(description, total)`` giving ``advance(k)``.

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
    io.check_output_path(out, [input_path, *corpus.files])
    fps = {f: io.fingerprint(f) for f in corpus.files}
    scan = corpus_mod.TextScan(corpus, skip_empty)
    with progress("pass 1: reading", None) as advance:
        for f, row0, t in corpus.tables(batch_size):
            encoder.observe(scan.add(f, row0, t))
            advance(t.num_rows)
    scan.check()
    d = encoder.fit(scan.docs)
    schema = pa.schema([("id", scan.id_type or pa.int64()), ("embedding", io.embedding_type(d)),
                        *(scan.keep_schema or [])])
    zero = getattr(encoder, "zero_docs", 0)
    summary = {"n": scan.docs, "d": d, "rows": scan.rows, "skipped": scan.empty if skip_empty else 0,
               "zero_vectors": zero, "files": len(corpus.files), "model": encoder.name}
    params = {"text_column": text_column, "id_column": corpus.id_column, "keep_columns": list(keep_columns),
              "skip_empty": skip_empty, **encoder.params()}
    if encoder.name != "hash":
        params["batch_size"] = batch_size  # padding within a batch can move a model's output in the last bits
    inputs = {"input": fps[input_path]} if corpus.files == [input_path] else \
        {f"input/{os.path.basename(f)}": fp for f, fp in fps.items()}
    meta = io.make_meta("embed", params, inputs, summary, seed if encoder.name == "hash" else None)
    if (done := _skip([out], "embed", params, inputs, meta["seed"], note)) is not None:
        return done
    with io.parquet_stream(out, schema, meta) as write, progress("pass 2: embedding", scan.docs) as advance:
        for table in _embed_batches(corpus, encoder, batch_size, skip_empty, advance):
            write(table)  # the writer casts to the schema (e.g. a pass-through column null in one file)
    if summary["skipped"]:
        note(f"skipped {summary['skipped']} null or empty texts (--skip-empty)")
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


# --------------------------------------------------------------------------- cluster


def _cluster_summary(c: Clustering, n: int, d: int, k: int, z: int) -> dict[str, Any]:
    return {"n": n, "d": d, "k": k, "z": z, "phi_z": float(c.cost.sum()), **c.stats}


def _check_kmeans_options(opt: KMeansOptions, k: int) -> None:
    if opt.init not in INITS:
        raise InputError(f"--init must be one of {', '.join(INITS)}; got {opt.init!r}")
    for name, value in (("--fit-sample", opt.fit_sample), ("--init-sample", opt.init_sample)):
        if isinstance(value, int) and value < k:
            raise InputError(f"{name} {value} is smaller than --k {k}; use at least k rows (or 'auto', 'all')")
    if opt.niter < 1 or opt.nredo < 1 or opt.refine < 0:
        raise InputError("--niter and --nredo must be >= 1 and --refine >= 0")
    if not 0 <= opt.tol < 1:
        raise InputError(f"--tol must lie in [0, 1); got {opt.tol}")


def _cluster_warnings(c: Clustering, k: int, note: Note) -> None:
    ppc = c.stats["points_per_centroid"]
    if ppc < MIN_POINTS_PER_CENTROID and k < c.stats["n_train"]:
        note(f"warning: only {ppc:.1f} training points per centroid (k-means is unreliable below "
             f"{MIN_POINTS_PER_CENTROID}); lower --k or train on more rows (--fit-sample)")
    if c.stats["distinct_centers"] < k:
        note(f"warning: only {c.stats['distinct_centers']} distinct center vectors for k = {k} "
             "(duplicate rows in the data); lower --k")


def run_cluster(ids: pa.Array, x, k: int, *, z: int = 2, seed: int = 0,
                kmeans: KMeansOptions = KMeansOptions(), probes: int = 0, note: Note = _quiet, path: str | None = None,
                scale: Scale | None = None) -> tuple[Clustering, pa.Table, pa.Table, dict[str, Any]]:
    """Cluster a matrix in memory or a block source; return (clustering, clusters table, centers table, summary)."""
    scale = scale or Scale()
    if isinstance(x, np.ndarray):
        x = ArraySource(x)
    n, d = x.n, x.d
    check_k(k, n, path=path)
    if z not in (1, 2):
        raise InputError(f"--z must be 1 or 2; got {z}")
    _check_kmeans_options(kmeans, k)
    fit_bytes = 2 * resolve_sample(kmeans.fit_sample, n, k, FIT_PER_CENTROID) * d * 4
    if fit_bytes > scale.memory_limit:
        raise InputError(f"k-means on --fit-sample {kmeans.fit_sample} rows × {d} dimensions needs about "
                         f"{_gb(fit_bytes)}, more than --memory-limit {_gb(scale.memory_limit)}; lower --fit-sample "
                         "(or --k) or raise --memory-limit")
    c = cluster(x, k, z=z, seed=seed, options=kmeans, engine=scale.engine, block_rows=scale.block_rows)
    _cluster_warnings(c, k, note)
    cols = {"id": ids, "cluster": pa.array(c.labels, pa.int32()), "distance": pa.array(c.distance, pa.float32())}
    if probes:
        cols["probe"] = pa.array(choose_probes(c.labels, c.center_index, probes, seed))
    centers = pa.table({
        "cluster": pa.array(np.arange(k, dtype=np.int32)),
        "center_id": ids.take(pa.array(c.center_index)),
        "size": pa.array(c.size, pa.int64()),
        "cost": pa.array(c.cost, pa.float64()),
        "centroid": io.embedding_array(c.centroids),
    })
    summary = _cluster_summary(c, n, d, k, z)
    summary["probes_per_cluster"] = probes
    return c, pa.table(cols), centers, summary


def cluster_file(emb: str, out: str, *, k: int, centers_out: str | None = None, z: int = 2, seed: int = 0,
                 kmeans: KMeansOptions = KMeansOptions(), probes: int = 0, note: Note = _quiet,
                 scale: Scale | None = None) -> dict[str, Any]:
    """``dataselect cluster``: write CLUSTERS and CENTERS; return the summary."""
    scale = scale or Scale()
    centers_out = centers_out or default_centers_path(out)
    params = {"k": k, "z": z, "probes": probes, **asdict(kmeans), "block_rows": scale.block_rows}
    inputs = io.input_fingerprints({"embeddings": emb})
    if (done := _skip([out, centers_out], "cluster", params, inputs, seed, note)) is not None:
        return done
    io.check_output_path(out, [emb])
    io.check_output_path(centers_out, [emb, out])
    pending: list[str] = []  # notes wait until the run has succeeded: a failed run prints one line, the error
    ids, src, ds = _open_embeddings(emb, scale, pending.append)
    _, clusters, centers, summary = run_cluster(ids, src, k, z=z, seed=seed, kmeans=kmeans, probes=probes,
                                                note=pending.append, path=ds.path, scale=scale)
    for msg in pending:
        note(msg)
    meta = io.make_meta("cluster", params, inputs, summary, seed)
    io.write_table(centers, centers_out, meta)
    io.write_table(clusters, out, meta)
    return summary


# --------------------------------------------------------------------------- score


@dataclass
class _Clusters:
    """What scoring needs of a clustering, however it was obtained."""

    ids: pa.Array
    labels: np.ndarray
    distance: np.ndarray
    center_id: pa.Array
    size: np.ndarray
    cost: np.ndarray
    z: int
    d: int | None


def _read_clusters(clusters_path: str, centers_path: str) -> tuple[_Clusters, dict]:
    pf = io.open_parquet(clusters_path)
    io.require_columns(pf, ["id", "cluster", "distance"], clusters_path, "clusters")
    ids = io.read_ids(pf, clusters_path)
    t = pf.read(columns=["cluster", "distance"])
    labels = t.column("cluster").to_numpy()  # int32 and float32 as written (8 bytes a row; math widens per block)
    distance = t.column("distance").to_numpy()
    meta = io.read_meta(clusters_path)
    ct, cmeta = io.read_table(centers_path, ["cluster", "center_id", "size", "cost"], "centers")
    if meta and cmeta and meta != cmeta:  # 'cluster' writes both files with the same metadata
        raise InputError(f"was not written by the same 'dataselect cluster' run as {clusters_path}; pass the "
                         "centers file written with it (--centers), or re-run cluster", centers_path)
    k = ct.num_rows
    order = np.argsort(ct.column("cluster").to_numpy())
    ct = ct.take(pa.array(order))
    if not np.array_equal(ct.column("cluster").to_numpy(), np.arange(k)):
        raise InputError(f"column 'cluster' must hold 0..{k - 1} once each", centers_path)
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"column 'cluster' has values outside 0..{k - 1} (the centers file has {k} clusters); "
                         "pass the centers file written with it (--centers)", clusters_path)
    if not np.isfinite(distance).all() or (distance < 0).any():
        raise InputError("column 'distance' must be finite and >= 0", clusters_path)
    summary = meta.get("summary", {})
    c = _Clusters(ids, labels, distance, ct.column("center_id").combine_chunks(), ct.column("size").to_numpy(),
                  ct.column("cost").to_numpy(), int(summary.get("z", 2)), summary.get("d"))
    return c, meta


def _from_clustering(ids: pa.Array, c: Clustering, z: int, d: int) -> _Clusters:
    return _Clusters(ids, c.labels, c.distance,
                     ids.take(pa.array(c.center_index)), c.size, c.cost, z, d)


def _score_rows(src, center_loss: np.ndarray, lam_vec: np.ndarray, z: int, engine, block_rows: int) -> dict:
    """Score every block of ``src`` (columns cluster, distance) on ``engine``; p = mass / Σ mass."""
    names = ("proxy_loss", "distance_term", "mass")
    cols = {name: np.empty(src.n) for name in names}
    sums = []
    for b, part in enumerate(engine.map_blocks(score_block, src, block_rows,
                                               {"center_loss": center_loss, "lam": lam_vec, "z": z})):
        for name, values in zip(names, part):
            cols[name][b * block_rows : b * block_rows + len(values)] = values
        sums.append(part[3])
    cols["prob"] = prob_from_mass(cols["mass"], grid.total(np.array(sums)), src.n)
    return cols


def run_score(c: _Clusters, *, losses: str | None = None, lam: float | None = None,
              estimate_lambda: bool = False, note: Note = _quiet,
              loss_table: tuple[pa.Array, np.ndarray] | None = None, scale: Scale | None = None,
              source=None) -> tuple[pa.Table, dict[str, Any]]:
    """Score a clustering; return (scores table, summary). Λ and the Hölder check go in the summary.

    ``losses`` is the losses file (named in messages); ``loss_table`` its (ids, losses) if already read.
    The rows are scored block by block on ``scale.engine`` when ``source`` (columns cluster and
    distance of the clusters file) is given, else here from the arrays of ``c``.
    """
    scale = scale or Scale()
    n, k = len(c.labels), len(c.center_id)
    dterm = distance_term(c.distance, c.z)
    cost = np.bincount(c.labels, weights=dterm, minlength=k)
    phi = float(cost.sum())
    io.lookup(c.ids, c.center_id, "the clusters file", "center")  # every center row must be a row of the data
    holder: dict[str, Any] = {"probes": 0, "violations": 0, "violated": False, "percentiles": {}}
    lam_info: dict[str, Any] = {}
    _check_score_options(losses, lam, estimate_lambda)
    if losses is None:
        center_loss = np.ones(k)
        loss_mode = "none (unit proxy loss)"
        lam_vec = np.full(k, balanced_lambda(float(n), phi, n) if lam is None else lam)
        lam_mode = "n/Φ_z (no losses)" if lam is None else "--lambda"
    else:
        lids, lvals = loss_table if loss_table is not None else io.read_losses(losses)
        pos = io.lookup(lids, c.center_id, losses, "center")
        center_loss = lvals[pos]
        loss_mode = "center losses"
        is_center = np.zeros(len(lids), dtype=bool)
        is_center[pos] = True
        probe_ids = lids.filter(pa.array(~is_center))
        probe_rows = io.lookup(c.ids, probe_ids, losses, "probe") if len(probe_ids) else np.empty(0, np.int64)
        probe_loss = lvals[~is_center]
        plab = c.labels[probe_rows]
        ratios = bounds.probe_ratios(probe_loss, center_loss[plab], dterm[probe_rows])
        if estimate_lambda:
            if len(probe_rows) == 0:
                raise InputError("--estimate-lambda found no probe rows (rows other than the centers); add losses of "
                                 f"a few rows per cluster (Lemma 8 suggests {bounds.probes_needed(k)}; "
                                 "'dataselect cluster --probes T' marks them)", losses)
            lam_vec, lam_info = bounds.estimate_lambda(plab, ratios, k, n)
            lam_mode = "estimated per cluster from probes (Lemma 8: max ratio × ln n)"
            if lam_info["borrowed"]:
                note(f"warning: {len(lam_info['borrowed'])} clusters had no usable probe; they take the largest Λ_i "
                     "of the others")
        elif lam is not None:
            lam_vec, lam_mode = np.full(k, lam), "--lambda"
        else:
            lam_vec = np.full(k, balanced_lambda(float(center_loss[c.labels].sum()), phi, n))
            lam_mode = "Σℓ̂/Φ_z (default: loss and distance terms carry equal mass; not checked against the data)"
        holder = bounds.holder_check(plab, ratios, lam_vec)
        if holder["violated"]:
            note(f"warning: {holder['violations']} of {holder['probes']} probes break the Hölder assumption "
                 "(|ℓ(e) − ℓ(c)| > Λ·‖e − c‖^z); the (1±ε) bound does not hold as stated")
    if source is None:
        source, engine = MemorySource({"cluster": c.labels, "distance": c.distance}), LocalEngine()
    else:
        engine = scale.engine
    sc = _score_rows(source, center_loss, lam_vec, c.z, engine, scale.block_rows)
    table = pa.table({"id": c.ids, "cluster": pa.array(c.labels, pa.int32()), **sc})
    summary = {
        "n": n, "d": c.d, "k": k, "z": c.z, "phi_z": phi, "loss_mode": loss_mode,
        "lambda_mode": lam_mode, "lambda": lam_vec.tolist(), "lambda_phi": float(np.dot(lam_vec, cost)),
        "lambda_info": lam_info, "holder": holder,
        "clusters": {
            "center_id": c.center_id.to_pylist(), "center_loss": center_loss.tolist(),
            "size": np.asarray(c.size).tolist(), "cost": cost.tolist(),
        },
    }
    return table, summary


def _check_score_options(losses: str | None, lam: float | None, estimate_lambda: bool) -> None:
    if estimate_lambda and losses is None:
        raise InputError("--estimate-lambda needs --losses with the center rows and a few probe rows per cluster")
    if lam is not None and lam < 0:
        raise InputError(f"--lambda must be >= 0; got {lam}")


def score_file(clusters: str, out: str, *, centers: str | None = None, losses: str | None = None,
               lam: float | None = None, estimate_lambda: bool = False, note: Note = _quiet,
               scale: Scale | None = None) -> dict[str, Any]:
    """``dataselect score``: write SCORES; return the summary."""
    scale = scale or Scale()
    centers = centers or default_centers_path(clusters)
    params = {"lambda": lam, "estimate_lambda": estimate_lambda, "block_rows": scale.block_rows}
    inputs = io.input_fingerprints({"clusters": clusters, "centers": centers, "losses": losses})
    if (done := _skip([out], "score", params, inputs, None, note)) is not None:
        return done
    io.check_output_path(out, [clusters, centers, losses])
    c, cmeta = _read_clusters(clusters, centers)
    src = TableSource(ParquetDataset(clusters), ["cluster", "distance"], arrow=())
    table, summary = run_score(c, losses=losses, lam=lam, estimate_lambda=estimate_lambda, note=note, scale=scale,
                               source=src)
    csum = cmeta.get("summary", {})
    summary["clustering"] = {key: csum[key] for key in CLUSTERING_KEYS if key in csum}
    io.write_table(table, out, io.make_meta("score", params, inputs, summary))
    return summary


# --------------------------------------------------------------------------- sample


def _sample_size(eps: float | None, size: int | None, delta: float | None) -> tuple[int, float]:
    if delta is not None:
        check_delta(delta)
    if eps is not None and size is not None:
        raise InputError("give --eps or --size, not both")
    if size is not None:
        if size <= 0:
            raise InputError(f"--size must be a positive number of draws; got {size}")
        return size, bounds.eps_for_size(size, delta)
    eps = 0.1 if eps is None else eps
    check_eps(eps)
    return bounds.sample_size(eps, delta), eps


def _draw(src, s: int, seed: int, engine, block_rows: int, path: str | None) -> dict[str, Any]:
    """Draw s rows i.i.d. ∝ ``mass`` from a scores source (columns id, cluster, mass, prob) in two
    passes on ``engine``: the blocks' sums, then the rows of the blocks the draws were routed to."""
    sums, psums, min_prob, bad = [], [], np.inf, 0
    for ms, ps, mp, nb in engine.map_blocks(check_block, src, block_rows, {}):
        sums.append(ms)
        psums.append(ps)
        min_prob, bad = min(min_prob, mp), bad + nb
    if bad or not grid.total(np.array(sums)) > 0:
        raise InputError("column 'mass' must be finite, >= 0, and not all 0, and 'prob' finite", path)
    if abs(grid.total(np.array(psums)) - 1.0) > 1e-6:
        raise InputError("column 'prob' must sum to 1; re-run 'dataselect score'", path)
    block, offset = route(np.array(sums), s, seed)
    offsets = {int(b): offset[block == b] for b in np.unique(block)}
    parts = [p for p in engine.map_blocks(draw_block, src, block_rows, {"offsets": offsets, "block_rows": block_rows})
             if p is not None]
    return {"index": np.concatenate([p[0] for p in parts]), "count": np.concatenate([p[1] for p in parts]),
            "prob": np.concatenate([p[2] for p in parts]), "cluster": np.concatenate([p[3] for p in parts]),
            "id": pa.concat_arrays([p[4] for p in parts]), "min_prob": float(min_prob)}


def run_sample(scores, score_summary: dict, *, s: int, eps: float, delta: float | None,
               seed: int, scale: Scale | None = None, path: str | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Draw s rows i.i.d. from ``prob``; return (selected table, report).

    ``scores`` is a table in memory (drawn here) or a block source of a scores file (drawn on
    ``scale.engine``); both give the same rows.
    """
    scale = scale or Scale()
    if isinstance(scores, pa.Table):
        src = MemorySource({c: scores.column(c).combine_chunks() if c == "id" else scores.column(c).to_numpy()
                            for c in ("id", "cluster", "mass", "prob")})
        engine = LocalEngine()
    else:
        src, engine = scores, scale.engine
    d = _draw(src, s, seed, engine, scale.block_rows, path)
    w = weights(d["count"], d["prob"], s)
    selected = pa.table({
        "id": d["id"], "count": pa.array(d["count"], pa.int32()), "prob": pa.array(d["prob"], pa.float64()),
        "weight": pa.array(w), "cluster": pa.array(d["cluster"], pa.int32()),
    })
    report = report_mod.build(score_summary, s=s, eps=eps, delta=delta, seed=seed, weight=w, count=d["count"],
                              drawn_labels=d["cluster"], min_prob=d["min_prob"])
    return selected, report


def _input_kind(path: str, k: int | None) -> str:
    """'embeddings' or 'scores', from the columns of INPUT."""
    names = ParquetDataset(path).schema.names
    if "prob" in names:
        return "scores"
    if k is not None or "embedding" in names:
        if "embedding" not in names:
            raise InputError("missing column 'embedding' (a one-step run with --k needs an embeddings file with "
                             "id, embedding)", path)
        return "embeddings"
    raise InputError("is neither a scores file (id, cluster, mass, prob) nor an embeddings file (id, embedding)", path)


def sample_file(input_path: str, out: str, *, eps: float | None = None, size: int | None = None,
                delta: float | None = None, seed: int = 0, k: int | None = None, losses: str | None = None,
                lam: float | None = None, estimate_lambda: bool = False, z: int = 2,
                kmeans: KMeansOptions = KMeansOptions(),
                keep_intermediate: str | None = None, report_json: str | None = None,
                report_md: str | None = None, note: Note = _quiet, scale: Scale | None = None) -> dict[str, Any]:
    """``dataselect sample``: from a scores file, or in one step from embeddings with ``k``.

    Returns the report (also embedded in SELECTED's metadata and written to the report files).
    """
    scale = scale or Scale()
    s, eps_b = _sample_size(eps, size, delta)
    params = {"eps": eps, "size": size, "delta": delta, "seed": seed, "k": k, "lambda": lam,
              "estimate_lambda": estimate_lambda, "block_rows": scale.block_rows}
    if k is not None:
        params.update({"z": z, **asdict(kmeans)})
    inputs = io.input_fingerprints({"input": input_path, "losses": losses})
    if (done := _skip([out], "sample", params, inputs, seed, note)) is not None:
        _write_reports(done, report_json, report_md)
        return done
    outs = [out] + [p for p in (report_json, report_md) if p]
    for o in outs:
        io.check_output_path(o, [input_path, losses])
    if _input_kind(input_path, k) == "embeddings":
        if k is None:
            raise InputError("is an embeddings file; pass --k to cluster, score and sample in one step "
                             "(or give a scores file)", input_path)
        # check everything cheap before the expensive clustering, and hold its warnings back until
        # scoring has succeeded, so that a bad --losses file still gives one line and no output
        _check_score_options(losses, lam, estimate_lambda)
        loss_table = io.read_losses(losses) if losses else None
        pending: list[str] = []
        ids, src, ds = _open_embeddings(input_path, scale, pending.append)
        cl, clusters_t, centers_t, csum = run_cluster(ids, src, k, z=z, seed=seed, kmeans=kmeans,
                                                      note=pending.append, path=ds.path, scale=scale)
        del src
        c = _from_clustering(ids, cl, z, csum["d"])
        scores, ssum = run_score(c, losses=losses, lam=lam, estimate_lambda=estimate_lambda, note=pending.append,
                                 loss_table=loss_table, scale=scale)
        for msg in pending:
            note(msg)
        ssum["clustering"] = {key: csum[key] for key in CLUSTERING_KEYS}
        if keep_intermediate:
            _keep(keep_intermediate, ds, inputs, losses, clusters_t, centers_t, scores, csum, ssum, seed,
                  {"k": k, "z": z, "probes": 0, **asdict(kmeans), "block_rows": scale.block_rows},
                  {"lambda": lam, "estimate_lambda": estimate_lambda, "block_rows": scale.block_rows})
    else:
        if k is not None:
            note("note: --k is ignored for a scores file (it is already clustered)")
        ds = ParquetDataset(input_path)
        ds.require(["id", "cluster", "mass", "prob"], "scores")
        ssum = ds.metadata.get("summary") or _summary_from_scores(ds.read_column("cluster").to_numpy())
        scores = TableSource(ds, ["id", "cluster", "mass", "prob"])
    selected, report = run_sample(scores, ssum, s=s, eps=eps_b, delta=delta, seed=seed, scale=scale, path=ds.path)
    report["params"] = params
    io.write_table(selected, out, io.make_meta("sample", params, inputs, report, seed))
    _write_reports(report, report_json, report_md)
    return report


def _write_reports(report: dict[str, Any], report_json: str | None, report_md: str | None) -> None:
    if report_json:
        io.write_text(report_mod.to_json(report), report_json)
    if report_md:
        io.write_text(report_mod.to_markdown(report), report_md)


def _summary_from_scores(labels: np.ndarray) -> dict[str, Any]:
    """A minimal summary for a scores file this tool did not write (from its cluster column)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    return {"n": len(labels), "k": k, "z": None, "d": None, "phi_z": None, "lambda_phi": None,
            "lambda_mode": "unknown (scores file has no dataselect metadata)", "lambda": None,
            "loss_mode": "unknown", "holder": {"probes": 0, "violated": False},
            "clusters": {"size": np.bincount(labels, minlength=k).tolist()}}


def _keep(folder: str, emb: ParquetDataset, sample_inputs: dict[str, dict], losses: str | None, clusters_t,
          centers_t, scores, csum, ssum, seed,
          cparams, sparams) -> None:
    os.makedirs(folder, exist_ok=True)
    cpath, kpath, spath = (os.path.join(folder, f) for f in ("clusters.parquet", "clusters.centers.parquet",
                                                                "scores.parquet"))
    for path in (cpath, kpath, spath):
        io.check_output_path(path, [*emb.files, losses])
    emb_fps = {"embeddings" + role[len("input"):]: fp for role, fp in sample_inputs.items()
               if role.startswith("input")}
    cmeta = io.make_meta("cluster", cparams, emb_fps, csum, seed)  # the sample's input, under cluster's role
    io.write_table(centers_t, kpath, cmeta)
    io.write_table(clusters_t, cpath, cmeta)
    inputs = {"clusters": cpath, "centers": kpath, **({"losses": losses} if losses else {})}
    io.write_table(scores, spath, io.make_meta("score", sparams, inputs, ssum))


# --------------------------------------------------------------------------- estimate


def estimate_file(selected: str, losses: str, *, delta: float | None = None, loss_max: float | None = None,
                  report_json: str | None = None) -> dict[str, Any]:
    """``dataselect estimate``: the mean loss with the paper's interval and an empirical one."""
    if report_json:
        io.check_output_path(report_json, [selected, losses])
    table, meta = io.read_table(selected, ["id", "count", "prob", "weight"], "selected")
    rep = meta.get("summary", {})
    lids, lvals = io.read_losses(losses)
    pos = io.lookup(lids, table.column("id").combine_chunks(), losses, "selected")
    loss = lvals[pos]
    count = table.column("count").to_numpy().astype(np.int64)
    prob = table.column("prob").to_numpy()
    s = int(count.sum())
    n = rep.get("n")
    if n is None:
        raise InputError("has no dataselect metadata (n, ε, Λ·Φ unknown); use a file written by 'dataselect sample'",
                         selected)
    if delta is not None:
        check_delta(delta)
    total, var = bounds.hansen_hurwitz(loss, prob, count, s)
    d_emp = delta if delta is not None else (rep.get("delta") or 0.05)
    out: dict[str, Any] = {
        "n": n, "s": s, "rows": table.num_rows, "estimate_total": total, "estimate_mean": total / n,
        "std_error_mean": (var ** 0.5) / n if s > 1 else None,
        "effective_sample_size": bounds.effective_sample_size(table.column("weight").to_numpy(), count),
    }
    eps, lam_phi = rep.get("eps"), rep.get("lambda_phi")
    if eps is not None and lam_phi is not None:
        lo, hi = bounds.theorem2_interval(total, eps, lam_phi, n)
        out["paper_interval"] = {
            "kind": "Theorem 2 (Axiotis et al. 2024)", "low": lo, "high": hi, "eps": eps,
            "confidence": rep.get("confidence"), "additive_per_example": 2 * eps * lam_phi / n,
            "holds_if": "|ℓ(e) − ℓ(c)| ≤ Λ·‖e − c‖^z in every cluster (Λ: " + str(rep.get("lambda_mode")) + ")",
            "holder_violated": bool(rep.get("holder", {}).get("violated", False)),
        }
    if s > 1:
        lo, hi = bounds.clt_interval(total, var, s, d_emp, n)
        out["clt_interval"] = {"kind": "CLT, Student t with s − 1 df (asymptotic)", "low": lo, "high": hi,
                               "confidence": 1 - d_emp}
    if loss_max is not None:
        if loss_max <= 0 or float(loss.max()) > loss_max:
            raise InputError(f"--loss-max {loss_max} is below a selected loss ({float(loss.max())}); "
                             "give an upper bound on every loss")
        bound = loss_max / rep["min_prob"]
        lo, hi = bounds.bernstein_interval(total, var, s, d_emp, bound, n)
        out["bernstein_interval"] = {"kind": "empirical Bernstein (Maurer & Pontil 2009), rigorous given --loss-max",
                                     "low": lo, "high": hi, "confidence": 1 - d_emp}
    if report_json:
        io.write_text(report_mod.to_json(out), report_json)
    return out


# --------------------------------------------------------------------------- apply


def apply_file(selected: str, data: str, out: str, *, id_column: str = "id", note: Note = _quiet,
               block_rows: int = grid.BLOCK_ROWS) -> dict[str, Any]:
    """``dataselect apply``: the selected rows of DATA (a file or a directory), in DATA's order, with
    ``weight`` and ``count``; DATA is streamed block by block, so it may be larger than memory."""
    params = {"id_column": id_column}
    ds = ParquetDataset(data)
    inputs = io.input_fingerprints({"selected": selected, "data": data})
    if (done := _skip([out], "apply", params, inputs, None, note)) is not None:
        return done
    io.check_output_path(out, [selected, *ds.files])
    sel, _ = io.read_table(selected, ["id", "count", "weight"], "selected")
    ds.require([id_column], "data")
    for c in ("weight", "count"):
        if c in ds.schema.names:
            raise InputError(f"already has a column '{c}'; rename it before applying a selection", data)
    ids = io.read_ids(ds, data, id_column)
    pos = io.lookup(ids, sel.column("id").combine_chunks(), data, "selected")
    order = np.argsort(pos, kind="stable")
    rows, weight, count = pos[order], sel.column("weight").to_numpy()[order], sel.column("count").to_numpy()[order]
    schema = ds.schema.append(pa.field("weight", pa.float64())).append(pa.field("count", pa.int32()))
    summary = {"rows": len(rows), "data_rows": ds.n}
    with io.parquet_stream(out, schema, io.make_meta("apply", params, inputs, summary)) as write:
        start = 0
        for t in ds.iter_tables(schema.names[:-2], 0, ds.n, block_rows):  # one sequential pass
            lo, hi = np.searchsorted(rows, [start, start + t.num_rows])
            t, start = t.take(pa.array(rows[lo:hi] - start)), start + t.num_rows
            if hi == lo:
                continue
            write(t.append_column("weight", pa.array(weight[lo:hi])).append_column("count",
                                                                                  pa.array(count[lo:hi], pa.int32())))
    return summary
