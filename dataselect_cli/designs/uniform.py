"""``uniform``: s distinct rows uniformly at random, whatever the scores (``shuf -n s``, with weights).

Reads no score, so it runs on any scores file (``--stratify COL`` makes it the class-stratified
random baseline of paper A). Simple random sampling without replacement: the s rows of smallest uniform key (keys from the seed
and the block, so every engine draws the same rows). Weight n/s; the estimator n·ȳ is unbiased,
with the unbiased variance estimate n²(1 − s/n)·s_ℓ²/s. The baseline every other design must beat,
and a candidate of ``--design auto``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Design, Estimate, Plan, gather, keep_smallest


def srs_estimate(loss: np.ndarray, n: int) -> tuple[float, float | None]:
    """n·ȳ and n²(1 − s/n)·s²/s (None for one row).

    >>> srs_estimate(np.array([1.0, 3.0]), 4)
    (8.0, 8.0)
    """
    s = len(loss)
    total = n * float(loss.mean())
    return total, (n * n * (1 - s / n) * float(loss.var(ddof=1)) / s if s > 1 else None)


class Uniform(Design):
    """s distinct rows uniformly without replacement; weight n/s."""

    name = "uniform"
    summary = "s distinct rows uniformly at random, ignoring the scores (shuf -n, with weights n/s)"
    needs = ()
    optional = ("cluster",)
    stratifiable = True

    def check_block(self, b: int, cols: dict, size: int, n: int) -> int:
        return len(cols["id"])

    def keeps(self, s: int, direction: str | None) -> str:
        return f"{s} rows uniformly at random"

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        n = int(sum(stats))
        return Plan({"min_prob": min(1.0, size / n)}, n=n, size=min(size, n), seed=seed)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        key = np.random.default_rng([plan.seed, 14, b]).random(len(cols["id"]))
        cand = np.sort(np.argsort(key, kind="stable")[: plan.size])
        f = plan.size / plan.n
        return b * block_rows + cand, np.ones(len(cand), np.int32), np.full(len(cand), f), \
            gather(cols, cand, _key=key[cand])

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        return keep_smallest(index, columns["_key"], plan.size)

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        return keep_smallest(index, columns.pop("_key"), plan.size)

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return 1.0 / prob

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray]:
        """y = (n/s)·s·ℓ = weight·s·ℓ: T̂ = n·ȳ is their mean."""
        return [sel["weight"] * len(loss) * loss]

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        total, var = srs_estimate(loss, n)
        return Estimate(total, var, n, max(1, len(loss) - 1))

    def guarantee(self, report: dict[str, Any]) -> str:
        return (f"A uniform random sample of {report['selected_rows']} of the {report['n']} rows: Σ weight·loss "
                "(weight n/s) estimates the full loss without bias; 'dataselect estimate' gives the t interval on "
                "the exact variance estimate of sampling without replacement (asymptotic).")
