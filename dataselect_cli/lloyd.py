"""Lloyd's iterations that search again only the rows whose nearest centroid may have changed (Hamerly 2010).

Each row keeps an upper bound ``u`` on its distance to its centroid and a lower bound ``l`` on its
distance to every other centroid. When the centroids move by δ_j, ``u`` grows by its own centroid's
δ and ``l`` shrinks by the largest δ of the others; a row with ``u < l`` provably keeps its centroid
and is not searched. The others get an exact distance to their centroid first (often enough to prove
it again), and only the rest are searched with faiss. The bounds take faiss's float32 rounding into
account (:func:`~dataselect_cli.sqdist.faiss_error_bound`), so a row is skipped only where a search
would have given it the same centroid up to that rounding: the iterations are Lloyd's, at a fraction of
the searches once the centroids settle (docs/performance.md).

The centroid sums are kept in float64 and updated with the rows that changed centroid; the objective
of an iteration, Σ‖x − c‖² over the rows and the centroids they were assigned to, comes from those
sums (Σ‖x‖² − 2Σ⟨S_j, c_j⟩ + Σ n_j‖c_j‖²), not from a pass over the rows. The stopping rule is
faiss's: stop after an iteration whose objective improved on the previous one by less than ``tol``
(relative); that iteration's centroid update is kept. A centroid left without rows hands the rest of
the iterations to faiss, which splits a cluster for it.
"""

from __future__ import annotations

from typing import NamedTuple

import faiss
import numpy as np
import scipy.sparse

from .sqdist import faiss_error_bound, sqdist_rows

#: Rows per product when summing rows by centroid (a (rows × d) float64 temporary: 12 MiB at d = 384).
_SUM_ROWS = 4096
#: Above this share of rows to search, all are searched (in place, without a gather).
_ALL_ROWS = 0.8
#: The bounds are used where the fit rows × centroids reach this (an iteration's search then takes about half a
#: second on two cores): below, the fixed costs of the first iteration (a search for two centroids, float64 sums)
#: weigh more than the searches the bounds can save (docs/performance.md).
MIN_WORK = 2**27
#: Rows gathered per faiss search (a (rows × d) float32 temporary: 24 MiB at d = 384).
_SEARCH_ROWS = 16384


class Run(NamedTuple):
    """What :func:`lloyd` did: ``centroids`` (float32), the objective of each iteration, faiss's imbalance
    factor of the last assignment, the rows searched in all, and whether it ``finished`` (else faiss is to
    go on from ``centroids`` for the iterations left)."""

    centroids: np.ndarray
    obj: list[float]
    imbalance: float
    searched: int
    finished: bool


def lloyd(x: np.ndarray, centroids: np.ndarray, *, niter: int, tol: float, rows: np.ndarray | None = None) -> Run:
    """At most ``niter`` Lloyd iterations on ``x`` (or on its rows ``rows``) from ``centroids``.

    Parameters
    ----------
    x : ndarray of shape (N, d), float32, C-contiguous
    centroids : ndarray of shape (k, d), float32
        The starting centroids (not modified).
    niter : int >= 1
    tol : float >= 0
        Stop after an iteration that improves the objective by less than ``tol`` of the previous one.
    rows : ndarray of int64 or None
        The rows of ``x`` to run on, gathered a block at a time (never all at once: the fit rows of a
        matrix in memory stay in it), or None for all of ``x``.

    Returns
    -------
    Run
        Not ``finished`` when a centroid lost all its rows (``centroids`` are then those of the
        iteration that found it, not counted): faiss, which splits a cluster for an empty centroid, is
        to run the iterations left from ``centroids``, under the same stopping rule (:func:`converged`).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = (x.shape[0] if rows is None else len(rows)), x.shape[1]
    at = (lambda i: i) if rows is None else (lambda i: rows[i])  # the stage's row i → a row of x
    k = len(centroids)
    c = np.ascontiguousarray(centroids, dtype=np.float32).copy()
    norm_x, sum_sq = np.empty(n), 0.0
    for s, part in _blocks(x, rows):
        norm_x[s : s + len(part)] = np.einsum("ij,ij->i", part, part)  # float32: within γ_d, inside the bounds' 4×
        sum_sq += float(np.einsum("ij,ij->", part, part, dtype=np.float64))  # the objective's term: in float64
    np.sqrt(norm_x, out=norm_x)
    labels = np.zeros(n, dtype=np.int64)
    upper = np.full(n, np.inf)
    lower = np.zeros(n)
    sums = np.zeros((k, d))
    counts = np.zeros(k, dtype=np.int64)
    stale = np.zeros(n, dtype=bool)  # upper bounds grown by more than one iteration's δ
    obj: list[float] = []
    searched = 0
    for _ in range(niter):
        norm_c = np.sqrt(np.einsum("ij,ij->i", c, c, dtype=np.float64))
        todo = np.flatnonzero(upper >= lower)
        tight = todo[stale[todo]]
        if len(tight):  # tighten the stale bounds: the exact distance to the own centroid
            upper[tight] = np.sqrt(sqdist_rows(x, c, labels[tight], rows=at(tight)) * (1 + 2.0 ** -20))
            todo = todo[upper[todo] >= lower[todo]]
        if len(todo) > _ALL_ROWS * n:  # nearly every row: searching them all costs less than gathering them
            todo = np.arange(n)
        stale[:] = True
        stale[todo] = stale[tight] = False
        searched += len(todo)
        new = _search(x, todo if rows is None else rows[todo], c)
        if new is not None:
            dist, cand = new
            slack_max = faiss_error_bound(norm_x[todo], norm_c.max(), d)
            moved = todo[cand[:, 0] != labels[todo]]
            old = labels[moved]
            labels[todo] = cand[:, 0]
            upper[todo] = np.sqrt(dist[:, 0] + faiss_error_bound(norm_x[todo], norm_c[cand[:, 0]], d))
            lower[todo] = np.sqrt(np.maximum(dist[:, 1] - slack_max, 0.0)) if k > 1 else np.inf
            if obj:
                _move_rows(sums, counts, x, at(moved), old, labels[moved])
            else:  # the first assignment: every row counts
                _add_all(sums, counts, x, labels, rows)
        if (counts == 0).any():
            return Run(c, obj, _imbalance(counts), searched, False)
        obj.append(sum_sq - 2.0 * float(np.einsum("ij,ij->", sums, c.astype(np.float64)))
                   + float(np.dot(counts, norm_c * norm_c)))
        fresh = (sums / counts[:, None]).astype(np.float32)
        delta = np.sqrt(np.einsum("ij,ij->i", fresh - c, fresh - c, dtype=np.float64)) * (1 + 2.0 ** -20)
        c = fresh
        upper += delta[labels]
        if k > 1:
            top = np.argsort(delta)[-2:]  # the largest δ of the other centroids: the second largest for its own
            lower -= np.where(labels == top[-1], delta[top[0]], delta[top[-1]])
        if converged(obj, tol):
            break
    return Run(c, obj, _imbalance(counts), searched, True)


def converged(obj: list[float], tol: float) -> bool:
    """faiss's stopping rule: the last iteration improved the objective by less than ``tol`` of the one before."""
    return len(obj) > 1 and obj[-2] - obj[-1] < tol * obj[-2]


def _imbalance(counts: np.ndarray) -> float:
    """faiss's imbalance factor: k·Σ n_j² / (Σ n_j)²."""
    return float(len(counts) * np.dot(counts, counts) / float(counts.sum()) ** 2)


def _search(x: np.ndarray, rows: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """faiss's two nearest centroids of ``x[rows]`` (gathered :data:`_SEARCH_ROWS` at a time): (squared
    distances float64 (m, 2), indices int64 (m, 2))."""
    if not len(rows):
        return None
    index = faiss.IndexFlatL2(c.shape[1])
    index.add(c)
    kk = min(2, len(c))
    dist, cand = np.empty((len(rows), kk)), np.empty((len(rows), kk), dtype=np.int64)
    every = len(rows) == len(x) and rows[-1] == len(x) - 1  # all of x, in order: slices, no gather
    for s, part in _blocks(x, None if every else rows, _SEARCH_ROWS):
        dist[s : s + len(part)], cand[s : s + len(part)] = index.search(part, kk)
    return dist, cand


def _blocks(x: np.ndarray, rows: np.ndarray | None, size: int = _SUM_ROWS):
    """(start, block) over ``x[rows]`` (or all of ``x``): slices of ``x``, or ``size`` rows gathered at a time."""
    m = len(x) if rows is None else len(rows)
    for s in range(0, m, size):
        yield s, (x[s : s + size] if rows is None else x[rows[s : s + size]])


def _add_all(sums: np.ndarray, counts: np.ndarray, x: np.ndarray, labels: np.ndarray, rows: np.ndarray | None
             ) -> None:
    """Every row (of ``x[rows]``) into the sums and counts of its centroid (a sparse one-hot product per
    :data:`_SUM_ROWS` rows, in float64: the objective is computed from the sums)."""
    k = len(sums)
    for s, part in _blocks(x, rows):
        sums += _onehot(labels[s : s + len(part)], k, np.float64) @ part.astype(np.float64)
    counts += np.bincount(labels, minlength=k)


def _move_rows(sums: np.ndarray, counts: np.ndarray, x: np.ndarray, rows: np.ndarray, old: np.ndarray,
               new: np.ndarray) -> None:
    """Move ``x[rows]`` from the sums and counts of centroids ``old`` to those of ``new`` (in float64)."""
    k = len(sums)
    for s in range(0, len(rows), _SUM_ROWS):
        part = x[rows[s : s + _SUM_ROWS]].astype(np.float64)
        sums += _onehot(new[s : s + _SUM_ROWS], k, np.float64) @ part
        sums -= _onehot(old[s : s + _SUM_ROWS], k, np.float64) @ part
    counts += np.bincount(new, minlength=k) - np.bincount(old, minlength=k)


def _onehot(labels: np.ndarray, k: int, dtype) -> scipy.sparse.csr_matrix:
    """The (k, m) matrix with a one at (labels[i], i)."""
    m = len(labels)
    return scipy.sparse.csr_matrix((np.ones(m, dtype=dtype), (labels, np.arange(m))), shape=(k, m))
