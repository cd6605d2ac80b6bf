"""Per-example scores from a large training-dynamics table, against a bare read of that table.

Issue 13 asks that every score method stream, and that ``score --method el2n`` over a 10M-row × 10-class ×
5-checkpoint dynamics table run within 2× the time it takes to read that table. This bench

1. writes (once, into ``<data-dir>``, reused when its shape and columns match) a seeded dynamics table of IDS
   ids × RUNS runs × CHECKPOINTS checkpoints with ``id`` (int64), ``run``, ``checkpoint`` (int32), ``epoch``
   (float64), ``label`` (int32) and ``logits`` (fixed_size_list<float32>[CLASSES]), plus ``input_grad``
   (fixed_size_list<float32>[D]) with ``--input-grad-dim D`` (the issue's table; the methods that read logits
   or input_grad are timed on it); and, for loss, grand, tracin-self and pvi, the same table with
   ``null_logits`` (fixed_size_list<float32>[CLASSES]), ``loss``, ``grad_sqnorm`` and ``lr`` (float32) too
   ("full", about twice the bytes); in row groups of 65,536 rows, chunk by chunk, so the generator's memory
   stays bounded whatever the size. Sorted by (id, run, checkpoint), or with ``--unsorted`` checkpoint-major
   with the ids shuffled within each checkpoint's pass (as a training loop that logs every epoch's shuffled
   batches writes it);
2. times, each in a fresh process (peak RSS is the process's own, see ``bench_sample.LAUNCHER``):
   (a) the baseline of each method, a bare pyarrow read of the columns it needs: ``ParquetFile.iter_batches``
       over id, run, checkpoint, label and the method's value columns (logits for el2n, margin, entropy,
       least-confidence, forgetting, aum and data-map; loss for loss; grad_sqnorm for grand; grad_sqnorm and lr
       for tracin-self; logits and null_logits for pvi; input_grad for vog), every batch decoded into Arrow
       arrays, pyarrow's defaults otherwise (threads on); best of ``--repeats``, after one untimed read that warms
       the page cache;
   (b) ``python -m dataselect_cli score --method M --dynamics T -o OUT -q`` end to end (start-up, the pass or
       passes over the table, the checks, the sha256 of the whole input file for the metadata, the output) for
       every streamed method (vog when the table has input_grad); best of ``--repeats``;
   The table stays in ``<data-dir>`` for the next run (``make clean`` removes bench/data).
3. prints each method's wall time and its ratio to its (a), the same ratio of CPU time (user + system, all
   threads: less sensitive to other work on a shared machine, and an upper bound of what a quiet machine
   spends) and its peak RSS, against the aim: wall ratio <= 2.

    python bench/bench_scores.py                          # 2M ids × 5 checkpoints × 10 classes = 10M rows
    python bench/bench_scores.py --ids 200000 --unsorted  # a quicker look, checkpoint-major (two passes)
    python bench/bench_scores.py --ids 500000 --input-grad-dim 16   # with VoG

This is not part of the test suite. The tables at the default size are about 0.44 and 0.97 GiB on disk (the
logits, float32, barely compress).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_sample import run_child  # noqa: E402

ROW_GROUP = 65536
AIM = 2.0
METHODS = ("el2n", "forgetting", "data-map", "aum", "loss", "grand", "margin", "entropy", "least-confidence",
           "tracin-self", "pvi")
#: The methods timed on the full table (they read its extra columns).
FULL = ("loss", "grand", "tracin-self", "pvi")
#: The value columns each method reads (its baseline reads them and the key columns); logits otherwise.
READS = {"loss": ["loss"], "grand": ["grad_sqnorm"], "tracin-self": ["grad_sqnorm", "lr"],
         "pvi": ["logits", "null_logits"], "vog": ["input_grad"]}
KEYS = ["id", "run", "checkpoint", "label"]

BASELINE = r"""
import json, sys, time
t0 = time.perf_counter()
import pyarrow.parquet as pq
rows = 0
for batch in pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=65536, columns=sys.argv[2].split(",")):
    rows += batch.num_rows
print(json.dumps({"rows": rows, "read_s": time.perf_counter() - t0}))
"""


# --------------------------------------------------------------------------- data


def table_path(data_dir: Path, ids: int, runs: int, classes: int, checkpoints: int, grad_dim: int,
               unsorted: bool, full: bool = False) -> Path:
    order = "unsorted" if unsorted else "sorted"
    grad = f"_g{grad_dim}" if grad_dim else ""
    return data_dir / f"dyn_{ids}x{runs}x{checkpoints}x{classes}{grad}_{order}{'_full' if full else ''}.parquet"


def _schema(classes: int, grad_dim: int, full: bool) -> pa.Schema:
    fields = [("id", pa.int64()), ("run", pa.int32()), ("checkpoint", pa.int32()), ("epoch", pa.float64()),
              ("label", pa.int32()), ("logits", pa.list_(pa.float32(), classes))]
    if full:
        fields += [("null_logits", pa.list_(pa.float32(), classes)), ("loss", pa.float32()),
                   ("grad_sqnorm", pa.float32()), ("lr", pa.float32())]
    if grad_dim:
        fields.append(("input_grad", pa.list_(pa.float32(), grad_dim)))
    return pa.schema(fields)


def _chunk(c: int, lo: int, m: int, runs: int, classes: int, k: int, grad_dim: int, seed: int, full: bool) -> dict:
    """The values of ids lo..lo+m for every (run, checkpoint): logits that drift towards the label as the
    checkpoints pass (so that examples are learnt, some forgotten), each chunk from its own seeded stream."""
    rng = np.random.default_rng([seed, c])
    label = rng.integers(0, classes, m).astype(np.int32)
    hard = rng.gamma(1.0, 1.0, m).astype(np.float32)  # how slowly each example is learnt
    z = rng.standard_normal((m, runs, k, classes), dtype=np.float32)
    pull = np.linspace(0.0, 3.0, k, dtype=np.float32)[None, None, :] / (0.5 + hard[:, None, None])
    z[np.arange(m), :, :, label] += pull  # (m, runs, k)
    out = {"label": label, "logits": z}
    if grad_dim:
        out["input_grad"] = rng.standard_normal((m, runs, k, grad_dim), dtype=np.float32)
    if full:
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        loss = -np.log(np.take_along_axis(p, label[:, None, None, None], axis=-1)[..., 0] / p.sum(axis=-1))
        out.update(null_logits=rng.standard_normal((m, runs, k, classes), dtype=np.float32),
                   loss=loss.astype(np.float32),
                   grad_sqnorm=(loss * loss * (1.0 + hard[:, None, None])).astype(np.float32))
    return out


VECTORS = ("logits", "null_logits", "input_grad")


def _fixed(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(x, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[-1])


def make_table(path: Path, ids: int, runs: int, classes: int, k: int, grad_dim: int, unsorted: bool,
               seed: int = 0, full: bool = False) -> float:
    """Write (or reuse) the table; return the seconds spent. Memory: one chunk of ids (all their rows) at a time
    when sorted; one chunk's rows at one (run, checkpoint) at a time when unsorted (each chunk is regenerated
    from its seed for every (run, checkpoint))."""
    if path.exists():
        try:
            pf = pq.ParquetFile(path)
            if pf.metadata.num_rows == ids * runs * k and pf.schema_arrow.equals(_schema(classes, grad_dim, full)):
                return 0.0
        except Exception:
            pass
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = _schema(classes, grad_dim, full)
    tmp = path.with_name(path.name + ".tmp")
    per = runs * k
    chunk_ids = max(1, ROW_GROUP // per) if not unsorted else ROW_GROUP
    starts = list(range(0, ids, chunk_ids))

    def rows(lo: int, v: dict, sel: np.ndarray | None, r: int | None, ck: int | None) -> pa.Table:
        m = len(v["label"])
        if sel is None:  # every (run, checkpoint) of each id, id-major
            cols = {"id": np.repeat(np.arange(lo, lo + m, dtype=np.int64), per),
                    "run": np.tile(np.repeat(np.arange(runs, dtype=np.int32), k), m),
                    "checkpoint": np.tile(np.arange(k, dtype=np.int32), m * runs),
                    "label": np.repeat(v["label"], per)}
            vec = {name: v[name].reshape(m * per, -1) for name in VECTORS if name in v}
            cols.update({name: v[name].reshape(-1) for name in ("loss", "grad_sqnorm") if name in v})
        else:  # one (run, checkpoint), the ids in the order sel
            cols = {"id": (lo + sel).astype(np.int64), "run": np.full(m, r, np.int32),
                    "checkpoint": np.full(m, ck, np.int32), "label": v["label"][sel]}
            vec = {name: v[name][sel, r, ck] for name in VECTORS if name in v}
            cols.update({name: v[name][sel, r, ck] for name in ("loss", "grad_sqnorm") if name in v})
        cols["epoch"] = (cols["checkpoint"] + 1).astype(np.float64)
        cols["lr"] = (0.1 / (1.0 + cols["checkpoint"])).astype(np.float32)
        arrays = [pa.array(cols[f.name], f.type) if f.name not in vec else _fixed(vec[f.name]) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
            if not unsorted:
                for c, lo in enumerate(starts):
                    m = min(chunk_ids, ids - lo)
                    w.write_table(rows(lo, _chunk(c, lo, m, runs, classes, k, grad_dim, seed, full), None, None, None),
                                  row_group_size=ROW_GROUP)
            else:
                for r in range(runs):
                    for ck in range(k):
                        order = np.random.default_rng([seed, 1, r, ck]).permutation(len(starts))
                        for c in order.tolist():
                            lo = starts[c]
                            m = min(chunk_ids, ids - lo)
                            v = _chunk(c, lo, m, runs, classes, k, grad_dim, seed, full)
                            sel = np.random.default_rng([seed, 2, r, ck, c]).permutation(m)
                            w.write_table(rows(lo, v, sel, r, ck), row_group_size=ROW_GROUP)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- measuring


def baseline(path: Path, columns: list[str], work: str) -> dict:
    r = run_child([sys.executable, "-c", BASELINE, str(path), ",".join(columns)], work)
    return {**r, **json.loads(r["stdout"])}


def tool(path: Path, method: str, out: Path, work: str, extra: list[str]) -> dict:
    return run_child([sys.executable, "-m", "dataselect_cli", "score", "--method", method, "--dynamics", str(path),
                      "-o", str(out), "-q", *extra], work)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--checkpoints", type=int, default=5)
    ap.add_argument("--input-grad-dim", type=int, default=0, help="width of an input_grad column (0: none; VoG "
                    "is timed when > 0)")
    ap.add_argument("--unsorted", action="store_true", help="checkpoint-major, ids shuffled in each checkpoint")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (vog is added with "
                    "--input-grad-dim)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each timing; the best is reported")
    ap.add_argument("--score-args", default="", help="extra arguments for every score run, e.g. '--block-rows "
                    "262144'")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if min(args.ids, args.runs, args.checkpoints, args.repeats) < 1 or args.classes < 2 or args.input_grad_dim < 0:
        ap.error("--ids, --runs, --checkpoints, --repeats must be >= 1, --classes >= 2, --input-grad-dim >= 0")
    rows = args.ids * args.runs * args.checkpoints
    methods = [m for m in args.methods.split(",") if m] + (["vog"] if args.input_grad_dim else [])
    paths = {}
    for full in sorted({m in FULL for m in methods}):
        path = table_path(args.data_dir, args.ids, args.runs, args.classes, args.checkpoints, args.input_grad_dim,
                          args.unsorted, full)
        need = rows * ((2 if full else 1) * args.classes + args.input_grad_dim + 3) * 4 * 1.2
        free = shutil.disk_usage(args.data_dir if args.data_dir.exists() else HERE).free
        if not path.exists() and need > free:
            sys.exit(f"the table needs about {need / 2**30:.1f} GiB and {free / 2**30:.1f} GiB are free; use a "
                     "smaller --ids")
        print(f"table {path.name}: ", end="", flush=True)
        secs = make_table(path, args.ids, args.runs, args.classes, args.checkpoints, args.input_grad_dim,
                          args.unsorted, full=full)
        paths[full] = path
        print(f"{'made in %.0f s' % secs if secs else 'reused'}: {rows:,} rows ({args.ids:,} ids × {args.runs} "
              f"runs × {args.checkpoints} checkpoints × {args.classes} classes"
              f"{', input_grad %d' % args.input_grad_dim if args.input_grad_dim else ''}"
              f"{', null_logits, loss, grad_sqnorm, lr' if full else ''}), {path.stat().st_size / 2**30:.2f} GiB",
              flush=True)
    extra = args.score_args.split()
    res: dict = {}
    with tempfile.TemporaryDirectory(dir=args.data_dir) as work:
        for m in methods:
            path = paths[m in FULL]
            cols = KEYS + READS.get(m, ["logits"])
            name = f"read {','.join(cols[len(KEYS):])} of {path.name}"
            if name not in res:
                baseline(path, cols, work)  # warm the page cache
                runs = [baseline(path, cols, work) for _ in range(args.repeats)]
                best = min(runs, key=lambda r: r["wall_s"])
                res[name] = {"wall_s": best["wall_s"], "cpu_s": best["user_s"] + best["sys_s"],
                             "read_s": best["read_s"], "peak_rss_bytes": best["peak_rss_bytes"]}
                print(f"(a) bare pyarrow read of {', '.join(cols)} of {path.name}: {best['wall_s']:.2f} s (the read "
                      f"itself {best['read_s']:.2f} s; CPU {res[name]['cpu_s']:.2f} s), peak RSS "
                      f"{best['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
            out = Path(work) / f"{m}.parquet"
            runs = [tool(path, m, out, work, extra) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["wall_s"])
            base = res[name]
            cpu = best["user_s"] + best["sys_s"]
            res[m] = {"wall_s": best["wall_s"], "cpu_s": cpu, "peak_rss_bytes": best["peak_rss_bytes"],
                      "baseline": name, "ratio": best["wall_s"] / base["wall_s"], "cpu_ratio": cpu / base["cpu_s"]}
            print(f"(b) score --method {m}: {best['wall_s']:.2f} s (CPU {cpu:.2f} s), peak RSS "
                  f"{best['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    print()
    print(f"{'method':<17} {'seconds':>8} {'/ read':>7} {'CPU s':>7} {'/ read':>7} {'peak RSS':>9}  "
          f"aim: <= {AIM}× the read (wall)")
    for m in methods:
        r = res[m]
        print(f"{m:<17} {r['wall_s']:>8.2f} {r['ratio']:>6.2f}× {r['cpu_s']:>7.2f} {r['cpu_ratio']:>6.2f}× "
              f"{r['peak_rss_bytes'] / 2**20:>5.0f} MiB  {verdict(r['ratio'] <= AIM)}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "bytes": {str(p.name): p.stat().st_size for p in paths.values()},
                                         "results": res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
