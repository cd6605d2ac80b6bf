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


def best_per_budget(agg: list[dict], key: str, higher: bool) -> dict[int, str]:
    """The strategy with the best mean ``key`` at each budget (the full-data row excluded; ties: first)."""
    best: dict[int, tuple[float, str]] = {}
    for e in agg:
        v = e.get(key)
        if e["strategy"] == "full" or v is None or not math.isfinite(v):
            continue
        score = -v if higher else v
        if e["budget"] not in best or score < best[e["budget"]][0]:
            best[e["budget"]] = (score, e["strategy"])
    return {b: name for b, (_, name) in best.items()}


def results_table(rows: list[dict]) -> pa.Table:
    """The results rows as an Arrow table with fixed column types (nullable where a value may be absent)."""
    types = {"strategy": pa.string(), "budget": pa.int64(), "budget_fraction": pa.float64(),
             "repeat": pa.int32(), "rows": pa.int64(), "draws": pa.int64(), "weights": pa.string(),
             "metric": pa.string(), "theorem2_covered": pa.bool_(), "clt_covered": pa.bool_(),
             "clt_greg_covered": pa.bool_(), "boot_covered": pa.bool_()}
    return pa.table({c: pa.array([r[c] for r in rows], types.get(c, pa.float64())) for c in RESULT_COLUMNS})
