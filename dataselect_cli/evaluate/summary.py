"""Aggregates of ``evaluate``'s results: per (strategy, budget) means, spreads and coverage; the results table."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from .harness import RESULT_COLUMNS

#: Summary quantities: (key in the aggregate, results column, how it is aggregated, better).
SUMMARY_FIELDS = [
    ("test_unweighted", "test_unweighted", "mean", None),
    ("test_weighted", "test_weighted", "mean", None),
    ("rel_error", "rel_error", "mean", "low"),
    ("rel_error_p95", "rel_error", "p95", "low"),
    ("rel_error_greg", "rel_error_greg", "mean", "low"),
    ("rel_error_greg_p95", "rel_error_greg", "p95", "low"),
    ("theorem2_coverage", "theorem2_covered", "share", None),
    ("clt_coverage", "clt_covered", "share", None),
    ("clt_greg_coverage", "clt_greg_covered", "share", None),
    ("boot_coverage", "boot_covered", "share", None),
    ("rows", "rows", "mean", None),
    ("draws", "draws", "mean", None),
]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sd (ddof = 1; 0 for one repeat) per (strategy, budget); coverage as a share of repeats.

    Entries whose values are all null stay null (e.g. the weighted metric of k-center).
    """
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["budget"]), []).append(r)
    out = []
    for (name, budget), rs in groups.items():
        entry = {"strategy": name, "budget": budget, "budget_fraction": rs[0]["budget_fraction"], "runs": len(rs)}
        for key, col, how, _ in SUMMARY_FIELDS:
            vals = np.array([r[col] for r in rs if r[col] is not None], dtype=np.float64)
            if len(vals) == 0:
                entry[key], entry[key + "_sd"] = None, None
            elif how == "share":
                entry[key], entry[key + "_sd"] = float(vals.mean()), None
            elif how == "p95":
                entry[key], entry[key + "_sd"] = float(np.percentile(vals, 95)), None
            else:
                entry[key] = float(vals.mean())
                entry[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out.append(entry)
    return out


#: How many standard errors of the difference a mean must beat every other strategy's mean by to count as the best.
CLEAR_SE = 2.0


def best_per_budget(agg: list[dict], key: str, higher: bool) -> dict[int, str | None]:
    """At each budget, the strategy whose mean ``key`` is the best by more than noise, else None (no clear best).

    The rule: the strategy with the best mean is the clear best only when, against *every* other strategy, the
    difference of the two means exceeds ``CLEAR_SE`` (2) standard errors of that difference,
    √(sd_a²/runs_a + sd_b²/runs_b), the sds taken over the repeats (the repeats of two strategies treated as
    independent, as Welch's test does). When some other strategy is within that margin the budget has no clear
    best (None), and the summaries bold nothing there. A quantity without a standard deviation (a 95th
    percentile), a single repeat, or a single strategy gives no measure of the noise: None as well. The
    full-data row never competes; null and non-finite means are left out.
    """
    by_budget: dict[int, list[dict]] = {}
    for e in agg:
        if e["strategy"] != "full":
            by_budget.setdefault(e["budget"], [])
            v = e.get(key)
            if v is not None and math.isfinite(v):
                by_budget[e["budget"]].append(e)
    out: dict[int, str | None] = {}
    for b, es in by_budget.items():
        out[b] = None
        if len(es) < 2:
            continue
        sign = -1.0 if higher else 1.0
        top = min(es, key=lambda e: sign * e[key])  # ties: the first listed
        clear = True
        for e in es:
            if e is top:
                continue
            sd_top, sd_e = top.get(key + "_sd"), e.get(key + "_sd")
            if sd_top is None or sd_e is None or top["runs"] < 2 or e["runs"] < 2:
                clear = False
                break
            se = math.sqrt(sd_top ** 2 / top["runs"] + sd_e ** 2 / e["runs"])
            if sign * (e[key] - top[key]) <= CLEAR_SE * se:
                clear = False
                break
        if clear:
            out[b] = top["strategy"]
    return out


def results_table(rows: list[dict]) -> pa.Table:
    """The results rows as an Arrow table with fixed column types (nullable where a value may be absent)."""
    types = {"strategy": pa.string(), "budget": pa.int64(), "budget_fraction": pa.float64(),
             "repeat": pa.int32(), "rows": pa.int64(), "draws": pa.int64(), "weights": pa.string(),
             "metric": pa.string(), "theorem2_covered": pa.bool_(), "clt_covered": pa.bool_(),
             "clt_greg_covered": pa.bool_(), "boot_covered": pa.bool_()}
    return pa.table({c: pa.array([r[c] for r in rows], types.get(c, pa.float64())) for c in RESULT_COLUMNS})
