"""Samplers: draw rows from a distribution and give each drawn row its unbiased weight.

The paper's design (Algorithm 1) draws s rows i.i.d. with replacement from p. Rows drawn more
than once become one row with ``count``; ``weight = count / (s·p)``, so Σ weight·ℓ over the
selection is the Hansen–Hurwitz estimator of Σ ℓ over all rows, unbiased for any p that is
positive wherever ℓ is.
"""

from __future__ import annotations

import numpy as np


def uniforms(s: int, seed: int) -> np.ndarray:
    """The s uniforms in [0, 1) behind a draw, from ``seed`` alone (not from how rows are split)."""
    return np.random.default_rng([seed, 3]).random(s)


def draw_iid(mass: np.ndarray, s: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``s`` rows i.i.d. with probability proportional to ``mass``.

    Parameters
    ----------
    mass : ndarray of shape (n,), float64, >= 0, with a positive sum
    s : int
        Number of draws.
    seed : int

    Returns
    -------
    index : ndarray of shape (m,), int64
        Distinct drawn rows in increasing order (m <= s).
    count : ndarray of shape (m,), int32
        Times each was drawn; sums to s.

    Notes
    -----
    Inverse-CDF sampling: the uniform u lands on the row i with cdf[i−1] <= u·Σmass < cdf[i].
    The uniforms depend only on the seed, so any engine that resolves them against the same
    prefix sums draws the same rows.
    """
    cdf = np.cumsum(mass, dtype=np.float64)
    u = uniforms(s, seed) * cdf[-1]
    # rounding can put u·Σ at or past cdf[-1]; the last row with positive mass takes it
    drawn = np.minimum(np.searchsorted(cdf, u, side="right"), np.flatnonzero(mass > 0)[-1])
    index, count = np.unique(drawn, return_counts=True)
    return index.astype(np.int64), count.astype(np.int32)


def weights(count: np.ndarray, prob: np.ndarray, s: int) -> np.ndarray:
    """weight = count / (s·p), float64."""
    return count / (s * prob)
