"""``linear``: s distinct rows with inclusion ≈ π = min(1, c·q), q an affine map of the score onto [E, 1].

Paper A's linear probabilistic sampling (App. C.3): q = E + (1 − E)·(score − min)/(max − min), so
the lowest score gets E times the weight of the highest and ratios are kept (a score twice as far
up gets about twice the weight); the paper prefers it to softmax when the noise level is unknown,
as it never wipes out the easy rows. Drawn by Pareto order sampling (:mod:`.pareto`): π = min(1, c·q)
with Σ π = s, weight 1/π, Σ weight·ℓ nearly unbiased. The map is scale-free (min–max), so the
score's units do not matter; ``--prefer low`` maps the lowest score to 1. All scores equal: uniform.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import grid
from ..errors import InputError
from ._scored import ProportionalDesign, check_prefer, side
from .base import Plan


class Linear(ProportionalDesign):
    """Pareto order sampling with π = min(1, c·q), q = E + (1 − E)·(score − min)/(max − min); weight 1/π."""

    name = "linear"
    summary = ("s distinct rows, inclusion ≈ min(1, c·q), q = score mapped onto [E, 1] (--floor E, default 0.1, "
               "--prefer); weight 1/π, nearly unbiased")

    def __init__(self, floor: float = 0.1, prefer: str = "high"):
        if not (np.isfinite(floor) and 0 < floor <= 1):
            raise InputError(f"--floor must be in (0, 1] (the weight of the lowest score, the highest's being 1); "
                             f"got {floor}")
        self.floor = float(floor)
        self.prefer = check_prefer(prefer)

    def params(self) -> dict[str, Any]:
        return {"floor": self.floor, "prefer": self.prefer}

    def block_acc(self, z: np.ndarray, lo: float, hi: float) -> float:
        return grid.block_sum(z - lo)

    def total(self, stats: list, lo: float, hi: float) -> float:
        n = sum(st[0] - st[1] for st in stats)
        if not hi > lo:
            return float(n)
        above = grid.total(np.array([st[5] + (st[0] - st[1]) * (st[2] - lo) if st[0] > st[1] else 0.0
                                     for st in stats]))
        return n * self.floor + (1 - self.floor) * above / (hi - lo)

    def weight(self, z: np.ndarray, plan: Plan) -> np.ndarray:
        if not plan.hi > plan.lo:
            return np.ones(len(z))
        return self.floor + (1 - self.floor) * (np.asarray(z, dtype=np.float64) - plan.lo) / (plan.hi - plan.lo)

    def keeps(self, s: int, direction: str | None) -> str:
        return (f"{s} distinct rows ∝ q, the score mapped onto [{self.floor:g}, 1], favouring {self.prefer} scores"
                f"{side(direction, self.prefer == 'high')}")
