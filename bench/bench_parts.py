"""Past one machine (issue 18): the client's memory with directory outputs, and a projection to 10⁹ rows.

(A) End to end on generated rows (``synthetic:N,D,0``, no disk for the input): ``cluster -o DIR/`` then
    ``score DIR/ -o SDIR/`` then ``sample SDIR/``, at each N of --sizes, with --engine local and with
    --engine dask --workers 2. Each command is a fresh process that prints its own peak RSS (VmHWM:
    the command's process only, not the Dask workers); the figure is the largest of the three steps.
    Prints seconds per million rows of each step and whether the client's peak stays within 10 %.
(B) The projection for 10⁹ rows × 384 dims, k = 1000, on 64 two-core workers (128 one-thread worker
    processes, as the LocalCluster here: one thread each), from costs measured here on one thread:
    the per-block cost of each pass (65,536 × 384 rows: Parquet decode, assignment, distances, part
    write, scoring, the design's passes), the client's serial work (the spilled id checks, the
    score scan, the k-means fit on 256·k rows) and the Dask scheduler's overhead per task.

    python bench/bench_parts.py                              # 10⁶ and 10⁷ rows, d = 16
    python bench/bench_parts.py --sizes 100000000 --d 4 --k 10 --engines local --skip-projection   # 10⁸ rows
    python bench/bench_parts.py --sizes 1000000 10000000 --memory-limit 128MB   # no decoded block kept
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PEAK = """
import sys, time
from dataselect_cli.cli import app
t0 = time.perf_counter()
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("PEAK", hwm * 1024, time.perf_counter() - t0, file=sys.stderr)
"""

BLOCK = 65_536
D_BIG, K_BIG, N_BIG, WORKERS, CORES = 384, 1000, 10**9, 64, 2


def step(args: list[str], env: dict) -> tuple[float, int]:
    """Run one command in a fresh process: (seconds inside the command, its peak RSS in bytes)."""
    r = subprocess.run([sys.executable, "-c", PEAK, *map(str, args)], capture_output=True, text=True, env=env,
                       cwd=str(ROOT))
    line = [x for x in r.stderr.splitlines() if x.startswith("PEAK")]
    if r.returncode != 0 or not line:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{r.stderr[-3000:]}")
    _, peak, secs = line[-1].split()
    return float(secs), int(peak)


def end_to_end(sizes: list[int], d: int, k: int, engines: list[str], work: Path, memory_limit: str | None = None
               ) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    rows = []
    for engine in engines:
        extra = ["--engine", "dask", "--workers", "2"] if engine == "dask" else []
        extra += ["--memory-limit", memory_limit] if memory_limit else []
        for n in sizes:
            c, s = work / f"c_{engine}_{n}", work / f"s_{engine}_{n}"
            out = {"engine": engine, "n": n}
            for name, args in (("cluster", ["cluster", f"synthetic:{n},{d},0", "-o", f"{c}/", "--k", k, "-q"]),
                               ("score", ["score", c, "--centers", f"{c}.centers.parquet", "-o", f"{s}/", "-q"]),
                               ("sample", ["sample", s, "--size", 1000, "-o", work / f"sel_{engine}_{n}.parquet",
                                           "-q"])):
                secs, peak = step([*args, *extra], env)
                out[name] = {"s": secs, "s_per_M": secs / (n / 1e6), "peak": peak}
                print(f"  {engine:<5} n={n:>11,} {name:<7} {secs:8.1f} s  {secs / (n / 1e6):7.2f} s/M rows  "
                      f"client peak {peak / 2**20:7.1f} MiB", flush=True)
            out["peak"] = max(out[x]["peak"] for x in ("cluster", "score", "sample"))
            rows.append(out)
            for p in (c, s):
                subprocess.run(["rm", "-rf", str(p)])
    return rows


def _time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def block_costs(work: Path) -> dict[str, float]:
    """Seconds per 65,536 × 384 block of each pass, on one thread (as one worker process)."""
    from threadpoolctl import threadpool_limits

    import faiss
    import pyarrow as pa

    from dataselect_cli import io, parts, synthetic
    from dataselect_cli.cluster import assign_block, sink_block
    from dataselect_cli.dataset import EmbeddingSource, TableSource
    from dataselect_cli.pqdataset import ParquetDataset
    from dataselect_cli.designs import get as design
    from dataselect_cli.methods.sensitivity import Sensitivity, State

    faiss.omp_set_num_threads(1)
    x = synthetic.rows(0, BLOCK, BLOCK, D_BIG, 0, 16)
    emb = work / "block.parquet"
    io.write_table(pa.table({"id": np.arange(BLOCK, dtype=np.int64), "embedding": io.embedding_array(x)}), emb, {})
    src = EmbeddingSource(ParquetDataset(str(emb)))
    rng = np.random.default_rng(0)
    centroids = x[rng.choice(BLOCK, K_BIG, replace=False)] + 0.01
    centers = x[:K_BIG].copy()
    folder = work / "parts"
    folder.mkdir(exist_ok=True)
    sink = parts.Sink(str(folder), {}, ParquetDataset(str(emb)))
    out: dict[str, float] = {}
    with threadpool_limits(1):
        out["read"] = _time(lambda: list(src.iter_blocks(0, 1, BLOCK)))
        out["assign"] = _time(lambda: assign_block(0, x, centroids=centroids, block_rows=BLOCK, keep=False))
        out["assign_write"] = _time(lambda: sink_block(0, x, centroids=centroids,
                                                       center_index=np.arange(K_BIG, dtype=np.int64),
                                                       centers=centers, z=2, block_rows=BLOCK, sink=sink))
        labels = rng.integers(0, K_BIG, BLOCK).astype(np.int32)
        cl = work / "clusters.parquet"
        io.write_table(pa.table({"id": np.arange(BLOCK, dtype=np.int64), "cluster": labels,
                                 "distance": rng.random(BLOCK).astype(np.float32)}), cl, {})
        cds = ParquetDataset(str(cl))
        csrc = TableSource(cds, ["cluster", "distance"], arrow=())
        method = Sensitivity()
        state = State(np.ones(K_BIG), np.full(K_BIG, 0.5), 2)
        ssink = parts.Sink(str(folder), {}, cds)

        def score_block():
            from dataselect_cli.steps.score import write_block
            for b, cols in csrc.iter_blocks(0, 1, BLOCK):
                write_block(b, cols, method=method, state=state, sums=[(1.0,)], n=BLOCK, block_rows=BLOCK, sink=ssink)

        out["score_write"] = _time(score_block)
        sc = work / "scores.parquet"
        io.write_table(pa.table({"id": np.arange(BLOCK, dtype=np.int64), "cluster": labels,
                                 "mass": np.ones(BLOCK), "prob": np.full(BLOCK, 1 / BLOCK)}), sc, {})
        ssrc = TableSource(ParquetDataset(str(sc)), ["id", "cluster", "mass", "prob"])
        iid = design("iid")

        def sample_passes():
            stats = [iid.check_block(b, cols, size=1000, n=BLOCK) for b, cols in ssrc.iter_blocks(0, 1, BLOCK)]
            plan = iid.plan(stats, 1000, 0, None)
            for b, cols in ssrc.iter_blocks(0, 1, BLOCK):
                iid.select_block(b, cols, plan=plan, block_rows=BLOCK)

        out["sample_2_passes"] = _time(sample_passes)
    return out


def client_costs(work: Path) -> dict[str, float]:
    """The client's serial work: seconds per million rows of the spilled id check and of the score scan, and the
    k-means fit on 256·k × 384 rows (k = 1000), with the machine's threads."""
    import pyarrow as pa

    from dataselect_cli import io, synthetic
    from dataselect_cli.cluster import KMeansOptions, kmeans
    from dataselect_cli.pqdataset import ParquetDataset
    from dataselect_cli.steps.score import scan
    from dataselect_cli.uniqueids import check_unique_ids_spilled

    n = 4_000_000
    rng = np.random.default_rng(1)
    path = work / "cl4m.parquet"
    io.write_table(pa.table({"id": np.arange(n, dtype=np.int64) * 7, "cluster": rng.integers(0, K_BIG, n).astype(
        np.int32), "distance": rng.random(n).astype(np.float32)}), path, {})
    ds = ParquetDataset(str(path))
    t0 = time.perf_counter()
    check_unique_ids_spilled((t.column(0).combine_chunks() for t in ds.iter_tables(["id"], 0, n, BLOCK)), n,
                             str(work / "spill"), str(path))
    idcheck = (time.perf_counter() - t0) / (n / 1e6)
    ct = pa.table({"cluster": np.arange(K_BIG, dtype=np.int32), "center_id": np.arange(K_BIG, dtype=np.int64) * 7,
                   "size": np.ones(K_BIG, np.int64), "cost": np.ones(K_BIG)})
    t0 = time.perf_counter()
    scan(ds, ct, {"summary": {"z": 2}}, None, None)
    scan_s = (time.perf_counter() - t0) / (n / 1e6)
    x = synthetic.rows(0, 256 * K_BIG, 256 * K_BIG, D_BIG, 0, 64)
    t0 = time.perf_counter()
    kmeans(x, K_BIG, **asdict(KMeansOptions()))
    fit = time.perf_counter() - t0
    return {"idcheck_s_per_M": idcheck, "scan_s_per_M": scan_s, "fit_s": fit}


def task_overhead() -> float:
    """Seconds of Dask scheduling per task: 2,000 no-op tasks on a 2-worker LocalCluster, gathered."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.CRITICAL) as lc, \
            Client(lc) as client:
        client.gather(client.map(int, range(100), pure=False))  # warm up
        m = 2000
        t0 = time.perf_counter()
        client.gather(client.map(int, range(m), pure=False))
        return (time.perf_counter() - t0) / m


def project(block: dict[str, float], client: dict[str, float], task_s: float) -> dict[str, float]:
    """Wall seconds of cluster → score → sample on N_BIG × D_BIG, k = K_BIG, on WORKERS × CORES one-thread
    processes."""
    procs = WORKERS * CORES
    blocks = -(-N_BIG // BLOCK)
    waves = -(-blocks // procs)  # blocks each worker process computes, one after the other
    tasks = 4 * procs  # --partitions default: 4 per worker process
    m = N_BIG / 1e6
    # fit rows (read), assign (read + assign), last pass (read + assign + distances + write)
    cluster_workers = waves * (3 * block["read"] + block["assign"] + block["assign_write"])
    score_workers = waves * 2 * block["score_write"]  # totals pass, then score + write (the upper bound: both write)
    sample_workers = waves * block["sample_2_passes"]
    out = {
        "cluster: client id check": m * client["idcheck_s_per_M"],
        "cluster: k-means fit (client)": client["fit_s"],
        "cluster: 3 passes on the workers": cluster_workers,
        "score: client id check + scan": m * (client["idcheck_s_per_M"] + client["scan_s_per_M"]),
        "score: 2 passes on the workers": score_workers,
        "sample: 2 passes on the workers": sample_workers,
        "Dask scheduling (7 passes)": 7 * tasks * task_s,
    }
    out["total"] = sum(out.values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--engines", nargs="+", default=["local", "dask"])
    ap.add_argument("--memory-limit", default=None,
                    help="passed to every command (default: the tool's); on the local engine it bounds the decoded "
                         "blocks that cluster keeps between passes, the one part of the client's memory that the "
                         "limit, not n, decides")
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument("--skip-projection", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res: dict = {"args": vars(args) | {"json": str(args.json)}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_end_to_end:
            print(f"(A) end to end, synthetic:N,{args.d},0, k = {args.k}")
            res["runs"] = end_to_end(args.sizes, args.d, args.k, args.engines, work, args.memory_limit)
            for engine in args.engines:
                peaks = [r["peak"] for r in res["runs"] if r["engine"] == engine]
                spread = max(peaks) / min(peaks) - 1
                print(f"  {engine}: client peak {min(peaks) / 2**20:.1f}–{max(peaks) / 2**20:.1f} MiB over "
                      f"n = {min(args.sizes):,}–{max(args.sizes):,}: {100 * spread:.1f} % apart "
                      f"({'within' if spread <= 0.10 else 'NOT within'} 10 %)")
        if args.skip_projection:
            if args.json:
                args.json.write_text(json.dumps(res, indent=2, default=str))
            return 0
        print(f"(B) costs for the projection ({BLOCK:,} × {D_BIG} blocks, k = {K_BIG}, one thread)", flush=True)
        res["block_s"] = block_costs(work)
        for key, v in res["block_s"].items():
            print(f"  per block, {key:<16} {v:8.3f} s")
        res["client"] = client_costs(work)
        print(f"  client id check {res['client']['idcheck_s_per_M']:.3f} s/M ids, score scan "
              f"{res['client']['scan_s_per_M']:.3f} s/M rows, k-means fit on {256 * K_BIG:,} × {D_BIG} "
              f"{res['client']['fit_s']:.1f} s", flush=True)
        res["task_s"] = task_overhead()
        print(f"  Dask per task {1000 * res['task_s']:.2f} ms")
    res["projection"] = project(res["block_s"], res["client"], res["task_s"])
    print(f"(B) projection: {N_BIG:.0e} rows × {D_BIG}, k = {K_BIG}, {WORKERS} workers × {CORES} cores")
    for key, v in res["projection"].items():
        print(f"  {key:<36} {v / 60:8.1f} min")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
