"""``bottom``: the s rows of lowest score (ties broken by a seeded key); weight 1, not an estimate.

The hard cut-off of paper A the other way ("prune hard" keeps the bottom of a higher=harder
score). A deterministic selection: Σ weight·ℓ does NOT estimate the full loss (``estimate`` refuses).
"""

from __future__ import annotations

import numpy as np

from ._scored import RankDesign, side
from .base import Plan


class Bottom(RankDesign):
    """The s rows of lowest score."""

    name = "bottom"
    summary = "the s rows of lowest score (ties by seed); weight 1, Σ w·ℓ NOT an estimate of the full loss"

    def key(self, x: np.ndarray, b: int, plan: Plan) -> np.ndarray:
        return x

    def keeps(self, s: int, direction: str | None) -> str:
        return f"the {s} rows of lowest score{side(direction, False)}"
