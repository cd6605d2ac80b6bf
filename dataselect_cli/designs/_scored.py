"""What the score-driven designs share: the ``score`` column, what a selection by score keeps, and
selections by rank.

A scores file of an influence method (``el2n``, ``vog``, …) has ``id``, ``score`` and metadata naming
its ``direction`` (``higher=harder`` or ``higher=easier``). The score is used as it is: the file's
own normalisation (class, dataset or none) is the user's choice, which the designs never redo
(paper A, §2.4: the right normalisation depends on the data). ``top`` keeps the highest scores,
``bottom`` the lowest; ``softmax``, ``linear`` and ``gumbel-topk`` favour high scores, or low ones
with ``--prefer low``; the report translates that through the direction ("the hardest").

Two kinds of design live here:

* selections by rank (``top``, ``bottom``, ``middle``, ``gumbel-topk``): the rows of ranks
  lo … lo + s − 1 in the order of (key, a seeded uniform, row). Ties in the key are broken by the
  seeded uniform, so a seed fixes the rows. These choose rows by score alone: their weight is 1 (for
  training) and Σ weight·ℓ does **not** estimate the full loss, so ``estimate`` refuses them;
* order sampling with inclusion π = min(1, c·q), q a function of the score (``softmax``, ``linear``):
  :mod:`.pareto`'s draw with weight 1/π, nearly unbiased.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .. import grid
from ..errors import InputError
from . import _inclusion
from .base import Design, Estimate, Plan, gather
from .pareto import Pareto

PREFER = ("high", "low")


def check_prefer(prefer: str) -> str:
    if prefer not in PREFER:
        raise InputError(f"--prefer must be one of {', '.join(PREFER)}; got {prefer!r}")
    return prefer


def scores_of(cols: dict) -> np.ndarray:
    """The block's ``score`` column as float64."""
    return np.asarray(cols["score"], dtype=np.float64)


def check_finite(bad: int, path: str | None, log_weights: bool = False) -> None:
    if bad and log_weights:
        raise InputError(f"column 'score' must be a log weight, finite or −inf (weight 0); {bad} rows are NaN or "
                         "+inf (fill or drop them, or re-run 'dataselect score')", path)
    if bad:
        raise InputError(f"column 'score' must be finite; {bad} rows are NaN or infinite (fill or drop them, "
                         "or re-run 'dataselect score'; a dsir scores file marks documents under --min-length "
                         "with −inf: draw it with --design gumbel-topk or priority)", path)


def bad_scores(x: np.ndarray, log_weights: bool) -> tuple[int, int]:
    """(rows the design refuses, rows of weight 0): NaN and +inf are refused; −inf is weight 0 for a design
    that reads the score as a log weight (``gumbel-topk``, ``priority``: DSIR's short documents), else refused."""
    zero = int(np.isneginf(x).sum())
    bad = int((~np.isfinite(x)).sum())
    return (bad - zero, zero) if log_weights else (bad, 0)


def check_positive(size: int, n: int, zero: int, path: str | None) -> None:
    """Refuse a size beyond the rows, or beyond the rows of positive weight."""
    if size > n:
        raise InputError(f"--size {size} is more than the {n} rows; lower it", path)
    if size > n - zero:
        raise InputError(f"--size {size} is more than the {n - zero} rows of positive weight ({zero} rows have score "
                         "−inf, e.g. documents under dsir's --min-length); lower it", path)


def check_temperature(temperature: float) -> float:
    if not (np.isfinite(temperature) and temperature > 0):
        raise InputError(f"--temperature must be a positive number; got {temperature} (use --prefer low to favour "
                         "low scores)")
    return float(temperature)


def signed(x: np.ndarray, prefer: str, temperature: float = 1.0) -> np.ndarray:
    """z = ±x/T: larger for the preferred rows (``prefer`` high or low)."""
    return (x if prefer == "high" else -x) / temperature


def exp_block(z: np.ndarray) -> tuple[float, float]:
    """(m, Σ exp(z − m)) of a block's finite z, m its largest (−inf for none): merged by :func:`exp_total`."""
    z = z[np.isfinite(z)]
    if not len(z):
        return -np.inf, 0.0
    m = float(z.max())
    return m, grid.block_sum(np.exp(z - m))


def exp_total(parts: list[tuple[float, float]]) -> tuple[float, float]:
    """(M, Σ exp(z − M)) over every block from their :func:`exp_block`: each block's sum rescaled by exp(m − M)."""
    big_m = max(m for m, _ in parts)
    return big_m, grid.total(np.array([t * np.exp(m - big_m) if t else 0.0 for m, t in parts]))


def side(direction: str | None, high: bool) -> str:
    """' (higher=harder: the hardest)' for the high end of a score of that direction; '' when unknown."""
    if direction not in ("higher=harder", "higher=easier"):
        return ""
    hard = (direction == "higher=harder") == high
    return f" ({direction}: the {'hardest' if hard else 'easiest'})"


def not_an_estimate(name: str, because: str = Design.biased_because) -> str:
    return (f"a {name} selection has no unbiased weights: {because}, so Σ weight·loss does not "
            "estimate the full loss; estimate on a uniform, softmax or linear selection instead")


class Tempered:
    """The options of a design drawn ∝ exp(±score/T): ``--temperature`` T and ``--prefer`` high|low."""

    def __init__(self, temperature: float = 1.0, prefer: str = "high"):
        self.temperature = check_temperature(temperature)
        self.prefer = check_prefer(prefer)

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "prefer": self.prefer}


class ScoreDesign(Design):
    """A design that reads the per-row ``score`` (and nothing of the sensitivity columns)."""

    needs: ClassVar[tuple[str, ...]] = ("score",)
    scored = True
    stratifiable = True
    #: What Σ weight·ℓ estimates when it is not the full loss (for the report); None: nothing.
    sum_estimates: ClassVar[str | None] = None
    #: The score is a log weight (DSIR's): −inf is weight 0, a row never drawn (see :func:`bad_scores`).
    log_weights: ClassVar[bool] = False

    def keeps(self, s: int, direction: str | None) -> str:
        """What the selection keeps, in words ("the 500 rows of highest score (higher=harder: the hardest)")."""
        raise NotImplementedError

    def guarantee(self, report: dict[str, Any]) -> str:
        what = self.keeps(report["selected_rows"], (report.get("score") or {}).get("direction"))
        if not self.unbiased:
            return (f"Of the {report['n']} rows, keeps {what}: a selection by score, weight 1 for training; "
                    "Σ weight·loss is NOT an unbiased estimate of the full loss, and 'dataselect estimate' refuses "
                    "it.")
        return (f"Of the {report['n']} rows, draws {what}; inclusion ≈ π = min(1, c·q) (Pareto order sampling), "
                "weight 1/π: Σ weight·loss estimates the loss of all rows nearly without bias (inclusion within "
                "O(1/s) of π); 'dataselect estimate' gives a t interval on Rosén's variance estimate "
                "(asymptotic).")


class RankDesign(ScoreDesign):
    """The s rows of ranks lo … lo + s − 1 in the order of (key, seeded uniform, row); weight 1."""

    unbiased = False

    def key(self, x: np.ndarray, b: int, plan: Plan) -> np.ndarray:
        """Each row's key (the smallest keys are kept first)."""
        raise NotImplementedError

    def window(self, n: int, s: int) -> int:
        """lo, the rank of the first row kept."""
        return 0

    def prob(self, x: np.ndarray, plan: Plan) -> np.ndarray:
        """The ``prob`` column of kept rows: 1 (kept for certain, given the scores)."""
        return np.ones(len(x))

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple[int, int, int]:
        x = scores_of(cols)
        return (len(x), *bad_scores(x, self.log_weights))

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        n = sum(st[0] for st in stats)
        check_finite(sum(st[1] for st in stats), path, self.log_weights)
        check_positive(size, n, sum(st[2] for st in stats), path)
        return Plan({"min_prob": 1.0}, lo=self.window(n, size), size=size, seed=seed, n=n)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        """The block's rows of the lo + s smallest keys: every row of the window is among them, since a row
        whose block holds lo + s smaller keys has a rank of at least lo + s; :meth:`finish` keeps the window."""
        x = scores_of(cols)
        key = self.key(x, b, plan)
        u = np.random.default_rng([plan.seed, 30, b]).random(len(x))
        cand = np.sort(np.lexsort((np.arange(len(x)), u, key))[: plan.lo + plan.size])
        if not len(cand):
            return None
        return b * block_rows + cand, np.ones(len(cand), np.int32), self.prob(x[cand], plan), \
            gather(cols, cand, _key=key[cand], _u=u[cand])

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        """The lo + s first in the order :meth:`finish` takes its window from."""
        return np.sort(np.lexsort((index, columns["_u"], columns["_key"]))[: plan.lo + plan.size])

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        order = np.lexsort((index, columns.pop("_u"), columns.pop("_key")))
        return np.sort(order[plan.lo : plan.lo + plan.size])

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return np.ones(len(count))

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        raise InputError(not_an_estimate(self.name))


class ProportionalDesign(ScoreDesign, Pareto):
    """Pareto order sampling of s rows with target inclusion π = min(1, c·w), w = :meth:`weight` of
    z = ±score (``--prefer``); weight 1/π, nearly unbiased (:mod:`.pareto`)."""

    unbiased = True
    prefer = "high"

    def block_acc(self, z: np.ndarray, lo: float, hi: float) -> float:
        """The block's part of Σ w, relative to its own smallest (lo) and largest (hi) z."""
        raise NotImplementedError

    def total(self, stats: list, lo: float, hi: float) -> float:
        """Σ w over every row from each block's (n, bad, lo_b, hi_b, top, acc), given the global lo and hi."""
        raise NotImplementedError

    def weight(self, z: np.ndarray, plan: Plan) -> np.ndarray:
        """w(z) >= 0, given the plan's global lo and hi."""
        raise NotImplementedError

    def z(self, cols: dict) -> np.ndarray:
        return signed(scores_of(cols), self.prefer)

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        """(rows, bad rows, smallest z, largest z, the s largest z, the block's part of Σ w)."""
        z = self.z(cols)
        ok = np.isfinite(z)
        zf = z[ok]
        if not len(zf):
            return len(z), int((~ok).sum()), np.inf, -np.inf, zf, 0.0
        lo, hi = float(zf.min()), float(zf.max())
        return len(z), int((~ok).sum()), lo, hi, np.sort(zf)[-size:], self.block_acc(zf, lo, hi)

    def compact(self, stats: list, size: int) -> list:
        return _inclusion.pool_largest(stats, 4, size)  # w is increasing in z: the s largest z give the s largest w

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        n = sum(st[0] for st in stats)
        check_finite(sum(st[1] for st in stats), path)
        if size > n:
            raise InputError(f"--size {size} is more than the {n} rows; lower it", path)
        lo, hi = min(st[2] for st in stats), max(st[3] for st in stats)
        plan = Plan(seed=seed, size=size, lo=lo, hi=hi)
        total = self.total(stats, lo, hi)
        top = self.weight(np.concatenate([st[4] for st in stats]), plan)
        plan.c = _inclusion.scale(top, total, size)
        w_lo, w_hi = self.weight(np.array([lo, hi]), plan)
        with np.errstate(divide="ignore"):
            ratio = float(w_hi / w_lo) if w_lo > 0 else np.inf
        plan.stats = {"min_prob": float(_inclusion.inclusion(np.array([w_lo]), plan.c)[0]),
                      "certain": int(np.sum(_inclusion.inclusion(top, plan.c) >= 1.0)), "c": plan.c,
                      "q_ratio": ratio}
        return plan

    def inclusion(self, cols: dict, plan: Plan) -> np.ndarray:
        return _inclusion.inclusion(self.weight(self.z(cols), plan), plan.c)

    def guarantee(self, report: dict[str, Any]) -> str:
        text = super().guarantee(report)
        if report.get("min_prob") == 0:
            text += (" Some rows have π = 0 (their weight underflows): they are never drawn, and the estimate "
                     "leaves them out; raise --temperature or --floor.")
        return text
