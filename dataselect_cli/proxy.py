"""Proxy losses from the queried rows, and how well each predicts a loss it did not see (leave-one-out R²).

The tool knows the loss of a few rows (each cluster's center and its probes: the *queried* rows) and
predicts every other row's loss from them. Three proxies (``--proxy``):

* ``center``: the loss of the row's cluster center (the paper's);
* ``mean``: the mean of the queried losses of the row's cluster;
* ``knn``: a distance-weighted average of the losses of the ``K_NEAREST`` queried rows nearest to the
  row in the embedding space, wherever their clusters are (exact L2 search with faiss), with
  inverse-distance weights 1/‖e − q‖ (Shepard 1968): no bandwidth to choose, a queried row predicts
  itself, and a row between two clusters borrows from both. The weights are scale-free, so the
  embedding's units do not matter.

Which one predicts best is checked on the probes, each predicted without its own loss (leave-one-out):
R² = 1 − Σ(ℓ − ℓ̂₋ᵢ)² / Σ(ℓ − ℓ̄)² over the probes; the score summary records it for every proxy it can
compute, so the choice rests on losses the selection will never estimate.
"""

from __future__ import annotations

import numpy as np

#: Queried rows a ``knn`` proxy averages over.
K_NEAREST = 8


def knn_weights(dist: np.ndarray) -> np.ndarray:
    """Inverse-distance weights of each row's neighbours (rows of ``dist``, the L2 distances, ascending); a row at
    distance 0 from a queried row takes that row's loss alone.

    >>> knn_weights(np.array([[1.0, 3.0], [0.0, 2.0]])).tolist()
    [[0.75, 0.25], [1.0, 0.0]]
    """
    dist = np.maximum(dist, 0.0)
    exact = dist[:, :1] <= 0
    with np.errstate(divide="ignore"):
        w = np.where(exact, (dist <= 0).astype(np.float64), 1.0 / np.where(dist > 0, dist, 1.0))
    w = np.where(exact, w, np.where(dist > 0, w, 0.0))
    return w / w.sum(axis=1, keepdims=True)


def knn_proxy(x: np.ndarray, queried_x: np.ndarray, queried_loss: np.ndarray, k: int = K_NEAREST,
              leave_out: np.ndarray | None = None, block: int = 65536) -> np.ndarray:
    """The ``knn`` proxy loss of every row of ``x`` from the queried rows (their vectors and losses).

    Parameters
    ----------
    x : ndarray of shape (n, d)
    queried_x : ndarray of shape (m, d)
    queried_loss : ndarray of shape (m,)
    k : int
        Neighbours averaged (at most m, or m − 1 when leaving out).
    leave_out : ndarray of shape (n,), int, or None
        For each row of ``x``, the queried row it must not use (its own loss, −1 for none): the
        leave-one-out prediction of the queried rows themselves.

    Examples
    --------
    >>> q = np.array([[0.0], [1.0], [3.0]]); ql = np.array([0.0, 1.0, 3.0])
    >>> knn_proxy(np.array([[0.5], [3.0]]), q, ql, k=2).tolist()       # halfway; on a queried row
    [0.5, 3.0]
    >>> knn_proxy(q, q, ql, k=2, leave_out=np.arange(3)).round(4).tolist()
    [1.5, 1.0, 0.6]
    """
    import faiss

    m = len(queried_loss)
    extra = 1 if leave_out is not None else 0
    kk = max(1, min(k, m - extra))
    index = faiss.IndexFlatL2(queried_x.shape[1])
    index.add(np.ascontiguousarray(queried_x, dtype=np.float32))
    out = np.empty(len(x))
    for lo in range(0, len(x), block):
        xb = np.ascontiguousarray(x[lo:lo + block], dtype=np.float32)
        d2, idx = index.search(xb, min(m, kk + extra))
        if leave_out is not None:  # drop each row's own queried row (or the farthest, when it is not among them)
            own = idx == leave_out[lo:lo + block, None]
            own[~own.any(axis=1), -1] = True
            keep = ~own
            d2 = d2[keep].reshape(len(xb), -1)
            idx = idx[keep].reshape(len(xb), -1)
        w = knn_weights(np.sqrt(np.maximum(d2.astype(np.float64), 0.0)))
        out[lo:lo + block] = np.sum(w * queried_loss[idx], axis=1)
    return out


def r2(loss: np.ndarray, pred: np.ndarray) -> float | None:
    """1 − Σ(ℓ − ℓ̂)²/Σ(ℓ − ℓ̄)²; None for fewer than 2 rows or no spread.

    >>> r2(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0]))
    0.5
    """
    if len(loss) < 2:
        return None
    sst = float(np.sum((loss - loss.mean()) ** 2))
    return 1.0 - float(np.sum((loss - pred) ** 2)) / sst if sst > 0 else None


def loo_r2(labels: np.ndarray, loss: np.ndarray, is_center: np.ndarray, x: np.ndarray | None = None
           ) -> dict[str, float | None]:
    """Leave-one-out R² of each proxy over the probes (queried rows that are not centers).

    Parameters
    ----------
    labels, loss, is_center : ndarray of shape (m,)
        Each queried row's cluster, loss and whether it is its cluster's center.
    x : ndarray of shape (m, d) or None
        Their vectors (adds ``knn``).

    Returns
    -------
    dict
        ``center``: the probe's center's loss; ``mean``: the mean of its cluster's other queried losses
        (probes alone in their cluster left out); ``knn``: :func:`knn_proxy` without the probe's own loss.

    Examples
    --------
    >>> lab = np.array([0, 0, 0, 1, 1, 1]); c = np.array([True, False, False, True, False, False])
    >>> loss = np.array([1.0, 1.0, 2.0, 5.0, 6.0, 6.0])
    >>> {k: round(v, 4) for k, v in loo_r2(lab, loss, c).items()}
    {'center': 0.8554, 'mean': 0.9157}
    """
    probe = ~is_center
    k = int(labels.max()) + 1 if len(labels) else 0
    center = np.full(k, np.nan)
    center[labels[is_center]] = loss[is_center]
    count = np.bincount(labels, minlength=k)
    total = np.bincount(labels, weights=loss, minlength=k)
    out: dict[str, float | None] = {}
    cp = center[labels[probe]]
    ok = np.isfinite(cp)
    out["center"] = r2(loss[probe][ok], cp[ok])
    others = count[labels[probe]] - 1
    ok = others > 0
    out["mean"] = r2(loss[probe][ok], ((total[labels[probe]] - loss[probe]) / np.maximum(others, 1))[ok])
    if x is not None and len(loss) > 1:
        pred = knn_proxy(x[probe], x, loss, leave_out=np.flatnonzero(probe))
        out["knn"] = r2(loss[probe], pred)
    return out
