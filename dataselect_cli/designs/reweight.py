"""``reweight``: per-example losses → normalised training weights (Sow et al., ICLR 2025), offline.

The paper reweights each minibatch during training (docs/reweight.md): the batch's losses
are normalised onto [−1, 1], a curve f scores each normalised loss, and the weights are a softmax of
f/r over the batch. This design does the same once, over the whole scores file (``score`` = the loss
of ``dataselect score --method loss``, or any loss-like score), so it is an *offline approximation*:
the losses come from one fixed (proxy) model, not from the model being trained, and the weights do
not follow training.

1. Normalise: ``--normalize minmax`` (the paper's: ℓ̃ = (2ℓ − max − min)/(max − min), the range floored
   at 1e-6), or ``quantile`` (the default here: ℓ clipped to [q01, q99], the 1st and 99th percentiles,
   then the same map), which one outlier loss cannot squash.
2. f(ℓ̃) ∈ [0, 1] by ``--curve``: ``linupper`` min(ℓ̃ + 1, 1) (the paper's recommendation: up-weights
   losses below the midpoint, flat above), ``linear`` (ℓ̃ + 1)/2, ``quadratic`` 1 − ℓ̃², ``extremes`` |ℓ̃|.
3. w_i = N·exp(f_i/r) / Σ_j exp(f_j/r): mean weight 1; r = ``--temperature`` (the paper's ``kl_reg``,
   default 1), larger is closer to uniform. Since f ∈ [0, 1], no weight exceeds e^{1/r} times another.

Without a size every row is kept with its weight w (prob 1). With ``--size``/``--fraction`` s rows are
drawn by Pareto order sampling (:mod:`.pareto`) with inclusion π = min(1, c·w), and weight w/π: the
rows are drawn ∝ w and weigh alike, except the certain ones (π = 1) that keep w. Either way Σ weight·ℓ
estimates (over a drawn subset nearly without bias) the *reweighted* objective Σ_i w_i·ℓ_i, a training
objective, NOT the plain total loss Σ ℓ: the design is marked not unbiased and ``estimate`` refuses it.

The plan holds the score column in memory (8 bytes a row): the quantiles and the largest weights are
not sums over blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .. import grid
from ..errors import InputError
from . import _inclusion
from ._scored import ScoreDesign, check_finite, check_temperature, not_an_estimate, scores_of
from .base import Estimate, Plan
from .pareto import Pareto

#: f(ℓ̃) of each ``--curve`` (ℓ̃ in [−1, 1], f in [0, 1]); the paper's code names ``upper`` what we call linear.
CURVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linupper": lambda t: np.minimum(t + 1.0, 1.0),
    "linear": lambda t: (t + 1.0) / 2.0,
    "quadratic": lambda t: 1.0 - t * t,
    "extremes": np.abs,
}
NORMALIZE = ("quantile", "minmax")
#: The quantiles ``--normalize quantile`` clips the losses to.
QUANTILES = (0.01, 0.99)
#: The paper's floor on the range max − min.
MIN_RANGE = 1e-6
#: The smallest --temperature: below it exp(−1/r) underflows and a row's weight would be 0.
MIN_TEMPERATURE = 1 / 700


def bounds(loss: np.ndarray, normalize: str) -> tuple[float, float]:
    """(lo, hi) of the normalisation: the min and max, or the 1st and 99th percentiles (``quantile``)."""
    if normalize == "minmax":
        return float(loss.min()), float(loss.max())
    lo, hi = np.quantile(loss, QUANTILES)
    return float(lo), float(hi)


def normalized(loss: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """ℓ̃ = (2ℓ − hi − lo)/max(hi − lo, 1e-6) of ℓ clipped to [lo, hi]: in [−1, 1], lo → −1, hi → 1."""
    x = np.clip(np.asarray(loss, dtype=np.float64), lo, hi)
    return (2.0 * x - hi - lo) / max(hi - lo, MIN_RANGE)


def curve_values(loss: np.ndarray, curve: str, lo: float, hi: float) -> np.ndarray:
    """f(ℓ̃) in [0, 1] of each loss."""
    return CURVES[curve](normalized(loss, lo, hi))


def reweight(loss: np.ndarray, curve: str = "linupper", temperature: float = 1.0,
             normalize: str = "quantile") -> np.ndarray:
    """The weights of every row, w = N·softmax(f(ℓ̃)/r), mean 1: the design without a size, on an array.

    >>> reweight(np.array([0.0, 1.0, 2.0]), "linear", 1.0, "minmax").round(4)   # f = 0, 0.5, 1
    array([0.559 , 0.9216, 1.5194])
    """
    x = np.asarray(loss, dtype=np.float64)
    lo, hi = bounds(x, normalize)
    e = np.exp((curve_values(x, curve, lo, hi) - 1.0) / temperature)
    return len(x) * e / grid.total(grid.block_sums(e))


class Reweight(ScoreDesign, Pareto):
    """Every row with w = N·softmax(f(ℓ̃)/r), or s rows with π = min(1, c·w) and weight w/π."""

    name = "reweight"
    summary = ("loss-based reweighting (Sow et al. 2025, offline): w = N·softmax(f(ℓ̃)/r), ℓ̃ the score (a loss) "
               "normalised onto [−1, 1] (--curve, --temperature r, --normalize); every row weighted, or with a size "
               "s rows drawn ∝ w, weight w/π; Σ w·ℓ estimates the reweighted objective Σ w·ℓ, NOT the full loss")
    unbiased = False
    stratifiable = False
    #: Without --size/--fraction the design keeps every row (weighted); with one, s rows.
    size_optional: ClassVar[bool] = True
    sum_estimates = "Σ_i w_i·ℓ_i over all rows, the reweighted training objective (not the full loss Σ ℓ)"
    biased_because = ("its weights define a reweighted training objective: Σ weight·loss estimates Σ w·ℓ, the loss "
                      "reweighted by the curve")
    #: Set by :meth:`plan`: the size covers every row (no --size: every row weighted).
    whole_set = False

    def __init__(self, curve: str = "linupper", temperature: float = 1.0, normalize: str = "quantile"):
        if curve not in CURVES:
            raise InputError(f"--curve must be one of {', '.join(CURVES)}; got {curve!r}")
        if normalize not in NORMALIZE:
            raise InputError(f"--normalize must be one of {', '.join(NORMALIZE)} with --design reweight; got "
                             f"{normalize!r}")
        self.temperature = check_temperature(temperature)
        if self.temperature < MIN_TEMPERATURE:
            raise InputError(f"--temperature {temperature:g} is too small for --design reweight: below "
                             f"{MIN_TEMPERATURE:.4g}, exp(−1/r) underflows and rows would get weight 0")
        self.curve, self.normalize = curve, normalize

    def params(self) -> dict[str, Any]:
        return {"curve": self.curve, "temperature": self.temperature, "normalize": self.normalize}

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple[np.ndarray, int]:
        """The block's scores, and how many are not finite (the plan needs them all: quantiles, largest w)."""
        x = scores_of(cols)
        return x, int((~np.isfinite(x)).sum())

    def compact(self, stats: list, size: int) -> list:
        """Unchanged: the plan needs every score (its quantiles, the largest weight), 8 bytes a row."""
        return stats

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        check_finite(sum(st[1] for st in stats), path)
        x = np.concatenate([st[0] for st in stats])
        n = len(x)
        if size > n:
            raise InputError(f"--size {size} is more than the {n} rows; lower it", path)
        lo, hi = bounds(x, self.normalize)
        self.whole_set = size >= n
        plan = Plan(seed=seed, size=size, lo=lo, hi=hi, n=n)
        plan.z = grid.total(np.array([grid.block_sum(np.exp((curve_values(st[0], self.curve, lo, hi) - 1.0)
                                                            / self.temperature)) for st in stats]))
        w = self.row_weights(x, plan)
        plan.c = _inclusion.scale(np.sort(w)[-size:], grid.total(grid.block_sums(w)), size) if size < n else np.inf
        plan.stats = {"min_prob": float(_inclusion.inclusion(np.array([w.min()]), plan.c)[0]),
                      "certain": int(np.sum(_inclusion.inclusion(w, plan.c) >= 1.0)), "c": plan.c,
                      "reweight": {"curve": self.curve, "temperature": self.temperature, "normalize": self.normalize,
                                   "lo": lo, "hi": hi, "clipped": int(np.sum((x < lo) | (x > hi))),
                                   "weight_min": float(w.min()), "weight_max": float(w.max()),
                                   "whole_set": self.whole_set}}
        return plan

    def row_weights(self, x: np.ndarray, plan: Plan) -> np.ndarray:
        """w = N·exp((f − 1)/r)/Z of a block's scores, Z = Σ exp((f − 1)/r) over every row (f <= 1: no overflow)."""
        return plan.n * np.exp((curve_values(x, self.curve, plan.lo, plan.hi) - 1.0) / self.temperature) / plan.z

    def inclusion(self, cols: dict, plan: Plan) -> np.ndarray:
        return _inclusion.inclusion(self.row_weights(scores_of(cols), plan), plan.c)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        part = Pareto.select_block(self, b, cols, plan, block_rows)
        if part is not None:
            part[3]["_w"] = self.row_weights(np.asarray(part[3]["score"], dtype=np.float64), plan)
        return part

    def final_weights(self, count: np.ndarray, prob: np.ndarray, size: int, columns: dict[str, Any]) -> np.ndarray:
        """w/π: w where the row is certain (every row without a size), the same 1/c for rows drawn ∝ w."""
        return columns.pop("_w") / prob

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        raise InputError(not_an_estimate(self.name, self.biased_because))

    def keeps(self, s: int, direction: str | None) -> str:
        how = f"r = {self.temperature:g}, {self.normalize} normalisation"
        if self.whole_set:
            return f"every row, weighted by the {self.curve} curve of its loss ({how})"
        return f"{s} distinct rows drawn ∝ w, the {self.curve} curve of their loss ({how}), weight w/π"

    def guarantee(self, report: dict[str, Any]) -> str:
        whole = self.whole_set
        what = (f"every one of the {report['n']} rows carries w = N·softmax(f(ℓ̃)/r) (mean 1)" if whole else
                f"{report['selected_rows']} of {report['n']} rows drawn with inclusion π = min(1, c·w) (Pareto order "
                "sampling), weight w/π")
        return (f"Loss-based reweighting ({self.curve}, r = {self.temperature:g}, {self.normalize} normalisation): "
                f"{what}. Σ weight·loss {'is' if whole else 'estimates, nearly without bias,'} Σ_i w_i·ℓ_i, the "
                "reweighted training objective; it is NOT an estimate of the full loss, and 'dataselect estimate' "
                "refuses it. An offline approximation of the paper's online method: the losses come from one fixed "
                "model and the weights do not follow training.")
