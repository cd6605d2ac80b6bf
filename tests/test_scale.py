"""Scale: streaming, directories and the Dask engine give the same bytes as the in-memory local run.

The block grid (dataselect_cli/grid.py) is what makes this hold; these tests are its proof. They
use --block-rows 1000 so that small files still have many blocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import cluster as cluster_mod
from dataselect_cli.dataset import EmbeddingSource, MemorySource
from dataselect_cli.pqdataset import ParquetDataset
from dataselect_cli.io import embedding_array

try:  # the Dask tests need the extra; the streaming and directory tests do not
    import distributed
except ImportError:  # pragma: no cover - make test installs it
    distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="needs the dask extra: pip install 'dataselect[dask]'")

N, D, K = 12000, 13, 16
GRID = ["--block-rows", "1000"]


def _data(n=N, d=D, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) + 4 * rng.integers(0, 10, size=(n, 1))).astype(np.float32)
    return pa.table({"id": np.arange(n, dtype=np.int64) * 3 + 7, "embedding": embedding_array(x),
                     "label": rng.integers(0, 4, n)})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """emb.parquet (one row group), emb_rg.parquet (row groups of 97 rows), dir/ (4 files of odd sizes)."""
    root = tmp_path_factory.mktemp("scale")
    t = _data()
    pq.write_table(t, root / "emb.parquet")
    pq.write_table(t, root / "emb_rg.parquet", row_group_size=97)
    (root / "dir").mkdir()
    for i, (a, b) in enumerate([(0, 4000), (4000, 4001), (4001, 9500), (9500, N)]):
        pq.write_table(t.slice(a, b - a), root / "dir" / f"part-{i}.parquet", row_group_size=333)
    return root


@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of 2 worker processes, shared by the tests that pass --scheduler."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        yield lc.scheduler_address


def _one_step(src, out, *extra):
    """A one-step run keeping its intermediate files in OUT."""
    out.mkdir()
    run("sample", src, "--k", K, "--size", 400, "--seed", 5, "-o", out / "selected.parquet", "--keep-intermediate",
        out, *GRID, *extra, "-q")
    return out


FILES = ["selected.parquet", "clusters.parquet", "clusters.centers.parquet", "scores.parquet"]


def _same_bytes(a: Path, b: Path) -> None:
    for f in FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def _same_data(a: Path, b: Path) -> None:
    """Same rows and metadata, except the input fingerprints (other input files)."""
    for f in FILES:
        ta, tb = pq.read_table(a / f), pq.read_table(b / f)
        assert ta.replace_schema_metadata(None).equals(tb.replace_schema_metadata(None)), f
        ma, mb = (json.loads(t.schema.metadata[b"dataselect"]) for t in (ta, tb))
        ma.pop("inputs"), mb.pop("inputs")
        assert ma == mb, f


@needs_dask
def test_local_vs_dask_byte_identical_any_partitioning(data, tmp_path, dask_cluster):
    ref = _one_step(data / "emb.parquet", tmp_path / "local")
    for parts in (1, 3, 7):
        got = _one_step(data / "emb.parquet", tmp_path / f"dask{parts}", "--engine", "dask", "--scheduler",
                        dask_cluster, "--partitions", parts)
        _same_bytes(ref, got)


@needs_dask
def test_dask_local_cluster_two_workers(data, tmp_path):
    """--engine dask without --scheduler starts its own LocalCluster of --workers processes."""
    ref = _one_step(data / "emb.parquet", tmp_path / "local")
    got = _one_step(data / "emb.parquet", tmp_path / "dask", "--engine", "dask", "--workers", 2)
    _same_bytes(ref, got)


@needs_dask
def test_three_step_pipeline_on_dask_matches_local(data, tmp_path, dask_cluster):
    outs = {}
    for name, extra in (("local", []), ("dask", ["--engine", "dask", "--scheduler", dask_cluster, "--partitions", 5])):
        o = tmp_path / name
        o.mkdir()
        run("cluster", data / "emb.parquet", "-o", o / "clusters.parquet", "--k", K, "--refine", 2, *GRID, *extra)
        run("score", o / "clusters.parquet", "-o", o / "scores.parquet", *GRID, *extra)
        run("sample", o / "scores.parquet", "--size", 300, "-o", o / "selected.parquet", *GRID, *extra)
        outs[name] = o
    for f in ("clusters.parquet", "clusters.centers.parquet", "selected.parquet"):
        assert (outs["local"] / f).read_bytes() == (outs["dask"] / f).read_bytes(), f
    # scores name their inputs by path, which differ between the two folders; the rows must not
    a, b = (pq.read_table(outs[n] / "scores.parquet").replace_schema_metadata(None) for n in outs)
    assert a.equals(b)


def test_streaming_many_small_row_groups_equals_in_memory(data, tmp_path):
    ref = _one_step(data / "emb.parquet", tmp_path / "memory")
    # 609 KiB of vectors, more than half of 1MB: streamed; two blocks and the 4,096 fit rows (568 KiB) fit in 1MB
    got = _one_step(data / "emb_rg.parquet", tmp_path / "stream", "--memory-limit", "1MB", "--refine", 0)
    _same_data(ref, got)
    same_file = _one_step(data / "emb.parquet", tmp_path / "stream_same", "--memory-limit", "1MB")
    _same_bytes(ref, same_file)


def test_directory_of_files_equals_one_file(data, tmp_path):
    ref = _one_step(data / "emb.parquet", tmp_path / "file")
    got = _one_step(data / "dir", tmp_path / "dir")
    _same_data(ref, got)
    meta = json.loads(pq.read_schema(got / "clusters.parquet").metadata[b"dataselect"])
    assert sorted(meta["inputs"]) == [f"embeddings/part-{i}.parquet" for i in range(4)]


def test_block_rows_is_recorded_and_moves_only_sums(data, tmp_path):
    """The grid is recorded, and it only decides how sums are split: row-wise results (cluster,
    distance, the scores) are identical on grids of 1000 and 3000 rows, per-cluster costs agree to
    rounding, and here the same rows are drawn (a draw could differ only if a uniform fell within
    rounding of a row's boundary)."""
    a = _one_step(data / "emb.parquet", tmp_path / "a", "--design", "iid")
    b = tmp_path / "b"
    b.mkdir()
    run("sample", data / "emb.parquet", "--k", K, "--size", 400, "--seed", 5, "--design", "iid", "-o",
        b / "selected.parquet", "--keep-intermediate", b, "--block-rows", 3000, "-q")
    meta = {x: json.loads(pq.read_schema(x / "selected.parquet").metadata[b"dataselect"]) for x in (a, b)}
    assert (meta[a]["params"]["block_rows"], meta[b]["params"]["block_rows"]) == (1000, 3000)
    for f in ("clusters.parquet", "scores.parquet", "selected.parquet"):
        assert pq.read_table(a / f).replace_schema_metadata(None).equals(
            pq.read_table(b / f).replace_schema_metadata(None)), f
    ca, cb = (pq.read_table(x / "clusters.centers.parquet").column("cost").to_numpy() for x in (a, b))
    np.testing.assert_allclose(ca, cb, rtol=1e-12)


def test_refine_streaming_equals_in_memory(data, tmp_path):
    ref = _one_step(data / "emb.parquet", tmp_path / "m", "--refine", 3, "--fit-sample", 2000)
    got = _one_step(data / "emb.parquet", tmp_path / "s", "--refine", 3, "--fit-sample", 2000, "--memory-limit",
                    "500KB")
    _same_bytes(ref, got)


def test_api_array_and_file_source_agree(data):
    x = np.asarray(pq.read_table(data / "emb.parquet").column("embedding").combine_chunks().flatten()).reshape(N, D)
    a = cluster_mod.cluster(x, K, seed=3, block_rows=1000)
    b = cluster_mod.cluster(EmbeddingSource(ParquetDataset(data / "emb_rg.parquet")), K, seed=3, block_rows=1000)
    for field in ("labels", "distance", "center_index", "centroids", "size", "cost"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@needs_dask
def test_killed_worker_still_gives_identical_output(data, tmp_path):
    """SIGKILL one Dask worker process while the run's tasks are on it: the run completes, same bytes."""
    big = tmp_path / "big.parquet"
    pq.write_table(_data(n=60000, d=24, seed=1), big)
    ref = tmp_path / "ref.parquet"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as client:
        # LocalCluster sets OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1 in this process's environment, and the
        # k-means fit's rounding (so its early stop) depends on the BLAS thread count: the reference
        # must run in the same environment as the Dask run below, hence also as a subprocess, here
        subprocess.run([sys.executable, "-m", "dataselect_cli", "sample", str(big), "--k", "40", "--size", "500",
                        "-o", str(ref), "--block-rows", "500", "-q"], check=True, capture_output=True)
        pids = client.run(os.getpid)
        out = tmp_path / "dask.parquet"
        proc = subprocess.Popen([sys.executable, "-m", "dataselect_cli", "sample", str(big), "--k", "40", "--size",
                                 "500", "-o", str(out), "--block-rows", "500", "--engine", "dask", "--scheduler",
                                 lc.scheduler_address, "--partitions", "60", "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = []

        def kill_when_busy():
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy and busy[0] in pids:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.01)

        t = threading.Thread(target=kill_when_busy)
        t.start()
        _, err = proc.communicate(timeout=240)
        t.join()
    assert killed, "no worker was ever busy: the test did not exercise a worker loss"
    assert proc.returncode == 0, err
    if out.read_bytes() != ref.read_bytes():  # say which part differs
        a, b = pq.read_table(out), pq.read_table(ref)
        assert a.replace_schema_metadata(None).equals(b.replace_schema_metadata(None)), "rows differ"
        assert a.schema.metadata == b.schema.metadata, (a.schema.metadata, b.schema.metadata)
    assert out.read_bytes() == ref.read_bytes()


def test_mismatched_schemas_in_a_directory_name_both_files(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    t = _data(n=100)
    pq.write_table(t.slice(0, 50), d / "a.parquet")
    other = t.slice(50).set_column(1, "embedding", pa.array([list(map(float, v)) for v in
                                                              t.slice(50).column("embedding").to_pylist()],
                                                             pa.list_(pa.float64())))
    pq.write_table(other, d / "b.parquet")
    r = run("cluster", d, "-o", tmp_path / "c.parquet", "--k", 3, code=2)
    line = r.stderr.strip()
    assert line.count("\n") == 0 and str(d / "a.parquet") in line and str(d / "b.parquet") in line, line
    assert not (tmp_path / "c.parquet").exists()


def test_directory_without_parquet_files(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("cluster", tmp_path / "empty", "-o", tmp_path / "c.parquet", "--k", 3, code=2)
    assert "without .parquet files" in r.stderr


@pytest.mark.parametrize("vtype", [pa.list_(pa.float64()), pa.large_list(pa.float64()), pa.list_(pa.float16()),
                                   pa.list_(pa.float64(), D)])
def test_other_embedding_types_are_converted_and_said(data, tmp_path, vtype):
    t = pq.read_table(data / "emb.parquet")
    vals = t.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    flat = pa.array(vals.astype(np.float16 if vtype.value_type == pa.float16() else np.float64))
    if pa.types.is_fixed_size_list(vtype):
        col = pa.FixedSizeListArray.from_arrays(flat, D)
    else:
        offsets = pa.array(np.arange(0, N * D + 1, D, dtype=np.int64 if pa.types.is_large_list(vtype) else np.int32))
        col = (pa.LargeListArray if pa.types.is_large_list(vtype) else pa.ListArray).from_arrays(offsets, flat)
    pq.write_table(t.set_column(1, "embedding", col), tmp_path / "conv.parquet", row_group_size=1500)
    r = run("cluster", tmp_path / "conv.parquet", "-o", tmp_path / "c.parquet", "--k", 4, *GRID,
            "--memory-limit", "500KB")
    assert "converted" in r.stderr and str(vtype.value_type).replace("halffloat", "float16")[:5] in \
        r.stderr.replace("halffloat", "float16"), r.stderr
    assert pq.read_table(tmp_path / "c.parquet").num_rows == N


def test_bad_engine_options(data, tmp_path):
    out = tmp_path / "c.parquet"
    for args, frag in ((["--engine", "spark"], "--engine must be one of"),
                       (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
                       (["--memory-limit", "lots"], "--memory-limit must be a size"),
                       (["--memory-limit", "0"], "--memory-limit must be positive"),
                       (["--block-rows", "0"], "--block-rows must be >= 1"),
                       (["--fit-sample", "all", "--memory-limit", "100KB"], "more than --memory-limit")):
        r = run("cluster", data / "emb.parquet", "-o", out, "--k", 4, *args, code=2)
        assert frag in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not out.exists()


def test_every_command_takes_a_directory(data, tmp_path):
    """embed (numeric), cluster, score, sample, estimate, apply and evaluate read a directory of Parquet files."""
    vec = tmp_path / "vec"
    vec.mkdir()
    t = _data(n=300)
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, 301 * D, D, dtype=np.int32)),
                                     t.column("embedding").combine_chunks().flatten())
    for i, (a, b) in enumerate([(0, 120), (120, 300)]):
        pq.write_table(pa.table({"id": t.column("id").slice(a, b - a), "vector": lists.slice(a, b - a),
                                 "label": t.column("label").slice(a, b - a)}), vec / f"p{i}.parquet")
    run("embed", vec, "--column", "vector", "-o", tmp_path / "emb.parquet")
    assert pq.read_table(tmp_path / "emb.parquet").num_rows == 300
    run("cluster", data / "dir", "-o", tmp_path / "c.parquet", "--k", K, *GRID)
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet", *GRID)
    sel = tmp_path / "sel.parquet"
    run("sample", tmp_path / "s.parquet", "--size", 50, "-o", sel, *GRID)
    ids = pq.read_table(sel).column("id")
    losses = tmp_path / "losses"
    losses.mkdir()
    pq.write_table(pa.table({"id": ids.slice(0, 10), "loss": np.ones(10)}), losses / "a.parquet")
    pq.write_table(pa.table({"id": ids.slice(10), "loss": np.ones(len(ids) - 10)}), losses / "b.parquet")
    r = run("estimate", sel, "--losses", losses, "--json")
    assert abs(json.loads(r.stdout)["estimate_mean"] - 1) < 0.5
    run("apply", sel, data / "dir", "-o", tmp_path / "sub.parquet")
    sub = pq.read_table(tmp_path / "sub.parquet")
    assert sub.num_rows == len(ids) and sub.column_names[-2:] == ["weight", "count"]
    run("evaluate", vec.parent / "emb.parquet", "--data", vec, "--label", "label", "--budgets", "0.2",
        "--repeats", 1, "--strategies", "uniform", "-o", tmp_path / "ev")
    assert (tmp_path / "ev" / "results.parquet").exists()


def _slow_sum(b, block, offset, pause):
    time.sleep(pause)
    return float(block["v"].sum()) + offset[b % len(offset)]


@needs_dask
def test_dask_pass_survives_losing_every_copy_of_its_shared_values():
    """Kill, mid-pass, every worker holding a copy of what the pass shares (and of its source held in memory):
    the pass still completes with the same results. The Active Memory Manager trims a broadcast's copies to
    the workers running the pass's tasks, so losing the last copy is what a single lost worker can do: the
    tasks that need it are cancelled, and the engine sends the values again and resubmits what was not done."""
    from dataselect_cli.engine import DaskEngine

    v = np.arange(4000, dtype=np.float64)
    offset = np.arange(7, dtype=np.float64) * 1000
    want = [float(v[i:i + 100].sum()) + offset[b % 7] for b, i in enumerate(range(0, 4000, 100))]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as client:
        pids = client.run(os.getpid)
        eng = DaskEngine(lc.scheduler_address, partitions=20)
        try:
            it = eng.map_blocks(_slow_sum, MemorySource({"v": v}), 100, {"offset": offset, "pause": 0.05})
            got = [next(it)]
            where = {k: ws for k, ws in client.who_has().items() if not str(k).startswith("_run_range")}
            assert len(where) == 3, where  # offset, pause and the source
            for w in {w for ws in where.values() for w in ws}:
                os.kill(pids[w], signal.SIGKILL)
            got += list(it)
        finally:
            eng.close()
    assert got == want
