"""``stratified``: the clusters as strata, simple random sampling without replacement inside each.

Stratum h (a cluster of N_h rows) gets n_h rows, n_h summing to s:

* ``proportional``: n_h ∝ N_h;
* ``neyman``: n_h ∝ N_h·S_h, S_h the spread of the loss in the stratum: the standard deviation of
  the cluster's queried losses (center and probes, shrunk towards the pooled one,
  :mod:`~dataselect_cli.designs._model`) when probes were queried, else the standard deviation of
  the sensitivity mass inside the cluster, Λ_h·sd(v), the part of the loss the Hölder model lets
  vary around the center's loss (strata where it is 0 get the floor of 2 rows).

Every stratum gets at least min(2, N_h) rows, so its variance can be estimated (s must be at least
2k). Weight N_h/n_h; the estimator Σ_h N_h·ȳ_h is unbiased, with the unbiased variance estimate
Σ_h N_h²(1 − n_h/N_h)s_h²/n_h. The rows of a stratum are the n_h of smallest uniform key (keys
from the seed and the block), so the draw is the same on every engine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError
from ._model import loss_model
from .base import Design, Estimate, Plan, gather

ALLOCATIONS = ("proportional", "neyman")


def allocate(s: int, weight: np.ndarray, cap: np.ndarray, floor: int = 2) -> np.ndarray:
    """Integers n_h with Σ n_h = s, min(floor, cap_h) <= n_h <= cap_h, the rest ∝ ``weight`` (largest remainders).

    >>> allocate(10, np.array([1.0, 1.0, 2.0]), np.array([100, 3, 100])).tolist()
    [3, 3, 4]
    """
    n = np.minimum(floor, cap).astype(np.int64)
    left = s - int(n.sum())
    while left > 0:
        free = n < cap
        if not free.any():
            break
        w = np.where(free, weight, 0.0)
        if w.sum() <= 0:
            w = np.where(free, (cap - n).astype(np.float64), 0.0)
        ideal = left * w / w.sum()
        add = np.minimum(np.floor(ideal).astype(np.int64), cap - n)
        if add.sum() == 0:  # fewer rows left than strata that want one: the largest remainders, in order
            order = np.lexsort((np.arange(len(n)), -(ideal - np.floor(ideal))))
            add = np.zeros_like(n)
            for h in order:
                if add.sum() == left:
                    break
                if free[h]:
                    add[h] = 1
        n += add
        left -= int(add.sum())
    return n


def _smallest_per_stratum(lab: np.ndarray, key: np.ndarray, index: np.ndarray, n_h: np.ndarray) -> np.ndarray:
    """Positions of the n_h smallest keys of each stratum (ties by row), in row order."""
    order = np.lexsort((index, key, lab))
    sl = lab[order]
    rank = np.arange(len(sl)) - np.searchsorted(sl, sl, side="left")  # the key's rank within its stratum
    return np.sort(order[rank < n_h[sl]])


def stratified_estimate(loss: np.ndarray, stratum: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Σ_h N_h·ȳ_h and Σ_h N_h²(1 − n_h/N_h)s_h²/n_h from the selected rows (N_h = weight·n_h)."""
    total, var = 0.0, 0.0
    for h in np.unique(stratum):
        m = stratum == h
        n_h = int(m.sum())
        big_n = float(weight[m][0]) * n_h
        y = loss[m]
        total += big_n * float(y.mean())
        if n_h > 1:
            var += big_n**2 * (1.0 - n_h / big_n) * float(y.var(ddof=1)) / n_h
    return total, var



def _cluster_sums(stats: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, Σ mass, Σ mass²) per cluster 0..k−1 from the blocks' pass-1 statistics, added in block order."""
    k = int(max(int(st[0].max()) for st in stats if len(st[0]))) + 1
    big_n, s1, s2 = np.zeros(k, np.int64), np.zeros(k), np.zeros(k)
    for h, cnt, a, b2, _ in stats:
        big_n[h] += cnt
        s1[h] += a
        s2[h] += b2
    return big_n, s1, s2

class Stratified(Design):
    """Clusters as strata, SRS without replacement in each, proportional or Neyman allocation; weight N_h/n_h."""

    name = "stratified"
    summary = "clusters as strata, n_h rows at random in each (--allocation proportional|neyman); weight N_h/n_h"
    strata_are_clusters = True
    needs = ("cluster", "mass", "prob")

    def __init__(self, allocation: str = "proportional"):
        if allocation not in ALLOCATIONS:
            raise InputError(f"--allocation must be one of {', '.join(ALLOCATIONS)}; got {allocation!r}")
        self.allocation = allocation
        self.sigma: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {"allocation": self.allocation}

    def bind(self, score_summary: dict[str, Any]) -> None:
        """Neyman: S_h from the queried losses (centers and probes) when the scores have them."""
        k = score_summary.get("k") or 0
        model = loss_model(score_summary.get("clusters") or {}, k) if k else None
        self.sigma = np.sqrt(model[1]) if model is not None and model[2].startswith("queried") else None

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        """Per cluster present in the block: (clusters, rows, Σ mass, Σ mass²), and the block's smallest positive prob."""
        lab = np.asarray(cols["cluster"]).astype(np.int64)
        m = np.asarray(cols["mass"], dtype=np.float64)
        h, inv, cnt = np.unique(lab, return_inverse=True, return_counts=True)
        p = np.asarray(cols["prob"], dtype=np.float64)
        return h, cnt, np.bincount(inv, weights=m), np.bincount(inv, weights=m * m), \
            float(p[p > 0].min()) if (p > 0).any() else math.inf

    def compact(self, stats: list, size: int) -> list:
        """The per-cluster sums of the blocks so far, added in block order as :meth:`plan` adds them, on the last
        statistic (so the plan's sums are the same floats); the others keep only their smallest probability."""
        if not any(len(st[0]) for st in stats):  # already compacted (by a task's fold, on an earlier statistic)
            return stats
        big_n, s1, s2 = _cluster_sums(stats)
        h = np.flatnonzero(big_n)
        empty = h[:0]
        return [(empty, empty, empty, empty, st[4]) for st in stats[:-1]] + \
            [(h, big_n[h], s1[h], s2[h], stats[-1][4])]

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        big_n, s1, s2 = _cluster_sums(stats)
        k = len(big_n)
        strata = int((big_n > 0).sum())
        need = int(np.minimum(big_n, 2).sum())
        if size < need:
            raise InputError(f"--design stratified needs at least {need} rows (2 in each of the {strata} clusters, "
                             f"so that every stratum's variance can be estimated); got s = {size}: raise --size or "
                             "lower --eps, or use fewer clusters", path)
        if size > big_n.sum():
            raise InputError(f"--size {size} is more than the {int(big_n.sum())} rows", path)
        spread = np.zeros(k)
        ok = big_n > 1
        spread[ok] = np.sqrt(np.maximum(s2[ok] - s1[ok] ** 2 / big_n[ok], 0.0) / (big_n[ok] - 1))
        sigma = getattr(self, "sigma", None)
        if sigma is not None and len(sigma) == k:  # the queried losses' spread, where probes were queried
            spread = sigma
        weight = big_n * spread if self.allocation == "neyman" else big_n.astype(np.float64)
        n_h = allocate(size, weight, big_n)
        return Plan({"min_prob": float(min(st[4] for st in stats)), "strata": strata,
                     "allocation": n_h.tolist()}, n_h=n_h, big_n=big_n, seed=seed)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        """Per cluster, the block's rows of the n_h smallest keys: candidates; :meth:`finish` keeps n_h per cluster."""
        lab = np.asarray(cols["cluster"]).astype(np.int64)
        key = np.random.default_rng([plan.seed, 13, b]).random(len(lab))
        cand = _smallest_per_stratum(lab, key, np.arange(len(lab)), plan.n_h)
        if not len(cand):
            return None
        pi = plan.n_h[lab[cand]] / plan.big_n[lab[cand]]
        return b * block_rows + cand, np.ones(len(cand), np.int32), pi, gather(cols, cand, _key=key[cand])

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        return _smallest_per_stratum(np.asarray(columns["cluster"]).astype(np.int64), columns["_key"], index, plan.n_h)

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        lab = np.asarray(columns["cluster"]).astype(np.int64)
        return _smallest_per_stratum(lab, columns.pop("_key"), index, plan.n_h)

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return 1.0 / prob  # N_h / n_h

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Per stratum y = N_h·ℓ (N_h = weight·n_h): T̂ = Σ_h mean(y_h)."""
        stratum = np.asarray(sel["cluster"])
        out = []
        for h in np.unique(stratum):
            m = stratum == h
            out.append(sel["weight"][m] * m.sum() * loss[m])
        return out

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        if "cluster" not in sel:
            raise InputError("a stratified selection needs its 'cluster' column to be estimated")
        total, var = stratified_estimate(loss, np.asarray(sel["cluster"]), sel["weight"])
        strata = len(np.unique(sel["cluster"]))
        return Estimate(total, var, n, max(1, len(loss) - strata))

    def guarantee(self, report: dict[str, Any]) -> str:
        return (f"Σ weight·loss over the {report['selected_rows']} selected rows is the stratified estimate of the "
                f"loss of all {report['n']} rows (clusters as strata, {self.allocation} allocation, random rows "
                "within each): unbiased, with its exact unbiased variance estimate behind the t interval of "
                "'dataselect estimate' (asymptotic). No bound beyond that is stated.")
