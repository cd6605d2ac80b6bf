"""``priority``: priority sampling (Duffield, Lund & Thorup 2007) of s rows by weight w = exp(score/T).

Row i gets the priority q_i = w_i/u_i, u_i uniform on (0, 1] from the seed and its block; the s rows
of largest priority are kept, and τ is the (s+1)-th largest priority (0 when no row is left). A
kept row's inclusion is π_i = min(1, w_i/τ) and its weight 1/π_i = max(1, τ/w_i) (DLT's
max(w_i, τ)/w_i), so Σ weight·ℓ estimates Σ ℓ over the rows of positive weight **without bias**:
given the other rows' priorities, row i is kept exactly when q_i exceeds the s-th largest of them,
which is τ whenever it is kept. For the same reason the estimates of different rows are
uncorrelated, and Σ_S (1 − π)ℓ²/π² is an unbiased variance estimate (DLT 2007, Thm. 4; the
Poisson design's formula, :func:`.poisson.horvitz_thompson`).

On a ``dsir`` scores file the score is a log importance weight spanning hundreds of nats, so every
step is in log space: log q = score/T − log u, π = exp(min(0, score/T − log τ)). A score of −inf
(weight 0: a document under ``--min-length``) is never drawn and the estimate is of the rows of
positive weight. The rows kept favour the target like DSIR's Gumbel top-k, with weights that let
Σ w·ℓ estimate the loss of the whole corpus.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._scored import ScoreDesign, bad_scores, check_finite, check_positive, check_temperature, scores_of, side
from .base import Plan, gather
from .poisson import HorvitzThompson


def log_priorities(z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """log q = z − log u (z = log w, u uniform on (0, 1]); −inf where z is −inf.

    >>> log_priorities(np.array([0.0, -np.inf]), np.array([0.5, 0.5])).round(4).tolist()
    [0.6931, -inf]
    """
    return z - np.log(u)


def inclusion(z: np.ndarray, log_tau: float) -> np.ndarray:
    """π = min(1, w/τ) = exp(min(0, z − log τ)); 1 for every row when τ = 0 (log τ = −inf).

    >>> inclusion(np.array([0.0, 2.0]), math.log(2.0)).tolist()
    [0.5, 1.0]
    """
    if log_tau == -math.inf:
        return np.ones(len(z))
    return np.exp(np.minimum(0.0, z - log_tau))


class Priority(HorvitzThompson, ScoreDesign):
    """The s rows of largest w/u, w = exp(score/T); weight max(1, τ/w), τ the (s+1)-th priority; unbiased."""

    name = "priority"
    summary = ("s distinct rows of largest w/u, w = exp(score/T) (priority sampling, for DSIR log weights); weight "
               "max(1, τ/w); unbiased, with an unbiased variance")
    log_weights = True
    stratifiable = False  # τ is one threshold over all rows; per stratum it would need its own (not built)

    def __init__(self, temperature: float = 1.0):
        self.temperature = check_temperature(temperature)

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple[int, int, int]:
        x = scores_of(cols)
        return (len(x), *bad_scores(x, True))

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        n = sum(st[0] for st in stats)
        check_finite(sum(st[1] for st in stats), path, True)
        check_positive(size, n, sum(st[2] for st in stats), path)
        return Plan({"min_prob": None}, size=size, seed=seed)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        """The block's s + 1 largest priorities: the candidates (the (s+1)-th overall is τ)."""
        z = scores_of(cols) / self.temperature
        u = 1.0 - np.random.default_rng([plan.seed, 32, b]).random(len(z))  # (0, 1]: no infinite priority
        key = log_priorities(z, u)
        cand = np.flatnonzero(np.isfinite(key))
        cand = np.sort(cand[np.lexsort((cand, -key[cand]))[: plan.size + 1]])
        if not len(cand):
            return None
        return b * block_rows + cand, np.ones(len(cand), np.int32), np.ones(len(cand)), \
            gather(cols, cand, _key=key[cand], _z=z[cand])

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        """The s + 1 largest priorities: the s kept and the (s + 1)-th, the threshold τ."""
        return np.sort(np.lexsort((index, -columns["_key"]))[: plan.size + 1])

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        key = columns.pop("_key")
        order = np.lexsort((index, -key))
        plan.log_tau = float(key[order[plan.size]]) if len(order) > plan.size else -math.inf
        plan.stats["log_tau"] = plan.log_tau if math.isfinite(plan.log_tau) else None
        return np.sort(order[: plan.size])

    def final_prob(self, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        pi = inclusion(columns.pop("_z"), plan.log_tau)
        plan.stats["certain"] = int(np.sum(pi >= 1.0))
        plan.stats["min_prob"] = float(pi.min()) if len(pi) else None
        return pi

    def keeps(self, s: int, direction: str | None) -> str:
        return (f"the {s} rows of largest priority exp(score/{self.temperature:g})/u (priority sampling), favouring "
                f"high scores{side(direction, True)}")

    def guarantee(self, report: dict[str, Any]) -> str:
        what = self.keeps(report["selected_rows"], (report.get("score") or {}).get("direction"))
        return (f"Of the {report['n']} rows, keeps {what}; "
                "weight max(1, τ/w) with τ the next priority: Σ weight·loss estimates the loss of all rows of "
                "positive weight without bias (Duffield–Lund–Thorup), with the unbiased variance estimate "
                "Σ(1 − π)ℓ²/π² behind the interval of 'dataselect estimate' (asymptotic, a t interval). Rows of "
                "score −inf (weight 0) are never drawn and not covered.")
