"""The synthetic input (issue 18): rows are a function of (seed, generation block), whatever asks for them."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import synthetic
from dataselect_cli.synthetic import GEN_ROWS, SyntheticDataset


def test_any_slice_is_the_same_rows():
    n, d, seed, c = GEN_ROWS * 2 + 123, 5, 7, 4
    whole = synthetic.rows(0, n, n, d, seed, c)
    assert whole.shape == (n, d) and whole.dtype == np.float32
    cuts = [0, 17, GEN_ROWS - 1, GEN_ROWS + 5, 2 * GEN_ROWS + 100, n]
    parts = [synthetic.rows(a, b, n, d, seed, c) for a, b in zip(cuts, cuts[1:])]
    assert np.array_equal(np.concatenate(parts), whole)
    ds = SyntheticDataset(f"synthetic:{n},{d},{seed},{c}")
    blocks = [np.asarray(t.column("embedding").combine_chunks().values).reshape(-1, d)
              for t in ds.iter_tables(["id", "embedding"], 0, n, 1000)]
    assert np.array_equal(np.concatenate(blocks), whole)
    assert not np.array_equal(synthetic.rows(0, 10, n, d, seed + 1, c), whole[:10])  # the seed matters


def test_it_has_cluster_structure():
    x = synthetic.rows(0, 4000, 4000, 8, 0, 4)
    mu = synthetic.centers(8, 0, 4)
    nearest = ((x[:, None, :] - mu[None]) ** 2).sum(-1).min(1)
    assert nearest.mean() == pytest.approx(8 * synthetic.NOISE**2, rel=0.1)  # each row near one of the centers


def test_cluster_and_sample_read_it_in_memory_and_streamed_alike(tmp_path):
    spec = "synthetic:150000,8,3"
    run("cluster", spec, "-o", tmp_path / "a.parquet", "--k", 6, "-q")
    # 4.8 MB of vectors, more than half of 8MB: streamed (two blocks of 65,536 rows and the fit rows: 4.6 MiB)
    run("cluster", spec, "-o", tmp_path / "b.parquet", "--k", 6, "-q", "--memory-limit", "8MB")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    meta = run("show", tmp_path / "a.parquet", "--json").stdout
    assert '"synthetic"' in meta and "generated, no file" in run("show", tmp_path / "a.parquet").stdout
    run("sample", "--k", 6, spec, "--size", 50, "-o", tmp_path / "s.parquet", "-q")
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 50
    r = run("cluster", spec, "-o", tmp_path / "a.parquet", "--k", 6, "--resume")
    assert r.stdout.startswith("up to date, skipped")


@pytest.mark.parametrize("spec", ["synthetic:", "synthetic:10,2", "synthetic:0,2,0", "synthetic:10,2,-1",
                                  "synthetic:a,b,c", "synthetic:10,2,0,0"])
def test_a_bad_spec_is_one_line(tmp_path, spec):
    r = run("cluster", spec, "-o", tmp_path / "c.parquet", "--k", 2, code=2)
    assert r.stderr.startswith("error: ") and "synthetic:N,D,SEED" in r.stderr and r.stderr.count("\n") == 1
