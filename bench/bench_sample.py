"""Benchmark ``dataselect sample --k K`` end to end against a bare faiss k-means baseline.

Run with ``make bench`` (``BENCH_ARGS="--n 200000 --k 200"`` for a quicker run). It

1. builds seeded, clustered synthetic embeddings (a Gaussian mixture with more blobs than k),
   chunk by chunk, and writes them once to ``<data-dir>/emb_<n>x<d>.parquet`` (``id`` int64,
   ``embedding`` fixed_size_list<float32>[d], row groups of 65536 rows) and
   ``<data-dir>/emb_<n>x<d>.npy``; existing files of the right shape are reused;
2. times, each in its own fresh subprocess so that peak RSS is per process,
   (a) the baseline: ``np.load`` the .npy fully into memory, then faiss k-means with exactly the
       tool's configuration (niter=25, seed=0, max_points_per_centroid=ceil(n/k)+1,
       min_points_per_centroid=1, random init, nredo=1) and one assignment search, and
   (b) the tool end to end: ``python -m dataselect_cli sample --k K --eps EPS emb.parquet -o OUT -q``
       (reading the file, validating, clustering, scoring, drawing, writing included), by default
       with ``--init random --fit-sample all --tol 0`` (those of the flags the CLI has) so that its
       k-means is the baseline's: the ratio is then the tool's overhead over the k-means it runs;
       ``--tool-config default`` runs the tool exactly as typed against bare faiss with faiss's own
       defaults (random init, a silent training sample of 256·k rows);
   wall time and peak RSS (``ru_maxrss`` from ``os.wait4``, see LAUNCHER) of each child; with
   ``--repeats R`` the two alternate R times and the medians (and minima) are reported;
3. prints a table against the targets: tool wall / baseline wall <= 1.15 (matched) or <= 0.6 (default,
   where the tool's k-means objective must also be <= the baseline's: both are the mean squared distance
   over a uniform 256·k-row training sample, each its own) and tool peak RSS / array bytes (n·d·4) <= 2.0;
   ``--json PATH`` writes the figures as JSON.

Only the standard library, numpy, pyarrow and faiss (through the children) are used. This is not
part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dataselect_cli import io as ds_io  # noqa: E402

ROW_GROUP = 65536
#: Flags that make the tool's k-means the baseline's (all rows, faiss random init, no early stop).
MATCHED = [("--init", "random"), ("--fit-sample", "all"), ("--tol", "0")]
#: Wall-time targets, tool / baseline: the matched run measures the tool's overhead around the k-means it runs
#: (issue 2); the default run is the tool as typed against faiss's defaults (issue 17, item 5), where the tool's
#: k-means objective must also be no higher than faiss's (OBJ_TARGET).
WALL_TARGETS = {"matched": 1.15, "default": 0.6}
OBJ_TARGET = 1.0
RSS_TARGET = 2.0

BASELINE = r"""
import json, math, sys, time
t0 = time.perf_counter()
import numpy as np
import faiss
t1 = time.perf_counter()
x = np.load(sys.argv[1])  # fully into memory, not memory-mapped
n, d = x.shape
k = int(sys.argv[2])
t2 = time.perf_counter()
if sys.argv[3] == "matched":  # exactly the tool's k-means with the MATCHED flags
    km = faiss.Kmeans(d, k, niter=25, seed=0, max_points_per_centroid=math.ceil(n / k) + 1,
                      min_points_per_centroid=1, verbose=False)
else:  # faiss's own defaults: random init, a (silent) training sample of 256·k rows
    km = faiss.Kmeans(d, k, niter=25, seed=0, verbose=False)
km.train(x)
t3 = time.perf_counter()
D, I = km.index.search(x, 1)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "train_s": t3 - t2, "search_s": t4 - t3,
                  "threads": faiss.omp_get_max_threads(), "iterations": len(km.obj),
                  "obj_last": float(km.obj[-1])}))
"""


# --------------------------------------------------------------------------- data


def _paths(data_dir: Path, n: int, d: int) -> tuple[Path, Path]:
    stem = f"emb_{n}x{d}"
    return data_dir / f"{stem}.parquet", data_dir / f"{stem}.npy"


def _have(parquet: Path, npy: Path, n: int, d: int) -> bool:
    try:
        if np.load(npy, mmap_mode="r").shape != (n, d) or np.load(npy, mmap_mode="r").dtype != np.float32:
            return False
        pf = pq.ParquetFile(parquet)
        t = pf.schema_arrow.field("embedding").type
        return (pf.metadata.num_rows == n and pa.types.is_fixed_size_list(t) and t.list_size == d
                and t.value_type == pa.float32() and "id" in pf.schema_arrow.names)
    except Exception:
        return False


def make_data(data_dir: Path, n: int, d: int, k: int, seed: int) -> tuple[Path, Path, float]:
    """Write (or reuse) the Parquet and .npy files; return their paths and the seconds spent."""
    parquet, npy = _paths(data_dir, n, d)
    if _have(parquet, npy, n, d):
        return parquet, npy, 0.0
    t0 = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0])
    blobs = max(2 * k, 2)  # more blobs than clusters, of uneven sizes and spreads
    centers = rng.standard_normal((blobs, d)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    share = rng.gamma(2.0, size=blobs)
    share /= share.sum()
    spread = rng.uniform(0.15, 0.6, size=blobs).astype(np.float32) / np.float32(math.sqrt(d))
    tmp_npy = npy.with_name(npy.name + ".tmp")
    tmp_pq = parquet.with_name(parquet.name + ".tmp")
    arr = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.float32, shape=(n, d))
    schema = pa.schema([("id", pa.int64()), ("embedding", ds_io.embedding_type(d))])
    try:
        with pq.ParquetWriter(tmp_pq, schema, compression="zstd") as w:
            for c, s in enumerate(range(0, n, ROW_GROUP)):
                m = min(ROW_GROUP, n - s)
                r = np.random.default_rng([seed, 1, c])  # each chunk from its own stream
                blob = r.choice(blobs, size=m, p=share)
                x = r.standard_normal((m, d), dtype=np.float32)
                x *= spread[blob, None]
                x += centers[blob]
                arr[s : s + m] = x
                w.write_table(pa.table({"id": pa.array(np.arange(s, s + m, dtype=np.int64)),
                                        "embedding": ds_io.embedding_array(x)}, schema=schema),
                              row_group_size=ROW_GROUP)
        arr.flush()
        del arr
        os.replace(tmp_npy, npy)
        os.replace(tmp_pq, parquet)
    finally:
        for p in (tmp_npy, tmp_pq):
            if p.exists():
                p.unlink()
    return parquet, npy, time.perf_counter() - t0


# --------------------------------------------------------------------------- measuring


# Linux carries the spawning process's high-water RSS into the child's ru_maxrss at exec (the
# old mm's hiwater, shared under vfork, copied under fork), so a child spawned from this process,
# which holds numpy, pyarrow and perhaps the generated data, would report at least our own peak.
# Each child is therefore spawned by a tiny launcher (a fresh interpreter importing only os, sys,
# json and time, ~10 MB), whose wait4 sees the child's own peak.
LAUNCHER = r"""
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": wall, "exit": os.waitstatus_to_exitcode(status), "maxrss_kib": ru.ru_maxrss,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, f)
"""


def run_child(cmd: list[str], workdir: str) -> dict:
    """Run ``cmd`` in a fresh process; return wall seconds, peak RSS bytes, CPU seconds and its stdout."""
    result = os.path.join(workdir, "child.json")
    with tempfile.TemporaryFile(dir=workdir) as out, tempfile.TemporaryFile(dir=workdir) as err:
        rc = subprocess.call([sys.executable, "-c", LAUNCHER, result, *cmd], stdout=out, stderr=err, cwd=str(ROOT))
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if rc != 0 or not os.path.exists(result):
        sys.exit(f"launcher failed (exit {rc}): {' '.join(cmd)}\n{stderr[-4000:]}")
    with open(result) as f:
        r = json.load(f)
    os.unlink(result)
    if r["exit"] != 0:
        sys.exit(f"child failed (exit {r['exit']}): {' '.join(cmd)}\n{stderr[-4000:]}")
    return {"wall_s": r["wall_s"], "peak_rss_bytes": r["maxrss_kib"] * 1024, "user_s": r["user_s"],
            "sys_s": r["sys_s"], "stdout": stdout}


def tool_flags(config: str) -> list[str]:
    """The k-means flags for the tool: the MATCHED ones its ``sample --help`` lists, or none."""
    if config == "default":
        return []
    help_text = subprocess.run([sys.executable, "-m", "dataselect_cli", "sample", "--help"], cwd=str(ROOT),
                               capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}).stdout
    return [x for flag, value in MATCHED if flag in help_text for x in (flag, value)]


def tool_kmeans(out: str) -> dict:
    """What the tool's k-means did, from the ``clustering`` summary in its output's metadata."""
    try:
        meta = json.loads(pq.ParquetFile(out).schema_arrow.metadata[b"dataselect"])
        c = meta["summary"]["clustering"]
    except Exception:
        return {}
    obj = c.get("obj") or [float("nan")]
    return {"init": c.get("init"), "n_train": c.get("n_train"), "iterations": c.get("iterations", len(obj)),
            "obj_last": float(obj[-1])}


def _gb(b: float) -> str:
    return f"{b / 1e9:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="rows (default 1,000,000)")
    ap.add_argument("--d", type=int, default=384, help="dimension (default 384)")
    ap.add_argument("--k", type=int, default=1000, help="clusters (default 1000)")
    ap.add_argument("--eps", type=float, default=0.05, help="--eps of the sample (default 0.05)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "data", help="where the data files go")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    ap.add_argument("--repeats", type=int, default=1, help="alternate baseline and tool this many times")
    ap.add_argument("--tool-config", choices=("matched", "default"), default="matched",
                    help="matched (default): the tool with the baseline's k-means (" +
                    " ".join(f"{f} {v}" for f, v in MATCHED) + "), which measures the tool's overhead; "
                    "default: the tool as typed against bare faiss with faiss's own defaults")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    if a.n < a.k or a.k < 1 or a.d < 1 or a.repeats < 1:
        ap.error("need n >= k >= 1, d >= 1, repeats >= 1")

    print(f"data: n={a.n:,} d={a.d} k={a.k} eps={a.eps} seed={a.seed} -> {a.data_dir}", flush=True)
    parquet, npy, gen_s = make_data(a.data_dir, a.n, a.d, a.k, a.seed)
    print(f"  {'generated in ' + format(gen_s, '.1f') + ' s' if gen_s else 'reused'}: {parquet.name}, {npy.name}",
          flush=True)
    array_bytes = a.n * a.d * 4

    runs: dict[str, list[dict]] = {"baseline": [], "tool": []}
    with tempfile.TemporaryDirectory(prefix="dataselect-bench-") as work:
        out = os.path.join(work, "selected.parquet")
        cmds = {
            "baseline": [sys.executable, "-c", BASELINE, str(npy), str(a.k), a.tool_config],
            "tool": [sys.executable, "-m", "dataselect_cli", "sample", "--k", str(a.k), "--eps", str(a.eps),
                     *tool_flags(a.tool_config), str(parquet), "-o", out, "-q"],
        }
        print(f"  tool: dataselect {' '.join(cmds['tool'][3:])}", flush=True)
        for r in range(a.repeats):
            for name in ("baseline", "tool"):
                print(f"  run {r + 1}/{a.repeats} {name} ...", end="", flush=True)
                res = run_child(cmds[name], work)
                if name == "baseline":
                    res["phases"] = json.loads(res["stdout"].strip().splitlines()[-1])
                else:
                    res["selected_rows"] = pq.ParquetFile(out).metadata.num_rows
                    res["kmeans"] = tool_kmeans(out)
                    os.unlink(out)
                del res["stdout"]
                runs[name].append(res)
                print(f" {res['wall_s']:.1f} s, peak RSS {_gb(res['peak_rss_bytes'])} GB", flush=True)

    keys = ("wall_s", "peak_rss_bytes", "user_s", "sys_s")
    med = {name: {key: statistics.median(x[key] for x in rs) for key in keys} for name, rs in runs.items()}
    wall_ratio = med["tool"]["wall_s"] / med["baseline"]["wall_s"]
    wall_target = WALL_TARGETS[a.tool_config]
    rss_ratio = med["tool"]["peak_rss_bytes"] / array_bytes
    base_rss_ratio = med["baseline"]["peak_rss_bytes"] / array_bytes
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731

    rows = [
        ("", "baseline", "tool", "tool/baseline", "target"),
        ("wall s (median)", f"{med['baseline']['wall_s']:.2f}", f"{med['tool']['wall_s']:.2f}", f"{wall_ratio:.3f}",
         f"<= {wall_target}  {verdict(wall_ratio <= wall_target)}"),
        ("wall s (min)", f"{min(x['wall_s'] for x in runs['baseline']):.2f}",
         f"{min(x['wall_s'] for x in runs['tool']):.2f}",
         f"{min(x['wall_s'] for x in runs['tool']) / min(x['wall_s'] for x in runs['baseline']):.3f}", ""),
        ("cpu s (user+sys)", f"{med['baseline']['user_s'] + med['baseline']['sys_s']:.1f}",
         f"{med['tool']['user_s'] + med['tool']['sys_s']:.1f}", "", ""),
        ("peak RSS GB", _gb(med["baseline"]["peak_rss_bytes"]), _gb(med["tool"]["peak_rss_bytes"]), "", ""),
        ("peak RSS / array", f"{base_rss_ratio:.3f}", f"{rss_ratio:.3f}", "",
         f"<= {RSS_TARGET} (tool)  {verdict(rss_ratio <= RSS_TARGET)}"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print()
    print(f"n={a.n:,} d={a.d} k={a.k} eps={a.eps}; array n*d*4 = {array_bytes:,} bytes ({_gb(array_bytes)} GB); "
          f"repeats={a.repeats}; {os.cpu_count()} CPUs")
    for i, r in enumerate(rows):
        cells = (c.ljust(w) if j == 0 else c.rjust(w) if j < 4 else c for j, (c, w) in enumerate(zip(r, widths)))
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    ph = runs["baseline"][-1]["phases"]
    tk = runs["tool"][-1].get("kmeans") or {}
    obj_ratio = None
    if tk.get("n_train") and tk.get("obj_last") == tk.get("obj_last"):
        base_rows = a.n if a.tool_config == "matched" else min(a.n, 256 * a.k)
        # faiss's objective is a sum over its training rows; per row, the two are comparable
        obj_ratio = (tk["obj_last"] / tk["n_train"]) / (ph["obj_last"] / base_rows)
        print(f"k-means objective per training row, tool / baseline: {obj_ratio:.4f}  (target <= {OBJ_TARGET} in "
              f"the default run: {verdict(obj_ratio <= OBJ_TARGET)})")
    print(f"baseline phases (last run): import {ph['import_s']:.1f} s, np.load {ph['load_s']:.1f} s, "
          f"train {ph['train_s']:.1f} s, search {ph['search_s']:.1f} s; faiss threads {ph['threads']}")
    base_rows = a.n if a.tool_config == "matched" else min(a.n, 256 * a.k)
    print(f"k-means: baseline init=random n_train={base_rows:,} iterations={ph['iterations']} obj={ph['obj_last']:.6g}; "
          f"tool ({a.tool_config}) init={tk.get('init')} n_train={tk.get('n_train')} "
          f"iterations={tk.get('iterations')} obj={tk.get('obj_last', float('nan')):.6g}")
    if a.tool_config == "matched" and tk and (tk.get("n_train") != a.n or tk.get("iterations") != ph["iterations"]):
        print("note: the tool's k-means did not match the baseline's (rows or iterations differ); "
              "the wall ratio compares different work")

    if a.json:
        fig = {
            "n": a.n, "d": a.d, "k": a.k, "eps": a.eps, "seed": a.seed, "repeats": a.repeats,
            "array_bytes": array_bytes, "cpus": os.cpu_count(), "python": platform.python_version(),
            "parquet": str(parquet), "npy": str(npy), "generate_s": gen_s, "tool_config": a.tool_config,
            "tool_command": cmds["tool"][1:],
            "baseline": {**med["baseline"], "runs": runs["baseline"]},
            "tool": {**med["tool"], "runs": runs["tool"]},
            "wall_ratio": wall_ratio, "wall_target": wall_target, "wall_pass": wall_ratio <= wall_target,
            "obj_ratio": obj_ratio,
            "rss_ratio": rss_ratio, "rss_target": RSS_TARGET, "rss_pass": rss_ratio <= RSS_TARGET,
            "baseline_rss_ratio": base_rss_ratio,
        }
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(fig, indent=2) + "\n")
        print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
