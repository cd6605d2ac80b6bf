"""Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, as scikit-learn): the candidates of several steps drawn
at once and accepted by rejection, so that their distances come from one wide product. Arrays in, arrays out."""

from __future__ import annotations

import math
from functools import partial

import faiss
import numpy as np

from .progress import Advance


def kmeans_plusplus(x: np.ndarray, k: int, seed: int, n_trials: int | None = None,
                    advance: Advance | None = None, pool: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding: row indices of k initial centers.

    Parameters
    ----------
    x : ndarray of shape (m, d), float32; m >= k
    k : int
    seed : int
    n_trials : int or None
        Candidates drawn ∝ D² at each step; the one that lowers the potential most is kept.
        Default 2 + ⌊ln k⌋, as Arthur & Vassilvitskii (2007) and scikit-learn.
    advance : callable or None
        Called with 1 as each center is chosen (progress; it does not touch the draws).
    pool : int or None
        Steps whose candidates are drawn at once (see Notes); default :func:`pool_steps` of d.

    Returns
    -------
    index : ndarray of shape (k,), int64

    Notes
    -----
    Greedy seeding is what lets Lloyd's iterations reach scikit-learn's cost: faiss's random and
    plain k-means++ seedings end 8–10 % higher on clustered data (bench/bench_cluster.py).
    Cost: k·n_trials·m·d multiply-adds.

    Each step's candidates must be drawn ∝ D² of that step, but a step's distance product is a thin
    one that streams all m rows for n_trials columns. So the candidates are drawn ahead, a pool of
    :func:`pool_steps` steps' worth at once ∝ the D² of the pool's step (D₀²), and their distances come
    from one wider product; at a later step a pooled candidate i is accepted with probability
    D²(i) / D₀²(i) ≤ 1, in pool order, until n_trials are accepted (a new pool is drawn when it runs
    out). That is rejection sampling with D₀² as the proposal: every accepted candidate is an
    independent draw ∝ the current D², exactly as if drawn at its step. With one step per pool
    (d < 96) the draws, and so the centers, are those of drawing at each step.
    """
    m, d = x.shape
    advance = advance or (lambda _k: None)
    n_trials = n_trials or 2 + int(math.log(k))
    per_pool = pool or pool_steps(d)
    rng = np.random.default_rng([seed, 4])
    index = np.empty(k, dtype=np.int64)
    index[0] = rng.integers(m)
    if per_pool > 1:  # pooled: faiss's product (0.85x numpy's seeding time at 64k x 384, k = 1000; no x.T copy)
        sqd = partial(_pool_distances, x)
    else:  # one step's n_trials columns at a time: numpy against a d × m copy (below d = 96 the product is cheap)
        xt = _transposed(x)
        sq = np.einsum("ij,ij->i", x, x)
        sqd = partial(_step_distances, x, xt, sq)
    closest = sqd(index[:1])[0]
    potential = closest.sum(dtype=np.float64)
    advance(1)
    props = drawn = dist = np.empty(0)
    used = 0
    d2 = np.empty((n_trials, m), dtype=closest.dtype)  # each accepted candidate's min(D², its distance²)
    for c in range(1, k):
        cand = []  # the accepted candidates (a pool may end mid-step)
        while len(cand) < n_trials:
            if used == len(props):  # draw a new pool ∝ the current D²
                size = n_trials * min(per_pool, k - c)
                cdf = np.cumsum(closest, dtype=np.float64)
                props = np.minimum(np.searchsorted(cdf, rng.random(size) * potential, side="right"), m - 1)
                drawn, used = closest[props], 0
                del dist  # the last pool's distances go before the next's are made: one pool held at a time
                dist = sqd(props)
            now, then = closest[props[used]], drawn[used]
            if now == then or rng.random() * then < now:
                np.minimum(dist[used], closest, out=d2[len(cand)])
                cand.append(props[used])
            used += 1
        pots = d2.sum(axis=1, dtype=np.float64)
        best = int(np.argmin(pots))
        index[c], closest, potential = cand[best], d2[best].copy(), pots[best]
        advance(1)
    return index


def _pool_distances(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Squared distances of ``x[rows]`` to every row of ``x`` (len(rows), m), float32, clipped at 0, exactly 0
    from a row to itself: faiss's ‖x‖² + ‖c‖² − 2⟨x, c⟩ with its own BLAS (the pools' wide product)."""
    return _from_rows(faiss.pairwise_distances(x[rows], x), rows)


def _step_distances(x: np.ndarray, xt: np.ndarray, sq: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`_pool_distances` by numpy's BLAS against ``xt`` (x.T, C-contiguous) and ``sq`` (the rows' squared
    norms), the −2 taken into the rows (exact)."""
    out = (x[rows] * np.float32(-2.0)) @ xt
    out += sq[None, :]
    out += sq[rows, None]
    return _from_rows(out, rows)


def _from_rows(out: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``out`` (squared distances of ``x[rows]`` to every row) clipped at 0 and 0 from each row to itself, in place."""
    np.maximum(out, 0.0, out=out)
    out[np.arange(len(rows)), rows] = 0.0
    return out


def _transposed(x: np.ndarray, rows: int = 1024) -> np.ndarray:
    """A C-contiguous copy of ``x.T``, made ``rows`` rows of ``x`` at a time (4–5× faster than
    ``np.ascontiguousarray(x.T)``, which walks the copy with a stride of m floats)."""
    out = np.empty((x.shape[1], x.shape[0]), dtype=x.dtype)
    for s in range(0, len(x), rows):
        out[:, s : s + rows] = x[s : s + rows].T
    return out


def pool_steps(d: int) -> int:
    """Seeding steps whose candidates :func:`kmeans_plusplus` draws and multiplies at once, by dimension.

    The product for n_trials columns streams the m × d rows for little arithmetic; 8 steps' columns
    at once cost 3.5× one step's at d = 384 (0.37 against 0.84 ms a column on 64k rows on one machine),
    16 steps' 0.79× 8 steps' a column on another, and with faiss's product (:func:`_pool_distances`),
    32 steps' 0.83× 16 steps' there (64k × 384 rows, k = 1000: seeding 3.1–3.3 s → 2.7 s, 2 % of the
    candidates rejected against 1 %; 64 steps: 2.6 s, 4 %). Below d = 96 the product is not what costs,
    so the draws stay one step at a time. The pool's distances take n_trials·steps·m floats, at most
    n_trials/12 of the seeding rows' own d·m (two thirds at k = 1000: 65 MB beside 98 MB of rows).
    """
    return 1 if d < 96 else min(32, d // 12)
