"""``softmax``: s distinct rows with inclusion ≈ π = min(1, c·q), q ∝ exp(score/T); weight 1/π.

Paper A's probabilistic ("softmax") sampling (§2.2, App. B.2): keep rows with probabilities given
by the softmax of their score. Operationally: s rows by Pareto order sampling (:mod:`.pareto`) with
target inclusion π = min(1, c·q), c such that Σ π = s, so Σ weight·ℓ with weight 1/π is the
Horvitz–Thompson estimate, nearly unbiased (measured in tests/test_score_designs.py).

The score is used as it is (its file's normalisation), so T is in score units: a row whose score is
T higher is e times as likely. ``--prefer low`` uses q ∝ exp(−score/T). Computed stably: each block
reports its largest score and Σ exp(z − that), merged with the largest overall.
"""

from __future__ import annotations

import numpy as np

from .. import grid
from ._scored import ProportionalDesign, Tempered, scores_of, side, signed
from .base import Plan


class Softmax(Tempered, ProportionalDesign):
    """Pareto order sampling with π = min(1, c·exp(score/T)); weight 1/π."""

    name = "softmax"
    summary = ("s distinct rows, inclusion ≈ min(1, c·q), q ∝ exp(score/T) (--temperature, --prefer); weight 1/π, "
               "nearly unbiased")

    def z(self, cols: dict) -> np.ndarray:
        return signed(scores_of(cols), self.prefer, self.temperature)

    def block_acc(self, z: np.ndarray, lo: float, hi: float) -> float:
        return grid.block_sum(np.exp(z - hi))

    def total(self, stats: list, lo: float, hi: float) -> float:
        return grid.total(np.array([st[5] * np.exp(st[3] - hi) if st[0] > st[1] else 0.0 for st in stats]))

    def weight(self, z: np.ndarray, plan: Plan) -> np.ndarray:
        return np.exp(z - plan.hi)

    def keeps(self, s: int, direction: str | None) -> str:
        sign = "" if self.prefer == "high" else "−"
        return (f"{s} distinct rows ∝ q = exp({sign}score/{self.temperature:g}), favouring {self.prefer} scores"
                f"{side(direction, self.prefer == 'high')}")
