"""sample --regression (Algorithm 2): the mass, unbiasedness over seeds, --lambda inf, leverage, bad inputs."""

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import designs, io
from dataselect_cli.cluster import cluster
from dataselect_cli.methods import Inputs
from dataselect_cli.methods.sensitivity import Sensitivity
from dataselect_cli.models import _design, center_residuals, squared_residuals
from dataselect_cli.steps.score import from_clustering


def data(n=300, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(6, d))[rng.integers(0, 6, n)] * 3 + rng.normal(size=(n, d))).astype(np.float32)
    y = x.astype(np.float64) @ np.array([1.0, -2.0, 0.5]) + np.sin(x[:, 0]) + rng.normal(scale=0.3, size=n)
    return x, y


@pytest.fixture
def files(tmp_path):
    x, y = data()
    ids = pa.array(np.arange(len(x)) * 10, pa.int64())
    pq.write_table(pa.table({"id": ids, "embedding": io.embedding_array(x), "y": y, "name": [str(i) for i in ids]}),
                   tmp_path / "emb.parquet")
    pq.write_table(pa.table({"id": ids.take(pa.array(np.arange(len(x))[::-1])), "y": y[::-1]}), tmp_path / "t.parquet")
    return tmp_path


def regression_mass(lam, k=12, z=1):
    """Algorithm 2's mass through the tool's own pieces: clustering, x0 on the centers, the sensitivity method."""
    x, y = data()
    ids = pa.array(np.arange(len(x)), pa.int64())
    cl = cluster(x, k, z=z, seed=0)
    _, residual = center_residuals(x[cl.center_index], y[cl.center_index], cl.size)
    c = from_clustering(ids, cl, z, x.shape[1])
    method = Sensitivity(lam=lam)
    state, summary = method.prepare(Inputs(c, (c.center_id, residual), "t", target="y"), lambda _m: None)
    cols, _ = method.score_block(0, {"cluster": cl.labels, "distance": cl.distance}, state)
    return x, y, cl, residual, cols["mass"], summary


def test_mass_is_center_residual_plus_lambda_distance_and_distance_alone_for_inf():
    x, y, cl, residual, mass, summary = regression_mass(0.7)
    np.testing.assert_allclose(mass, residual[cl.labels] + 0.7 * cl.distance.astype(np.float64))
    x0, _ = center_residuals(x[cl.center_index], y[cl.center_index], cl.size)
    np.testing.assert_allclose(residual, (_design(x[cl.center_index]) @ x0 - y[cl.center_index]) ** 2)
    *_, mass_inf, summary_inf = regression_mass(math.inf)
    np.testing.assert_array_equal(mass_inf, cl.distance.astype(np.float64))
    assert summary_inf["lambda"] is None and summary_inf["lambda_phi"] is None and summary_inf["lambda_infinite"]


@pytest.mark.parametrize("lam", [0.7, math.inf])
def test_weighted_squared_error_is_unbiased_over_seeds(lam):
    """For a fixed model θ, Σ_S w·(⟨[a,1], θ⟩ − b)² over 400 seeded draws of s = 40 averages to Σ over the rows with
    p > 0 within 4 standard errors of that mean (SE from the exact i.i.d. variance (Σ f²/p − T²)/s)."""
    x, y, cl, _, mass, _ = regression_mass(lam)
    f = squared_residuals(np.array([0.8, -1.5, 0.0, 0.3]), x, y)
    p = mass / mass.sum()
    pos = p > 0
    truth = f[pos].sum()
    design, s, seeds = designs.get("iid"), 40, 400
    draws = (design.draw_arrays(mass, s, seed) for seed in range(seeds))
    est = np.array([np.sum(d.weight * f[d.index]) for d in draws])
    se = math.sqrt((np.sum(f[pos] ** 2 / p[pos]) - truth**2) / s / seeds)
    assert abs(est.mean() - truth) < 4 * se, (est.mean(), truth, se)
    if lam == math.inf:  # the k centers have p = 0: what the estimate leaves out is exactly their sum
        assert (~pos).sum() == 12 and set(np.flatnonzero(~pos)) == set(cl.center_index.tolist())


def test_cli_regression_fits_x0_on_the_centers_and_says_what_the_weights_estimate(files, tmp_path):
    x, y = data()
    r = run("sample", files / "emb.parquet", "--k", 12, "--regression", "--target", "y", "--size", 60,
            "--centers", tmp_path / "c.parquet", "--report", tmp_path / "r.json", "-o", tmp_path / "s.parquet")
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["design"] == "iid" and rep["z"] == 1 and rep["params"]["regression"] is True
    centers = pq.read_table(tmp_path / "c.parquet")
    rows = np.asarray(centers.column("center_id").to_pylist()) // 10
    x0, _ = center_residuals(x[rows], y[rows], centers.column("size").to_numpy())
    np.testing.assert_allclose(rep["regression"]["x0"], x0, rtol=1e-6, atol=1e-9)
    assert rep["regression"]["zero_prob_rows"] == 0 and "over every row" in r.stdout
    run("sample", files / "emb.parquet", "--k", 12, "--regression", "--target", "y", "--size", 60,
        "--data", files / "t.parquet", "-o", tmp_path / "d.parquet")
    same = [pq.read_table(tmp_path / f).select(["id", "count", "prob", "weight"]) for f in ("s.parquet", "d.parquet")]
    assert same[0].equals(same[1])  # the target joined on id from --data: the same selection


def test_cli_lambda_inf_counts_the_rows_it_cannot_draw(files, tmp_path):
    r = run("sample", files / "emb.parquet", "--k", 12, "--regression", "--target", "y", "--lambda", "inf",
            "--size", 60, "--report", tmp_path / "r.json", "-o", tmp_path / "s.parquet")
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["regression"]["zero_prob_rows"] == 12 and "288 rows with p > 0" in rep["regression"]["estimates"]
    assert rep["lambda_infinite"] and "Λ = ∞" in rep["guarantee"] and "no (1 ± ε) bound" in rep["guarantee"]
    assert "Infinity" not in (tmp_path / "r.json").read_text()
    assert "288 rows with p > 0" in r.stdout


def test_cli_leverage_design_draws_by_the_leverage_of_x_with_intercept(files, tmp_path):
    x, _ = data()
    run("sample", files / "emb.parquet", "--regression", "--target", "y", "--design", "leverage", "--size", 60,
        "--report", tmp_path / "r.json", "-o", tmp_path / "s.parquet")
    sel = pq.read_table(tmp_path / "s.parquet")
    q, _ = np.linalg.qr(_design(x))
    h = (q**2).sum(axis=1)
    rows = sel.column("id").to_numpy() // 10
    np.testing.assert_allclose(sel.column("prob").to_numpy(), h[rows] / h.sum(), rtol=1e-9)
    np.testing.assert_allclose(sel.column("weight").to_numpy(), sel.column("count").to_numpy() / (60 * h[rows] / 4))
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["design"] == "leverage" and "Theorem 2" not in rep["guarantee"]
    pq.write_table(pa.table({"id": sel.column("id"), "loss": np.ones(sel.num_rows)}), tmp_path / "l.parquet")
    est = run("estimate", tmp_path / "s.parquet", "--losses", tmp_path / "l.parquet", "--json")
    assert "paper_interval" not in json.loads(est.stdout)


def bad(*args):
    r = run(*args, code=2)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error:")
    return r.stderr


def test_bad_inputs_exit_2(files, tmp_path):
    emb, out = files / "emb.parquet", tmp_path / "s.parquet"
    assert "needs --target COL" in bad("sample", emb, "--k", 5, "--regression", "-o", out)
    assert "no column 'nope'" in bad("sample", emb, "--k", 5, "--regression", "--target", "nope", "-o", out)
    assert "must be numeric" in bad("sample", emb, "--k", 5, "--regression", "--target", "name", "-o", out)
    assert "--target applies with --regression" in bad("sample", emb, "--k", 5, "--target", "y", "-o", out)
    assert "applies with --regression" in bad("sample", emb, "--k", 5, "--design", "leverage", "-o", out)
    assert "give --k" in bad("sample", emb, "--regression", "--target", "y", "-o", out)
    pq.write_table(pa.table({"id": pa.array([0, 10], pa.int64()), "loss": [1.0, 2.0]}), tmp_path / "l.parquet")
    msg = bad("sample", emb, "--k", 5, "--regression", "--target", "y", "--losses", tmp_path / "l.parquet", "-o", out)
    assert "--losses and --loss-command do not apply" in msg
    x, y = data()
    y[7] = np.nan
    pq.write_table(pa.table({"id": pa.array(np.arange(len(x)) * 10, pa.int64()), "y": y}), tmp_path / "nan.parquet")
    assert "NaN or infinite at row 7" in bad("sample", emb, "--k", 5, "--regression", "--target", "y", "--data",
                                             tmp_path / "nan.parquet", "-o", out)
    assert not out.exists()
