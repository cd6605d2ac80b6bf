"""The in-memory read of the embeddings (issue 17, item 5): where its time goes, and the threaded read against
one thread, a bare pyarrow read and ``np.load`` of the same matrix.

Prints, from one run, each measurement in its own fresh process (so that each pays the first touch of its
matrix's pages and its own allocator's warm-up, as a run of the tool does):

(a) ``profile``: the read of :class:`~dataselect_cli.dataset.EmbeddingSource` done by hand on one thread,
    stage by stage: reading and checking the ids, decoding the batches (pyarrow), turning each batch into a
    float32 block (``io.list_block``), checking its values (``_checks.first_bad_value``), copying it into the
    matrix (the first touch of the matrix's pages falls here), and apart the SHA-256 of the file (a run hashes it
    in a background thread while it reads);
(b) ``read``: the tool's read as a run does it (the ids, then ``EmbeddingSource.take(None, ...)``) on its default
    threads (:func:`~dataselect_cli.dataset.read_threads`) and on one thread (``--threads`` adds others), with
    the input hashed beside it as a run does (:class:`~dataselect_cli.fingerprints.PendingFingerprints`); with
    ``--compare CHECKOUT`` also the same read by another checkout of the tool (e.g. the code before a change);
(c) baselines: a bare pyarrow read (``ParquetFile.iter_batches`` of the embedding column in pyarrow's default
    batches of 65,536 rows, one thread, with the tool's reader settings, each batch's values copied into one
    preallocated float32 matrix, nothing checked) and ``np.load`` of the
    ``.npy`` beside the file, when there is one (bench_sample.py writes both).

Each process reports wall seconds, CPU seconds (user and system, all threads) and the growth of its peak RSS
over the matrix. With ``--repeats R`` the runs alternate R times and the medians are printed. The machine this
was written on had 2 cores shared with other jobs: CPU seconds are steadier than wall seconds there, and the
first touch of a new 1.5 GB matrix took 0.2–5.7 s of system time depending on what the machine had freed
before (huge pages backed by the host or not).

    python bench/bench_read.py                                     # bench/data/emb_1000000x384.parquet
    python bench/bench_read.py --data other.parquet --repeats 1 --threads 2,4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import json, resource, sys, time
import numpy as np

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return r.ru_utime, r.ru_stime

def kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

mode, path = sys.argv[1], sys.argv[2]
import pyarrow as pa, pyarrow.parquet as pq
from dataselect_cli import dataset, fingerprints, io, pqdataset
from dataselect_cli._checks import first_bad_value
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) from here on
before = kib("VmRSS:")
(u0, s0), t0 = cpu(), time.perf_counter()
stages = {}
if mode == "npy":
    x = np.load(path)
elif mode == "pyarrow":
    pf = pq.ParquetFile(path, buffer_size=io.READ_BUFFER, pre_buffer=False)  # the tool's reader settings
    d = pf.schema_arrow.field("embedding").type.list_size
    x = np.empty((pf.metadata.num_rows, d), dtype=np.float32)
    row = 0
    for batch in pf.iter_batches(columns=["embedding"], use_threads=False):
        x[row : row + batch.num_rows] = batch.column(0).values.to_numpy().reshape(-1, d)
        row += batch.num_rows
elif mode == "profile":
    def timed(name, fn, *a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - t
        return out
    ds = pqdataset.ParquetDataset(path, "embeddings")
    timed("ids: read and check", io.read_ids, ds, path)
    src = dataset.EmbeddingSource(ds)
    x = np.empty((ds.n, src.d), dtype=np.float32)
    batches, row = ds.iter_batches([src.column], 0, ds.n, dataset.decode_rows(src.d)), 0
    while (batch := timed("decode (pyarrow)", next, batches, None)) is not None:
        block = timed("to float32 (io.list_block)", io.list_block, batch.column(0), path, src.column, row, src.d)[0]
        timed("check values", first_bad_value, block)
        timed("copy into the matrix (first touch)", x[row : row + len(block)].__setitem__, Ellipsis, block)
        row += len(block)
    timed("SHA-256 of the file (a background thread in a run)", io.fingerprint, path)
else:  # read:THREADS (0: the default)
    threads = int(mode.split(":")[1]) or None
    ds = pqdataset.ParquetDataset(path, "embeddings")
    pending = fingerprints.PendingFingerprints({"embeddings": ds}, later=("embeddings",))
    ids = io.read_ids(ds, path)
    src = dataset.EmbeddingSource(ds)
    x = src.take(None, 65536) if threads is None else src.take(None, 65536, threads=threads)
    stages["read"] = time.perf_counter() - t0
    dict(pending)  # a run waits for the hash where it writes its outputs
    stages["threads"] = threads or (dataset.read_threads(x.nbytes) if hasattr(dataset, "read_threads") else 1)
(u1, s1), t1 = cpu(), time.perf_counter()
print(json.dumps({"wall_s": t1 - t0, "user_s": u1 - u0, "sys_s": s1 - s0, "stages": stages,
                  "over_matrix_mib": ((kib("VmHWM:") - before) * 1024 - x.nbytes) / 2**20, "matrix_bytes": x.nbytes}))
"""


def child(mode: str, path: str, tree: Path = ROOT) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, mode, path], capture_output=True, text=True, cwd=tree,
                       env={**os.environ, "PYTHONPATH": str(tree)})
    if r.returncode:
        raise SystemExit(f"{mode}: {r.stderr.strip().splitlines()[-1]}")
    return json.loads(r.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE / "data" / "emb_1000000x384.parquet"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="", help="other thread counts to time, e.g. 2,4")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--compare", help="another checkout of the tool (e.g. the code before a change): its read, "
                                      "on its default threads, is timed too")
    args = ap.parse_args(argv)
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data}: no such file; make it with bench/bench_sample.py (make bench) or pass --data")
    npy = Path(args.data).with_suffix(".npy")
    modes = ["read:0", "read:1"] + [f"read:{t}" for t in args.threads.split(",") if t] + ["pyarrow"]
    modes += ["npy"] if npy.exists() else []
    runs: dict[str, list[dict]] = {m: [] for m in ["profile"] + modes}
    runs["profile"].append(child("profile", args.data))
    if args.compare:
        modes.insert(0, "compare")
        runs["compare"] = []
    for _ in range(args.repeats):
        for m in modes:
            if m == "compare":
                runs[m].append(child("read:0", args.data, Path(args.compare).resolve()))
            else:
                runs[m].append(child(m, str(npy) if m == "npy" else args.data))
    prof = runs["profile"][0]
    print(f"{args.data}: {prof['matrix_bytes'] / 1e9:.3f} GB of float32")
    print("\n(a) one thread, stage by stage (one run)")
    for name, s in prof["stages"].items():
        print(f"  {name:52s} {s:6.2f} s")
    print(f"  {'(process: wall, user, system CPU)':52s} {prof['wall_s']:6.2f} s, "
          f"{prof['user_s']:.2f} + {prof['sys_s']:.2f} CPU s")
    print(f"\n(b, c) medians of {args.repeats} run(s) each, alternating")
    names = {"read:0": "tool, default threads", "read:1": "tool, 1 thread", "pyarrow": "bare pyarrow, 1 thread",
             "npy": "np.load of the .npy", "compare": "--compare checkout"}
    print(f"  {'':28s} {'wall s':>8s} {'user s':>8s} {'sys s':>8s} {'MiB over':>9s}   runs (wall s)")
    for m in modes:
        med = {key: statistics.median(r[key] for r in runs[m]) for key in ("wall_s", "user_s", "sys_s",
                                                                         "over_matrix_mib")}
        label = names[m] if m in names else f"tool, {m.split(':')[1]} threads"
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in runs[m])
        if m == "read:0":
            label += f" ({runs[m][0]['stages']['threads']})"
        print(f"  {label:28s} {med['wall_s']:8.2f} {med['user_s']:8.2f} {med['sys_s']:8.2f} "
              f"{med['over_matrix_mib']:9.0f}   {walls}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
