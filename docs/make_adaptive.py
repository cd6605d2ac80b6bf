"""Regenerate docs/adaptive/: the adaptive rounds (Algorithm 3) and the regression variant (Algorithm 2), by `evaluate`.

On the README's two real data sets (docs/make_docs.py writes them under out/docs/):

* digits (classification): `sensitivity` (k-means centers, Algorithm 1) and `sensitivity-adaptive` with
  --rounds 1, 2 and 4 on the same budget of queried rows (0.2·B), every round measured;
* diabetes (regression): `sensitivity-regression` (Algorithm 2, Λ = ∞), `leverage` and `uniform`.

Writes docs/adaptive/<set>-r<rounds>/ (evaluate's own output) and docs/adaptive/tables.md (the tables
docs/adaptive.md quotes). Run: python docs/make_adaptive.py (needs scikit-learn, the bench extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_docs import ROOT, WORK, real_sets, sh  # noqa: E402

OUT = ROOT / "docs" / "adaptive"
REPEATS = "30"


def table(results: Path, rounds: int) -> list[str]:
    """One line per (budget, strategy row): queries, mean and p95 relative error, Theorem 2 coverage and width."""
    t = pq.read_table(results).to_pylist()
    out = []
    for budget in sorted({r["budget"] for r in t if r["strategy"] != "full"}):
        q = max(1, round(0.2 * budget))
        k = max(1, q // rounds)
        names = [f"sensitivity-adaptive round {i}/{rounds}" for i in range(1, rounds)] + ["sensitivity-adaptive"]
        if rounds == 1:
            names = ["sensitivity"] + names
        for name in names:
            rs = [r for r in t if r["strategy"] == name and r["budget"] == budget]
            i = rounds if name == "sensitivity-adaptive" else int(name.split()[-1].split("/")[0]) if "round" in name \
                else None
            queries = q if i is None else i * k
            err = np.array([r["rel_error"] for r in rs])
            width = np.array([(r["theorem2_high"] - r["theorem2_low"]) / r["truth"] for r in rs])
            cov = np.mean([r["theorem2_covered"] for r in rs])
            label = "k-means (Algorithm 1)" if i is None else f"r = {rounds}, round {i}"
            out.append(f"| {budget} | {label} | {queries} | {err.mean():.3f} | {np.percentile(err, 95):.3f} | "
                       f"{100 * cov:.0f} % | {np.median(width):.2f} |")
    return out


def regression_table(results: Path) -> list[str]:
    t = pq.read_table(results).to_pylist()
    out = []
    for budget in sorted({r["budget"] for r in t if r["strategy"] != "full"}):
        for name in ("uniform", "leverage", "sensitivity-regression"):
            rs = [r for r in t if r["strategy"] == name and r["budget"] == budget]
            tw = np.array([r["test_weighted"] for r in rs])
            err = np.array([r["rel_error"] for r in rs])
            cov = np.mean([r["clt_covered"] for r in rs if r["clt_covered"] is not None])
            out.append(f"| {budget} | {name} | {tw.mean():.4f} ± {tw.std(ddof=1):.4f} | {err.mean():.3f} | "
                       f"{100 * cov:.0f} % |")
    return out


def main() -> None:
    real_sets()
    OUT.mkdir(parents=True, exist_ok=True)
    rel = lambda p: str(p.relative_to(ROOT))  # noqa: E731
    lines = ["# Tables of docs/adaptive.md (written by docs/make_adaptive.py)", "",
             f"## digits: adaptive rounds on the same budget of queried rows ({REPEATS} repeats)", "",
             "| B | run | loss queries | mean rel. error | p95 rel. error | Theorem 2 coverage | "
             "Theorem 2 width / truth |",
             "|---|---|---|---|---|---|---|"]
    for rounds in (1, 2, 4):
        strategies = "sensitivity,sensitivity-adaptive" if rounds == 1 else "sensitivity-adaptive"
        folder = OUT / f"digits-r{rounds}"
        sh("evaluate", rel(WORK / "digits.parquet"), "--label", "label", "--budgets", "0.05,0.1",
           "--strategies", strategies, "--rounds", str(rounds), "--repeats", REPEATS, "-o", rel(folder), "-q")
        lines += table(folder / "results.parquet", rounds)
    folder = OUT / "diabetes-regression"
    sh("evaluate", rel(WORK / "diabetes.parquet"), "--target", "target", "--budgets", "40,80,160",
       "--strategies", "uniform,leverage,sensitivity-regression", "--repeats", REPEATS, "-o", rel(folder), "-q")
    lines += ["", f"## diabetes: the regression variant against leverage and uniform ({REPEATS} repeats)", "",
              "| B | strategy | held-out 1 − R², weighted fit | mean rel. error of the mean loss | t coverage (skew-corrected) |",
              "|---|---|---|---|---|"]
    lines += regression_table(folder / "results.parquet")
    for extra in [*OUT.glob("*/*.png"), *OUT.glob("*/report.html")]:  # the tables and results are the evidence
        extra.unlink()
    (OUT / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
