"""The ablation of docs/intervals.md: coverage of each correction of the t interval, alone and together.

The selections of docs/designs' setting (``evaluate``'s design strategies, their seeds, ε = 0.1, the
center and 3 probe losses per cluster), without retraining any model: for each data set, unit, budget,
design and repeat, the 95 % interval of

* the plain t (Student, the design's df), Hall's transformation alone, Satterthwaite's df alone, and
  both (what ``estimate`` prints);
* the GREG estimate: the plain residual variance, and the leverage-adjusted residuals with both
  corrections (what ``estimate`` prints).

Needs the data sets of ``make designs`` under out/docs/ (about 20 minutes for all five sets on a busy 2-core machine).
Run: python bench/bench_intervals.py [SET ...] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import sys
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataselect_cli import bounds, calibration, dataset, skewt  # noqa: E402
from dataselect_cli.evaluate.strategies import Seeds, _centers, _clustering, _int_seed, design_draw  # noqa: E402
from dataselect_cli.evaluate.task import make_task  # noqa: E402
from dataselect_cli.steps.evaluate import encode_label, encode_target, read_column  # noqa: E402

SETS = {"digits": ("label", [207]), "diabetes": ("target", [80, 160]), "stdlib": ("label", [207]),
        "synth-follow": ("target", [207]), "synth-unrelated": ("target", [207])}
STRATEGIES = {"uniform": "uniform", "sensitivity": "iid", "sensitivity-mixture": "mixture",
              "sensitivity-pareto": "pareto", "sensitivity-stratified": "stratified", "sensitivity-auto": "auto"}
VARIANTS = ("plain t", "Hall only", "Satterthwaite only", "both (printed)", "GREG plain", "GREG printed")


def intervals(total: float, var: float, df: int, groups: list[np.ndarray]) -> list[tuple[float, float]]:
    """The 95 % interval for the total of the four variants of the t interval."""
    se = math.sqrt(max(var, 0.0))
    shape = skewt.unit_shape(groups, df)
    return [skewt.corrected_t(total, se, s, 0.05) for s in (
        skewt.Shape(0.0, df), skewt.Shape(shape.skewness, df), skewt.Shape(0.0, shape.df), shape)]


def run_set(name: str, repeats: int) -> dict[tuple, list[bool]]:
    kind, budgets = SETS[name]
    path = str(ROOT / "out" / "docs" / f"{name}.parquet")
    ids, x = dataset.read_embeddings(path)
    col = read_column(path, kind, ids, "--" + kind, False)
    y = encode_label(col, path, kind) if kind == "label" else encode_target(col, path, kind)
    task = make_task(x, y, kind, 0.2, 0)
    truth = float(task.loss.sum())
    out: dict[tuple, list[bool]] = defaultdict(list)
    for unit in ("draws", "rows"):
        for budget in budgets:
            for repeat in range(repeats):
                for strategy, dname in STRATEGIES.items():
                    tag = zlib.crc32(strategy.encode())
                    seeds = Seeds(_int_seed(0, budget, repeat), _int_seed(0, budget, repeat, tag),
                                  _int_seed(0, repeat, tag))
                    cl = _clustering(task, _centers(budget, 0.2), 2, seeds.shared)
                    center_loss = task.loss[cl.center_index]
                    design, d, _ = design_draw(task, cl, dname, budget, seeds, {"lam": None, "unit": unit})
                    sel = {"count": d.count, "prob": d.prob, "weight": d.weight, "cluster": d.columns["cluster"]}
                    loss = task.loss[d.index]
                    est = design.estimate(loss, sel, task.n)
                    ga = calibration.model_assisted(design, loss, sel, center_loss, cl.size, task.n)
                    plain_resid = design.estimate(ga.cal.g * (loss - ga.cal.fitted), sel, task.n)
                    ivs = intervals(est.total, est.var, est.df, design.units(loss, sel))
                    g_lo, g_hi = bounds.clt_interval(ga.total, max(plain_resid.var, 0.0), plain_resid.df + 1, 0.05, 1)
                    ivs += [(g_lo, g_hi), intervals(ga.total, ga.resid.var, ga.resid.df,
                                                    design.units(ga.residuals, sel))[3]]
                    for v, (lo, hi) in zip(VARIANTS, ivs):
                        out[name, unit, budget, strategy, v].append(lo <= truth <= hi)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="*", default=list(SETS))
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    print("| data set | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for name in args.sets:
        got = run_set(name, args.repeats)
        cells = []
        for v in VARIANTS:
            shares = [100 * np.mean(c) for k, c in got.items() if k[-1] == v]
            cells.append(f"{min(shares):.1f}–{max(shares):.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
