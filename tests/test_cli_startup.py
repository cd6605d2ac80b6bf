"""Start-up: a command loads what it runs, not what the other commands need (docs/performance.md, "Start-up").

Each check runs the command line in a fresh process and reads the modules it has imported when it exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from dataselect_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
#: Run the command line as ``dataselect`` does, then print which of argv[1]'s modules were imported.
LOADED = """
import json, sys
watch = sys.argv[1].split(",")
sys.argv = ["dataselect", *sys.argv[2:]]
from dataselect_cli.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "loaded": [m for m in watch if m in sys.modules]}))
"""
#: What neither --help nor a per-example score needs.
HEAVY = ["faiss", "torch", "scipy", "sentence_transformers", "dask", "matplotlib", "pyarrow.compute", "rich.progress"]


def loaded(*args: str, watch: list[str] = HEAVY) -> dict:
    r = subprocess.run([sys.executable, "-c", LOADED, ",".join(watch), *map(str, args)], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_help_lists_every_command_and_loads_none_of_the_heavy_modules():
    r = subprocess.run([sys.executable, "-m", "dataselect_cli", "--help"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}, cwd=ROOT)
    names = sorted(typer.main.get_command(app).commands)
    assert r.returncode == 0 and len(names) >= 10
    for name in names:
        assert f"\n  {name} " in r.stdout, name
    assert loaded("--help") == {"exit": 0, "loaded": []}


def test_a_per_example_score_loads_no_clustering_model_or_progress_bars(tmp_path):
    ids, k = 50, 3
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((ids * k, 4), dtype=np.float32)
    pq.write_table(pa.table({"id": np.repeat(np.arange(ids), k),
                             "checkpoint": np.tile(np.arange(k, dtype=np.int32), ids),
                             "epoch": np.tile(np.arange(1.0, k + 1), ids),
                             "label": np.repeat(rng.integers(0, 4, ids).astype(np.int32), k),
                             "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), 4)}),
                   tmp_path / "dyn.parquet")
    got = loaded("score", "--method", "el2n", "--dynamics", tmp_path / "dyn.parquet", "-o", tmp_path / "s.parquet",
                 "-q")
    assert got == {"exit": 0, "loaded": []}
    assert pq.read_table(tmp_path / "s.parquet").num_rows == ids

