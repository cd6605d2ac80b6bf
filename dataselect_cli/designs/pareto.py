"""``pareto``: exactly s distinct rows with inclusion probabilities ≈ π = min(1, c·p) (Rosén 1997).

Each row gets a uniform u (from the seed and its block) and the ranking key
q = [u/(1 − u)] / [π/(1 − π)]; the s rows of smallest key are kept (π = 1 gives q = 0: always
kept). The inclusion probabilities of Pareto sampling are very close to π (Rosén: the error is
O(1/s) relative), so the weight 1/π makes Σ weight·ℓ *nearly* unbiased; the bias is measured in
the tests (tests/test_designs.py) rather than assumed away. The variance estimate is Rosén's
approximation s/(s − 1)·Σ_S (1 − π)(ℓ/π − Â)², Â = Σ_S (1 − π)ℓ/π / Σ_S (1 − π), the one for
fixed-size designs of this family.

Fixed size and no repeats, like uniform sampling without replacement (``shuf -n``), but ∝ p.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _inclusion
from .base import Design, Estimate, Plan, gather, keep_smallest


def pareto_keys(u: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """q = [u/(1 − u)] / [π/(1 − π)]: 0 where π = 1, ∞ where π = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (u / (1.0 - u)) * ((1.0 - pi) / pi)
    q[pi >= 1.0] = 0.0
    q[pi <= 0.0] = np.inf
    return q


def rosen_variance(loss: np.ndarray, pi: np.ndarray) -> float:
    """s/(s − 1)·Σ (1 − π)(ℓ/π − Â)², Â = Σ(1 − π)ℓ/π / Σ(1 − π): 0 when every π is 1."""
    s = len(loss)
    a = 1.0 - pi
    if s < 2 or a.sum() <= 0:
        return 0.0
    y = loss / pi
    return float(s / (s - 1) * np.sum(a * (y - np.sum(a * y) / a.sum()) ** 2))


class Pareto(Design):
    """s distinct rows by Pareto order sampling with target π = min(1, c·p); weight 1/π."""

    name = "pareto"
    summary = "exactly s distinct rows, inclusion ≈ π = min(1, c·p) (Pareto order sampling); weight 1/π"

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        return _inclusion.block_stats(cols["prob"], size)

    def compact(self, stats: list, size: int) -> list:
        return _inclusion.pool_largest(stats, 1, size)

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        c, info = _inclusion.plan_stats(stats, size, path)
        return Plan(info, c=c, seed=seed, size=size)

    def inclusion(self, cols: dict, plan: Plan) -> np.ndarray:
        """The target inclusion probabilities π of a block's rows (``softmax`` and ``linear`` change q)."""
        return _inclusion.inclusion(cols["prob"], plan.c)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        """The block's (at most) s smallest keys: the candidates; :meth:`finish` keeps the s smallest overall."""
        pi = self.inclusion(cols, plan)
        q = pareto_keys(np.random.default_rng([plan.seed, 12, b]).random(len(pi)), pi)
        cand = np.flatnonzero(np.isfinite(q))
        if len(cand) > plan.size:
            cand = np.sort(cand[np.argsort(q[cand], kind="stable")[: plan.size]])
        if not len(cand):
            return None
        return b * block_rows + cand, np.ones(len(cand), np.int32), pi[cand], gather(cols, cand, _key=q[cand])

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        return keep_smallest(index, columns["_key"], plan.size)

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        return keep_smallest(index, columns.pop("_key"), plan.size)

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return 1.0 / prob

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray]:
        """y = s·ℓ/π over the selected rows: T̂ = Σ ℓ/π is their mean."""
        return [len(loss) * loss / sel["prob"]]

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        pi = sel["prob"]
        return Estimate(float(np.sum(loss / pi)), rosen_variance(loss, pi) if len(loss) > 1 else None, n,
                        max(1, len(loss) - 1))

    def guarantee(self, report: dict[str, Any]) -> str:
        return (f"Σ weight·loss over the {report['selected_rows']} distinct selected rows estimates the loss of all "
                f"{report['n']} rows, nearly without bias (Pareto sampling: inclusion probabilities within O(1/s) of "
                "π, weight 1/π); 'dataselect estimate' gives a t interval on Rosén's variance estimate "
                "(asymptotic). No bound beyond that is stated.")
