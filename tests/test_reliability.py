"""A run killed at any moment leaves the old output or the complete new one, never a partial file."""

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
    if proc.returncode == 130:
        assert err.strip() == "interrupted; no output was written"
    assert not out.exists() and not any(p.suffix == ".tmp" for p in tmp_path.iterdir())
