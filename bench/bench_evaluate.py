"""`dataselect evaluate` at a real size (issue 17, item 3): the run the issue timed at about 15 minutes.

Builds a 64,000 × 384 set with 58 classes (Gaussian class means plus noise, unit-normalised, seeded),
then, in one run:

* times ``evaluate --strategies uniform,sensitivity,kcenter,margin --budgets 1000,3000 --repeats 3``
  end to end (aim: at most 3 minutes on 2 cores);
* times one k-center greedy traversal of B rows as evaluate now runs it (float32, one BLAS
  matrix-vector product per row: :class:`dataselect_cli.traversal.Traversal`) against the float64
  expression it replaced, on the same standardised rows, and checks both pick the same rows.

Usage: python bench/bench_evaluate.py [--n 64000] [--budget 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dataselect_cli.io import embedding_array  # noqa: E402
from dataselect_cli.traversal import Traversal  # noqa: E402


def make_set(n: int, d: int = 384, classes: int = 58, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, d)).astype(np.float32)
    label = rng.integers(classes, size=n)
    x = means[label] * 0.35 + rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), label.astype(np.int32)


def kcenter_float64(x: np.ndarray, budget: int, first: int) -> list[int]:
    """The former implementation: float64, a new n-vector per expression."""
    x = x.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    chosen = [first]
    mind = sq - 2 * x @ x[first] + sq[first]
    mind[first] = -np.inf
    while len(chosen) < budget:
        c = int(np.argmax(mind))
        chosen.append(c)
        mind = np.minimum(mind, sq - 2 * x @ x[c] + sq[c])
        mind[c] = -np.inf
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64000)
    ap.add_argument("--budget", type=int, default=500, help="rows of the traversal timed against float64")
    args = ap.parse_args()
    x, label = make_set(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        emb = os.path.join(tmp, "emb.parquet")
        pq.write_table(pa.table({"id": np.arange(args.n), "embedding": embedding_array(x), "label": label}), emb)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dataselect_cli", "evaluate", emb, "--label", "label", "--strategies",
                        "uniform,sensitivity,kcenter,margin", "--budgets", "1000,3000", "--repeats", "3", "-o",
                        os.path.join(tmp, "eval"), "-q"], check=True, stdout=subprocess.DEVNULL)
        run = time.perf_counter() - t0
    xs = (x - x.mean(0)) / x.std(0)  # evaluate's standardisation
    t0 = time.perf_counter()
    t = Traversal(xs)
    t.add(0)
    new = t.extend_farthest(args.budget)
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    old = kcenter_float64(xs, args.budget, 0)
    t_old = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(new, old))
    print(f"evaluate, {args.n} × 384, 58 classes, 4 strategies × 2 budgets × 3 repeats: {run:.0f} s "
          f"(aim <= 180 s: {'met' if run <= 180 else 'MISSED'})")
    print(f"k-center greedy, {args.budget} rows: float32 traversal {t_new:.1f} s vs float64 {t_old:.1f} s = "
          f"{t_new / t_old:.2f}x the time; the same row at {same} of {args.budget} steps")


if __name__ == "__main__":
    main()
