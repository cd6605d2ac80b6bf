"""k-means with faiss, assignment, and snapping each center to a real row. Arrays in, arrays out.

The paper (Axiotis et al. 2024, §5.1) clusters with Lloyd's k-means and then replaces every
centroid by the closest actual data point, whose loss is the only one queried for the cluster.
Here the rows are then re-assigned to the nearest *center row*, so that ``distance`` and the cost
Φ_z are measured to the very rows whose losses stand in for their clusters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import faiss
import numpy as np

INITS = {
    "random": faiss.ClusteringInitMethod_RANDOM,
    "kmeans++": faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS,
    "afkmc2": faiss.ClusteringInitMethod_AFK_MC2,
}
#: faiss warns below 39 training points per centroid; we warn ourselves, saying what to do.
MIN_POINTS_PER_CENTROID = 39
_BLOCK = 16384


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


def fit_sample_index(n: int, fit_sample: int | None, seed: int) -> np.ndarray | None:
    """Rows to train k-means on: ``None`` for all rows, else a sorted seeded uniform subset."""
    if fit_sample is None or fit_sample >= n:
        return None
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n, size=fit_sample, replace=False))


def kmeans(x: np.ndarray, k: int, *, niter: int = 25, seed: int = 0, init: str = "random",
           nredo: int = 1) -> tuple[np.ndarray, dict]:
    """Fit Lloyd's k-means with faiss on every row of ``x``, never subsampling silently.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, C-contiguous; n >= k
    k : int
    niter, seed, init, nredo
        faiss ``ClusteringParameters`` (``init`` is one of :data:`INITS`).

    Returns
    -------
    centroids : ndarray of shape (k, d), float32
    stats : dict
        ``obj`` (the objective, a sum of squared distances, after each iteration) and
        ``imbalance_factor`` of the last iteration.
    """
    n, d = x.shape
    if k == n:  # every row its own cluster; faiss would warn and do nothing useful
        return x.copy(), {"obj": [0.0], "imbalance_factor": 1.0}
    km = faiss.Kmeans(
        d, k, niter=niter, seed=seed, nredo=nredo, verbose=False, spherical=False,
        init_method=INITS[init],
        # faiss silently trains on at most max_points_per_centroid·k rows; lift the cap so it
        # trains on exactly the rows it is given (subsampling is explicit, via fit_sample_index)
        max_points_per_centroid=math.ceil(n / k) + 1,
        min_points_per_centroid=1,
    )
    km.train(x)
    stats = {
        "obj": [float(v) for v in km.obj],
        "imbalance_factor": float(km.iteration_stats[-1]["imbalance_factor"]) if km.iteration_stats else 1.0,
    }
    return km.centroids.astype(np.float32, copy=False), stats


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


def cluster(x: np.ndarray, k: int, *, z: int = 2, niter: int = 25, seed: int = 0, init: str = "random",
            nredo: int = 1, fit_sample: int | None = None) -> Clustering:
    """Cluster ``x`` into k clusters whose centers are real rows.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, C-contiguous, finite; 1 <= k <= n
    k : int
    z : {1, 2}, default=2
        Exponent of the distance term v(e) = ‖e − c‖^z and of the cost Φ_z.
    niter, seed, init, nredo
        See :func:`kmeans`.
    fit_sample : int or None
        Train on this many rows drawn uniformly (seeded); ``None`` trains on all rows.

    Returns
    -------
    Clustering

    Notes
    -----
    Steps: k-means on the training rows; assign every row to its nearest centroid; snap each
    centroid to its nearest member (:func:`snap`); re-assign every row to its nearest center row;
    exact distances; Φ_z per cluster. The center rows always belong to their own cluster, so no
    cluster is empty.
    """
    n = len(x)
    train_idx = fit_sample_index(n, fit_sample, seed)
    train = x if train_idx is None else x[train_idx]
    centroids, stats = kmeans(train, k, niter=niter, seed=seed, init=init, nredo=nredo)
    del train
    labels, sqd = assign(x, centroids)
    center_index = snap(x, centroids, labels, sqd)
    labels, _ = assign(x, x[center_index])
    labels[center_index] = np.arange(k)  # ties between identical center rows: keep each its own
    labels = labels.astype(np.int32)
    distance = row_distance(x, x[center_index], labels)
    dz = distance.astype(np.float64) ** z
    size = np.bincount(labels, minlength=k).astype(np.int64)
    cost = np.bincount(labels, weights=dz, minlength=k)
    n_train = n if train_idx is None else len(train_idx)
    stats.update({
        "n_train": int(n_train),
        "points_per_centroid": n_train / k,
        "init": init,
        "niter": niter,
        "nredo": nredo,
        "seed": seed,
        "distinct_centers": int(len(np.unique(x[center_index], axis=0))),
    })
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
