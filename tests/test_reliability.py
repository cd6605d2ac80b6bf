"""A run killed at any moment leaves the old output or the complete new one, never a partial file."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataselect_cli import io

N = 60_000


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    path = tmp_path_factory.mktemp("kill") / "emb.parquet"
    x = np.random.default_rng(0).normal(size=(N, 32)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(N), "embedding": io.embedding_array(x)}), path)
    return path


def cluster_cmd(emb, out, seed):
    return [sys.executable, "-m", "dataselect_cli", "cluster", str(emb), "-o", str(out), "--k", "50",
            "--seed", str(seed), "--fit-sample", "all", "--tol", "0", "-q"]


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.3, 1.8, 2.5])
def test_sigkill_leaves_old_or_complete_new_output(tmp_path, emb, delay):
    out = tmp_path / "clusters.parquet"
    subprocess.run(cluster_cmd(emb, out, seed=1), check=True, capture_output=True)
    old = out.read_bytes()
    proc = subprocess.Popen(cluster_cmd(emb, out, seed=2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # whatever the moment: the output is the old file, or a complete new one with seed 2
    meta = io.read_meta(out)
    assert pq.ParquetFile(out).metadata.num_rows == N
    assert meta["seed"] in (1, 2)
    if meta["seed"] == 1:
        assert out.read_bytes() == old
    centers = tmp_path / "clusters.centers.parquet"
    assert pq.ParquetFile(centers).metadata.num_rows == 50
    # a killed run can leave its temporary file behind, never under the output's name
    assert all(p.name.startswith(".") and p.name.endswith(".tmp")
               for p in tmp_path.iterdir() if p.name not in ("clusters.parquet", "clusters.centers.parquet"))


def _check_signalled(err, how, out, tmp_path):
    """A signal before the commit: nothing written, and said so. One that came while the outputs were renamed
    into place was held back until all of them were: then they are complete, and the line says that instead."""
    if err.strip() == f"{how}; its outputs had all been written":
        assert pq.ParquetFile(out).metadata.num_rows == N
    else:
        assert err.strip() in ("", f"{how}; no output was written"), err  # "": killed while Python starts up
        assert not out.exists()
    assert not any(p.suffix == ".tmp" for p in tmp_path.iterdir())


def test_sigint_writes_nothing_and_says_so(tmp_path, emb):
    out = tmp_path / "clusters.parquet"
    proc = subprocess.Popen(cluster_cmd(emb, out, seed=2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # past start-up, inside k-means
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before the signal: then the output is complete
        assert pq.ParquetFile(out).metadata.num_rows == N
        return
    # 130 with one line once the command runs; killed by the signal itself (−2) while Python starts up
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err)
    _check_signalled(err, "interrupted", out, tmp_path)


def test_sigterm_writes_nothing_and_says_so(tmp_path, emb):
    out = tmp_path / "clusters.parquet"
    proc = subprocess.Popen(cluster_cmd(emb, out, seed=2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        assert pq.ParquetFile(out).metadata.num_rows == N
        return
    assert proc.returncode in (143, -signal.SIGTERM), (proc.returncode, err)
    _check_signalled(err, "terminated", out, tmp_path)


def test_next_run_sweeps_temp_files_of_killed_runs(tmp_path, emb):
    out = tmp_path / "clusters.parquet"
    proc = subprocess.Popen(cluster_cmd(emb, out, seed=2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stale = tmp_path / ".clusters.parquet.999999999.x1.tmp"  # a writer that no longer exists
    stale.write_bytes(b"partial")
    live = tmp_path / f".clusters.parquet.{os.getpid()}.x2.tmp"  # a writer still running: left alone
    live.write_bytes(b"in progress")
    subprocess.run(cluster_cmd(emb, out, seed=3), check=True, capture_output=True)
    left = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp")
    assert left == [live.name]


# --------------------------------------------------------------------------- --resume


def _cluster(emb, out, *extra):
    from clirun import run

    return run("cluster", emb, "-o", out, "--k", 5, "--resume", *extra)


def test_resume_skips_an_up_to_date_step_and_redoes_a_changed_one(tmp_path):
    emb = tmp_path / "emb.parquet"
    x = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(500), "embedding": io.embedding_array(x)}), emb)
    out = tmp_path / "c.parquet"
    first = _cluster(emb, out)
    assert "skipped" not in first.stderr
    stamp = out.stat().st_mtime_ns
    again = _cluster(emb, out)
    assert "up to date, skipped (--resume)" in again.stderr and out.stat().st_mtime_ns == stamp
    # the same summary, read back from the metadata, said to be skipped on stdout too (for scripts)
    assert again.stdout == first.stdout.replace("wrote ", "up to date, skipped (--resume): ", 1)
    flags = [json.loads(_cluster(emb, out, "--json").stdout)["skipped"] for _ in range(2)]
    assert flags == [True, True]
    assert json.loads(_cluster(emb, out, "--json", "--seed", 3).stdout)["skipped"] is False
    assert "skipped" not in _cluster(emb, out, "--seed", 1).stderr  # a parameter changed
    assert "skipped" in _cluster(emb, out, "--seed", 1).stderr
    x[0, 0] += 1  # the input's content changed (same name, same size)
    pq.write_table(pa.table({"id": np.arange(500), "embedding": io.embedding_array(x)}), emb)
    assert "skipped" not in _cluster(emb, out, "--seed", 1).stderr
    (tmp_path / "c.centers.parquet").unlink()  # an output missing
    assert "skipped" not in _cluster(emb, out, "--seed", 1).stderr
    # --resume never skips a file another run of other inputs wrote
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": np.arange(500), "embedding": io.embedding_array(x * 2)}), other)
    assert "skipped" not in _cluster(other, out, "--seed", 1).stderr


def test_resume_through_a_pipeline_rewrites_missing_reports(tmp_path):
    from clirun import run

    emb = tmp_path / "emb.parquet"
    x = np.random.default_rng(1).normal(size=(400, 3)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(400), "embedding": io.embedding_array(x)}), emb)
    steps = [["cluster", emb, "-o", tmp_path / "c.parquet", "--k", 4],
             ["score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet"],
             ["sample", tmp_path / "s.parquet", "-o", tmp_path / "sel.parquet", "--report", tmp_path / "r.json"],
             ["apply", tmp_path / "sel.parquet", emb, "-o", tmp_path / "sub.parquet"]]
    for step in steps:
        assert "skipped" not in run(*step, "--resume").stderr
    report = (tmp_path / "r.json").read_bytes()
    (tmp_path / "r.json").unlink()
    for step in steps:
        r = run(*step, "--resume")
        assert "up to date, skipped" in r.stderr and r.stdout.startswith("up to date, skipped (--resume): ")
    assert (tmp_path / "r.json").read_bytes() == report


def test_resume_on_estimate_and_evaluate(tmp_path):
    from clirun import run

    emb = tmp_path / "emb.parquet"
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(300), "embedding": io.embedding_array(x),
                             "label": (x[:, 0] > 0).astype(np.int64)}), emb)
    run("sample", "--k", 4, "--size", 40, emb, "-o", tmp_path / "sel.parquet")
    ids = pq.read_table(tmp_path / "sel.parquet").column("id").to_numpy()
    pq.write_table(pa.table({"id": ids, "loss": rng.random(len(ids))}), tmp_path / "l.parquet")
    est = ["estimate", tmp_path / "sel.parquet", "--losses", tmp_path / "l.parquet", "--report", tmp_path / "e.json",
           "--resume", "--json"]
    first, again = json.loads(run(*est).stdout), json.loads(run(*est).stdout)
    assert (first["skipped"], again["skipped"]) == (False, True)
    assert {k: v for k, v in first.items() if k != "skipped"} == {k: v for k, v in again.items() if k != "skipped"}
    assert json.loads(run(*est, "--delta", 0.1).stdout)["skipped"] is False  # a parameter changed
    ev = ["evaluate", emb, "--label", "label", "--budgets", "30", "--repeats", 1, "--strategies", "uniform",
          "-o", tmp_path / "ev", "--resume"]
    assert "skipped" not in run(*ev).stdout
    stamp = (tmp_path / "ev" / "results.parquet").stat().st_mtime_ns
    assert run(*ev).stdout.startswith("up to date, skipped (--resume): ")
    assert (tmp_path / "ev" / "results.parquet").stat().st_mtime_ns == stamp
    (tmp_path / "ev" / "summary.md").unlink()  # an output missing: redone
    assert "skipped" not in run(*ev).stdout and (tmp_path / "ev" / "summary.md").exists()
