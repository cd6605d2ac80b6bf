"""The intervals `estimate` prints (issue 12, item 3): the skew-corrected t, the GREG interval on leverage-adjusted
residuals, the knn proxy and the R² over the probes. Coverage over fixed seeds, tolerances from the binomial noise."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import clustered_with_probes, run
from dataselect_cli import bounds, calibration, proxy, skewt
from dataselect_cli.designs.base import Estimate
from dataselect_cli.designs.uniform import Uniform


def test_corrected_t_is_the_plain_t_without_skew():
    """γ = 0 and ν = s − 1: the plain Student t interval, to the last digit (÷ n)."""
    lo, hi = skewt.corrected_t(50.0, 2.0, skewt.Shape(0.0, 9.0), 0.05)
    plo, phi = bounds.clt_interval(50.0, 4.0, 10, 0.05, 1)
    assert (lo, hi) == pytest.approx((plo, phi), rel=1e-12)


def test_hall_transformation_inverts():
    """g(g⁻¹(u)) = u for the cubic g(t) = t + a + 2a·t² + (4/3)a²·t³, for either sign of a."""
    for a in (-0.2, 0.05, 0.3):
        for u in (-3.0, -1.0, 0.0, 2.0):
            t = skewt._hall_inverse(u, a)
            assert t + a + 2 * a * t * t + 4 / 3 * a * a * t**3 == pytest.approx(u, abs=1e-9)


def test_unit_shape_of_symmetric_units_has_no_skew():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    sh = skewt.unit_shape([y, y + 10], 8)
    assert sh.skewness == pytest.approx(0.0, abs=1e-12) and 1 <= sh.df <= 8


def _coverage(population: np.ndarray, s: int, seeds: int) -> tuple[float, float]:
    """Coverage of the plain and of the corrected 95 % t interval of uniform samples of s rows."""
    n, truth = len(population), float(population.mean())
    design, plain, fixed = Uniform(), 0, 0
    for seed in range(seeds):
        idx = np.random.default_rng(seed).choice(n, s, replace=False)
        loss = population[idx]
        sel = {"weight": np.full(s, n / s), "count": np.ones(s, np.int32), "prob": np.full(s, s / n)}
        est = design.estimate(loss, sel, n)
        lo, hi = bounds.clt_interval(est.total, est.var, s, 0.05, n)
        plain += lo <= truth <= hi
        iv = design.t_interval(est, design.units(loss, sel), 0.05)
        fixed += iv.low <= truth <= iv.high
    return plain / seeds, fixed / seeds


def test_corrected_t_keeps_its_level_on_skewed_losses():
    """Squared-residual-like losses (a χ²₁ times a gamma scale: skewness about 6), s = 100 of 20,000 rows: the plain t
    interval undercovers, the corrected one holds 95 % within the binomial noise of 600 seeds (±2.6 SE ≈ 2.3 points)."""
    rng = np.random.default_rng(7)
    population = (rng.normal(size=20000) * rng.gamma(2.0, 1.0, 20000)) ** 2
    plain, fixed = _coverage(population, 100, 600)
    noise = 2.6 * np.sqrt(0.95 * 0.05 / 600)
    assert fixed >= 0.95 - noise, (plain, fixed)
    assert fixed > plain + 0.02, (plain, fixed)


def test_greg_leverage_adjusted_residuals_keep_the_level():
    """Post-stratified uniform samples with about 5 rows per cluster: the residuals of the cluster means are smaller
    than the errors by about (1 − 1/m_h); adjusted by the leverage, the GREG interval covers 95 % within the noise."""
    rng = np.random.default_rng(11)
    k, n, s, seeds = 20, 4000, 100, 500
    labels = rng.integers(0, k, n)
    population = rng.gamma(2.0, 1.0, k)[labels] * 3 + rng.gamma(2.0, 1.0, n)
    size = np.bincount(labels, minlength=k).astype(float)
    truth, design, covered = float(population.mean()), Uniform(), 0
    for seed in range(seeds):
        idx = np.sort(np.random.default_rng(seed).choice(n, s, replace=False))
        sel = {"weight": np.full(s, n / s), "count": np.ones(s, np.int32), "prob": np.full(s, s / n),
               "cluster": labels[idx]}
        ga = calibration.model_assisted(design, population[idx], sel, np.ones(k), size, n)
        est = Estimate(ga.total, ga.resid.var, n, ga.resid.df)
        iv = design.t_interval(est, design.units(ga.residuals, sel), 0.05)
        covered += iv.low <= truth <= iv.high
    assert covered / seeds >= 0.95 - 2.6 * np.sqrt(0.95 * 0.05 / seeds), covered / seeds


def test_leverage_of_post_strata_is_one_over_the_rows():
    cluster = np.array([0, 0, 1, 1, 1])
    x = np.eye(2)[cluster]
    np.testing.assert_allclose(calibration.leverage(np.full(5, 2.0), x), [0.5, 0.5, 1 / 3, 1 / 3, 1 / 3])


def test_knn_proxy_by_hand():
    """Inverse-distance weights over the 2 nearest queried rows; a queried row predicts itself."""
    q = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    ql = np.array([1.0, 3.0, 9.0])
    got = proxy.knn_proxy(np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 4.0]]), q, ql, k=2)
    # (1, 0): distances 1 and 1 → (1 + 3)/2; (0.5, 0): 0.5 and 1.5 → weights 3/4, 1/4 → 1.5
    np.testing.assert_allclose(got, [2.0, 1.5, 9.0])


def _knn_pipeline(tmp_path):
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(6, 4)) * 6
    lab = rng.integers(0, 6, 1500)
    x = (centers[lab] + rng.normal(size=(1500, 4))).astype(np.float32)
    loss = np.abs(x[:, 0]) + 0.1 * rng.gamma(1.0, 1.0, 1500)
    ids = clustered_with_probes(tmp_path, x, loss, 6)
    pq.write_table(pa.table({"id": np.arange(1500), "loss": loss}), tmp_path / "all.parquet")
    return x, loss, ids


def test_score_proxy_knn_and_the_r2_over_the_probes(tmp_path):
    x, loss, ids = _knn_pipeline(tmp_path)
    r = run("score", tmp_path / "c.parquet", "--losses", tmp_path / "l.parquet", "--proxy", "knn", "-o",
            tmp_path / "s.parquet", "--embeddings", tmp_path / "e.parquet")
    assert "R² over the 18 probes, each left out of its own prediction: center" in r.stdout
    t = pq.read_table(tmp_path / "s.parquet")
    got = t.column("proxy_loss").to_numpy()
    np.testing.assert_allclose(got[ids], loss[ids])  # a queried row is its own nearest queried row
    row = int(np.setdiff1d(np.arange(1500), ids)[0])  # by hand: the 8 nearest queried rows, weights 1/distance
    d = np.linalg.norm(x[ids].astype(np.float64) - x[row], axis=1)
    near = np.argsort(d)[:8]
    w = 1 / d[near]
    assert got[row] == pytest.approx(float(np.sum(w * loss[ids][near]) / w.sum()), rel=1e-5)
    summary = json.loads(t.schema.metadata[b"dataselect"])["summary"]
    assert summary["proxy"]["proxy"] == "knn" and set(summary["proxy"]["r2_loo"]) == {"center", "mean", "knn"}
    # estimate's R² is the probes', left out, not the selected rows'
    run("sample", tmp_path / "s.parquet", "--design", "uniform", "--size", 150, "-o", tmp_path / "sel.parquet", "-q")
    e = json.loads(run("estimate", tmp_path / "sel.parquet", "--losses", tmp_path / "all.parquet", "--json").stdout)
    ma = e["model_assisted"]
    assert ma["r2"] == pytest.approx(summary["proxy"]["r2_loo"]["mean"]) and "probes" in ma["r2_over"]
    assert "skew-corrected" in e["clt_interval"]["kind"] and "leverage-adjusted" in ma["clt_interval"]["kind"]
    # the bootstrap-t states no probability, so it is given only when asked for
    assert "bootstrap_interval" not in e
    b = json.loads(run("estimate", tmp_path / "sel.parquet", "--losses", tmp_path / "all.parquet", "--json",
                       "--bootstrap").stdout)
    assert b["bootstrap_interval"]["confidence"] is None and b["bootstrap_interval"]["not_guaranteed"]
    assert b["bootstrap_interval"]["low"] < b["estimate_mean"] < b["bootstrap_interval"]["high"]
    assert {k: v for k, v in b.items() if k != "bootstrap_interval"} == e


def test_proxy_knn_without_embeddings_is_one_line_exit_2(tmp_path):
    _knn_pipeline(tmp_path)
    r = run("score", tmp_path / "c.parquet", "--losses", tmp_path / "l.parquet", "--proxy", "knn", "-o",
            tmp_path / "s.parquet", code=2)
    assert "--proxy knn needs" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.parquet").exists()


def test_proxy_auto_takes_the_best_leave_one_out_r2(tmp_path):
    """--proxy auto: the proxy of largest R² over the probes (each left out), knn among them in a one-step run."""
    _knn_pipeline(tmp_path)
    run("sample", tmp_path / "e.parquet", "--k", 6, "--probes", 3, "--losses", tmp_path / "l.parquet",
        "--proxy", "auto", "--size", 100, "-o", tmp_path / "sel.parquet", "--keep-intermediate", tmp_path / "w", "-q")
    t = pq.read_table(tmp_path / "w" / "scores.parquet")
    p = json.loads(t.schema.metadata[b"dataselect"])["summary"]["proxy"]
    r2 = p["r2_loo"]
    assert set(r2) == {"center", "mean", "knn"} and p["chosen"] == max(r2, key=r2.get)
    vectors = ["--embeddings", tmp_path / "e.parquet"] if p["chosen"] == "knn" else []
    run("score", tmp_path / "w" / "clusters.parquet", "--losses", tmp_path / "l.parquet", "--proxy", p["chosen"],
        *vectors, "-o", tmp_path / "same.parquet", "-q")
    np.testing.assert_allclose(t.column("proxy_loss").to_numpy(),
                               pq.read_table(tmp_path / "same.parquet").column("proxy_loss").to_numpy())
