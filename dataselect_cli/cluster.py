"""k-means with faiss, assignment, and snapping each center to a real row. Arrays in, arrays out.

The paper (Axiotis et al. 2024, §5.1) clusters with Lloyd's k-means and then replaces every
centroid by the closest actual data point, whose loss is the only one queried for the cluster.
``distance`` and the cost Φ_z are measured to that center row, the very row whose loss stands in
for the cluster.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import partial

import faiss
import numpy as np

from . import grid, lloyd
from .engine import into_first, map_pass
from .options import INITS, KMEANS_TOL  # noqa: F401 - INITS: the --init choices, defined with the other defaults
from .progress import Progress, silent
from .seeding import kmeans_plusplus
from .sqdist import BLOCK, faiss_error_bound, sqdist_rows

#: Initialisations: greedy k-means++ (ours, as scikit-learn's), faiss's random and AFK-MC² seeding.
_FAISS_INIT = {"random": faiss.ClusteringInitMethod_RANDOM, "afkmc2": faiss.ClusteringInitMethod_AFK_MC2}
#: Default training rows per centroid for Lloyd's iterations (faiss's own cap, made explicit).
FIT_PER_CENTROID = 256
#: The k-means++ seeding uses a quarter of the Lloyd rows, within 25·k and 100·k rows (see auto_init_rows).
INIT_ROWS_PER_CENTROID = (25, 100)
#: The warm start runs when the seeding rows hold at least this many rows per centroid: below, its centroids are
#: too noisy to start from (bench/bench_cluster.py --sweep: at 37.5 per centroid, 150 rows per centroid in all,
#: the final cost was 0.3 % higher than without it).
WARM_PER_CENTROID = 64
#: faiss warns below 39 training points per centroid; we warn ourselves, saying what to do.
MIN_POINTS_PER_CENTROID = 39


@dataclass(frozen=True)
class KMeansOptions:
    """How k-means is trained (see :func:`kmeans`); recorded in every output's metadata."""

    niter: int = 25
    init: str = "kmeans++"
    nredo: int = 1
    fit_sample: int | str | None = "auto"
    init_sample: int | str | None = "auto"
    refine: int = 0
    tol: float = KMEANS_TOL
    warm_start: bool = True
    fit_niter: int | None = None


@dataclass
class Clustering:
    """The result of :func:`cluster`.

    Attributes
    ----------
    labels : ndarray of shape (n,), int32, or None
        Cluster of each row (None when the rows went to a sink: see :func:`cluster`).
    distance : ndarray of shape (n,), float32, or None
        L2 distance of each row to its cluster's center row (exactly 0 for the center rows).
    center_index : ndarray of shape (k,), int64
        Row index of each cluster's center row.
    centroids : ndarray of shape (k, d), float32
        The k-means centroids before snapping.
    size : ndarray of shape (k,), int64
    cost : ndarray of shape (k,), float64
        Φ_z of each cluster: Σ distance^z over its rows.
    stats : dict
        How the clustering was made: points used for training, init, objective per iteration, …
    parts : list of dict
        What the sink returned for each block, in block order ([] without a sink).
    """

    labels: np.ndarray | None
    distance: np.ndarray | None
    center_index: np.ndarray
    centroids: np.ndarray
    size: np.ndarray
    cost: np.ndarray
    stats: dict = field(default_factory=dict)
    parts: list = field(default_factory=list)


def resolve_sample(size: int | str | None, n: int, k: int, per_centroid: int) -> int:
    """Number of rows a training stage uses: ``"auto"`` → per_centroid·k, ``"all"``/None → n, else the int; at most n."""
    if size is None or size == "all":
        return n
    if size == "auto":
        return min(n, per_centroid * k)
    return min(n, int(size))


def auto_init_rows(n_train: int, k: int) -> int:
    """Rows for the greedy k-means++ seeding when ``init_sample`` is "auto": n_train/4 within [25·k, 100·k].

    Seeding costs about n_trials·rows·k·d multiply-adds (near BLAS's speed from d = 384 with the pools of
    :func:`~dataselect_cli.seeding.pool_steps`, a fraction of it below), Lloyd about iterations·n_train·k·d;
    a quarter of the Lloyd rows keeps the seeding below Lloyd's share. Measured (bench/bench_cluster.py, k = 200):
    on 200k synthetic rows 25·k seeding rows end 1.8 % above scikit-learn's cost, 50·k 0.8 %, 100·k
    0.4 %; on 30k docstring embeddings 100·k rows took 1.7× faiss's time, a quarter of the rows 1.3×
    at the same cost.
    """
    lo, hi = INIT_ROWS_PER_CENTROID
    return min(n_train, max(lo * k, min(hi * k, n_train // 4)))


def sample_index(n: int, m: int, seed: int, stream: int) -> np.ndarray | None:
    """A sorted seeded uniform subset of m of n rows, or ``None`` when m >= n (all rows)."""
    if m >= n:
        return None
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(n, size=m, replace=False))


def _lloyd(x: np.ndarray, k: int, *, niter: int, seed: int, tol: float, init: str,
           init_centroids: np.ndarray | None, nredo: int = 1) -> tuple[np.ndarray, list[float], float]:
    """faiss Lloyd iterations on every row of ``x`` (never subsampling); (centroids, obj per iteration, imbalance)."""
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, seed=seed, nredo=nredo, verbose=False, spherical=False,
        init_method=_FAISS_INIT.get(init, faiss.ClusteringInitMethod_RANDOM),
        # faiss silently trains on at most max_points_per_centroid·k rows; lift the cap so it
        # trains on exactly the rows it is given (sampling is explicit, in kmeans())
        max_points_per_centroid=math.ceil(len(x) / k) + 1,
        min_points_per_centroid=1,
        early_stop_threshold=tol,
    )
    km.train(x, init_centroids=init_centroids)
    imbalance = float(km.iteration_stats[-1]["imbalance_factor"]) if km.iteration_stats else 1.0
    return km.centroids.astype(np.float32, copy=False), [float(v) for v in km.obj], imbalance


def _source(x):
    """A block source for ``x``: a source already, or a matrix in memory."""
    from .dataset import ArraySource

    return x if hasattr(x, "iter_blocks") else ArraySource(np.ascontiguousarray(x, dtype=np.float32))


def kmeans(x, k: int, *, niter: int = 25, seed: int = 0, init: str = "kmeans++", nredo: int = 1,
           fit_sample: int | str | None = "auto", init_sample: int | str | None = "auto", refine: int = 0,
           tol: float = KMEANS_TOL, warm_start: bool = True, fit_niter: int | None = None, engine=None,
           block_rows: int = grid.BLOCK_ROWS,
           progress: Progress = silent) -> tuple[np.ndarray, dict]:
    """Fit k-means in explicit stages, each on a stated number of rows.

    1. seed on ``init_sample`` rows (greedy k-means++; or faiss's random / AFK-MC² seeding);
    2. Lloyd iterations (faiss) on rows held in memory, each phase stopping early when the objective
       improves by less than ``tol`` (relative): with ``warm_start`` and k-means++ seeding on fewer rows
       than the fit rows, at least :data:`WARM_PER_CENTROID` per centroid, first at most ``niter`` on the
       seeding rows (the warm start), then at most ``fit_niter`` (default ``niter``) on the ``fit_sample``
       rows; otherwise at most ``niter`` on the fit rows;
    3. ``refine`` more Lloyd iterations on all rows, when stage 2 used fewer: one pass over the
       blocks each (:func:`lloyd_block`), on ``engine``.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, finite; or a block source (:mod:`dataselect_cli.dataset`); n >= k
    k, niter, seed, nredo, tol, refine
    init : {"kmeans++", "random", "afkmc2"}
    warm_start : bool
        The warm start does the bulk of the iterations on a quarter of the rows, and the last ones
        still average every fit row: measured, 0.70–0.96× the Lloyd work of running every iteration on
        the fit rows, for a cost within 0.03 % on MiniLM and hashed n-gram embeddings and 0.2 % lower on
        a synthetic mixture (bench/bench_cluster.py --sweep, docs/performance.md).
    fit_niter : int >= 0 or None
        Most Lloyd iterations on the fit rows after the warm start (None: ``niter``; 0: none, the
        centroids of the warm start are kept). 2 needs 0.62× the Lloyd work at 1M × 384 rows, k = 1000,
        for a cost up to 0.5 % higher on text embeddings.
    fit_sample, init_sample : int, "auto", "all" or None
        "auto" is 256·k rows for Lloyd (faiss's own cap, made explicit) and :func:`auto_init_rows`
        for the seeding; "all" or None is every row. The init rows are drawn from the fit rows.
        The fit rows are a seeded uniform sample of known size (n is known before reading, so no
        reservoir is needed), gathered in one pass that also checks every block.
    engine, block_rows
        Where and in which blocks the passes over all rows run (:mod:`dataselect_cli.engine`).
    progress : callable
        Reports each stage (:mod:`dataselect_cli.progress`; default silent). faiss runs the Lloyd
        iterations of stage 2 in one call, so that stage is reported without a count until it ends.

    Returns
    -------
    centroids : ndarray of shape (k, d), float32
    stats : dict
        Rows used by each stage (``n_init``, ``n_train``, ``n_refine``), the objective (sum of
        squared distances) at each iteration on the fit rows (``obj``; ``warm_obj`` on the seeding rows
        in the warm start, ``refine_obj`` for stage 3), ``iterations`` run on the fit rows (those of the
        warm start when ``fit_niter`` is 0), ``warm_start`` (whether it ran), ``fit_niter`` and the final
        ``imbalance_factor``.
    """
    src = _source(x)
    n = src.n
    n_train = resolve_sample(fit_sample, n, k, FIT_PER_CENTROID)
    fit_idx = sample_index(n, n_train, seed, 1)
    if init != "kmeans++":
        n_init = n_train
    elif init_sample == "auto":
        n_init = auto_init_rows(n_train, k)
    else:
        n_init = resolve_sample(init_sample, n_train, k, 0)
    warm = warm_start and init == "kmeans++" and WARM_PER_CENTROID * k <= n_init < n_train
    most = niter if fit_niter is None or not warm else fit_niter  # iterations on the fit rows, at most
    from .dataset import ArraySource

    # the fit stage of a matrix in memory by lloyd.lloyd (see there), on its fit rows where they are: no copy
    # beside the matrix. Rows gathered from files go to faiss's Lloyd: on a gathered copy the bounds took
    # 1.0-1.3x faiss's time on one of the machines measured (docs/performance.md, "Lloyd with bounds ...")
    bounded = warm and n_train * k >= lloyd.MIN_WORK and isinstance(src, ArraySource)
    train = src.x if bounded else _fit_rows(src, fit_idx, n_train, block_rows, progress, engine)
    fit_rows = fit_idx if bounded else None
    stats = {"init": init, "n_init": n_init, "n_train": n_train, "niter": niter, "tol": tol, "nredo": nredo,
             "warm_start": warm, "fit_niter": most, "seed": seed, "points_per_centroid": n_train / k}
    if k == n:  # every row its own cluster; faiss would warn and do nothing useful
        return train.copy(), {**stats, "obj": [0.0], "warm_obj": [], "iterations": 0, "refine": 0,
                              "n_refine": n, "refine_obj": [], "imbalance_factor": 1.0}
    best = None
    runs = nredo if init == "kmeans++" else 1
    for r in range(runs):
        of = f" (run {r + 1}/{runs})" if runs > 1 else ""
        init_centroids, warm_obj = None, []
        if init == "kmeans++":
            init_idx = sample_index(n_train, n_init, seed + r, 2)
            init_rows = train if init_idx is None else train[init_idx if fit_rows is None else fit_rows[init_idx]]
            with progress(f"k-means++ seeding{of}", k, "centers") as advance:
                init_centroids = np.ascontiguousarray(init_rows[kmeans_plusplus(init_rows, k, seed + r,
                                                                                 advance=advance)])
            if warm:
                init_centroids, warm_obj, imbalance = _lloyd_stage(
                    f"Lloyd iterations on the {n_init} seeding rows{of}, at most {niter}", progress, init_rows, k,
                    niter=niter, seed=seed + r, tol=tol, init=init, init_centroids=init_centroids)
            del init_rows
        if not most:
            run = (init_centroids, warm_obj, imbalance)
        else:
            run = _lloyd_stage(f"Lloyd iterations on the {n_train} fit rows{of}, at most {most}", progress, train, k,
                               niter=most, seed=seed + r, tol=tol, init=init, init_centroids=init_centroids,
                               nredo=1 if init == "kmeans++" else nredo, bounded=bounded, rows=fit_rows)
        if best is None or run[1][-1] < best[1][-1]:
            best, best_warm = run, warm_obj
    del train
    centroids, obj, imbalance = best
    stats["warm_obj"] = best_warm
    refine_obj: list[float] = []
    do_refine = refine if n_train < n else 0
    if do_refine:
        centroids, refine_obj, imbalance = _refine(src, centroids, do_refine, tol, engine, block_rows, progress)
    stats.update({"obj": obj, "iterations": len(obj), "refine": do_refine, "n_refine": n if do_refine else 0,
                  "refine_obj": refine_obj, "imbalance_factor": imbalance})
    return centroids, stats


def _lloyd_stage(what: str, progress: Progress, x: np.ndarray, k: int, bounded: bool = False,
                 rows: np.ndarray | None = None, **kw) -> tuple[np.ndarray, list[float], float]:
    """:func:`_lloyd` reported as one stage (faiss runs the iterations in one call: counted when it returns);
    ``bounded``: the same iterations by :func:`dataselect_cli.lloyd.lloyd`, which searches again only the rows
    whose centroid may have changed (the fit stage after a warm start, whose centroids move little), faiss
    going on where it hands over (``rows``: the stage's rows of ``x``, gathered only if faiss must go on)."""
    with progress(what, None, "iterations") as advance:
        if not bounded:
            run = _lloyd(x, k, **kw)
        else:
            got = lloyd.lloyd(x, kw["init_centroids"], niter=kw["niter"], tol=kw["tol"], rows=rows)
            centroids, obj, imbalance = got[:3]
            if not got.finished and rows is not None:  # a centroid lost its rows: faiss needs them gathered
                x = x[rows]
            # faiss goes on one iteration per call, so that the stopping rule sees every iteration
            while not got.finished and len(obj) < kw["niter"] and not lloyd.converged(obj, kw["tol"]):
                centroids, one, imbalance = _lloyd(x, k, **{**kw, "niter": 1, "init_centroids": centroids})
                obj = obj + one
            run = (centroids, obj, imbalance)
        advance(len(run[1]))
    return run


def _fit_rows(src, rows: np.ndarray | None, m: int, block_rows: int, progress: Progress, engine=None
              ) -> np.ndarray:
    """The k-means fit rows of ``src``; gathering them from files (one pass, on ``engine``: each task sends
    back only its blocks' fit rows) is a stage of its own."""
    from .dataset import ArraySource

    if isinstance(src, ArraySource):
        return src.take(rows, block_rows)
    if rows is not None:
        return np.concatenate(list(map_pass(_engine(engine), "reading the fit rows", take_block, src, block_rows,
                                            {"rows": rows, "block_rows": block_rows}, progress)))
    with progress("reading the fit rows", m, "rows") as advance:
        train = src.take(rows, block_rows)
        advance(m)
    return train


def take_block(b: int, x: np.ndarray, *, rows: np.ndarray, block_rows: int) -> np.ndarray:
    """The rows of block b among ``rows`` (sorted global row numbers), in order."""
    lo, hi = np.searchsorted(rows, [b * block_rows, b * block_rows + len(x)])
    return x[rows[lo:hi] - b * block_rows]


def _engine(engine):
    from .engine import LocalEngine

    return engine or LocalEngine()


def _refine(src, centroids: np.ndarray, iters: int, tol: float, engine, block_rows: int, progress: Progress = silent
            ) -> tuple[np.ndarray, list[float], float]:
    """Lloyd iterations over every block: (centroids, objective per iteration, imbalance factor)."""
    k, d = centroids.shape
    objs: list[float] = []
    counts = np.zeros(k)
    for i in range(iters):
        counts, sums, obj = np.zeros(k), np.zeros((k, d)), []
        for present, cnt, sm, o in map_pass(_engine(engine), f"refine {i + 1}/{iters} (Lloyd on all rows)", lloyd_block,
                                            src, block_rows, {"centroids": centroids}, progress):
            counts[present] += cnt
            sums[present] += sm
            obj.append(o)
        objs.append(grid.total(np.array(obj)))
        full = counts > 0  # an empty cluster keeps its centroid
        centroids = centroids.copy()
        centroids[full] = (sums[full] / counts[full, None]).astype(np.float32)
        if len(objs) > 1 and objs[-2] - objs[-1] < tol * objs[-2]:
            break
    imbalance = float(k * np.sum(counts ** 2) / max(counts.sum(), 1) ** 2)
    return centroids, objs, imbalance


def assign(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center of each row: (labels int64 (n,), exact squared L2 distances float64 (n,)).

    The labels are :func:`nearest_centers`'; the distances are computed exactly for every row
    (:func:`sqdist_rows`).
    """
    labels = nearest_centers(x, centers)[0]
    return labels, sqdist_rows(x, centers, labels)


def nearest_centers(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest center of each row, and what faiss measured: (labels int64, ``approx``, ``slack``), float64 (n,).

    faiss finds the two nearest centers (from ‖x‖² + ‖c‖² − 2⟨x, c⟩, whose rounding depends on
    the BLAS kernel and its threads); the choice between them is then made on exact distances, so
    a row's label does not depend on the machine or the block it was computed in. The exact
    distances are computed only for the rows whose two faiss distances lie within
    :func:`faiss_error_bound` of each other: elsewhere the first candidate is the nearer one exactly
    too, so the result is the same as comparing both exact distances on every row.

    ``approx`` is the squared distance to the label's center, as :func:`sqdist_rows` gives it
    within ``slack``: faiss's value and its :func:`faiss_error_bound`, or on the rows compared
    exactly that exact value and 0.
    """
    k = len(centers)
    index = faiss.IndexFlatL2(centers.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    dist, cand = index.search(np.ascontiguousarray(x, dtype=np.float32), min(2, k))
    cand = np.maximum(cand, 0)  # faiss pads with -1 when k = 1
    labels, approx = cand[:, 0].astype(np.int64), dist[:, 0].astype(np.float64)
    norm_x = np.sqrt(np.einsum("ij,ij->i", x, x).astype(np.float64))  # float32: within γ_d, inside the bound's 4×
    norm_c = np.sqrt(np.einsum("ij,ij->i", centers, centers).astype(np.float64))
    slack = faiss_error_bound(norm_x, norm_c[labels], x.shape[1])
    if k == 1:
        return labels, approx, slack
    close = np.flatnonzero(dist[:, 1] - approx <= slack + faiss_error_bound(norm_x, norm_c[cand[:, 1]], x.shape[1]))
    if len(close):
        c0, c1 = cand[close, 0], cand[close, 1]
        sq0, sq1 = sqdist_rows(x[close], centers, c0), sqdist_rows(x[close], centers, c1)
        # the smaller exact distance; on a tie, the smaller label
        second = (sq1 < sq0) | ((sq1 == sq0) & (c1 < c0))
        labels[close[second]] = c1[second]
        approx[close], slack[close] = np.where(second, sq1, sq0), 0.0
    return labels, approx, slack


def assign_block(b: int, x: np.ndarray, *, centroids: np.ndarray, block_rows: int, keep: bool = True) -> tuple:
    """One block of the assignment pass: (labels int32, or None unless ``keep``, and per cluster present in the
    block its member nearest to the centroid: clusters, squared distances, global rows, vectors)."""
    labels, approx, slack = nearest_centers(x, centroids)
    # only a row within the slacks of its cluster's least faiss distance can be its nearest member exactly
    least = np.full(len(centroids), np.inf)
    np.minimum.at(least, labels, approx + slack)
    cand = np.flatnonzero(approx - slack <= least[labels])
    sqd = sqdist_rows(x[cand], centroids, labels[cand])
    pick = _nearest(labels[cand], sqd)
    best = cand[pick]
    return (labels.astype(np.int32) if keep else None, labels[best], sqd[pick], b * block_rows + best,
            x[best].copy())


def _nearest(labels: np.ndarray, sqd: np.ndarray) -> np.ndarray:
    """Positions of each cluster's nearest member, the first of equals, in cluster order."""
    order = np.lexsort((np.arange(len(labels)), sqd, labels))  # by cluster, then distance, then position
    return order[np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])]


def _nearest_candidates(got: list) -> tuple:
    """:func:`assign_block` results without labels (a directory output) reduced to each cluster's member
    nearest to its centroid over their blocks, the earlier block's of equals (the rule of :func:`cluster`'s
    loop)."""
    cl, sq, rows, vec = (np.concatenate([r[i] for r in got]) for i in range(1, 5))
    best = _nearest(cl, sq)
    return None, cl[best], sq[best], rows[best], vec[best]


def lloyd_block(b: int, x: np.ndarray, *, centroids: np.ndarray) -> tuple:
    """One block of a Lloyd pass: (clusters present, their counts, their sums of rows (float64), Σ sqd)."""
    labels, sqd = assign(x, centroids)
    order = np.argsort(labels, kind="stable")
    sl = labels[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sl) != 0])
    sums = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
    return sl[starts], np.diff(np.r_[starts, len(sl)]), sums, grid.block_sum(sqd)


def free_block(b: int, x: np.ndarray, *, centroids: np.ndarray, taken: np.ndarray, block_rows: int) -> list:
    """For each centroid, the m = len(centroids) nearest rows of the block not in ``taken``:
    a list of (global rows, squared distances), nearest first."""
    rows = b * block_rows + np.arange(len(x))
    free = ~np.isin(rows, taken)
    m = len(centroids)
    out = []
    for c in centroids:
        d2 = sqdist_rows(x, c[None, :], np.zeros(len(x), dtype=np.int64))[free]
        r = rows[free]
        keep = np.lexsort((r, d2))[:m]
        out.append((r[keep], d2[keep]))
    return out


def distance_block(b: int, x: np.ndarray, *, labels: np.ndarray, centers: np.ndarray, z: int, block_rows: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One block of the distance pass: (distance to the center row, float32; Φ_z per cluster of the block)."""
    lab = labels[b * block_rows : b * block_rows + len(x)]
    dist = row_distance(x, centers, lab)
    return dist, np.bincount(lab, weights=dist.astype(np.float64) ** z, minlength=len(centers))


def sink_block(b: int, x: np.ndarray, *, centroids: np.ndarray, center_index: np.ndarray, centers: np.ndarray,
               z: int, block_rows: int, sink) -> tuple[np.ndarray, np.ndarray, object]:
    """The distance pass of a run whose rows go to ``sink`` (a directory output): the labels again (the same
    :func:`nearest_centers` as the assignment pass, on the same block), the center rows moved to their clusters
    as :func:`cluster` does, the distances; ``sink(b, block_rows, {"cluster", "distance"})`` writes them where
    they are computed. Returns (Φ_z per cluster, size per cluster, what the sink returned)."""
    lab = nearest_centers(x, centroids)[0].astype(np.int32)
    lo = b * block_rows
    here = (center_index >= lo) & (center_index < lo + len(x))
    lab[center_index[here] - lo] = np.flatnonzero(here)
    dist = row_distance(x, centers, lab)
    k = len(centers)
    cost = np.bincount(lab, weights=dist.astype(np.float64) ** z, minlength=k)
    return cost, np.bincount(lab, minlength=k), sink(b, block_rows, {"cluster": lab, "distance": dist})


def row_distance(x: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Exact L2 distance of each row to ``centers[labels]``, float32 (n,).

    Computed as ‖x − c‖ directly, not from faiss's ‖x‖² + ‖c‖² − 2⟨x, c⟩, which loses precision
    to cancellation and would give a center row a small non-zero distance to itself.
    """
    out = np.empty(len(x), dtype=np.float32)
    for s in range(0, len(x), BLOCK):
        diff = x[s : s + BLOCK] - centers[labels[s : s + BLOCK]]
        out[s : s + BLOCK] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def cluster(x, k: int, *, z: int = 2, seed: int = 0, options: KMeansOptions = KMeansOptions(), engine=None,
            block_rows: int = grid.BLOCK_ROWS, progress: Progress = silent, sink=None) -> Clustering:
    """Cluster ``x`` into k clusters whose centers are real rows.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, finite; or a block source (:mod:`dataselect_cli.dataset`); 1 <= k <= n
    k : int
    z : {1, 2}, default=2
        Exponent of the distance term v(e) = ‖e − c‖^z and of the cost Φ_z.
    seed : int
    options : KMeansOptions
        Passed to :func:`kmeans`.
    engine : LocalEngine, DaskEngine or None
        Where the passes over all rows run (default: here). The result does not depend on it.
    block_rows : int
        The block grid of the passes (:mod:`dataselect_cli.grid`).
    progress : callable
        Reports each stage and pass (:mod:`dataselect_cli.progress`); default silent.
    sink : callable or None
        Where the per-row results go instead of memory (:class:`dataselect_cli.parts.Sink`): the distance
        pass calls ``sink(b, block_rows, {"cluster": labels, "distance": distances})`` for each block, in
        the task that computed it; the result then holds no per-row array (``labels`` and ``distance``
        None, ``parts`` what the sink returned). The same rows either way.

    Returns
    -------
    Clustering

    Notes
    -----
    Steps, as in the paper (§5.1): k-means (:func:`kmeans`); a pass assigning every row to its
    nearest centroid and finding, per cluster, the member nearest to the centroid, which becomes
    the center row (a centroid left without members takes the nearest row not already taken); a
    pass measuring the exact distance of every row to its cluster's center row, and Φ_z per
    cluster. The center rows belong to their own cluster at distance 0, so no cluster is empty.
    Memory: the fit rows, one block, and 8 bytes per row (label, distance), none with a sink.
    """
    src = _source(x)
    eng = _engine(engine)
    n, d = src.n, src.d
    centroids, stats = kmeans(src, k, seed=seed, engine=eng, block_rows=block_rows, progress=progress,
                              **asdict(options))
    labels = np.empty(n if sink is None else 0, dtype=np.int32)
    best_sq = np.full(k, np.inf)
    center_index = np.full(k, -1, dtype=np.int64)
    centers = np.zeros((k, d), dtype=np.float32)
    shared = {"centroids": centroids, "block_rows": block_rows, "keep": sink is None}
    for b, got in enumerate(map_pass(eng, "assign", assign_block, src, block_rows, shared, progress,
                                     None if sink is None else partial(into_first, reduce=_nearest_candidates))):
        if got is None:  # a block whose task folded its candidates into its first block's
            continue
        lab, cl, sq, rows, vec = got
        if lab is not None:
            labels[b * block_rows : b * block_rows + len(lab)] = lab
        better = sq < best_sq[cl]  # strictly: on a tie the earlier block's (smaller) row stays
        best_sq[cl[better]], center_index[cl[better]], centers[cl[better]] = sq[better], rows[better], vec[better]
    empty = np.flatnonzero(center_index < 0)
    if len(empty):
        _fill_empty(src, eng, centroids, empty, center_index, centers, block_rows, progress)
    stats["distinct_centers"] = int(len(np.unique(centers, axis=0)))
    if sink is not None:
        cost, size, parts = np.zeros(k), np.zeros(k, dtype=np.int64), []
        shared = {"centroids": centroids, "center_index": center_index, "centers": centers, "z": z,
                  "block_rows": block_rows, "sink": sink}
        for cb, sb, part in map_pass(eng, "distances (writing the rows)", sink_block, src, block_rows, shared,
                                     progress):
            cost += cb
            size += sb
            parts.append(part)
        return Clustering(None, None, center_index, centroids, size, cost, stats, parts)
    labels[center_index] = np.arange(k)  # a row taken by a centroid left without members joins its cluster
    distance = np.empty(n, dtype=np.float32)
    cost = np.zeros(k)
    shared = {"labels": labels, "centers": centers, "z": z, "block_rows": block_rows}
    for b, (dist, cb) in enumerate(map_pass(eng, "distances", distance_block, src, block_rows, shared, progress)):
        distance[b * block_rows : b * block_rows + len(dist)] = dist
        cost += cb
    size = np.bincount(labels, minlength=k).astype(np.int64)
    return Clustering(labels, distance, center_index, centroids, size, cost, stats)


def _fill_empty(src, eng, centroids, empty, center_index, centers, block_rows, progress: Progress = silent) -> None:
    """Give each centroid without members the nearest row not already taken (greedily, in cluster order)."""
    taken = np.sort(center_index[center_index >= 0])
    shared = {"centroids": centroids[empty], "taken": taken, "block_rows": block_rows}
    cands: list[list] = [[] for _ in empty]
    chosen: dict[int, int] = {}
    for part in map_pass(eng, f"centers for {len(empty)} empty clusters", free_block, src, block_rows, shared,
                         progress):
        for j, (rows, d2) in enumerate(part):
            cands[j].append((rows, d2))
    taken_set = set(taken.tolist())
    for j, cl in enumerate(empty):
        rows = np.concatenate([r for r, _ in cands[j]])
        d2 = np.concatenate([q for _, q in cands[j]])
        for i in np.lexsort((rows, d2)):
            if int(rows[i]) not in taken_set:
                center_index[cl] = int(rows[i])
                taken_set.add(int(rows[i]))
                chosen[int(cl)] = int(rows[i])
                break
    want = np.array(sorted(chosen.values()), dtype=np.int64)
    vecs = np.concatenate(list(map_pass(eng, "reading the new centers", take_block, src, block_rows,
                                        {"rows": want, "block_rows": block_rows}, progress)))
    for cl, row in chosen.items():
        centers[cl] = vecs[int(np.searchsorted(want, row))]


def choose_probes(labels: np.ndarray, center_index: np.ndarray, t: int, seed: int) -> np.ndarray:
    """Mark up to ``t`` uniformly drawn non-center rows per cluster as probes (Lemma 8).

    Returns a boolean mask of shape (n,). A cluster of size m gets min(t, m − 1) probes.
    """
    rng = np.random.default_rng([seed, 2])
    key = rng.random(len(labels))
    key[center_index] = np.inf
    order = np.lexsort((key, labels))
    sorted_labels = labels[order]
    start = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(len(order)) - start
    probe = np.zeros(len(labels), dtype=bool)
    probe[order[rank < t]] = True
    probe[center_index] = False
    return probe
