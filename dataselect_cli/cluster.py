"""k-means with faiss, assignment, and snapping each center to a real row. Arrays in, arrays out.

The paper (Axiotis et al. 2024, §5.1) clusters with Lloyd's k-means and then replaces every
centroid by the closest actual data point, whose loss is the only one queried for the cluster.
``distance`` and the cost Φ_z are measured to that center row, the very row whose loss stands in
for the cluster.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np

#: Initialisations: greedy k-means++ (ours, as scikit-learn's), faiss's random and AFK-MC² seeding.
INITS = ("kmeans++", "random", "afkmc2")
_FAISS_INIT = {"random": faiss.ClusteringInitMethod_RANDOM, "afkmc2": faiss.ClusteringInitMethod_AFK_MC2}
#: Default training rows per centroid for Lloyd's iterations (faiss's own cap, made explicit).
FIT_PER_CENTROID = 256
#: The k-means++ seeding uses a quarter of the Lloyd rows, within 25·k and 100·k rows (see auto_init_rows).
INIT_ROWS_PER_CENTROID = (25, 100)
#: faiss warns below 39 training points per centroid; we warn ourselves, saying what to do.
MIN_POINTS_PER_CENTROID = 39
_BLOCK = 16384


@dataclass(frozen=True)
class KMeansOptions:
    """How k-means is trained (see :func:`kmeans`); recorded in every output's metadata."""

    niter: int = 25
    init: str = "kmeans++"
    nredo: int = 1
    fit_sample: int | str | None = "auto"
    init_sample: int | str | None = "auto"
    refine: int = 0
    tol: float = 1e-4


@dataclass
class Clustering:
    """The result of :func:`cluster`.

    Attributes
    ----------
    labels : ndarray of shape (n,), int32
        Cluster of each row.
    distance : ndarray of shape (n,), float32
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
    """

    labels: np.ndarray
    distance: np.ndarray
    center_index: np.ndarray
    centroids: np.ndarray
    size: np.ndarray
    cost: np.ndarray
    stats: dict = field(default_factory=dict)


def resolve_sample(size: int | str | None, n: int, k: int, per_centroid: int) -> int:
    """Number of rows a training stage uses: ``"auto"`` → per_centroid·k, ``"all"``/None → n, else the int; at most n."""
    if size is None or size == "all":
        return n
    if size == "auto":
        return min(n, per_centroid * k)
    return min(n, int(size))


def auto_init_rows(n_train: int, k: int) -> int:
    """Rows for the greedy k-means++ seeding when ``init_sample`` is "auto": n_train/4 within [25·k, 100·k].

    Seeding costs about n_trials·rows·k·d multiply-adds at a fraction of BLAS's speed (a thin
    product), Lloyd about iterations·n_train·k·d at full speed; a quarter of the Lloyd rows keeps the
    seeding below Lloyd's share. Measured (bench/bench_cluster.py, k = 200): on 200k synthetic rows
    25·k seeding rows end 1.8 % above scikit-learn's cost, 50·k 0.8 %, 100·k 0.4 %; on 30k docstring
    embeddings 100·k rows took 1.7× faiss's time, a quarter of the rows 1.3× at the same cost.
    """
    lo, hi = INIT_ROWS_PER_CENTROID
    return min(n_train, max(lo * k, min(hi * k, n_train // 4)))


def sample_index(n: int, m: int, seed: int, stream: int) -> np.ndarray | None:
    """A sorted seeded uniform subset of m of n rows, or ``None`` when m >= n (all rows)."""
    if m >= n:
        return None
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(n, size=m, replace=False))


def kmeans_plusplus(x: np.ndarray, k: int, seed: int, n_trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding: row indices of k initial centers.

    Parameters
    ----------
    x : ndarray of shape (m, d), float32; m >= k
    k : int
    seed : int
    n_trials : int or None
        Candidates drawn ∝ D² at each step; the one that lowers the potential most is kept.
        Default 2 + ⌊ln k⌋, as Arthur & Vassilvitskii (2007) and scikit-learn.

    Returns
    -------
    index : ndarray of shape (k,), int64

    Notes
    -----
    Greedy seeding is what lets Lloyd's iterations reach scikit-learn's cost: faiss's random and
    plain k-means++ seedings end 8–10 % higher on clustered data (bench/bench_cluster.py).
    Cost: k·n_trials·m·d multiply-adds.
    """
    m = len(x)
    n_trials = n_trials or 2 + int(math.log(k))
    rng = np.random.default_rng([seed, 4])
    # each step multiplies n_trials candidate rows by all m rows, a thin product that BLAS runs far
    # below its peak; streaming a d × m copy row by row is 1.5× faster than the transposed view
    xt = np.ascontiguousarray(x.T)
    sq = np.einsum("ij,ij->i", x, x)
    index = np.empty(k, dtype=np.int64)
    index[0] = rng.integers(m)
    closest = np.maximum(sq + sq[index[0]] - 2.0 * (x[index[0]] @ xt), 0.0)
    closest[index[0]] = 0.0
    potential = closest.sum(dtype=np.float64)
    trials = np.arange(n_trials)
    for c in range(1, k):
        cdf = np.cumsum(closest, dtype=np.float64)
        cand = np.minimum(np.searchsorted(cdf, rng.random(n_trials) * potential, side="right"), m - 1)
        d2 = x[cand] @ xt  # in place from here: ‖x‖² + ‖c‖² − 2⟨x, c⟩, clipped at 0, then min with closest
        d2 *= -2.0
        d2 += sq[None, :]
        d2 += sq[cand, None]
        np.maximum(d2, 0.0, out=d2)
        d2[trials, cand] = 0.0
        np.minimum(d2, closest[None, :], out=d2)
        pots = d2.sum(axis=1, dtype=np.float64)
        best = int(np.argmin(pots))
        index[c], closest, potential = cand[best], d2[best].copy(), pots[best]
    return index


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


def kmeans(x: np.ndarray, k: int, *, niter: int = 25, seed: int = 0, init: str = "kmeans++", nredo: int = 1,
           fit_sample: int | str | None = "auto", init_sample: int | str | None = "auto", refine: int = 0,
           tol: float = 1e-4) -> tuple[np.ndarray, dict]:
    """Fit k-means in explicit stages, each on a stated number of rows.

    1. seed on ``init_sample`` rows (greedy k-means++; or faiss's random / AFK-MC² seeding);
    2. ``niter`` Lloyd iterations on ``fit_sample`` rows, stopping early when the objective
       improves by less than ``tol`` (relative);
    3. ``refine`` more Lloyd iterations on all rows, when stage 2 used fewer.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, C-contiguous; n >= k
    k, niter, seed, nredo, tol, refine
    init : {"kmeans++", "random", "afkmc2"}
    fit_sample, init_sample : int, "auto", "all" or None
        "auto" is 256·k rows for Lloyd (faiss's own cap, made explicit) and :func:`auto_init_rows`
        for the seeding; "all" or None is every row. The init rows are drawn from the fit rows.

    Returns
    -------
    centroids : ndarray of shape (k, d), float32
    stats : dict
        Rows used by each stage (``n_init``, ``n_train``, ``n_refine``), the objective (sum of
        squared distances) after each iteration (``obj``; ``refine_obj`` for stage 3),
        ``iterations`` run and the final ``imbalance_factor``.
    """
    n = len(x)
    n_train = resolve_sample(fit_sample, n, k, FIT_PER_CENTROID)
    train_idx = sample_index(n, n_train, seed, 1)
    train = x if train_idx is None else x[train_idx]
    if init != "kmeans++":
        n_init = n_train
    elif init_sample == "auto":
        n_init = auto_init_rows(n_train, k)
    else:
        n_init = resolve_sample(init_sample, n_train, k, 0)
    stats = {"init": init, "n_init": n_init, "n_train": n_train, "niter": niter, "tol": tol, "nredo": nredo,
             "seed": seed, "points_per_centroid": n_train / k}
    if k == n:  # every row its own cluster; faiss would warn and do nothing useful
        return x.copy(), {**stats, "obj": [0.0], "iterations": 0, "refine": 0, "n_refine": n,
                          "refine_obj": [], "imbalance_factor": 1.0}
    best = None
    for r in range(nredo if init == "kmeans++" else 1):
        init_centroids = None
        if init == "kmeans++":
            init_idx = sample_index(n_train, n_init, seed + r, 2)
            init_rows = train if init_idx is None else train[init_idx]
            init_centroids = np.ascontiguousarray(init_rows[kmeans_plusplus(init_rows, k, seed + r)])
        run = _lloyd(train, k, niter=niter, seed=seed + r, tol=tol, init=init, init_centroids=init_centroids,
                     nredo=1 if init == "kmeans++" else nredo)
        if best is None or run[1][-1] < best[1][-1]:
            best = run
    centroids, obj, imbalance = best
    refine_obj: list[float] = []
    do_refine = refine if n_train < n else 0
    if do_refine:
        centroids, refine_obj, imbalance = _lloyd(x, k, niter=do_refine, seed=seed, tol=tol, init=init,
                                                  init_centroids=centroids)
    stats.update({"obj": obj, "iterations": len(obj), "refine": do_refine, "n_refine": n if do_refine else 0,
                  "refine_obj": refine_obj, "imbalance_factor": imbalance})
    return centroids, stats


def assign(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center of each row: (labels int64 (n,), squared L2 distances float32 (n,))."""
    index = faiss.IndexFlatL2(centers.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    sqd, lab = index.search(x, 1)
    return lab[:, 0], sqd[:, 0]


def snap(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, sqd: np.ndarray) -> np.ndarray:
    """Row index of the real row standing in for each centroid.

    Each centroid takes the member of its own cluster nearest to it, so the k rows are distinct.
    A centroid left with no members takes the nearest row not already taken.
    """
    k = len(centroids)
    order = np.lexsort((sqd, labels))
    first = np.searchsorted(labels[order], np.arange(k), side="left")
    present = first < len(order)
    present[present] &= labels[order[first[present]]] == np.flatnonzero(present)
    center_index = np.full(k, -1, dtype=np.int64)
    center_index[present] = order[first[present]]
    taken = np.zeros(len(x), dtype=bool)
    taken[center_index[present]] = True
    for j in np.flatnonzero(~present):
        d2 = _sqdist_to(x, centroids[j])
        d2[taken] = np.inf
        center_index[j] = int(np.argmin(d2))
        taken[center_index[j]] = True
    return center_index


def _sqdist_to(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    out = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), _BLOCK):
        diff = x[s : s + _BLOCK] - c
        out[s : s + _BLOCK] = np.einsum("ij,ij->i", diff, diff)
    return out


def row_distance(x: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Exact L2 distance of each row to ``centers[labels]``, float32 (n,).

    Computed as ‖x − c‖ directly, not from faiss's ‖x‖² + ‖c‖² − 2⟨x, c⟩, which loses precision
    to cancellation and would give a center row a small non-zero distance to itself.
    """
    out = np.empty(len(x), dtype=np.float32)
    for s in range(0, len(x), _BLOCK):
        diff = x[s : s + _BLOCK] - centers[labels[s : s + _BLOCK]]
        out[s : s + _BLOCK] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def cluster(x: np.ndarray, k: int, *, z: int = 2, seed: int = 0, options: KMeansOptions = KMeansOptions()
            ) -> Clustering:
    """Cluster ``x`` into k clusters whose centers are real rows.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, C-contiguous, finite; 1 <= k <= n
    k : int
    z : {1, 2}, default=2
        Exponent of the distance term v(e) = ‖e − c‖^z and of the cost Φ_z.
    seed : int
    options : KMeansOptions
        Passed to :func:`kmeans`.

    Returns
    -------
    Clustering

    Notes
    -----
    Steps, as in the paper (§5.1): k-means; assign every row to its nearest centroid; snap each
    centroid to the member of its cluster nearest to it (:func:`snap`); exact distance of every
    row to its cluster's center row; Φ_z per cluster. The center rows belong to their own cluster
    at distance 0, so no cluster is empty.
    """
    centroids, stats = kmeans(x, k, seed=seed, **asdict(options))
    labels, sqd = assign(x, centroids)
    center_index = snap(x, centroids, labels, sqd)
    labels[center_index] = np.arange(k)  # a row taken by a centroid left without members joins its cluster
    labels = labels.astype(np.int32)
    distance = row_distance(x, x[center_index], labels)
    dz = distance.astype(np.float64) ** z
    size = np.bincount(labels, minlength=k).astype(np.int64)
    cost = np.bincount(labels, weights=dz, minlength=k)
    stats["distinct_centers"] = int(len(np.unique(x[center_index], axis=0)))
    return Clustering(labels, distance, center_index, centroids, size, cost, stats)


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
