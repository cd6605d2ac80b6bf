"""``poisson``: each row kept independently with π = min(1, c·p), c such that Σ π = s (expected size s).

Weight 1/π, so Σ weight·ℓ is the Horvitz–Thompson estimator, unbiased for Σ ℓ wherever p > 0. Its
variance is Σ (1 − π)ℓ²/π² over all rows, estimated without bias by Σ_S (1 − π)ℓ²/π². No row is
taken twice; rows with π = 1 are taken with certainty (their weight is 1). The sample size is
random, s on average.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _inclusion
from .base import Design, Estimate, Plan, gather


def horvitz_thompson(loss: np.ndarray, pi: np.ndarray) -> tuple[float, float]:
    """T̂ = Σ ℓ/π and the unbiased variance estimate of Poisson sampling, Σ (1 − π)ℓ²/π².

    >>> horvitz_thompson(np.array([1.0, 2.0]), np.array([0.5, 1.0]))
    (4.0, 2.0)
    """
    return float(np.sum(loss / pi)), float(np.sum((1.0 - pi) * loss**2 / pi**2))


class HorvitzThompson:
    """The weights and estimator of a design with independent inclusions π (Poisson; priority sampling
    conditions on its threshold): weight 1/π, T̂ = Σ ℓ/π and :func:`horvitz_thompson`'s variance."""

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return 1.0 / prob

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray]:
        """y = s·ℓ/π over the selected rows: T̂ = Σ ℓ/π is their mean."""
        return [len(loss) * loss / sel["prob"]]

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        total, var = horvitz_thompson(loss, sel["prob"])
        return Estimate(total, var if len(loss) > 1 else None, n, max(1, len(loss) - 1))


class Poisson(HorvitzThompson, Design):
    """Independent inclusion with π = min(1, c·p); weight 1/π; Horvitz–Thompson."""

    name = "poisson"
    random_size = True
    summary = "each row kept independently with π = min(1, c·p), Σπ = s; weight 1/π; Horvitz–Thompson, no repeats"

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        return _inclusion.block_stats(cols["prob"], size)

    def compact(self, stats: list, size: int) -> list:
        return _inclusion.pool_largest(stats, 1, size)

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        c, info = _inclusion.plan_stats(stats, size, path)
        return Plan(info, c=c, seed=seed)

    def _keys(self, b: int, n: int, seed: int) -> np.ndarray:
        return np.random.default_rng([seed, 11, b]).random(n)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        pi = _inclusion.inclusion(cols["prob"], plan.c)
        keep = np.flatnonzero(self._keys(b, len(pi), plan.seed) < pi)
        if not len(keep):
            return None
        return b * block_rows + keep, np.ones(len(keep), np.int32), pi[keep], gather(cols, keep)

    def guarantee(self, report: dict[str, Any]) -> str:
        return (f"Σ weight·loss over the {report['selected_rows']} selected rows (expected {report['s']}) is the "
                f"Horvitz–Thompson estimate of the loss of all {report['n']} rows: unbiased, with the exact "
                "unbiased variance estimate Σ(1 − π)ℓ²/π² behind the interval of 'dataselect estimate' "
                "(asymptotic, a t interval). No bound beyond that is stated.")
