"""Semantic deduplication (SemDeDup) and D4's prototypicality pruning. Arrays in, arrays out.

SemDeDup (Abbas et al. 2023) and NeMo Curator's semantic dedup work inside each k-means cluster:
the rows of a cluster are ranked by a keep rule (farthest from the centroid first, by default), and
a row is removed when its cosine similarity to some *earlier-ranked* row of its cluster is
≥ 1 − ε. Earlier rows count whether or not they were removed themselves (NeMo's rule: the
maximum runs over the whole upper triangle of the cluster's similarity matrix), so the decision
for a row depends only on M_j = max_{i<j} cos(e_i, e_j), never on ε's other decisions, and one
search gives the removal count of every ε (:func:`eps_curve`).

The search here never forms the m × m matrix of a cluster of m rows: the rows are taken in rank
order in batches of :data:`BATCH`; a batch is searched against the rows before it with faiss
(exact inner products, top :data:`CANDIDATES`) and against itself (a batch × batch block), and
the candidates' similarities are then recomputed exactly in float64, so the maximum and the row it
is attained at do not depend on the BLAS kernel or its threads. Memory: the cluster's vectors
(m·d·4 bytes) plus a few batch-sized blocks (faiss's 4096 × 1024 distance tile, 16 MiB).
"""

from __future__ import annotations

import numpy as np

#: Rows of a cluster searched at a time (the batch × batch block is BATCH² float32).
BATCH = 1024
#: Nearest earlier rows faiss proposes per row; their similarities are then recomputed exactly.
CANDIDATES = 4
#: The ε of the default removal curve (the run's own ε is added).
CURVE = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
#: The keep rules that are not a column name.
KEEP_RULES = ("far", "near", "random")


def unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit L2 norm: (float32 (m, d), the norms before, float64 (m,)).

    The norm is summed in float64 row by row, so a row gives the same bytes in any block. Rows
    of norm 0 are left at 0 (the caller refuses them: their cosine is undefined).
    """
    norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return (x * scale[:, None]).astype(np.float32), norm


def exact_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ⟨a_i, b_i⟩ of unit float32 rows, summed in float64 (the same value wherever it is computed)."""
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)


def keep_order(labels: np.ndarray, key: np.ndarray, descending: bool) -> np.ndarray:
    """Rows grouped by cluster, each cluster in keep-rule order: int64 (n,) row indices.

    Within a cluster the row with the largest ``key`` comes first when ``descending`` (else the
    smallest); ties go to the earlier row.
    """
    rows = np.arange(len(labels))
    return np.lexsort((rows, -key if descending else key, labels)).astype(np.int64)


def earlier_max(v: np.ndarray, batch: int = BATCH, candidates: int = CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """For each row j of a cluster in rank order, its most similar earlier row and that cosine.

    Parameters
    ----------
    v : ndarray of shape (m, d), float32, C-contiguous
        The cluster's unit-norm rows, first-ranked first.
    batch : int
        Rows searched at a time (bounds the extra memory; the result does not depend on it
        unless two earlier rows tie within float32 rounding).
    candidates : int
        Earlier rows proposed by faiss per row, re-scored exactly.

    Returns
    -------
    best : ndarray of shape (m,), int64
        Position of the most similar earlier row (−1 for row 0); on an exact tie, the earliest of the
        candidates (of all tied rows unless more than ``candidates`` tie exactly, as exact copies do).
    sim : ndarray of shape (m,), float64
        M_j = max_{i<j} ⟨v_i, v_j⟩ (NaN for row 0).

    Notes
    -----
    Each batch [a, b) is searched against rows [0, a) by faiss (``knn`` with inner products) and
    against itself through a (b − a)² block keeping i < j only; the union of the candidates is
    re-scored by :func:`exact_cosine`. Time O(m²·d/2), memory O(m·d + batch²).
    """
    import faiss

    m = len(v)
    best = np.full(m, -1, dtype=np.int64)
    sim = np.full(m, np.nan)
    for a in range(0, m, batch):
        b = min(a + batch, m)
        q = v[a:b]
        cands = []
        if a:
            _, idx = faiss.knn(q, v[:a], min(candidates, a), metric=faiss.METRIC_INNER_PRODUCT)
            cands.append(idx)
        if b - a > 1:
            s = q @ q.T
            s[np.tril_indices(b - a)] = -np.inf  # keep i < j (rows are queries j, columns earlier rows i)
            s = s.T
            c = min(candidates, b - a - 1)
            top = np.argpartition(-s, c - 1, axis=1)[:, :c] if c < b - a - 1 else np.argsort(-s, axis=1)[:, :c]
            top = np.where(np.isfinite(np.take_along_axis(s, top, axis=1)), top + a, -1)
            cands.append(top)
        if not cands:
            continue
        cand = np.concatenate(cands, axis=1)
        valid = (cand >= 0) & (cand < np.arange(a, b)[:, None])
        scores = np.full(cand.shape, -np.inf)
        r, c = np.nonzero(valid)
        scores[r, c] = exact_cosine(q[r], v[cand[r, c]])
        # the largest exact cosine; on a tie the earlier row: sort by (−score, position)
        pos = np.where(valid, cand, np.iinfo(np.int64).max)
        pick = np.lexsort((pos, -scores), axis=1)[:, 0] if cand.shape[1] > 1 else np.zeros(b - a, dtype=np.int64)
        rows = np.arange(b - a)
        ok = valid[rows, pick]
        best[a:b] = np.where(ok, cand[rows, pick], -1)
        sim[a:b] = np.where(ok, scores[rows, pick], np.nan)
    return best, sim


def earlier_max_brute(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`earlier_max` the way NeMo Curator computes it: the dense m × m similarity matrix, its strict
    upper triangle, the maximum over earlier rows (a reference for tests and the benchmark; O(m²) memory)."""
    m = len(v)
    s = (v.astype(np.float64) @ v.astype(np.float64).T)
    s[np.tril_indices(m)] = -np.inf  # s[i, j] with i < j only
    if m == 0:
        return np.empty(0, np.int64), np.empty(0)
    best = np.argmax(s, axis=0).astype(np.int64)  # argmax takes the first (earliest) of equal maxima
    sim = s[best, np.arange(m)]
    best[0], sim[0] = -1, np.nan
    return best, sim


def removed(sim: np.ndarray, eps: float) -> np.ndarray:
    """Whether each row is a duplicate at ε: M_j ≥ 1 − ε (NeMo's rule; NaN, a cluster's first row, never is)."""
    with np.errstate(invalid="ignore"):
        return sim >= 1.0 - eps


def kept_root(order: np.ndarray, best: np.ndarray, dup: np.ndarray) -> np.ndarray:
    """For every row, the kept row its chain of matches ends at (itself when kept): int64 (n,).

    ``order`` lists the rows cluster by cluster in rank order, ``best`` the row each row matched and
    ``dup`` the duplicates. A duplicate takes its matched (earlier-ranked) row's root; every chain
    ends at a kept row, since a cluster's first-ranked row is always kept.
    """
    root = np.arange(len(best), dtype=np.int64)
    for j in order[dup[order]]:  # rank order: a matched row is resolved before the rows that match it
        root[j] = root[best[j]]
    return root


def eps_curve(sim: np.ndarray, eps_values) -> list[dict]:
    """Rows removed at each ε, exactly, from the M_j of every row (one search serves every ε)."""
    finite = np.sort(sim[np.isfinite(sim)])
    n = len(sim)
    out = []
    for e in sorted(set(float(x) for x in eps_values)):
        r = int(len(finite) - np.searchsorted(finite, 1.0 - e, side="left"))
        out.append({"eps": e, "removed": r, "kept": n - r, "kept_fraction": (n - r) / n if n else 0.0})
    return out


def prune_prototypical(proto: np.ndarray, candidates: np.ndarray, fraction: float) -> np.ndarray:
    """D4's step after SemDeDup: the rows to prune, the round(F·m) most prototypical of ``candidates``.

    Parameters
    ----------
    proto : ndarray of shape (n,), float64
        Prototypicality: cosine similarity to the row's centroid (after re-clustering the kept rows).
    candidates : ndarray of shape (n,), bool
        The rows SemDeDup kept (the only ones that can be pruned).
    fraction : float in [0, 1)

    Returns
    -------
    ndarray of shape (n,), bool
        Ranked over all candidates together (Sorscher et al.'s prototypes score), the most similar
        first, ties to the earlier row.
    """
    rows = np.flatnonzero(candidates)
    r = int(round(fraction * len(rows)))
    order = rows[np.lexsort((rows, -proto[rows]))]
    out = np.zeros(len(proto), dtype=bool)
    out[order[:r]] = True
    return out
