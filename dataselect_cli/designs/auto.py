"""``auto``: pick the design whose variance, predicted from the queried losses alone, is smallest.

The queried losses are those the user computed for scoring (each cluster's center and any probe
rows), never those of rows the selection will estimate from. They give a model of the loss of
every row of cluster h: mean μ_h (the mean of its queried losses) and variance σ_h² (their sample
variance; clusters with fewer than 2 queried losses take the mean of the others' variances, or,
with centers only, the variance of the center losses across clusters, i.e. the assumption that the
clusters explain nothing). Under that model the expected variance of each candidate's estimate of
Σ ℓ has a closed form, computed in pass 1 from per-block sums:

* ``uniform``: n²(1 − s/n)·S²/s, S² = (Σ E[ℓ²] − T²/n)/(n − 1);
* ``iid``, ``mixture``: (Σ E[ℓ_i²]/q_i − T²)/s with q = p or (1 − α)p + α/n;
* ``poisson``: Σ (1 − π_i)E[ℓ_i²]/π_i, ``pareto``: Hájek's fixed-size form, both with π ≈ min(1, s·p)
  (the capping iteration is left out of the prediction only);
* ``stratified``: Σ_h N_h²(1 − n_h/N_h)σ_h²/n_h with the design's own allocations.

``uniform`` is kept unless another design predicts at least ``MARGIN`` less variance: the model is
rough, and uniform sampling is the baseline a selection must never lose to. Without any queried
loss nothing can be predicted, and ``uniform`` is chosen (said so). The selection's metadata names
the design that was drawn (so ``estimate`` uses its estimator) and ``design_choice`` holds every
candidate's predicted variance and the reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import grid
from ._model import loss_model
from .base import Design, Plan
from .mixture import ALPHA, Mixture
from .iid import IID
from .pareto import Pareto
from .poisson import Poisson
from .stratified import Stratified
from .uniform import Uniform

#: Leave uniform sampling only for a predicted variance at least this much smaller (a 20 % gain).
MARGIN = 0.8


class Auto(Design):
    """The candidate design of least predicted variance (uniform unless another wins by MARGIN)."""

    name = "auto"
    summary = "the design of least variance predicted from the queried losses (uniform unless one wins by 20 %)"
    needs = ("cluster", "mass", "prob")

    def __init__(self, names: tuple[str, ...] | None = None):
        everyone: dict[str, Design] = {
            "uniform": Uniform(), "iid": IID(), "mixture": Mixture(), "poisson": Poisson(), "pareto": Pareto(),
            "stratified": Stratified(), "stratified-neyman": Stratified("neyman")}
        self.candidates = {k: d for k, d in everyone.items() if names is None or k in names}
        self.model = None
        self.chosen: Design | None = None

    def for_rows(self) -> "Auto":
        return Auto(tuple(k for k, d in self.candidates.items() if not (d.with_replacement or d.random_size)))

    def bind(self, score_summary: dict[str, Any]) -> None:
        k = score_summary.get("k") or 0
        self.model = loss_model(score_summary.get("clusters") or {}, k) if k else None
        for d in self.candidates.values():
            d.bind(score_summary)

    def resolved(self) -> Design:
        return self.chosen or self

    def _per_candidate(self, fn) -> dict:
        """``fn(name, design)`` for each candidate; ``stratified-neyman`` shares ``stratified``'s (the allocation
        differs, not the block statistics)."""
        own = {name: fn(name, d) for name, d in self.candidates.items() if name != "stratified-neyman"}
        if "stratified-neyman" in self.candidates:
            own["stratified-neyman"] = own["stratified"]
        return own

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        own = self._per_candidate(lambda _, d: d.check_block(b, cols, size, n))
        if self.model is None:
            return own, None
        mu, sig = self.model[0], self.model[1]
        lab = np.asarray(cols["cluster"]).astype(np.int64)
        p = np.asarray(cols["prob"], dtype=np.float64)
        m = mu[lab] ** 2 + sig[lab]
        q = (1 - ALPHA) * p + ALPHA / n
        pi = np.minimum(1.0, size * p)
        with np.errstate(divide="ignore", invalid="ignore"):
            iid = np.where(p > 0, m / p, np.inf)
            pois = np.where(pi > 0, (1 - pi) * m / pi, np.inf)
            y = np.where(pi > 0, mu[lab] / pi, 0.0)
            extra = np.where(pi > 0, (1 - pi) * sig[lab] / pi, np.inf)
        a = (1 - pi) * pi
        sums = [grid.block_sum(v) for v in (m, mu[lab], iid, m / q, pois, a * y * y, a * y, a, extra)]
        return own, sums

    def compact(self, stats: list, size: int) -> list:
        """Each candidate's statistics compacted by the candidate (``stratified-neyman`` shares ``stratified``'s);
        the loss model's block sums are kept."""
        own = self._per_candidate(lambda name, d: d.compact([st[0][name] for st in stats], size))
        return [({name: own[name][i] for name in own}, st[1]) for i, st in enumerate(stats)]

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        own = {name: [st[0][name] for st in stats] for name in self.candidates}
        if self.model is None:
            choice = {"chosen": "uniform", "reason": "uniform: no losses were queried, so no design's variance can "
                      "be predicted, and uniform sampling is the safe choice", "predicted_var": {}}
            return self._delegate("uniform", own, size, seed, path, choice)
        mu, sig, how = self.model
        tot = [grid.total(np.array([st[1][j] for st in stats])) for j in range(9)]
        sm, t, iid, mix, pois, ayy, ay, a, extra = tot
        n = sum(own["uniform"])
        pred = {
            "uniform": n * n * (1 - size / n) * (sm - t * t / n) / (n - 1) / size if n > 1 else 0.0,
            "iid": (iid - t * t) / size,
            "mixture": (mix - t * t) / size,
            "poisson": pois,
            "pareto": (ayy - ay * ay / a if a > 0 else 0.0) + extra,
        }
        for name, allocation in (("stratified", "proportional"), ("stratified-neyman", "neyman")):
            big_n = np.zeros(len(mu))
            for h, cnt, *_ in own[name]:
                big_n[h] += cnt
            if size < np.minimum(big_n, 2).sum():
                continue
            plan = self.candidates[name].plan(own[name], size, seed, path)
            n_h = np.asarray(plan.n_h, dtype=np.float64)
            ok = n_h > 0
            pred[name] = float(np.sum(big_n[ok] ** 2 * (1 - n_h[ok] / big_n[ok]) * sig[ok] / n_h[ok]))
        pred = {k: (v if math.isfinite(v) else math.inf) for k, v in pred.items() if k in self.candidates}
        best = min(pred, key=lambda k: (pred[k], k != "uniform"))
        chosen = best if pred[best] <= MARGIN * pred["uniform"] else "uniform"
        reason = (f"{chosen}: predicted variance {pred[chosen]:.4g} vs uniform's {pred['uniform']:.4g} "
                  f"(loss model: {how})" if chosen != "uniform" else
                  f"uniform: no design predicted {100 * (1 - MARGIN):.0f} % less variance than uniform's "
                  f"{pred['uniform']:.4g} "
                  f"(best: {best}, {pred[best]:.4g}; loss model: {how})")
        return self._delegate(chosen, own, size, seed, path, {"chosen": chosen, "reason": reason, "predicted_var": pred})

    def _delegate(self, name: str, own: dict, size: int, seed: int, path: str | None, choice: dict) -> Plan:
        self.chosen = self.candidates[name]
        plan = self.chosen.plan(own[name], size, seed, path)
        plan.stats = {**plan.stats, "auto": choice}
        return plan

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        return self.chosen.select_block(b, cols, plan, block_rows)

    def prune(self, index, columns, plan):
        return self.chosen.prune(index, columns, plan)

    def finish(self, index, prob, columns, plan):
        return self.chosen.finish(index, prob, columns, plan)

    def weights(self, count, prob, size):
        return self.chosen.weights(count, prob, size)

    def estimate(self, loss, sel, n):
        return self.resolved().estimate(loss, sel, n)

    def units(self, loss, sel):
        return self.resolved().units(loss, sel)

    def intervals(self, est, loss, sel, report, delta, loss_max):
        return self.resolved().intervals(est, loss, sel, report, delta, loss_max)

    def guarantee(self, report):
        return self.resolved().guarantee(report)
