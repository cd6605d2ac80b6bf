"""``sample --design reweight`` (issue 15, item 5): loss-based reweighting (Sow et al., ICLR 2025), offline.

Each curve and the temperature against hand-computed weights, the quantile normalisation against an
outlier, every row weighted without a size, Σ w/π·ℓ unbiased for the reweighted objective Σ w·ℓ over
seeds with a size, determinism, and the refusals (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import designs, io
from dataselect_cli.designs.reweight import bounds, normalized, reweight
from dataselect_cli.errors import InputError

LOSS5 = np.arange(5.0)  # min–max: ℓ̃ = −1, −0.5, 0, 0.5, 1

# By hand, r = 1: w = 5·e^f / Σ e^f.
#   linupper  f = 0, .5, 1, 1, 1     Σ e^f = 1 + 1.648721 + 3·2.718282 = 10.803567
#   linear    f = 0, .25, .5, .75, 1 Σ e^f = 1 + 1.284025 + 1.648721 + 2.117000 + 2.718282 = 8.768028
#   quadratic f = 0, .75, 1, .75, 0  Σ e^f = 2 + 2·2.117000 + 2.718282 = 8.952282
#   extremes  f = 1, .5, 0, .5, 1    Σ e^f = 2·2.718282 + 2·1.648721 + 1 = 9.734006
HAND = {
    "linupper": [0.462810, 0.763045, 1.258048, 1.258048, 1.258048],
    "linear": [0.570254, 0.732220, 0.940189, 1.207227, 1.550110],
    "quadratic": [0.558517, 1.182380, 1.518206, 1.182380, 0.558517],
    "extremes": [1.396281, 0.846887, 0.513663, 0.846887, 1.396281],
}


@pytest.mark.parametrize("curve", list(HAND))
def test_each_curve_against_hand_computed_weights(curve):
    w = reweight(LOSS5, curve, 1.0, "minmax")
    np.testing.assert_allclose(w, HAND[curve], atol=2e-6)
    assert math.isclose(w.mean(), 1.0, rel_tol=1e-12)


def test_temperature_flattens_the_weights():
    # linear, r = 2: e^(f/2) = 1, 1.133148, 1.284025, 1.454991, 1.648721; Σ = 6.520885
    np.testing.assert_allclose(reweight(LOSS5, "linear", 2.0, "minmax"),
                               [0.766767, 0.868861, 0.984548, 1.115640, 1.264184], atol=2e-6)
    for r in (0.25, 1.0, 4.0):  # f in [0, 1]: no weight exceeds e^(1/r) times another, and the ends reach it
        w = reweight(LOSS5, "linear", r, "minmax")
        assert math.isclose(w.max() / w.min(), math.exp(1 / r), rel_tol=1e-9)


def test_quantile_normalisation_resists_an_outlier():
    loss = np.append(np.arange(100.0), 1e6)  # 101 values: q01 = 1, q99 = 99 (linear interpolation)
    assert bounds(loss, "quantile") == (1.0, 99.0) and bounds(loss, "minmax") == (0.0, 1e6)
    lt = normalized(loss, 1.0, 99.0)
    assert lt[0] == -1.0 and lt[1] == -1.0 and lt[50] == 0.0 and lt[99] == 1.0 and lt[100] == 1.0
    q, m = reweight(loss, "linear", 1.0, "quantile"), reweight(loss, "linear", 1.0, "minmax")
    assert q[99] / q[1] == pytest.approx(math.e)  # the spread of the ordinary losses is kept
    assert m[99] / m[0] < 1.0001  # min–max: the outlier squashes every other loss onto ℓ̃ ≈ −1


def test_a_flat_loss_gives_uniform_weights():
    np.testing.assert_allclose(reweight(np.full(6, 2.5), "linupper", 0.5, "minmax"), np.ones(6))


def test_every_row_weighted_without_a_size_on_any_grid():
    x = np.random.default_rng(0).gamma(2.0, 1.0, 300)
    d = designs.get("reweight", curve="quadratic", temperature=0.5)
    for block_rows in (7, 64, 300):
        a = d.draw_arrays(np.ones(300), 300, seed=1, block_rows=block_rows, columns={"score": x})
        assert a.index.tolist() == list(range(300)) and np.all(a.prob == 1.0)
        np.testing.assert_allclose(a.weight, reweight(x, "quadratic", 0.5), rtol=1e-12)


def test_with_a_size_the_weights_estimate_the_reweighted_objective_without_bias():
    """Σ (w/π)·ℓ over 300 seeds: its mean within 4 standard errors of Σ w·ℓ (observed z ≈ 0.4), and far from Σ ℓ."""
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 1.0, 400)
    loss = x * rng.uniform(0.5, 1.5, 400)
    d = designs.get("reweight", curve="linupper", temperature=0.3)
    w = reweight(x, "linupper", 0.3)
    target = float(np.sum(w * loss))
    est = np.array([np.sum(dr.weight * loss[dr.index]) for dr in
                    (d.draw_arrays(np.ones(400), 60, seed=s, block_rows=64, columns={"score": x}) for s in range(300))])
    z = (est.mean() - target) / (est.std(ddof=1) / math.sqrt(len(est)))
    assert abs(z) < 4, f"z = {z:.2f}"
    assert abs(target - loss.sum()) > 10 * est.std(ddof=1) / math.sqrt(len(est))  # a different quantity


def test_rows_are_drawn_in_proportion_to_their_weight():
    """Inclusion frequencies over 400 seeds against π = min(1, c·w) (binomial, 5 standard errors)."""
    x = np.linspace(0.0, 3.0, 50)
    d = designs.get("reweight", curve="linear", temperature=0.4, normalize="minmax")
    w = reweight(x, "linear", 0.4, "minmax")
    hits = np.zeros(50)
    for s in range(400):
        hits[d.draw_arrays(np.ones(50), 10, seed=s, block_rows=16, columns={"score": x}).index] += 1
    pi = np.minimum(1.0, 10 * w / w.sum())  # no row is capped here: c·w < 1
    assert pi.max() < 1
    se = np.sqrt(pi * (1 - pi) / 400)
    assert np.all(np.abs(hits / 400 - pi) < 5 * se + 1e-9)


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def loss_scores(tmp_path):
    """A scores file of 'dataselect score --method loss': id, score = the loss."""
    x = np.random.default_rng(3).gamma(2.0, 1.0, 200)
    t = pa.table({"id": np.arange(100, 300, dtype=np.int64), "score": x})
    io.write_table(t, str(tmp_path / "scores.parquet"), io.make_meta(
        "score", {"method": "loss"}, {}, {"n": 200, "method": "loss", "direction": "higher=harder",
                                          "normalization": "none"}))
    return tmp_path / "scores.parquet", x


def test_cli_weights_every_row_and_estimate_refuses(loss_scores, tmp_path):
    path, x = loss_scores
    out = tmp_path / "w.parquet"
    r = run("sample", path, "--design", "reweight", "--curve", "extremes", "--temperature", 0.5, "-o", out, "--json",
            "--report-md", tmp_path / "r.md")
    rep = json.loads(r.stdout)
    t = pq.read_table(out)
    assert t.num_rows == 200 and t.column("id").to_pylist() == list(range(100, 300))
    np.testing.assert_allclose(t.column("weight").to_numpy(), reweight(x, "extremes", 0.5), rtol=1e-12)
    assert rep["unbiased"] is False and rep["reweight"]["whole_set"] is True
    assert rep["reweight"]["normalize"] == "quantile" and rep["reweight"]["clipped"] == 4  # 2 below q01, 2 above q99
    assert "NOT an estimate of the full loss" in rep["guarantee"] and "offline approximation" in rep["guarantee"]
    md = (tmp_path / "r.md").read_text()
    assert "| curve f(ℓ̃) | extremes |" in md and "the reweighted training objective" in md
    pq.write_table(pa.table({"id": t.column("id"), "loss": x}), tmp_path / "l.parquet")
    e = run("estimate", out, "--losses", tmp_path / "l.parquet", code=2)
    line = e.stderr.strip()
    assert line.count("\n") == 0 and "reweighted training objective" in line and "does not estimate" in line


def test_cli_with_a_size_is_deterministic(loss_scores, tmp_path):
    path, _ = loss_scores
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        run("sample", path, "--design", "reweight", "--fraction", 0.25, "--seed", 4, "-o", out)
    assert a.read_bytes() == b.read_bytes()
    t = pq.read_table(a)
    assert t.num_rows == 50 and np.all(t.column("weight").to_numpy() > 0)
    meta = json.loads(pq.read_schema(a).metadata[b"dataselect"])
    assert meta["params"]["design"] == "reweight" and meta["params"]["curve"] == "linupper"
    run("sample", path, "--design", "reweight", "--fraction", 0.25, "--seed", 5, "-o", b)
    assert a.read_bytes() != b.read_bytes()


@pytest.mark.parametrize("args, frag", [
    (["--curve", "cubic"], "--curve must be one of linupper, linear, quadratic, extremes; got 'cubic'"),
    (["--temperature", "0"], "--temperature must be a positive number"),
    (["--temperature", "0.001"], "exp(−1/r) underflows"),
    (["--normalize", "zscore"], "--normalize must be one of quantile, minmax"),
    (["--design", "softmax", "--curve", "linear", "--size", "5"], "--curve does not apply to --design softmax"),
    (["--eps", "0.2"], "--eps sets s from the sensitivity bound"),
])
def test_cli_refuses_bad_options_in_one_line(loss_scores, tmp_path, args, frag):
    path, _ = loss_scores
    design = [] if "--design" in args else ["--design", "reweight"]
    r = run("sample", path, *design, *args, "-o", tmp_path / "o.parquet", code=2)
    assert r.stderr.count("\n") == 1 and frag in r.stderr, r.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_cli_refuses_a_nan_loss(tmp_path):
    pq.write_table(pa.table({"id": np.arange(4), "score": [1.0, np.nan, 2.0, 0.5]}), tmp_path / "s.parquet")
    r = run("sample", tmp_path / "s.parquet", "--design", "reweight", "-o", tmp_path / "o.parquet", code=2)
    assert r.stderr.count("\n") == 1 and "s.parquet" in r.stderr and "'score' must be finite" in r.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_design_refuses_to_estimate_in_the_library():
    d = designs.get("reweight")
    with pytest.raises(InputError, match="reweighted training objective"):
        d.estimate(np.ones(3), {"count": np.ones(3), "prob": np.ones(3), "weight": np.ones(3)}, 3)
