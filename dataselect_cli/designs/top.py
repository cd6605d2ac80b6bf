"""``top``: the s rows of highest score (ties broken by a seeded key); weight 1, not an estimate.

The hard cut-off of paper A (§2.2; "prune easy" keeps the top of a higher=harder score). A
deterministic selection: Σ weight·ℓ is the loss of the kept rows, NOT an unbiased estimate of the
full loss, and ``dataselect estimate`` refuses it.
"""

from __future__ import annotations

import numpy as np

from ._scored import RankDesign, side
from .base import Plan


class Top(RankDesign):
    """The s rows of highest score."""

    name = "top"
    summary = "the s rows of highest score (ties by seed); weight 1, Σ w·ℓ NOT an estimate of the full loss"
    log_weights = True  # a score of −inf (a DSIR document under --min-length) ranks last and is never kept

    def key(self, x: np.ndarray, b: int, plan: Plan) -> np.ndarray:
        return -x

    def keeps(self, s: int, direction: str | None) -> str:
        return f"the {s} rows of highest score{side(direction, True)}"
