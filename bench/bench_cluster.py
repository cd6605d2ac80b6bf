"""Clustering quality at faiss speed: dataselect's k-means against scikit-learn and faiss's defaults.

In one run, on the same in-memory float32 array, each method is timed from the array to the final
assignment of every row, and its cost Σ min_c ‖x − c‖² is computed on all rows:

* ``dataselect``      dataselect_cli.cluster.kmeans (its defaults) + assignment
* ``faiss-default``   faiss.Kmeans(d, k, niter=25).train(x) + search: random seeding, and a silent
                      training sample of 256·k rows (today's faiss defaults)
* ``sklearn-kmeans``  sklearn.cluster.KMeans(k, n_init=1): greedy k-means++ on all rows, Lloyd to tol 1e-4
                      (scikit-learn's tol: on the centers' movement, not the objective)
* ``sklearn-minibatch`` sklearn.cluster.MiniBatchKMeans(k, n_init=1, batch_size=4096)

Data: (a) synthetic 200,000 × 384 float32 from 1,000 Gaussian blobs of unequal size and spread
(more blobs than k = 200), and ``synthetic150``: the same mixture at 150 rows per centroid (150·k rows,
where the fit sample is the whole set: issue 17, item 4); (b) real embedding sets: paragraphs of the
docstrings of the Python standard library on this machine (a text corpus every Python ships), embedded
with dataselect's own encoders: 100,000 with the hashed n-grams (256 dims), 30,000 with all-MiniLM-L6-v2 (384 dims).

``--sweep`` also runs dataselect's k-means under other settings (seeding rows, training rows,
refinement, the warm start's iterations on the fit rows), the measurements behind its defaults.

Usage: python bench/bench_cluster.py [--n 200000] [--k 200] [--data synthetic,synthetic150,hash,minilm] [--sweep]
       [--json OUT]
Needs scikit-learn (pip install 'dataselect[bench]').
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from stdlib_text import docstring_paragraphs  # noqa: E402 - beside this file

from dataselect_cli.cluster import KMeansOptions, assign, kmeans  # noqa: E402

TARGET_COST = 1.02       # × scikit-learn KMeans's cost
TARGET_TIME_SKL = 0.10   # × scikit-learn KMeans's time
TARGET_TIME_FAISS = 1.5  # × faiss defaults' time


def synthetic(n: int, d: int, blobs: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(blobs, d)).astype(np.float32)
    share = rng.dirichlet(np.full(blobs, 2.0))
    spread = rng.uniform(0.3, 1.0, blobs).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 50_000):
        m = min(50_000, n - s)
        lab = rng.choice(blobs, size=m, p=share)
        x[s : s + m] = centers[lab] + rng.normal(size=(m, d)).astype(np.float32) * spread[lab, None]
    return x


def stdlib_texts(limit: int) -> list[str]:
    """The first ``limit`` docstring paragraphs of the standard library's .py files, deduplicated, in path order."""
    seen, texts = set(), []
    for _, para in docstring_paragraphs():
        if para not in seen:
            seen.add(para)
            texts.append(para)
            if len(texts) >= limit:
                break
    return texts


def real(limit: int, model: str) -> tuple[np.ndarray, str]:
    """Embed the stdlib docstrings with dataselect's own encoder (``minilm`` or ``hash``)."""
    import pyarrow as pa

    from dataselect_cli.encoders import make_encoder

    cache = os.path.join(os.path.dirname(__file__), "data", f"stdlib_{model}_{limit}.npy")
    if os.path.exists(cache):  # embedding 30,000 docstrings with MiniLM takes minutes on 2 cores
        x = np.load(cache)
        return x, f"{len(x)} Python stdlib docstrings, {model} embeddings"
    texts = pa.array(stdlib_texts(limit))
    t0 = time.perf_counter()
    enc = make_encoder(model, None, 0)
    enc.observe(texts)
    enc.fit(len(texts))
    x = enc.encode(texts)
    print(f"embedded {len(texts)} docstrings with {model} in {time.perf_counter() - t0:.0f} s", flush=True)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    np.save(cache, x)
    return x, f"{len(texts)} Python stdlib docstrings, {model} embeddings"


def cost(x: np.ndarray, centroids: np.ndarray) -> float:
    _, d2 = assign(x, np.ascontiguousarray(centroids, dtype=np.float32))
    return float(d2.astype(np.float64).sum())


def timed(fn):
    t0 = time.perf_counter()
    centroids = fn()
    return time.perf_counter() - t0, centroids


def run_dataselect(x, k, seed, opt=KMeansOptions()):
    def fn():
        c, _ = kmeans(x, k, seed=seed, **vars(opt))
        assign(x, c)  # the final assignment every method needs
        return c
    return timed(fn)


def run_faiss_default(x, k, seed):
    def fn():
        km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed, verbose=False)
        km.train(x)
        km.index.search(x, 1)
        return km.centroids
    return timed(fn)


def run_sklearn(x, k, seed, minibatch=False):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    def fn():
        est = (MiniBatchKMeans(k, n_init=1, batch_size=4096, random_state=seed) if minibatch
               else KMeans(k, n_init=1, random_state=seed))
        est.fit(x)
        return est.cluster_centers_.astype(np.float32)
    return timed(fn)


def sweep_options(k: int) -> dict[str, KMeansOptions]:
    return {
        "random seeding (faiss), Lloyd on 256·k": KMeansOptions(init="random"),
        "afkmc2 seeding (faiss), Lloyd on 256·k": KMeansOptions(init="afkmc2"),
        "k-means++ on 25·k rows": KMeansOptions(init_sample=25 * k),
        "k-means++ on 50·k rows": KMeansOptions(init_sample=50 * k),
        "k-means++ on 100·k rows": KMeansOptions(init_sample=100 * k),
        "k-means++ on all Lloyd rows": KMeansOptions(init_sample="all"),
        "default (k-means++ on ¼ of the Lloyd rows, warm start)": KMeansOptions(),
        "default, --no-warm-start (the former default)": KMeansOptions(warm_start=False),
        "default, warm start then at most 0 on the fit rows": KMeansOptions(fit_niter=0),
        "default, warm start then at most 1 on the fit rows": KMeansOptions(fit_niter=1),
        "default, warm start then at most 2 on the fit rows": KMeansOptions(fit_niter=2),
        "default, warm start then at most 4 on the fit rows": KMeansOptions(fit_niter=4),
        "default, Lloyd tol 1e-4 (the default before the early stop)": KMeansOptions(tol=1e-4),
        "default, Lloyd tol 3e-3": KMeansOptions(tol=3e-3),
        "default, Lloyd tol 0 (all 25 iterations)": KMeansOptions(tol=0.0),
        "default + 2 refinement iterations on all rows": KMeansOptions(refine=2),
        "default, Lloyd on all rows": KMeansOptions(fit_sample="all"),
    }


def bench(name: str, x: np.ndarray, k: int, seed: int, do_sweep: bool) -> dict:
    print(f"\n== {name}: n = {len(x)}, d = {x.shape[1]}, k = {k}", flush=True)
    rows = {}
    for label, fn in (("sklearn-kmeans", lambda: run_sklearn(x, k, seed)),
                      ("sklearn-minibatch", lambda: run_sklearn(x, k, seed, minibatch=True)),
                      ("faiss-default", lambda: run_faiss_default(x, k, seed)),
                      ("dataselect", lambda: run_dataselect(x, k, seed))):
        t, c = fn()
        rows[label] = {"time": t, "cost": cost(x, c)}
        print(f"  {label:<18} {t:8.2f} s   cost {rows[label]['cost']:.6g}", flush=True)
    if do_sweep:
        for label, opt in sweep_options(k).items():
            t, c = run_dataselect(x, k, seed, opt)
            rows[f"sweep: {label}"] = {"time": t, "cost": cost(x, c)}
    ref, fd = rows["sklearn-kmeans"], rows["faiss-default"]
    print(f"\n  {'method':<52} {'time s':>8} {'cost/skl':>9} {'time/skl':>9} {'time/faiss':>10}")
    for label, r in rows.items():
        r["cost_vs_sklearn"] = r["cost"] / ref["cost"]
        r["time_vs_sklearn"] = r["time"] / ref["time"]
        r["time_vs_faiss_default"] = r["time"] / fd["time"]
        print(f"  {label:<52} {r['time']:8.2f} {r['cost_vs_sklearn']:9.4f} {r['time_vs_sklearn']:9.3f} "
              f"{r['time_vs_faiss_default']:10.2f}")
    ds = rows["dataselect"]
    checks = {
        f"cost ≤ {TARGET_COST}× sklearn KMeans": ds["cost_vs_sklearn"] <= TARGET_COST,
        f"time ≤ {TARGET_TIME_SKL}× sklearn KMeans": ds["time_vs_sklearn"] <= TARGET_TIME_SKL,
        f"time ≤ {TARGET_TIME_FAISS}× faiss defaults": ds["time_vs_faiss_default"] <= TARGET_TIME_FAISS,
    }
    for what, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  dataselect {what}")
    return {"data": name, "n": len(x), "d": x.shape[1], "k": k, "rows": rows, "checks": checks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--blobs", type=int, default=1000)
    ap.add_argument("--minilm-limit", type=int, default=30_000, help="docstrings for the MiniLM set (embedding "
                    "them takes ~6 min on 2 cores the first time; cached in bench/data)")
    ap.add_argument("--hash-limit", type=int, default=100_000, help="docstrings for the hashed n-gram set")
    ap.add_argument("--data", default="synthetic,synthetic150,hash,minilm", help="comma-separated: synthetic, "
                    "synthetic150 (the same mixture, 150·k rows), hash (stdlib "
                    "docstrings, hashed n-grams), minilm (the same, all-MiniLM-L6-v2; needs the [text] extra)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    results = []
    for which in args.data.split(","):
        if which in ("synthetic", "synthetic150"):
            n = args.n if which == "synthetic" else 150 * args.k
            x = synthetic(n, args.d, args.blobs, args.seed)
            name = f"synthetic {args.blobs} blobs" + (", 150 rows per centroid" if n == 150 * args.k else "")
        else:
            x, name = real(args.minilm_limit if which == "minilm" else args.hash_limit, which)
            x = np.ascontiguousarray(x, dtype=np.float32)
        results.append(bench(name, x, args.k, args.seed, args.sweep))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
