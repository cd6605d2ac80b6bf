"""The harness behind ``dataselect evaluate``: selection strategies, proxy models, metrics. Arrays in, arrays out.

A run splits the rows into a training part and a held-out part (``holdout``), trains the *proxy
model* on the whole training part (the reference), and then, for every strategy × budget ×
repeat, selects rows of the training part, retrains the proxy model on them (unweighted, and with
the strategy's weights when it has unbiased ones) and measures:

* the held-out metric: accuracy (``--label``: multinomial logistic regression) or 1 − R²
  (``--target``: least squares);
* the subset's estimate of the full training part's mean loss, Σ w·ℓ / n, where ℓ is the loss of
  the reference model (cross-entropy, or squared residual) and the truth is its mean over every
  training row; its relative error;
* whether the intervals around that estimate covered the truth: the paper's Theorem 2 (only for
  the tool's own design, whose ε and Λ·Φ it knows) and the CLT interval (for any design with
  unbiased weights). A design without unbiased weights (k-center, margin) gets no interval: null.

Every random choice comes from ``np.random.SeedSequence`` keyed by (seed, budget, repeat, name),
so the same seed gives the same table, and strategies that share a step (the uniform warm start,
the clustering) share its draw within a (budget, repeat).
"""

from __future__ import annotations

import zlib

from .. import bounds
from ..designs.base import Estimate
from ..designs.iid import IID
from ..progress import Progress, silent
from .strategies import CLT_DELTA, STRATEGIES, Seeds, Selection, _int_seed
from .task import Task


# --------------------------------------------------------------------------- the grid


RESULT_COLUMNS = ["strategy", "budget", "budget_fraction", "repeat", "rows", "draws", "weights", "metric",
                  "test_unweighted", "test_weighted", "estimate", "truth", "rel_error", "eps",
                  "theorem2_low", "theorem2_high", "theorem2_covered", "clt_low", "clt_high", "clt_covered",
                  "estimate_greg", "rel_error_greg", "clt_greg_low", "clt_greg_high", "clt_greg_covered",
                  "boot_low", "boot_high", "boot_covered"]


def _covered(iv: tuple[float, float] | None, truth: float) -> bool | None:
    return None if iv is None else bool(iv[0] <= truth <= iv[1])


def run_one(task: Task, name: str, budget: int, repeat: int, seed: int, opt: dict) -> dict:
    """One strategy × budget × repeat: select, retrain, measure. Returns one results row (a dict)."""
    return run_rows(task, name, budget, repeat, seed, opt)[-1]


def run_rows(task: Task, name: str, budget: int, repeat: int, seed: int, opt: dict) -> list[dict]:
    """:func:`run_one`, with a row before it for each earlier round of an adaptive strategy
    (named ``"NAME round i/r"``)."""
    fn = STRATEGIES[name][0]
    tag = zlib.crc32(name.encode())
    seeds = Seeds(_int_seed(seed, budget, repeat), _int_seed(seed, budget, repeat, tag), _int_seed(seed, repeat, tag))
    sel = fn(task, budget, seeds, opt)
    r = len(sel.earlier) + 1
    return [_measure(task, f"{name} round {i}/{r}", budget, repeat, s) for i, s in enumerate(sel.earlier, 1)] + \
        [_measure(task, name, budget, repeat, sel)]


def _measure(task: Task, name: str, budget: int, repeat: int, sel: Selection) -> dict:
    """Retrain on a selection and measure it: one results row."""
    n, truth = task.n, float(task.loss.mean())
    estimate = sel.total / n
    clt = greg_clt = None
    if sel.printed is not None:  # a design's selection: the intervals `estimate` prints for it
        clt, greg_clt = sel.printed.get("clt_interval"), sel.printed.get("greg_interval")
    elif sel.var is not None and sel.weight is not None:  # the skew-corrected t, as `estimate` states it
        iv = IID().t_interval(Estimate(sel.total, max(sel.var, 0.0), n, sel.df), sel.units, CLT_DELTA)
        clt = (iv.low, iv.high)
    weighted = task.test_metric(task.fit(sel.index, sel.weight)) if sel.weight is not None else None
    t2 = sel.theorem2
    greg = None
    if sel.greg is not None:
        greg = sel.greg[0] / n
        if sel.greg[1] is not None and sel.printed is None:
            greg_clt = bounds.clt_interval(sel.greg[0], max(sel.greg[1], 0.0), sel.greg[2] + 1, CLT_DELTA, n)
    rel = (lambda v: abs(v - truth) / truth if truth > 0 and v is not None else None)
    return {
        "strategy": name, "budget": budget, "budget_fraction": budget / n, "repeat": repeat,
        "rows": len(sel.index), "draws": sel.draws if sel.draws is not None else len(sel.index),
        "weights": "unbiased" if sel.weight is not None else "none",
        "metric": task.metric, "test_unweighted": task.test_metric(task.fit(sel.index)), "test_weighted": weighted,
        "estimate": estimate, "truth": truth, "rel_error": abs(estimate - truth) / truth if truth > 0 else None,
        "eps": sel.eps, "theorem2_low": t2[0] if t2 else None, "theorem2_high": t2[1] if t2 else None,
        "theorem2_covered": _covered(t2, truth), "clt_low": clt[0] if clt else None,
        "clt_high": clt[1] if clt else None, "clt_covered": _covered(clt, truth),
        "estimate_greg": greg, "rel_error_greg": rel(greg), "clt_greg_low": greg_clt[0] if greg_clt else None,
        "clt_greg_high": greg_clt[1] if greg_clt else None, "clt_greg_covered": _covered(greg_clt, truth),
        "boot_low": sel.boot[0] if sel.boot else None, "boot_high": sel.boot[1] if sel.boot else None,
        "boot_covered": _covered(sel.boot, truth),
    }


def reference_row(task: Task) -> dict:
    """The full-data row: the reference model trained on every training row."""
    truth = float(task.loss.mean())
    row = {c: None for c in RESULT_COLUMNS}
    row.update({"strategy": "full", "budget": task.n, "budget_fraction": 1.0, "repeat": 0, "rows": task.n,
                "draws": task.n,
                "weights": "all rows", "metric": task.metric, "test_unweighted": task.metric_full,
                "test_weighted": task.metric_full, "estimate": truth, "truth": truth, "rel_error": 0.0})
    return row


def run_grid(task: Task, strategies: list[str], budgets: list[int], repeats: int, seed: int, opt: dict,
             progress: Progress = silent) -> list[dict]:
    """The reference row, then every budget × repeat × strategy (in that order).

    The runs go strategy by strategy, each a ``progress`` stage ("evaluating kcenter", budgets × repeats
    runs); a run's seeds depend on its strategy, budget and repeat only, so the order changes nothing.
    """
    done: dict[tuple[int, int, str], list[dict]] = {}
    for name in strategies:
        with progress(f"evaluating {name}", len(budgets) * repeats, "runs") as advance:
            for budget in budgets:
                for repeat in range(repeats):
                    done[budget, repeat, name] = run_rows(task, name, budget, repeat, seed, opt)
                    advance(1)
    return [reference_row(task)] + [row for b in budgets for r in range(repeats) for name in strategies
                                     for row in done[b, r, name]]


def resolve_budgets(values: list[float], n: int) -> list[int]:
    """Budgets as row counts: values < 1 are fractions of the training part's n (rounded), others counts.

    Examples
    --------
    >>> resolve_budgets([0.01, 0.05, 500.0], 1438)
    [14, 72, 500]
    """
    return [max(1, int(round(v * n))) if v < 1 else int(v) for v in values]
