"""Inclusion probabilities π = min(1, c·p) with Σ π = s, from per-block statistics alone.

Designs without replacement that follow p (``poisson``, ``pareto``) need c. At most s rows can be
capped at π = 1 (each contributes 1 to Σ π = s), and they are the rows of largest p, so each block
only needs to report its Σ p and its s largest p; :func:`scale` solves for c exactly from those.
"""

from __future__ import annotations

import math

import numpy as np

from .. import grid


def block_stats(prob: np.ndarray, s: int) -> tuple[float, np.ndarray, int, float, int]:
    """Pass 1 of a block: (Σ p, its s largest p, rows with p > 0, smallest positive p, bad rows)."""
    p = np.asarray(prob, dtype=np.float64)
    bad = ~np.isfinite(p) | (p < 0)
    p = np.where(bad, 0.0, p)
    top = np.sort(p)[-s:] if len(p) > s else np.sort(p)
    pos = p[p > 0]
    return grid.block_sum(p), top[top > 0], int(len(pos)), float(pos.min()) if len(pos) else math.inf, \
        int(bad.sum())


def pool_largest(stats: list, at: int, s: int) -> list:
    """Blocks' pass-1 statistics whose entry ``at`` holds each block's largest values, with those arrays
    pooled: the last statistic carries the s largest of them all, the others an empty array. Whatever
    reads only the s largest values of the arrays' concatenation (:func:`scale`, the rows made certain)
    reads the same from the result (:meth:`~dataselect_cli.designs.base.Design.compact`)."""
    values = np.concatenate([st[at] for st in stats])
    values = np.sort(values)[-s:] if len(values) > s else values
    empty = np.empty(0, values.dtype)  # one object for every block, not a view that keeps `values`' buffer
    return [(*st[:at], values if i == len(stats) - 1 else empty, *st[at + 1:]) for i, st in enumerate(stats)]


def scale(top: np.ndarray, total: float, s: int) -> float:
    """c such that π_i = min(1, c·p_i) gives Σ π = s (math.inf when s covers every row with p > 0).

    ``top`` holds (at least) the s largest p over all rows and ``total`` is Σ p. The capped rows
    are the m largest for the smallest m at which c = (s − m) / (Σ p − Σ of those m) leaves the
    next row below 1 (the usual iteration, solved in one sort). c only grows with m, so the rows
    capped on the way keep c·p >= 1.

    >>> scale(np.array([0.5, 0.3, 0.1, 0.1]), 1.0, 2)   # 0.5 is certain; c = 1 / 0.5 = 2 for the rest
    2.0
    """
    p = np.sort(np.asarray(top, dtype=np.float64))[::-1]
    capped = 0.0
    for m in range(0, min(s, len(p))):
        rest = total - capped
        if not rest > 0:  # every positive p left is 0 against the capped ones (e.g. softmax weights that underflow)
            return math.inf
        c = (s - m) / rest
        if c * p[m] < 1.0:
            return float(c)
        capped += p[m]
    return math.inf


def inclusion(prob: np.ndarray, c: float) -> np.ndarray:
    """π = min(1, c·p); with c = ∞ every row of p > 0 is certain."""
    p = np.asarray(prob, dtype=np.float64)
    if not math.isfinite(c):
        return (p > 0).astype(np.float64)
    return np.minimum(1.0, c * p)


def plan_stats(stats: list, s: int, path: str | None) -> tuple[float, dict]:
    """(c, report stats) from every block's :func:`block_stats`; refuses bad columns."""
    from ..errors import InputError

    if sum(st[4] for st in stats):
        raise InputError("column 'prob' must be finite and >= 0; re-run 'dataselect score'", path)
    total = grid.total(np.array([st[0] for st in stats]))
    if not total > 0:
        raise InputError("column 'prob' is 0 everywhere; nothing can be selected", path)
    top = np.concatenate([st[1] for st in stats])
    c = scale(top, total, s)
    return c, {"min_prob": float(min(st[3] for st in stats)), "rows_positive": sum(st[2] for st in stats),
               "certain": int(np.sum(inclusion(top, c) >= 1.0)), "c": c}
