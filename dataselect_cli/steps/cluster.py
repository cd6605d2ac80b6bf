"""``dataselect cluster``: embeddings → clusters (id, cluster, distance) and centers, via k-means."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, io, options, outputs, parts
from .._checks import check_k, check_kmeans_options, check_z
from ..cluster import FIT_PER_CENTROID, MIN_POINTS_PER_CENTROID, Clustering, KMeansOptions, choose_probes, cluster, \
    resolve_sample
from ..dataset import ArraySource, EmbeddingSource
from ..fingerprints import PendingFingerprints
from ..engine import LocalEngine
from ..errors import InputError
from .common import Note, Scale, default_centers_path, embeddings_source, gb, pass_bytes, quiet, room_to_keep, \
    skip, spill

#: What the report says of how k-means was trained.
CLUSTERING_KEYS = ("init", "n_init", "n_train", "niter", "warm_start", "fit_niter", "iterations", "tol", "nredo",
                   "refine", "n_refine", "points_per_centroid", "imbalance_factor", "warm_obj", "obj", "refine_obj")


def params(k: int, z: int, probes: int, kmeans: KMeansOptions, scale: Scale) -> dict[str, Any]:
    """The parameters a clusters file records (and ``--resume`` compares)."""
    return {"k": k, "z": z, "probes": probes, **asdict(kmeans), "block_rows": scale.block_rows}


def check(k: int | None, z: int, kmeans: KMeansOptions) -> None:
    """Every check of the clustering options that needs no data."""
    check_z(z)
    if k is not None:
        check_kmeans_options(kmeans, k)


def check_dir_probes(probes: int) -> None:
    """Refuse ``--probes`` with a directory output (the probes are drawn over all rows at once)."""
    if probes:
        raise InputError("--probes needs a single-file -o (the probes are drawn over all rows at once); drop the "
                         "trailing '/' of -o or drop --probes")


def _warnings(c: Clustering, k: int, note: Note) -> None:
    ppc = c.stats["points_per_centroid"]
    if ppc < MIN_POINTS_PER_CENTROID and k < c.stats["n_train"]:
        note(f"warning: only {ppc:.1f} training points per centroid (k-means is unreliable below "
             f"{MIN_POINTS_PER_CENTROID}); lower --k or train on more rows (--fit-sample)")
    if c.stats["distinct_centers"] < k:
        note(f"warning: only {c.stats['distinct_centers']} distinct center vectors for k = {k} "
             "(duplicate rows in the data); lower --k")


def run_cluster(ids: pa.Array | None, x, k: int, *, z: int = options.Z, seed: int = options.SEED,
                kmeans: KMeansOptions = KMeansOptions(), probes: int = 0, note: Note = quiet, path: str | None = None,
                scale: Scale | None = None, sink: parts.Sink | None = None, ds=None
                ) -> tuple[Clustering, pa.Table | None, pa.Table, dict[str, Any]]:
    """Cluster a matrix in memory or a block source; return (clustering, clusters table, centers table, summary).

    With ``sink`` the rows go to a directory output's parts instead (:mod:`dataselect_cli.parts`): the
    clusters table is then None, ``ids`` None too, and the center rows' ids are read from ``ds``."""
    scale = scale or Scale()
    if isinstance(x, np.ndarray):
        x = ArraySource(x)
    n, d = x.n, x.d
    check_k(k, n, path=path)
    check(k, z, kmeans)
    fit_bytes = 2 * resolve_sample(kmeans.fit_sample, n, k, FIT_PER_CENTROID) * d * 4
    if fit_bytes > scale.memory_limit:
        raise InputError(f"k-means on --fit-sample {kmeans.fit_sample} rows × {d} dimensions needs about "
                         f"{gb(fit_bytes)}, more than --memory-limit {gb(scale.memory_limit)}; lower --fit-sample "
                         "(or --k) or raise --memory-limit")
    streamed = not isinstance(x, ArraySource) and isinstance(scale.engine, LocalEngine)
    if streamed and fit_bytes + pass_bytes(scale, n, d) > scale.memory_limit:
        raise InputError(f"streaming {d}-dimensional rows in blocks of --block-rows {scale.block_rows} with "
                         f"k-means on --fit-sample {kmeans.fit_sample} rows needs about "
                         f"{gb(fit_bytes + pass_bytes(scale, n, d))} (two blocks, a decode batch, the fit rows), "
                         f"more than --memory-limit {gb(scale.memory_limit)}; lower --block-rows or --fit-sample "
                         "(or --k), or raise --memory-limit")
    if isinstance(x, EmbeddingSource):  # streamed: the first blocks that fit the limit are decoded once
        x.keep_blocks(room_to_keep(scale, n, d, fit_bytes))
        spill(x, scale, note)  # and the others, from the first pass on, read back from a scratch file
    if sink is not None:
        check_dir_probes(probes)
    c = cluster(x, k, z=z, seed=seed, options=kmeans, engine=scale.engine, block_rows=scale.block_rows,
                progress=scale.progress, sink=sink)
    _warnings(c, k, note)
    table = None
    if sink is None:
        cols = {"id": ids, "cluster": pa.array(c.labels, pa.int32()), "distance": pa.array(c.distance, pa.float32())}
        if probes:
            cols["probe"] = pa.array(choose_probes(c.labels, c.center_index, probes, seed))
        table, center_id = pa.table(cols), ids.take(pa.array(c.center_index))
    else:
        center_id = row_ids(ds, c.center_index)
    centers = pa.table({
        "cluster": pa.array(np.arange(k, dtype=np.int32)),
        "center_id": center_id,
        "size": pa.array(c.size, pa.int64()),
        "cost": pa.array(c.cost, pa.float64()),
        "centroid": io.embedding_array(c.centroids),
    })
    summary = {"n": n, "d": d, "k": k, "z": z, "phi_z": float(c.cost.sum()), **c.stats, "probes_per_cluster": probes}
    return c, table, centers, summary


def row_ids(ds, rows: np.ndarray) -> pa.Array:
    """The ids of rows ``rows`` (any order) of a dataset, in that order, from one pass over its id column."""
    order = np.argsort(rows, kind="stable")
    got = [t.column("id").combine_chunks() for _, _, t in dataset.take_sorted(ds, ["id"], rows[order])]
    ids = io.id_type(pa.concat_arrays(got), ds.path)
    return ids.take(pa.array(np.argsort(order)))


def cluster_file(emb: str, out: str, *, k: int, centers_out: str | None = None, z: int = options.Z,
                 seed: int = options.SEED, kmeans: KMeansOptions = KMeansOptions(), probes: int = 0,
                 note: Note = quiet, scale: Scale | None = None) -> dict[str, Any]:
    """``dataselect cluster``: write CLUSTERS and CENTERS; return the summary."""
    scale = replace(scale or Scale(), output=out)  # a streamed run spills beside out (common.spill)
    check(k, z, kmeans)
    centers_out = centers_out or default_centers_path(out)
    prm = params(k, z, probes, kmeans, scale)
    to_dir = parts.is_dir_output(out)
    if to_dir:
        parts.check_output(out, [emb])
        check_dir_probes(probes)
    else:
        outputs.check_output_path(out, [emb])
    outputs.check_output_path(centers_out, [emb, out], "--centers")
    ds = dataset.open_input(emb, "embeddings")  # opened once: fingerprints and rows
    # hashed in the background while the first pass reads the rows
    inputs = PendingFingerprints({"embeddings": ds}, later=("embeddings",))
    if (done := skip([out, centers_out], "cluster", prm, inputs, seed, note)) is not None:
        return done
    pending: list[str] = []  # notes wait until the run has succeeded: a failed run prints one line, the error
    folder = parts.begin(out) if to_dir else None
    ids, src, ds = embeddings_source(ds, scale, pending.append, spill=folder and os.path.join(folder, ".ids"))
    sink = parts.Sink(folder, io.make_meta("cluster", prm, inputs, None, seed), ds) if to_dir else None
    c, clusters, centers, summary = run_cluster(ids, src, k, z=z, seed=seed, kmeans=kmeans, probes=probes,
                                                note=pending.append, path=ds.path, scale=scale, sink=sink, ds=ds)
    for msg in pending:
        note(msg)
    meta = io.make_meta("cluster", prm, inputs, summary, seed)
    io.write_table(centers, centers_out, meta)
    if to_dir:
        parts.finish(folder, out, meta, c.parts)
    else:
        io.write_table(clusters, out, meta)
    return summary
