"""``mixture``: i.i.d. draws from the defensive mixture q = (1 − α)·p + α/n (Hesterberg 1995).

Weight count/(s·q) and the Hansen–Hurwitz estimator, as ``iid``. The uniform share bounds every
weight by n/(α·s), so the variance can never be much worse than uniform sampling's, whatever the
proxy: Var_q ≤ (1/α)·Σ ℓ²·n/s, i.e. at most 1/α times the second moment uniform draws have. With
the default α = 0.5 that worst case is 2× and the design keeps half of p's advantage where p is
good; α → 0 is ``iid``, α = 1 uniform sampling with replacement. (α = 0.5 is also the mixture the
no-loss sensitivity distribution already uses between 1/n and the distance term.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import grid
from ..errors import InputError
from .base import Plan
from .iid import IID, route

#: Default uniform share α of the mixture.
ALPHA = 0.5


class Mixture(IID):
    """i.i.d. draws from (1 − α)·p + α/n; weight count/(s·q); Hansen–Hurwitz."""

    name = "mixture"
    summary = "s draws with replacement from (1 − α)·p + α/n (--alpha, default 0.5): every weight ≤ n/(α·s)"

    def __init__(self, alpha: float = ALPHA):
        if not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
            raise InputError(f"--alpha must lie in (0, 1]; got {alpha}")
        self.alpha = alpha

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        """(Σ prob, rows, bad rows) of a block."""
        prob = np.asarray(cols["prob"], dtype=np.float64)
        bad = ~np.isfinite(prob) | (prob < 0)
        return grid.block_sum(np.where(bad, 0.0, prob)), len(prob), int(bad.sum())

    def _q(self, prob: np.ndarray, n: int) -> np.ndarray:
        return (1.0 - self.alpha) * np.asarray(prob, dtype=np.float64) + self.alpha / n

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        if sum(st[2] for st in stats):
            raise InputError("column 'prob' must be finite and >= 0; re-run 'dataselect score'", path)
        if abs(grid.total(np.array([st[0] for st in stats])) - 1.0) > 1e-6:
            raise InputError("column 'prob' must sum to 1; re-run 'dataselect score'", path)
        n = sum(st[1] for st in stats)
        sums = np.array([(1.0 - self.alpha) * st[0] + self.alpha * st[1] / n for st in stats])
        block, offset = route(sums, size, seed)
        return Plan({"min_prob": self.alpha / n, "alpha": self.alpha, "max_weight_bound": n / (self.alpha * size)},
                    offsets={int(b): offset[block == b] for b in np.unique(block)}, n=n)

    def draw_mass(self, cols: dict, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        q = self._q(cols["prob"], plan.n)
        return q, q

    def guarantee(self, report: dict[str, Any]) -> str:
        return (f"Σ weight·loss over the {report['s']} draws estimates the loss of all {report['n']} rows without bias "
                f"(draws from (1 − α)·p + α/n, α = {self.alpha}); every weight is at most n/(α·s), so the variance is "
                f"at most {1 / self.alpha:.3g}× that of uniform draws whatever the scores. 'dataselect estimate' gives "
                "a t interval (asymptotic), and a rigorous empirical Bernstein interval with --loss-max. Theorem 2's "
                "bound is not stated for the mixture.")

    def intervals(self, est, loss, sel, report, delta, loss_max):
        """The CLT interval and, with ``loss_max``, the empirical Bernstein one (no Theorem 2)."""
        rep = {**report, "eps": None}
        return IID.intervals(self, est, loss, sel, rep, delta, loss_max)
