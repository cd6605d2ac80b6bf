"""DSIR side by side with the data-selection package, on Python's standard-library docstrings (issue 14, item 5).

Raw: every docstring paragraph of this interpreter's standard library (.py files, tests and idlelib left out).
Target: the paragraphs of one module family (``--target email`` by default: the files under ``email/``).
One run measures, on the same machine and corpus:

* the package (``HashedNgramDSIR``, ``num_proc=2``, its defaults: 2-grams, 10,000 buckets, wordpunct,
  ``num_tokens_to_fit='auto'``): fit + importance weights, timed;
* ``score --method dsir --compat data-selection``: its log weights against the package's (largest
  difference, Pearson correlation; aim ≥ 0.9999), timed;
* ``score --method dsir`` (the default featuriser), timed: throughput ratio to the package (aim ≥ 3×);
* the KL reduction of a 5 % selection by ``gumbel-topk``, ``priority`` and ``uniform`` from the default scores.

Ratios are printed as the aims; absolute times depend on the machine. Usage:
``python bench/bench_dsir.py [--target email] [--limit N]`` (``make bench-dsir``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from stdlib_text import docstring_paragraphs  # noqa: E402 - beside this file

DATA = os.path.join(os.path.dirname(__file__), "data")


def stdlib_paragraphs() -> list[tuple[str, str]]:
    """(module path relative to the stdlib, paragraph) of every docstring, deduplicated, in path order."""
    seen, rows = set(), []
    for rel, para in docstring_paragraphs():
        if para not in seen:
            seen.add(para)
            rows.append((rel, para))
    return rows


def corpora(target: str, limit: int | None) -> tuple[str, str, int, int]:
    """Write (cached) the raw and target JSONL files; return their paths and sizes."""
    os.makedirs(DATA, exist_ok=True)
    raw_path, target_path = os.path.join(DATA, "dsir_raw.jsonl"), os.path.join(DATA, f"dsir_target_{target}.jsonl")
    if not os.path.exists(raw_path) or not os.path.exists(target_path):
        rows = stdlib_paragraphs()
        with open(raw_path, "w") as f:
            for i, (_, para) in enumerate(rows):
                f.write(json.dumps({"id": i, "text": para}) + "\n")
        with open(target_path, "w") as f:
            for rel, para in rows:
                if rel.split(os.sep)[0] == target:
                    f.write(json.dumps({"text": para}) + "\n")
    if limit:
        cut = os.path.join(DATA, f"dsir_raw_{limit}.jsonl")
        with open(raw_path) as src, open(cut, "w") as dst:
            for i, line in zip(range(limit), src):
                dst.write(line)
        raw_path = cut
    return raw_path, target_path, sum(1 for _ in open(raw_path)), sum(1 for _ in open(target_path))


def package_weights(raw: str, target: str, num_proc: int) -> tuple[np.ndarray, float]:
    from data_selection import HashedNgramDSIR

    t0 = time.perf_counter()
    d = HashedNgramDSIR([raw], [target], tempfile.mkdtemp(), num_proc=num_proc, min_example_length=0)
    d.fit_importance_estimator(num_tokens_to_fit="auto")
    d.compute_importance_weights()
    seconds = time.perf_counter() - t0
    shards = d._get_virtually_sharded_datasets([raw])
    n = sum(1 for _ in open(raw))
    w = np.empty(n)
    for s in shards:
        w[np.arange(n)[s["shard_idx"]::s["num_shards"]]] = np.load(d.log_importance_weights_dir /
                                                                   f"{s['overall_idx']}.npy")
    return w, seconds


def ours(raw: str, target: str, out: str, **params) -> tuple[np.ndarray, float]:
    from dataselect_cli import api, methods

    t0 = time.perf_counter()
    api.score_file(None, out, method=methods.get("dsir", min_length=0, **params), text=raw, targets=[target])
    return pq.read_table(out).column("log_importance_weight").to_numpy(), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="email", help="stdlib package whose docstrings are the target")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N raw paragraphs")
    ap.add_argument("--num-proc", type=int, default=2, help="the package's num_proc (default 2, the 2 cores here)")
    args = ap.parse_args()
    raw, target, n, m = corpora(args.target, args.limit)
    print(f"raw: {n} stdlib docstring paragraphs; target: {m} paragraphs of {args.target}.*", flush=True)
    ref, t_pkg = package_weights(raw, target, args.num_proc)
    print(f"data-selection (num_proc={args.num_proc}): fit + weights done", flush=True)
    work = tempfile.mkdtemp()
    compat, t_compat = ours(raw, target, os.path.join(work, "compat.parquet"), compat="data-selection")
    fast, t_fast = ours(raw, target, os.path.join(work, "fast.parquet"))
    r = float(np.corrcoef(compat, ref)[0, 1])
    print("\n| measure | value | aim |\n|---|---|---|")
    print(f"| compat log weights vs package: Pearson r | {r:.10f} | >= 0.9999 |")
    print(f"| compat log weights vs package: largest abs. difference (nats) | {np.abs(compat - ref).max():.3g} | – |")
    print(f"| compat log weights vs package: largest rel. difference | "
          f"{(np.abs(compat - ref) / np.maximum(np.abs(ref), 1e-300)).max():.3g} | – |")
    print(f"| default mode throughput / package throughput | {t_pkg / t_fast:.1f}× | >= 3× |")
    print(f"| compat mode throughput / package throughput | {t_pkg / t_compat:.2f}× | – |")
    print(f"| default vs package log weights: Spearman ρ | {spearman(fast, ref):.3f} | – (different features) |")
    from dataselect_cli import api

    size = max(1, n // 20)
    print(f"\nKL reduction of a {size}-row selection (5 %) from the default scores (min length 0; nats):\n")
    print("| design | KL(target ‖ raw) | KL(target ‖ selected) | KL reduction |\n|---|---|---|---|")
    for design in ("gumbel-topk", "priority", "uniform"):
        from dataselect_cli import designs

        rep = api.sample_file(os.path.join(work, "fast.parquet"), os.path.join(work, f"{design}.parquet"),
                              size=size, design=designs.get(design))
        kl = rep["kl_reduction"]
        print(f"| {design} | {kl['kl_raw'][0]:.4f} | {kl['kl_selected'][0]:.4f} | {kl['kl_reduction']:.4f} |")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


if __name__ == "__main__":
    main()
