"""Start-up cost of the command line: what a command pays before it reads a byte of its input.

For each command line below, run ``--repeats`` times in fresh processes (after one untimed warm-up run
that fills the page cache and writes the bytecode: PYTHONDONTWRITEBYTECODE is unset for the children, as an
installed package has its bytecode; ``--no-bytecode`` keeps it set, so that every run compiles the modules it
imports), and print the best wall time and the best CPU time
(user + system), with the modules a run imports that it does not need (faiss, scipy, torch,
pyarrow.compute, rich.progress, sentence_transformers, dask, matplotlib), read from ``-X importtime``:

* ``python -c "import dataselect_cli.cli"`` — the typer app with every command registered;
* ``python -m dataselect_cli --version`` and ``--help``, ``score --help``;
* ``python -m dataselect_cli score --method el2n`` on a tiny dynamics table (200 ids × 5 checkpoints ×
  10 classes, written here once), so that the run is start-up, the checks and the write of 200 rows.

    python bench/bench_startup.py                # best of 5
    python bench/bench_startup.py --repeats 10
    python bench/bench_startup.py --root /tmp/old  # another checkout of the tool (before/after)

This is not part of the test suite (tests/test_cli_startup.py checks which modules a command imports).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
#: Modules none of the timed command lines need; a line that imports one says so.
HEAVY = ("faiss", "scipy", "torch", "pyarrow.compute", "rich.progress", "sentence_transformers", "dask",
         "matplotlib")


def tiny_dynamics(path: Path, ids: int = 200, k: int = 5, classes: int = 10) -> None:
    """A seeded dynamics table sorted by (id, checkpoint): id, checkpoint, epoch, label, logits."""
    rng = np.random.default_rng(0)
    n = ids * k
    logits = rng.standard_normal((n, classes), dtype=np.float32)
    pq.write_table(pa.table({"id": np.repeat(np.arange(ids, dtype=np.int64), k),
                             "checkpoint": np.tile(np.arange(k, dtype=np.int32), ids),
                             "epoch": np.tile(np.arange(1, k + 1, dtype=np.float64), ids),
                             "label": np.repeat(rng.integers(0, classes, ids).astype(np.int32), k),
                             "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), classes)}),
                   path)


def timed(cmd: list[str], root: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run of ``cmd`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(cmd: list[str], root: Path) -> list[str]:
    """The :data:`HEAVY` modules that one run of ``cmd`` imports (``-X importtime`` on stderr)."""
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], cwd=root, capture_output=True, text=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    return [m for m in HEAVY if m in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose dataselect_cli is timed")
    ap.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (compile every run)")
    args = ap.parse_args(argv)
    py, root = sys.executable, args.root.resolve()
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(root) + (os.pathsep + env_path if env_path else "")
    if not args.no_bytecode:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as work:
        dyn = Path(work) / "dyn.parquet"
        tiny_dynamics(dyn)
        lines = {"import dataselect_cli.cli": [py, "-c", "import dataselect_cli.cli"],
                 "dataselect --version": [py, "-m", "dataselect_cli", "--version"],
                 "dataselect --help": [py, "-m", "dataselect_cli", "--help"],
                 "dataselect score --help": [py, "-m", "dataselect_cli", "score", "--help"],
                 "score --method el2n (1,000 rows)": [py, "-m", "dataselect_cli", "score", "--method", "el2n",
                                                      "--dynamics", str(dyn), "-o", str(Path(work) / "s.parquet"),
                                                      "-q"]}
        print(f"{root}, {'no bytecode' if args.no_bytecode else 'bytecode cached'}, best of {args.repeats}")
        print(f"{'command line':<34} {'wall s':>7} {'CPU s':>7}  imports it does not need")
        for name, cmd in lines.items():
            timed(cmd, root)  # warm-up: page cache, bytecode
            runs = [timed(cmd, root) for _ in range(args.repeats)]
            wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
            print(f"{name:<34} {wall:>7.3f} {cpu:>7.3f}  {', '.join(heavy_imports(cmd, root)) or '-'}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
