"""Semantic dedup (``dataselect dedup``): does it find planted near-duplicates, and how fast, against NeMo's way.

In one run:

1. writes (once into ``<data-dir>``, reused when its shape matches) a seeded corpus of N rows × D dims, unit norm:
   rows of BLOBS Gaussian blobs; a share ``--dup-share`` of them replaced by near-copies of other rows
   (noise σ ~ U(0.02, 0.2) per dimension: cosine ≈ 0.99–0.9999 to their original; an original may get several
   copies, so a planted group is an original and its copies), and a share ``--near-share`` by near misses
   (σ ~ U(0.45, 0.6): cosine ≈ 0.92–0.95, *not* duplicates, so that precision means something);
2. runs ``python -m dataselect_cli dedup EMB --k K --eps E`` end to end in a fresh process (reading the file,
   k-means, the passes, the search, writing the table): wall time and peak RSS;
3. scores its duplicate groups against the planted ones (pairs of rows in one group: precision = share of the
   found pairs that are planted, recall = share of the planted pairs found; and the recall of the planted pairs
   whose own cosine reaches 1 − ε, which an all-pairs search would find: the rest is lost to the clustering),
   at E and at smaller ε from the same
   table (a row's match does not depend on ε; only whether its cosine reaches 1 − ε does), at ε = 0.1 (the
   near misses join) down to 0.002;
4. times the search within the same clusters, in rank order, two ways on the same vectors: this tool's
   (:func:`dataselect_cli.dedup.earlier_max`: faiss k-NN over earlier rows in batches, exact re-scoring) and
   NeMo Curator's (the dense m × m cosine matrix per cluster in torch, its strict upper triangle, the max over
   earlier rows), checking that both remove the same rows; and on one cluster of ``--one-cluster`` rows, where
   the dense matrix needs m² × 4 bytes.

    python bench/bench_dedup.py                      # 200,000 × 384, k = 200
    python bench/bench_dedup.py --n 1000000 --k 500  # the 1M figure of docs/dedup.md

Not part of the test suite. The corpus is N·D·4 bytes on disk (1.5 GB for 1M × 384; ``make clean`` removes bench/data).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from dataselect_cli import dedup as dd  # noqa: E402
from dataselect_cli.io import embedding_array  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
#: The ε at which the duplicate groups are scored (those below --eps; the table is written at --eps).
QUALITY_EPS = (0.05, 0.02, 0.01, 0.005, 0.002)


def make_corpus(n: int, d: int, blobs: int, dup_share: float, near_share: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(x unit float32 (n, d), planted group of each row: the original's row for a copy and for the original,
    else −1)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(blobs, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65536):
        m = min(65536, n - s)
        x[s : s + m] = centers[rng.integers(0, blobs, m)] + rng.normal(size=(m, d)).astype(np.float32)
    perm = rng.permutation(n)
    n_dup, n_near = int(dup_share * n), int(near_share * n)
    copies, near, pool = perm[:n_dup], perm[n_dup : n_dup + n_near], perm[n_dup + n_near :]
    group = np.full(n, -1, dtype=np.int64)
    orig = pool[rng.integers(0, len(pool) // 2, n_dup)]  # from half the pool: some originals get several copies
    for rows, lo, hi, src in ((copies, 0.02, 0.2, orig), (near, 0.45, 0.6, pool[rng.integers(0, len(pool), n_near)])):
        for s in range(0, len(rows), 65536):
            r, o = rows[s : s + 65536], src[s : s + 65536]
            sigma = rng.uniform(lo, hi, len(r)).astype(np.float32)[:, None]
            x[r] = x[o] + sigma * rng.normal(size=(len(r), d)).astype(np.float32)
    group[copies], group[orig] = orig, orig
    for s in range(0, n, 65536):
        x[s : s + 65536] = dd.unit_rows(x[s : s + 65536])[0]
    return x, group


def write_corpus(path: str, x: np.ndarray) -> None:
    writer = pq.ParquetWriter(path, pa.schema([("id", pa.int64()), ("embedding", pa.list_(pa.float32(), x.shape[1]))]))
    for s in range(0, len(x), 65536):
        part = x[s : s + 65536]
        ids = np.arange(s, s + len(part), dtype=np.int64)
        writer.write_table(pa.table({"id": ids, "embedding": embedding_array(part)}))
    writer.close()


def pair_scores(found_root: np.ndarray, planted: np.ndarray) -> dict:
    """Pair precision and recall of found groups (a root row per row) against planted groups (−1: alone)."""
    def pairs(counts):
        return float(np.sum(counts * (counts - 1) / 2))

    truth = np.where(planted >= 0, planted, -1 - np.arange(len(planted)))
    _, found_sizes = np.unique(found_root, return_counts=True)
    _, truth_sizes = np.unique(truth, return_counts=True)
    _, both = np.unique(np.stack([found_root, truth]), axis=1, return_counts=True)
    tp, fp_all, t_all = pairs(both), pairs(found_sizes), pairs(truth_sizes)
    return {"precision": tp / fp_all if fp_all else 1.0, "recall": tp / t_all if t_all else 1.0,
            "found_pairs": fp_all, "planted_pairs": t_all}


def planted_pairs(x: np.ndarray, planted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows in one planted group and its exact cosine: (rows i, rows j, cosine)."""
    members = np.flatnonzero(planted >= 0)
    members = members[np.argsort(planted[members], kind="stable")]
    g = planted[members]
    bounds = np.flatnonzero(np.r_[True, np.diff(g) != 0, True])
    ii, jj = [], []
    for s, e in zip(bounds[:-1], bounds[1:]):
        i, j = np.triu_indices(e - s, 1)
        ii.append(members[s:e][i])
        jj.append(members[s:e][j])
    ii, jj = np.concatenate(ii), np.concatenate(jj)
    return ii, jj, dd.exact_cosine(x[ii], x[jj])


def groups_of(n: int, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """Connected components of the edges (ii, jj) over n rows."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(coo_matrix((np.ones(len(ii)), (ii, jj)), shape=(n, n)), directed=False)[1]


def nemo_search(v: np.ndarray) -> tuple[np.ndarray, float]:
    """NeMo Curator's in-cluster step (torch, float32): the dense similarity matrix, its strict upper triangle
    (diagonal=1), the max over earlier rows of each column; returns (M, bytes of the matrix)."""
    import torch

    t = torch.from_numpy(v)
    s = t @ t.T
    tri = torch.triu(s, diagonal=1)
    m = torch.max(tri, dim=0)[0].numpy().astype(np.float64)
    m[0] = np.nan
    return m, float(s.numel() * 4)


def search_compare(x: np.ndarray, labels: np.ndarray, eps: float) -> dict:
    """Time both searches over every cluster in far-first order; count the rows whose decision differs."""
    k = int(labels.max()) + 1
    cen = np.zeros((k, x.shape[1]))
    np.add.at(cen, labels, x)
    cen = dd.unit_rows(cen.astype(np.float32))[0]
    order = dd.keep_order(labels, -dd.exact_cosine(x, cen[labels]), True)
    bounds = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0, True])
    ours = nemo = 0.0
    differ = removed = 0
    peak = 0.0
    for s, e in zip(bounds[:-1], bounds[1:]):
        v = np.ascontiguousarray(x[order[s:e]])
        t0 = time.perf_counter()
        _, m1 = dd.earlier_max(v)
        t1 = time.perf_counter()
        m2, mem = nemo_search(v)
        t2 = time.perf_counter()
        ours, nemo, peak = ours + t1 - t0, nemo + t2 - t1, max(peak, mem)
        r1, r2 = dd.removed(m1, eps), dd.removed(m2, eps)
        differ += int(np.sum(r1 != r2))
        removed += int(r1.sum())
    return {"ours_s": ours, "nemo_s": nemo, "removed": removed, "decisions_differ": differ,
            "nemo_largest_matrix_bytes": peak, "largest_cluster": int(np.max(np.diff(bounds)))}


def one_cluster(m: int, d: int, seed: int) -> dict:
    """Both searches on one cluster of m rows (in memory; NeMo's matrix is m² × 4 bytes)."""
    x, _ = make_corpus(m, d, 1, 0.1, 0.05, seed)
    t0 = time.perf_counter()
    _, m1 = dd.earlier_max(x)
    t1 = time.perf_counter()
    m2, mem = nemo_search(x)
    t2 = time.perf_counter()
    return {"m": m, "ours_s": t1 - t0, "nemo_s": t2 - t1, "nemo_matrix_bytes": mem,
            "ours_extra_bytes": float(x.nbytes + dd.BATCH ** 2 * 4 + 4096 * 1024 * 4),
            "max_abs_diff": float(np.nanmax(np.abs(m1 - m2)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--blobs", type=int, default=1000)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--dup-share", type=float, default=0.1)
    ap.add_argument("--near-share", type=float, default=0.05)
    ap.add_argument("--one-cluster", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "bench", "data"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    os.makedirs(a.data_dir, exist_ok=True)
    tag = f"dedup_{a.n}x{a.d}_b{a.blobs}_s{a.seed}_{a.dup_share}_{a.near_share}"
    emb, truth_path = os.path.join(a.data_dir, tag + ".parquet"), os.path.join(a.data_dir, tag + ".truth.npy")
    t0 = time.perf_counter()
    x, planted = make_corpus(a.n, a.d, a.blobs, a.dup_share, a.near_share, a.seed)
    if not (os.path.exists(emb) and os.path.exists(truth_path)):
        write_corpus(emb, x)
        np.save(truth_path, planted)
    print(f"corpus {a.n} × {a.d}: {int((planted >= 0).sum())} rows in planted groups "
          f"({time.perf_counter() - t0:.1f} s)")
    out = os.path.join(a.data_dir, tag + ".dedup.parquet")
    cmd = [sys.executable, "-m", "dataselect_cli", "dedup", emb, "--k", str(a.k), "--eps", str(a.eps), "-o", out,
           "-q", "--json"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit(r.stderr)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    summary = json.loads(r.stdout)
    print(f"dataselect dedup --k {a.k} --eps {a.eps}: {wall:.1f} s end to end, peak RSS {rss / 2**30:.2f} GiB; "
          f"{summary['duplicates']} duplicates, largest cluster {summary['largest_cluster']} rows")
    t = pq.read_table(out)
    labels = t.column("cluster").to_numpy().astype(np.int64)
    ids = t.column("id").to_numpy()
    dup_row = np.where(t.column("duplicate_of").is_valid().to_numpy(zero_copy_only=False),
                       t.column("duplicate_of").fill_null(0).to_numpy(), -1)
    sim = t.column("max_similarity").fill_null(np.nan).to_numpy()
    assert np.array_equal(ids, np.arange(a.n))
    quality = []
    ii, jj, cos = planted_pairs(x, planted)
    for e in sorted({a.eps, *(e for e in QUALITY_EPS if e < a.eps)}, reverse=True):
        root = _roots(dup_row, sim, e)
        # the planted pairs that are duplicates at ε by their own cosine (joined through planted pairs that are):
        # what an all-pairs search over the whole data would find of them, so the rest is what clustering loses
        close = cos >= 1 - e
        reach = groups_of(a.n, ii[close], jj[close])
        q = {"eps": e, **pair_scores(root, planted),
             "recall_of_reachable": pair_scores(root, np.where(np.bincount(reach)[reach] > 1, reach, -1))["recall"]}
        quality.append(q)
        print(f"  ε = {e:g}: pair precision {q['precision']:.4f}, recall {q['recall']:.4f} "
              f"({q['found_pairs']:.0f} pairs found, {q['planted_pairs']:.0f} planted); recall of the planted pairs "
              f"whose own cosine reaches 1 − ε: {q['recall_of_reachable']:.4f}")
    cmp = search_compare(x, labels, a.eps)
    print(f"search within the same {int(labels.max()) + 1} clusters: dataselect {cmp['ours_s']:.1f} s, NeMo's dense "
          f"triangle {cmp['nemo_s']:.1f} s (largest matrix {cmp['nemo_largest_matrix_bytes'] / 2**20:.0f} MiB); "
          f"{cmp['decisions_differ']} of {a.n} decisions differ")
    one = one_cluster(a.one_cluster, a.d, a.seed + 1) if a.one_cluster else None
    if one:
        print(f"one cluster of {one['m']} rows: dataselect {one['ours_s']:.1f} s "
              f"(~{one['ours_extra_bytes'] / 2**20:.0f} MiB), NeMo's dense {one['nemo_s']:.1f} s "
              f"({one['nemo_matrix_bytes'] / 2**20:.0f} MiB matrix); max |ΔM| {one['max_abs_diff']:.2g}")
    result = {"n": a.n, "d": a.d, "k": a.k, "eps": a.eps, "end_to_end_s": wall, "peak_rss_bytes": rss,
              "summary": {key: summary[key] for key in ("duplicates", "kept", "largest_cluster", "curve")},
              "quality": quality, "search": cmp, "one_cluster": one, "threads": os.cpu_count()}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


def _roots(dup_row: np.ndarray, sim: np.ndarray, eps: float) -> np.ndarray:
    """Each row's group at ε (connected components of the match edges with cosine >= 1 − ε)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(dup_row)
    edge = (dup_row >= 0) & (sim >= 1 - eps)
    rows = np.flatnonzero(edge)
    g = coo_matrix((np.ones(len(rows)), (rows, dup_row[rows])), shape=(n, n))
    return connected_components(g, directed=False)[1]


if __name__ == "__main__":
    main()
