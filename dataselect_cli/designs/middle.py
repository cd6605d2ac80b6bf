"""``middle``: the s most central rows by score rank; weight 1, not an estimate.

Drops the ⌊(n − s)/2⌋ lowest and the ⌈(n − s)/2⌉ highest scores and keeps the rest (ranks
⌊(n − s)/2⌋ … ⌊(n − s)/2⌋ + s − 1; ties broken by a seeded key): the "offset window" of data_diet,
which prunes both the easiest and the hardest (possibly mislabelled) rows. Its global step holds
up to ⌊(n + s)/2⌋ candidate rows (the window's start is a rank near the median). A deterministic
selection: Σ weight·ℓ does NOT estimate the full loss (``estimate`` refuses).
"""

from __future__ import annotations

import numpy as np

from ._scored import RankDesign
from .base import Plan


class Middle(RankDesign):
    """The s rows of central rank: ⌊(n − s)/2⌋ dropped below, the rest above."""

    name = "middle"
    summary = ("the s rows of most central score rank (drops (n − s)/2 at each end); weight 1, Σ w·ℓ NOT an "
               "estimate")

    def key(self, x: np.ndarray, b: int, plan: Plan) -> np.ndarray:
        return x

    def window(self, n: int, s: int) -> int:
        return (n - s) // 2

    def keeps(self, s: int, direction: str | None) -> str:
        return f"the {s} rows of most central score rank (as many dropped at the low end as at the high end)"
