"""``dataselect dedup``: embeddings (+ a clustering) → which rows are semantic duplicates (SemDeDup), and D4's pruning.

The order of work: a pass over the rows checks their norms (a zero vector has no cosine) before any
long work; the rows are scaled to unit norm block by block (cosine = inner product); the clustering
comes from ``--clusters`` or is made here with ``--k`` (k-means of ``cluster`` on the unit rows, as
SemDeDup's spherical k-means); a pass gives every row its keep-rule key; then each cluster is
gathered in rank order and searched (:func:`dataselect_cli.dedup.earlier_max`). With
``--prune-prototypical`` the kept rows are clustered again and the most prototypical are pruned (D4).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, grid, io, options, outputs
from .. import dedup as dd
from .._checks import check_eps
from ..cluster import KMeansOptions
from ..dataset import ArraySource, RowsSource
from ..fingerprints import input_fingerprints
from ..engine import LocalEngine, map_pass
from ..errors import InputError
from . import cluster as cluster_step
from .common import Note, Scale, default_centers_path, embeddings_source, gb, quiet, skip
from .score import read_clusters

#: A row whose norm is off 1 by more than this is counted as "not unit-norm" in the summary.
UNIT_TOL = 1e-4


def unit(x: np.ndarray) -> np.ndarray:
    """A block of rows scaled to unit norm (the row-wise function of the normalised source)."""
    return dd.unit_rows(x)[0]


def norm_block(b: int, x: np.ndarray) -> np.ndarray:
    """One block of the norms pass: the L2 norm of each row, float64."""
    return dd.unit_rows(x)[1]


def cosine_block(b: int, x: np.ndarray, *, labels: np.ndarray, centroids: np.ndarray, block_rows: int) -> np.ndarray:
    """One block of unit rows: the cosine of each row to its cluster's unit centroid, float64."""
    lab = labels[b * block_rows : b * block_rows + len(x)]
    return dd.exact_cosine(x, centroids[lab])


def parse_keep(keep: str) -> tuple[str, str | None, bool]:
    """``--keep``: (rule, column or None, descending). ``far``/``near``/``random``, ``COLUMN`` (largest kept)
    or ``-COLUMN`` (smallest kept)."""
    if keep in dd.KEEP_RULES:
        return keep, None, keep == "far"
    column = keep[1:] if keep.startswith("-") else keep
    if not column:
        raise InputError(f"--keep must be far, near, random, COLUMN or -COLUMN; got {keep!r}")
    return "column", column, not keep.startswith("-")


def parse_curve(curve: str | None, eps: float) -> list[float]:
    """``--curve``: comma-separated ε values, each in (0, 1); default :data:`dataselect_cli.dedup.CURVE`; ε is added."""
    if curve is None:
        values = list(dd.CURVE)
    else:
        try:
            values = [float(v) for v in curve.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"--curve must be comma-separated numbers such as 0.01,0.05,0.1; got {curve!r}") from None
        for v in values:
            if not 0.0 < v < 1.0:
                raise InputError(f"--curve values must lie strictly between 0 and 1; got {v}")
    return sorted(set(values) | {eps})


def check(eps: float, keep: str, k: int | None, clusters: str | None, prune: float | None,
          kmeans: KMeansOptions) -> None:
    """Every check of the options that needs no data."""
    check_eps(eps)
    parse_keep(keep)
    if (k is None) == (clusters is None):
        raise InputError("give --clusters FILE (written by 'dataselect cluster' from EMB) or --k K (cluster here), "
                         "one of them")
    if k is not None:
        cluster_step.check(k, options.Z, kmeans)
    if prune is not None and not 0.0 <= prune < 1.0:
        raise InputError(f"--prune-prototypical must be in [0, 1) (the share of the kept rows to prune); got {prune}")


def params(eps: float, keep: str, curve: list[float], k: int | None, prune: float | None, kmeans: KMeansOptions,
           scale: Scale) -> dict[str, Any]:
    """The parameters a dedup file records (and ``--resume`` compares)."""
    prm: dict[str, Any] = {"eps": eps, "keep": keep, "curve": curve, "k": k, "prune_prototypical": prune,
                           "block_rows": scale.block_rows}
    if k is not None or prune is not None:
        prm["kmeans"] = asdict(kmeans)
    return prm


def _norms(src, ds, scale: Scale) -> np.ndarray:
    """Every row's norm (one pass); an :class:`InputError` naming the first row of norm 0."""
    norm = np.concatenate(list(map_pass(scale.engine, "norms", norm_block, src, scale.block_rows, {},
                                        scale.progress)) or [np.empty(0)])
    zero = np.flatnonzero(norm == 0)
    if len(zero):
        file, row = ds.locate(int(zero[0])) if hasattr(ds, "locate") else (ds.path, int(zero[0]))
        raise InputError(f"column 'embedding' is the zero vector at row {row}{ds.id_of(int(zero[0]))}, which has no "
                         f"cosine similarity ({len(zero)} such rows); drop those rows", file)
    return norm


def _unit_source(src, scale: Scale):
    """The rows scaled to unit norm: in place for a matrix in memory (this run's own copy), else block by block."""
    if isinstance(src, ArraySource):
        for s in range(0, src.n, grid.BLOCK_ROWS):
            src.x[s : s + grid.BLOCK_ROWS] = unit(src.x[s : s + grid.BLOCK_ROWS])
        return src
    return RowsSource(src, None, unit)


def _clusters_from_file(clusters: str, centers: str | None, ids: pa.Array, emb_inputs: dict[str, dict], d: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(labels in EMB's row order, unit centroids) from a clusters file and its centers file, checked to be of EMB."""
    centers = centers or default_centers_path(clusters)
    c, meta = read_clusters(clusters, centers)
    _check_made_from(meta, emb_inputs, clusters, "pass the clusters file 'dataselect cluster' wrote from EMB, or --k K "
                     "to cluster here")
    if len(c.ids) != len(ids):
        raise InputError(f"has {len(c.ids)} rows but EMB has {len(ids)}: it was made from another embeddings file; "
                         "pass the clusters file written from EMB, or --k K", clusters)
    labels = c.labels.astype(np.int64)
    if not c.ids.equals(ids):
        pos = io.lookup(c.ids, ids, clusters, "embeddings", "; it was made from another embeddings file (pass "
                        "the clusters file written from EMB, or --k K)")
        labels = labels[pos]
    ct, _ = dataset.read_table(centers, ["cluster", "centroid"], "centers")
    ct = ct.take(pa.array(np.argsort(ct.column("cluster").to_numpy())))
    col = ct.column("centroid").combine_chunks()
    cen, cd = io.list_block(col, centers, "centroid", 0, None)
    if cd != d:
        raise InputError(f"column 'centroid' has {cd} dimensions but EMB's vectors have {d}; pass the centers file "
                         "written from EMB", centers)
    return labels, _unit_centroids(cen)


def _check_made_from(meta: dict, emb_inputs: dict[str, dict], path: str, hint: str) -> None:
    """Refuse a file whose metadata records embeddings of other contents (by sha256) than ``emb_inputs``."""
    made_from = {v.get("sha256") for role, v in (meta.get("inputs") or {}).items() if role.startswith("embeddings")}
    ours = {v.get("sha256") for v in emb_inputs.values()}
    if made_from and None not in made_from | ours and made_from != ours:
        raise InputError(f"was made from another embeddings file (its metadata records other contents); {hint}", path)


def kept_rows(dedup: str, ids: pa.Array, emb_inputs: dict[str, dict] | None = None) -> np.ndarray:
    """The rows (positions in ``ids``' order, sorted) that a dedup table kept; an :class:`InputError` for a table
    of other rows. ``emb_inputs``: the fingerprints of the embeddings these ids come from, checked when given."""
    t, meta = dataset.read_table(dedup, ["id", "keep"], "dedup")
    hint = "pass the dedup table 'dataselect dedup' wrote from this input"
    if emb_inputs is not None:
        _check_made_from(meta, emb_inputs, dedup, hint)
    if t.num_rows != len(ids):
        raise InputError(f"has {t.num_rows} rows but the input has {len(ids)}: it was made from other data; {hint}",
                         dedup)
    keep = t.column("keep").combine_chunks()
    if not pa.types.is_boolean(keep.type) or keep.null_count:
        raise InputError("column 'keep' must be true or false on every row (as 'dataselect dedup' writes it)", dedup)
    pos = io.lookup(io.normalize_ids(t.column("id").combine_chunks(), dedup), ids, dedup, "input",
                    f"; it was made from other data ({hint})")
    return np.flatnonzero(keep.to_numpy(zero_copy_only=False)[pos])


def _unit_centroids(cen: np.ndarray) -> np.ndarray:
    """Centroids scaled to unit norm (a centroid at the origin stays 0: every cosine to it is 0)."""
    return dd.unit_rows(np.ascontiguousarray(cen, dtype=np.float32))[0]


def _keep_key(rule: str, column: str | None, ds, src, labels: np.ndarray, centroids: np.ndarray, seed: int,
              scale: Scale) -> np.ndarray:
    """The key the keep rule ranks a cluster's rows by (float64, n)."""
    if rule == "random":
        return np.random.default_rng([seed, 3]).random(len(labels))
    if rule == "column":
        return _column_key(ds, column)
    shared = {"labels": labels, "centroids": centroids, "block_rows": scale.block_rows}
    parts = map_pass(scale.engine, "cosine to centroids", cosine_block, src, scale.block_rows, shared, scale.progress)
    return -np.concatenate(list(parts))  # far first = the smallest cosine first = the largest −cosine


def _column_key(ds, column: str) -> np.ndarray:
    """A numeric column of EMB as the keep key; an :class:`InputError` if it is missing, not numeric, null or NaN."""
    if column not in ds.schema.names:
        raise InputError(f"--keep {column}: EMB has no column {column!r} (its columns: {', '.join(ds.schema.names)}); "
                         "name a numeric column, or far, near, random", ds.path)
    col = ds.read_column(column).combine_chunks()
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
        raise InputError(f"--keep {column}: column {column!r} has type {col.type}; the keep rule needs numbers",
                         ds.path)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"--keep {column}: column {column!r} is null at row {row}; fill it or choose another rule",
                         ds.path)
    key = col.cast(pa.float64()).to_numpy()
    if np.isnan(key).any():
        raise InputError(f"--keep {column}: column {column!r} is NaN at row {int(np.flatnonzero(np.isnan(key))[0])}; "
                         "fill it or choose another rule", ds.path)
    return key


def _groups(order: np.ndarray, labels: np.ndarray, d: int, budget: int, path: str) -> list[tuple[int, int]]:
    """Ranges of ``order`` holding whole clusters, each gathered at once within ``budget`` bytes."""
    sl = labels[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sl) != 0])
    ends = np.r_[starts[1:], len(order)]
    sizes = ends - starts
    big = int(np.argmax(sizes))
    if sizes[big] * d * 4 > budget:
        raise InputError(f"cluster {int(sl[starts[big]])} has {int(sizes[big])} rows ({gb(sizes[big] * d * 4)}), more "
                         f"than half of --memory-limit ({gb(budget)}) allows to search at once; raise --memory-limit, "
                         "or use more clusters (--k)", path)
    groups, g0, rows = [], 0, 0
    for s, e in zip(starts, ends):
        if rows and (rows + e - s) * d * 4 > budget:
            groups.append((g0, s))
            g0, rows = s, 0
        rows += e - s
    groups.append((g0, len(order)))
    return groups


def search(src, labels: np.ndarray, order: np.ndarray, scale: Scale, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Search every cluster; return (best: the row each row matched, −1 for none; sim: M_j, NaN for none), by row."""
    n = len(labels)
    best, sim = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    budget = scale.memory_limit // 2
    groups = _groups(order, labels, src.d, budget, path) if n else []
    sl = labels[order]
    with scale.progress("search within clusters", n, "rows") as advance:
        for g0, g1 in groups:
            rows = np.sort(order[g0:g1])
            x = src.x if isinstance(src, ArraySource) else src.take(rows, scale.block_rows)
            bounds = np.flatnonzero(np.r_[True, np.diff(sl[g0:g1]) != 0, True])
            for s, e in zip(bounds[:-1] + g0, bounds[1:] + g0):
                ranked = order[s:e]
                v = x[ranked] if isinstance(src, ArraySource) else x[np.searchsorted(rows, ranked)]
                b, m = dd.earlier_max(np.ascontiguousarray(v))
                best[ranked] = np.where(b >= 0, ranked[np.maximum(b, 0)], -1)
                sim[ranked] = m
                advance(e - s)
            del x
    return best, sim


def _prune(ids: pa.Array, src, kept: np.ndarray, k: int, seed: int, kmeans: KMeansOptions, scale: Scale, note: Note,
           path: str) -> tuple[np.ndarray, dict[str, Any]]:
    """D4: cluster the kept rows again (k-means of ``cluster``) and return each kept row's prototypicality
    (cosine to its new unit centroid; NaN for the others) and the re-clustering's summary."""
    rows = np.flatnonzero(kept)
    sub = RowsSource(src, rows)
    k2 = min(k, len(rows))
    c, _, _, _ = cluster_step.run_cluster(ids.take(pa.array(rows)), sub, k2, seed=seed, kmeans=kmeans, note=note,
                                          path=path, scale=scale)
    cen = _unit_centroids(c.centroids)
    shared = {"labels": c.labels, "centroids": cen, "block_rows": scale.block_rows}
    proto = np.full(len(kept), np.nan)
    proto[rows] = np.concatenate(list(map_pass(scale.engine, "prototypicality", cosine_block, sub, scale.block_rows,
                                               shared, scale.progress)))
    return proto, {"k": k2, "n": len(rows), **{key: c.stats[key] for key in ("n_train", "iterations", "obj")
                                                if key in c.stats}}


def run_dedup(ids: pa.Array, src, ds, *, eps: float, keep: str = options.DEDUP_KEEP, curve: list[float] | None = None,
              labels: np.ndarray | None = None, centroids: np.ndarray | None = None, k: int | None = None,
              prune: float | None = None, seed: int = options.SEED, kmeans: KMeansOptions = KMeansOptions(),
              note: Note = quiet, scale: Scale | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Deduplicate unit-norm rows (a block source) within clusters; return (dedup table, summary).

    ``labels`` and ``centroids`` (unit rows) give the clustering; without them it is made here with
    ``k`` clusters. ``prune`` is D4's share of the kept rows to prune after re-clustering them.
    """
    scale = scale or Scale()
    rule, column, descending = parse_keep(keep)
    cstats: dict[str, Any] = {}
    if labels is None:
        c, _, _, csum = cluster_step.run_cluster(ids, src, k, seed=seed, kmeans=kmeans, note=note, path=ds.path,
                                                 scale=scale)
        labels, centroids = c.labels.astype(np.int64), _unit_centroids(c.centroids)
        cstats = {key: csum[key] for key in cluster_step.CLUSTERING_KEYS if key in csum}
    key = _keep_key(rule, column, ds, src, labels, centroids, seed, scale)
    order = dd.keep_order(labels, key, descending)
    best, sim = search(src, labels, order, scale, ds.path)
    dup = dd.removed(sim, eps)
    root = dd.kept_root(order, best, dup)
    n = len(ids)
    cols: dict[str, Any] = {
        "id": ids,
        "cluster": pa.array(labels, pa.int32()),
        "duplicate_of": ids.take(pa.array(np.where(dup, best, 0), mask=~dup)),
        "max_similarity": pa.array(sim, pa.float64(), mask=np.isnan(sim)),
        "kept_id": ids.take(pa.array(root)),
    }
    keep_mask = ~dup
    summary: dict[str, Any] = {"n": n, "d": src.d, "k": int(centroids.shape[0]), "eps": eps, "keep": keep,
                               "threshold": 1.0 - eps, "duplicates": int(dup.sum()),
                               "largest_cluster": int(np.bincount(labels).max()) if n else 0,
                               "curve": dd.eps_curve(sim, curve or [eps])}
    if cstats:
        summary["clustering"] = cstats
    if prune is not None:
        proto, rsum = _prune(ids, src, keep_mask, summary["k"], seed, kmeans, scale, note, ds.path)
        pruned = dd.prune_prototypical(proto, keep_mask, prune)
        keep_mask = keep_mask & ~pruned
        cols["prototypicality"] = pa.array(proto, pa.float64(), mask=np.isnan(proto))
        cols["pruned"] = pa.array(pruned)
        summary.update({"prune_prototypical": prune, "pruned": int(pruned.sum()), "reclustering": rsum})
    cols["keep"] = pa.array(keep_mask)
    summary["kept"] = int(keep_mask.sum())
    return pa.table(cols), summary


def dedup_file(emb: str, out: str, *, eps: float = options.DEDUP_EPS, clusters: str | None = None,
               centers: str | None = None, k: int | None = None, keep: str = options.DEDUP_KEEP,
               curve: str | None = None, prune: float | None = None,
               seed: int = options.SEED, kmeans: KMeansOptions = KMeansOptions(), note: Note = quiet,
               scale: Scale | None = None) -> dict[str, Any]:
    """``dataselect dedup``: write the dedup table of EMB (one row per row of EMB, in its order); return the summary.

    Parameters
    ----------
    emb : str
        Embeddings file or directory (``id``, ``embedding``; other columns may hold a ``--keep`` column).
    out : str
        The dedup table: ``id``, ``cluster``, ``duplicate_of`` (the id of the earlier-ranked row matched,
        null when none reaches 1 − ε), ``max_similarity`` (M_j, the exact largest cosine to an earlier
        row of the cluster, below the threshold too; null for a cluster's first row), ``kept_id``
        (the kept row the chain of matches ends at), ``keep``; with ``prune``: ``prototypicality``, ``pruned``.
    eps : float in (0, 1)
        A row is a duplicate when its cosine to some earlier-ranked row of its cluster is ≥ 1 − ε.
    clusters, centers : str or None
        A clustering of EMB written by ``dataselect cluster`` (centers default beside it); or ``k``.
    keep : str
        The rule that ranks a cluster's rows (the first of a group is kept): far (from the
        centroid; SemDeDup's default), near, random (seeded), COLUMN (largest first) or -COLUMN.
    curve : str or None
        Comma-separated ε values whose removal counts the summary reports (default a grid).
    prune : float in [0, 1) or None
        D4: after deduplication, cluster the kept rows again (same k) and prune this share of them,
        the most prototypical (highest cosine to their new centroid).
    """
    scale = scale or Scale()
    check(eps, keep, k, clusters, prune, kmeans)
    grid_ = parse_curve(curve, eps)
    prm = params(eps, keep, grid_, k, prune, kmeans, scale)
    outputs.check_output_path(out, [emb, clusters, centers])
    ds = dataset.open_input(emb, "embeddings")
    centers_path = (centers or default_centers_path(clusters)) if clusters else None
    emb_inputs = input_fingerprints({"embeddings": ds})
    inputs = input_fingerprints({**emb_inputs, "clusters": clusters, "centers": centers_path})
    if (done := skip([out], "dedup", prm, inputs, seed, note)) is not None:
        return done
    rule, column, _ = parse_keep(keep)
    if rule == "column":
        _column_key(ds, column)  # refused now, before any long work
    pending: list[str] = []
    ids, src, ds = embeddings_source(ds, scale, pending.append)
    labels = centroids = None
    if clusters:
        labels, centroids = _clusters_from_file(clusters, centers_path, ids, emb_inputs, src.d)
    elif k is not None:
        from .._checks import check_k

        check_k(k, src.n, path=ds.path)
    norm = _norms(src, ds, scale)
    off = int(np.sum(np.abs(norm - 1.0) > UNIT_TOL))
    if off:
        pending.append(f"{off} of {len(norm)} rows are not unit-norm; cosines are computed on the rows scaled to "
                       "unit norm, block by block")
    src = _unit_source(src, scale)
    table, summary = run_dedup(ids, src, ds, eps=eps, keep=keep, curve=grid_, labels=labels, centroids=centroids,
                               k=k, prune=prune, seed=seed, kmeans=kmeans, note=pending.append, scale=scale)
    summary["not_unit_norm"] = off
    if not isinstance(scale.engine, LocalEngine):  # a note, not the summary: the output's bytes stay the engine's own
        pending.append("the passes over the rows ran on the engine; the search within clusters ran in this process")
    for msg in pending:
        note(msg)
    io.write_table(table, out, io.make_meta("dedup", prm, inputs, summary, seed))
    return summary
