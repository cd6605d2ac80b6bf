"""Streaming near the I/O limit (issue 17, item 2): streamed `sample --k` and `cluster` against a bare read.

Prints, from one run:

(a) the baseline, in a fresh process: a bare pyarrow read of the file (``ParquetFile.iter_batches`` over
    ``id`` and ``embedding``, each batch's vectors copied into one float32 matrix; the faster of a read with
    pyarrow's threads and one without)
    and a bare faiss assignment of every row (``IndexFlatL2`` of k rows, ``search(x, 1)``);
(b) the one-step ``dataselect sample FILE --k K --size 10000`` and ``dataselect cluster FILE --k K``, each in
    a fresh process, streamed (``--memory-limit`` below the matrix: every pass re-reads the file), and their
    ratio to (a) (aim: <= 2);
(c) where each run's time goes, per pass (stage): the stage's wall time and the seconds spent in
    read/decode (in the read-ahead thread, overlapping the pass's compute), the value checks, the
    assignment (faiss top-2 search and exact distances), the exact distances to the center rows, k-means,
    writing; hashing the input (SHA-256, in its own background thread) and the time the run waited for it.

The tool runs are instrumented by wrapping those functions (a timer around each call; the results are
untouched); writing the decoded blocks to the spill (in the first pass) and reading them back (in the later
passes, in the read-ahead thread) are counted apart. With ``--without-spill`` each repeat also runs both
commands with ``--scratch none`` (every later pass decodes Parquet again, as before the spill). With
``--repeats R`` the runs alternate R times; every ratio is against the baseline of the same repeat, in wall
seconds and in CPU seconds (all threads; steadier than wall time on a shared machine, where the share of the
cores a process gets moves from minute to minute). Data is bench_scale.py's (a 200-blob mixture, row groups of
65,536 rows, zstd), made once into bench/data and reused; where only bench_sample.py's file of the same shape
is there (also 65,536-row row groups, zstd), that one is used instead, or the file ``--data`` names.

    python bench/bench_stream.py                              # 1M × 384, k = 100, --memory-limit 1GB, 2 repeats
    python bench/bench_stream.py --n 200000 --repeats 1       # a quicker look
    python bench/bench_stream.py --data bench/data/emb_1000000x384.parquet --without-spill   # a file made already
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_sample import run_child  # noqa: E402
from bench_scale import make_data  # noqa: E402

AIM = 2.0
HASH_AIM = 0.10

BASELINE = r"""
import json, resource, sys, time
import numpy as np, pyarrow.parquet as pq, faiss
path, k = sys.argv[1], int(sys.argv[2])

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return r.ru_utime + r.ru_stime

pf = pq.ParquetFile(path)
n, d = pf.metadata.num_rows, pf.schema_arrow.field("embedding").type.list_size
x = np.empty((n, d), dtype=np.float32)
reads, read_cpus = [], []
for threads in (True, False):  # the faster of the two counts: pyarrow's threads help on idle cores only
    t0, c0 = time.perf_counter(), cpu()
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=["id", "embedding"], use_threads=threads):
        x[row : row + batch.num_rows] = batch.column(1).values.to_numpy().reshape(-1, d)
        row += batch.num_rows
    reads.append(time.perf_counter() - t0)
    read_cpus.append(cpu() - c0)
t1, c1 = time.perf_counter(), cpu()
index = faiss.IndexFlatL2(d)
index.add(x[np.sort(np.random.default_rng(0).choice(n, k, replace=False))])
index.search(x, 1)
t2, c2 = time.perf_counter(), cpu()
print(json.dumps({"read_s": min(reads), "reads_s": reads, "assign_s": t2 - t1, "read_cpu_s": min(read_cpus),
                  "assign_cpu_s": c2 - c1}))
"""

#: The tool, in process, with timers around the functions of each component (results untouched).
PROFILE = r"""
import json, runpy, sys, threading, time
from contextlib import contextmanager
T0 = time.perf_counter()
out_json, argv = sys.argv[1], sys.argv[2:]
from dataselect_cli import cluster, dataset, fingerprints, io, pqdataset
from dataselect_cli.cli import output
stage = ["start-up, opening, ids"]
stages, spent, waits = [], {}, []

def add(comp, dt):
    key = (stage[0], comp)
    spent[key] = spent.get(key, 0.0) + dt

def timed(comp, fn):
    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            add(comp, time.perf_counter() - t)
    return wrapper

def timed_iter(comp, fn):
    def wrapper(*a, **kw):
        it = fn(*a, **kw)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                add(comp, time.perf_counter() - t)
                return
            add(comp, time.perf_counter() - t)
            yield item
    return wrapper

hashed = []
def fingerprint(path, _fp=io.fingerprint):
    t = time.perf_counter()
    r = _fp(path)
    hashed.append(time.perf_counter() - t)
    return r

io.fingerprint = fingerprint
pqdataset.ParquetDataset.iter_batches = timed_iter("read/decode", pqdataset.ParquetDataset.iter_batches)
io.list_block = timed("read/decode", io.list_block)
dataset.first_bad_value = timed("checks", dataset.first_bad_value)
io.check_unique_ids = timed("checks", io.check_unique_ids)
cluster.assign = timed("assign (faiss + exact)", cluster.assign)
cluster.row_distance = timed("distances to center rows", cluster.row_distance)
cluster.kmeans_plusplus = timed("k-means", cluster.kmeans_plusplus)
cluster._lloyd = timed("k-means", cluster._lloyd)
io.write_table = timed("write", io.write_table)
if hasattr(dataset, "Spill"):
    dataset.Spill.write = timed("spill write", dataset.Spill.write)
    dataset.Spill.read = timed("spill read", dataset.Spill.read)
if hasattr(fingerprints, "PendingFingerprints"):
    _done = fingerprints.PendingFingerprints._done
    def done(self):
        t = time.perf_counter()
        try:
            return _done(self)
        finally:
            waits.append(time.perf_counter() - t)
    fingerprints.PendingFingerprints._done = done
else:  # the code before the fingerprints were hashed in the background: the run waits for every hash
    waits = hashed

@contextmanager
def progress(self, description, total=None, unit="blocks"):
    before, stage[0] = stage[0], description
    t = time.perf_counter()
    try:
        yield lambda k: None
    finally:
        stages.append((description, time.perf_counter() - t, t - T0))
        stage[0] = "between passes (score, draw, write)"

output.Out.progress = progress
sys.argv = ["dataselect", *argv]
try:
    runpy.run_module("dataselect_cli", run_name="__main__")
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
json.dump({"wall_s": time.perf_counter() - T0, "stages": stages,
           "spent": [[s, c, v] for (s, c), v in spent.items()], "hash_s": sum(hashed), "hash_wait_s": sum(waits)},
          open(out_json, "w"))
"""

COMPONENTS = ("read/decode", "spill write", "spill read", "checks", "assign (faiss + exact)",
              "distances to center rows", "k-means", "write")


def profile_table(prof: dict) -> list[str]:
    """Markdown rows: per stage its wall seconds and the seconds of each component spent in it."""
    spent: dict[tuple[str, str], float] = {(s, c): v for s, c, v in prof["spent"]}
    walls: dict[str, float] = {}
    for name, secs, _start in prof["stages"]:
        walls[name] = walls.get(name, 0.0) + secs
    first = min((start for _, _, start in prof["stages"]), default=prof["wall_s"])
    walls = {"start-up, opening, ids": first, **walls,
             "between passes (score, draw, write)": prof["wall_s"] - first - sum(walls.values())}
    rows = ["| stage | wall s | " + " | ".join(COMPONENTS) + " |", "|---" * (len(COMPONENTS) + 2) + "|"]
    for name, wall in walls.items():
        cells = [f"{spent[(name, c)]:.2f}" if spent.get((name, c), 0) >= 0.005 else "" for c in COMPONENTS]
        rows.append(f"| {name} | {wall:.2f} | " + " | ".join(cells) + " |")
    rows.append(f"| **whole run** | **{prof['wall_s']:.2f}** | "
                + " | ".join(f"{sum(v for (s, c), v in spent.items() if c == comp):.2f}" for comp in COMPONENTS)
                + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--memory-limit", default="1GB", help="below the matrix, so that every pass streams")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--data", type=Path, default=None, help="an embeddings file made already (id, embedding), used "
                    "as it is instead of bench_scale.py's (--n and --d are then read from it)")
    ap.add_argument("--without-spill", action="store_true", help="also run each command with --scratch none")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.data is not None:
        data, secs = args.data, 0.0
        args.n = pq.ParquetFile(data).metadata.num_rows
        args.d = pq.ParquetFile(data).schema_arrow.field("embedding").type.list_size
    else:
        data = args.data_dir / f"scale_{args.n}x{args.d}.parquet"
        other = args.data_dir / f"emb_{args.n}x{args.d}.parquet"  # bench_sample.py's: same layout, made already
        if not data.exists() and other.exists():
            data = other
        secs = make_data(data, args.n, args.d) if data != other else 0.0
    print(f"data {data.name} ({args.n} × {args.d}): {f'made in {secs:.0f} s' if secs else 'reused'} "
          f"({data.stat().st_size / 2**30:.2f} GiB)", flush=True)
    py = sys.executable
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(dir=args.data_dir) as work:
        w = Path(work)
        common = ["--k", str(args.k), "--memory-limit", args.memory_limit, "-q"]
        tools = {"sample": ["sample", str(data), "--size", "10000", "-o", str(w / "s.parquet"), *common],
                 "cluster": ["cluster", str(data), "-o", str(w / "c.parquet"), *common]}
        if args.without_spill:
            tools.update({f"{name} --scratch none": [*cmd, "--scratch", "none"] for name, cmd in list(tools.items())})
        for r in range(args.repeats):
            run: dict = {}
            b = run_child([py, "-c", BASELINE, str(data), str(args.k)], work)
            run["baseline"] = {**json.loads(b["stdout"]), "wall_s": b["wall_s"]}
            base = run["baseline"]["read_s"] + run["baseline"]["assign_s"]
            base_cpu = run["baseline"]["read_cpu_s"] + run["baseline"]["assign_cpu_s"]
            print(f"repeat {r + 1}: baseline read {run['baseline']['read_s']:.2f} s + assign "
                  f"{run['baseline']['assign_s']:.2f} s = {base:.2f} s (CPU {base_cpu:.2f} s)", flush=True)
            for name, cmd in tools.items():
                for f in w.glob("*.parquet"):
                    f.unlink()
                res = run_child([py, "-c", PROFILE, str(w / "prof.json"), *cmd], work)
                prof = json.loads((w / "prof.json").read_text())
                run[name] = {"wall_s": res["wall_s"], "cpu_s": res["user_s"] + res["sys_s"],
                             "peak_rss_bytes": res["peak_rss_bytes"], "profile": prof}
                print(f"          {name:<8} {res['wall_s']:6.2f} s = {res['wall_s'] / base:.2f}× the baseline "
                      f"(CPU {run[name]['cpu_s']:.2f} s = {run[name]['cpu_s'] / base_cpu:.2f}×); "
                      f"hashing {prof['hash_s']:.2f} s in the background, waited {prof['hash_wait_s']:.2f} s; "
                      f"peak RSS {res['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
            runs.append(run)
    print()
    for name in tools:
        ratios = [run[name]["wall_s"] / (run["baseline"]["read_s"] + run["baseline"]["assign_s"]) for run in runs]
        waits = [run[name]["profile"]["hash_wait_s"] / run[name]["wall_s"] for run in runs]
        cpus = [run[name]["cpu_s"] / (run["baseline"]["read_cpu_s"] + run["baseline"]["assign_cpu_s"]) for run in runs]
        med = statistics.median(ratios)
        print(f"{name}: {', '.join(f'{x:.2f}×' for x in ratios)} the baseline (median {med:.2f}×; aim <= {AIM}: "
              f"{'PASS' if med <= AIM else 'MISS'}); CPU seconds {', '.join(f'{x:.2f}×' for x in cpus)}; "
              "waiting for the input's hash: "
              f"{', '.join(f'{100 * x:.1f} %' for x in waits)} of the run (aim <= {100 * HASH_AIM:.0f} %)")
    for name in tools:
        print(f"\nwhere the time of `{name}` goes (last repeat; seconds; read/decode runs in the read-ahead "
              f"thread, overlapping the compute):")
        print("\n".join(profile_table(runs[-1][name]["profile"])))
        prof = runs[-1][name]["profile"]
        print(f"hashing the input: {prof['hash_s']:.2f} s in a background thread; the run waited "
              f"{prof['hash_wait_s']:.2f} s for it")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
