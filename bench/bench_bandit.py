"""The cluster bandit on real losses: does it find the clusters of highest (or lowest) loss, and at what budget?

Data: the demo's digits (sample_data/: 1,797 rows, 64 pixels), clustered with ``dataselect cluster --k 30``;
the loss oracle is the demo's warm-start model (sample_data/oracle.py --all: every row's true loss, so
the selection's true mean loss can be compared with the full set's and with the best possible).
For each budget, c and rows a pull, over 20 seeds: the selection's mean true loss, the share of the selection in
the 5 clusters of highest true mean loss (or lowest, --prefer low), and how many of the 30 clusters
were pulled. Uniform sampling of the same size is the baseline (its expected share: the 5 clusters'
share of the rows).

Usage: python bench/bench_bandit.py [--size 180] [--k 30] [--seeds 20]  (writes nothing; prints a Markdown table)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataselect_cli import api
from dataselect_cli.bandit import run_bandit
from dataselect_cli.oracle import TableOracle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=180)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        api.embed_file(str(ROOT / "sample_data" / "digits_vectors.npy"), str(t / "emb.parquet"))
        api.cluster_file(str(t / "emb.parquet"), str(t / "clusters.parquet"), k=a.k)
        subprocess.run([sys.executable, str(ROOT / "sample_data" / "oracle.py"), "--all", "-o", str(t / "all.parquet")],
                       check=True, capture_output=True)
        c = pq.read_table(t / "clusters.parquet")
        ids, labels = c.column("id").combine_chunks(), c.column("cluster").to_numpy().astype(np.int64)
        lt = pq.read_table(t / "all.parquet")
        loss = np.empty(len(labels))
        loss[np.searchsorted(ids.to_numpy(), lt.column("id").to_numpy())] = lt.column("loss").to_numpy()
    k = int(labels.max()) + 1
    cmean = np.bincount(labels, weights=loss, minlength=k) / np.bincount(labels, minlength=k)
    print(f"n = {len(loss)}, k = {k}, full mean loss {loss.mean():.4f}; size s = {a.size}, {a.seeds} seeds\n")
    print("| prefer | budget | c | pulls a round | selection's mean loss (sd) | share in the 5 best clusters | "
          "clusters pulled |")
    print("|---|---|---|---|---|---|---|")
    for prefer in ("high", "low"):
        best = np.argsort(-cmean if prefer == "high" else cmean)[:5]
        in_best = np.isin(labels, best)
        print(f"| {prefer} | – | uniform | – | {loss.mean():.4f} | {in_best.mean():.2f} (expected) | – |")
        for budget, cval, pulls in [(b, 1.0, m) for b in (60, 180, 540) for m in (1, 2, 8)] + \
                [(540, cv, 2) for cv in (0.5, 2.0)]:
            m, share, pulled = [], [], []
            for seed in range(a.seeds):
                r = run_bandit(labels, ids, TableOracle("all", table=(ids, loss)), budget=budget, size=a.size,
                               seed=seed, ucb_c=cval, prefer=prefer, pulls_per_round=pulls)
                m.append(loss[r.rows].mean())
                share.append(in_best[r.rows].mean())
                pulled.append(int(np.sum(r.arms["pulls"] > 0)))
            print(f"| {prefer} | {budget} | {cval:g} | {pulls} | {np.mean(m):.4f} ({np.std(m):.4f}) | "
                  f"{np.mean(share):.2f} | {np.mean(pulled):.1f} |")


if __name__ == "__main__":
    main()
