"""Scale benchmark: one-step `dataselect sample` on embeddings larger than memory, streamed.

Prints, from one run, side by side:

(a) the end-to-end run on N_BIG × 384 float32 rows on disk (default 10M, 15.4 GB of Parquet):
    wall time and peak RSS, against the 3 GB aim;
(b) wall time per million rows at N_SMALL (1M) and at N_BIG, both streamed under the same
    --memory-limit (aim: the ratio within 1.2, i.e. linear);
(c) --engine dask with 2 local workers against --engine local on the N_SMALL file (on 2 cores this
    shows the engine's overhead, not a speed-up) and whether the outputs are byte-identical.

Each run is a fresh process spawned by bench_sample.py's launcher (peak RSS is the process's own;
the Dask workers are separate processes and not in the figure). Data is generated once into
bench/data (a blob mixture, row groups of 65,536 rows) and reused.

    python bench/bench_scale.py                       # 10M and 1M rows, k = 100
    python bench/bench_scale.py --big 2000000 --small 500000   # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_sample import run_child  # noqa: E402

from dataselect_cli import io as ds_io  # noqa: E402

ROW_GROUP = 65536
RSS_AIM = 3 * 2**30
LINEAR_AIM = 1.2


def make_data(path: Path, n: int, d: int, seed: int = 0) -> float:
    """Write (or reuse) n × d float32 rows of a 200-blob mixture; return the seconds spent."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == n:
        return 0.0
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0])
    blobs = 200
    centers = rng.standard_normal((blobs, d)).astype(np.float32)
    spread = rng.uniform(0.2, 0.6, size=blobs).astype(np.float32)
    schema = pa.schema([("id", pa.int64()), ("embedding", ds_io.embedding_type(d))])
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for c, s in enumerate(range(0, n, ROW_GROUP)):
            m = min(ROW_GROUP, n - s)
            r = np.random.default_rng([seed, 1, c])
            blob = r.integers(0, blobs, size=m)
            x = r.standard_normal((m, d), dtype=np.float32)
            x *= spread[blob, None]
            x += centers[blob]
            w.write_table(pa.table({"id": pa.array(np.arange(s, s + m, dtype=np.int64)),
                                    "embedding": ds_io.embedding_array(x)}, schema=schema), row_group_size=ROW_GROUP)
    os.replace(tmp, path)
    return time.perf_counter() - t0


def tool(inp: Path, out: Path, k: int, limit: str, *extra: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dataselect")), "sample", str(inp), "--k", str(k), "--size", "10000",
            "-o", str(out), "--memory-limit", limit, "-q", *extra]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=10_000_000)
    ap.add_argument("--small", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--memory-limit", default="2GB", help="given to both runs of (b); below 2× the small file's "
                    "matrix so that both stream")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    big = args.data_dir / f"scale_{args.big}x{args.d}.parquet"
    small = args.data_dir / f"scale_{args.small}x{args.d}.parquet"
    for p, n in ((small, args.small), (big, args.big)):
        print(f"data {p.name}: ", end="", flush=True)
        secs = make_data(p, n, args.d)
        print(f"{'made in %.0f s' % secs if secs else 'reused'} ({p.stat().st_size / 2**30:.1f} GiB)", flush=True)
    res = {}
    with tempfile.TemporaryDirectory(dir=args.data_dir) as work:
        w = Path(work)
        for name, inp, extra in (("small", small, []), ("big", big, []),
                                 ("small_dask", small, ["--engine", "dask", "--workers", "2"])):
            print(f"run {name} …", end="", flush=True)
            r = run_child(tool(inp, w / f"{name}.parquet", args.k, args.memory_limit, *extra), work)
            res[name] = {"wall_s": r["wall_s"], "peak_rss_bytes": r["peak_rss_bytes"]}
            print(f" {r['wall_s']:.1f} s, peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
        same = (w / "small.parquet").read_bytes() == (w / "small_dask.parquet").read_bytes()
    per_m = {key: res[key]["wall_s"] / (n / 1e6) for key, n in (("small", args.small), ("big", args.big))}
    linear = per_m["big"] / per_m["small"]
    rss = res["big"]["peak_rss_bytes"]
    dask_ratio = res["small_dask"]["wall_s"] / res["small"]["wall_s"]
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    print()
    print(f"{'figure':<44} {'value':>12}  aim")
    print(f"{'(a) peak RSS, %d × %d end to end' % (args.big, args.d):<44} {rss / 2**30:>9.2f} GiB  <= 3 GiB "
          f"{verdict(rss <= RSS_AIM)}   (data {big.stat().st_size / 2**30:.1f} GiB on disk)")
    print(f"{'(b) seconds per million rows, %gM rows' % (args.small / 1e6):<44} {per_m['small']:>12.2f}")
    print(f"{'    seconds per million rows, %gM rows' % (args.big / 1e6):<44} {per_m['big']:>12.2f}")
    print(f"{'    ratio big / small':<44} {linear:>12.3f}  <= {LINEAR_AIM} {verdict(linear <= LINEAR_AIM)}")
    print(f"{'(c) dask 2 workers / local, %d rows' % args.small:<44} {dask_ratio:>12.3f}  (overhead on 2 cores; "
          f"outputs byte-identical: {same})")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": res,
                                         "per_million_s": per_m, "linear_ratio": linear, "dask_ratio": dask_ratio,
                                         "identical": same}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
