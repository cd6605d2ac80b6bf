"""``dataselect evaluate``: the file set, the table, honest coverage figures, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import evaluate as ev
from dataselect_cli import io, plots
from test_htmlreport import assert_valid_html

FILES = {"results.parquet", "summary.md", "report.html", "metric.png", "rel_error.png", "coverage.png"}


def make_data(n=300, d=5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, d)) * 2.5
    label = rng.integers(0, 3, n)
    x = centers[label] + rng.normal(size=(n, d))
    beta = rng.normal(size=d)
    target = x @ beta + 0.5 * rng.standard_t(3, size=n)
    return x.astype(np.float32), label, target


@pytest.fixture
def emb(tmp_path):
    x, label, target = make_data()
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"id": pa.array(np.arange(len(x)) * 3, pa.int64()), "embedding": io.embedding_array(x),
                             "label": pa.array(label, pa.int64()), "y": pa.array(target),
                             "name": pa.array([f"r{i}" for i in range(len(x))]),
                             "one": pa.array(np.zeros(len(x), np.int64))}), path)
    return path


def evaluate(emb, out, *extra, code=0):
    return run("evaluate", emb, "-o", out, "--budgets", "0.05,0.1", "--repeats", 2, *extra, code=code)


@pytest.fixture(scope="module")
def label_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label")
    x, label, _ = make_data()
    path = tmp / "emb.parquet"
    pq.write_table(pa.table({"id": pa.array(np.arange(len(x)), pa.int64()), "embedding": io.embedding_array(x),
                             "label": pa.array(label, pa.int64())}), path)
    r = evaluate(path, tmp / "out", "--label", "label", "--json")
    return tmp / "out", r


def test_label_run_writes_the_file_set_and_the_table(label_run):
    out, r = label_run
    assert {p.name for p in out.iterdir()} == FILES
    t = pq.read_table(out / "results.parquet")
    assert t.column_names == ev.RESULT_COLUMNS
    names = ev.default_strategies("label")
    assert names == ["uniform", "sensitivity", "sensitivity-mixture", "sensitivity-poisson", "sensitivity-pareto",
                     "sensitivity-stratified", "sensitivity-auto", "sensitivity-budget", "kcenter", "margin"]
    assert t.num_rows == 1 + len(names) * 2 * 2
    rows = t.to_pylist()
    full = rows[0]
    assert full["strategy"] == "full" and full["rows"] == 240 and full["rel_error"] == 0
    assert {r["budget"] for r in rows[1:]} == {12, 24}
    assert all(0 <= r["test_unweighted"] <= 1 for r in rows)
    meta = io.read_meta(out / "results.parquet")
    assert meta["command"] == "evaluate" and meta["summary"]["n_train"] == 240 and meta["summary"]["metric"] == "accuracy"
    assert '"best"' in r.stdout  # --json: one object


def test_coverage_is_computed_against_the_truth(label_run):
    out, _ = label_run
    rows = pq.read_table(out / "results.parquet").to_pylist()
    truths = {r["truth"] for r in rows}
    assert len(truths) == 1
    truth = truths.pop()
    for r in rows:
        assert r["rel_error"] == pytest.approx(abs(r["estimate"] - truth) / truth)
        for kind in ("theorem2", "clt"):
            lo, hi, cov = r[f"{kind}_low"], r[f"{kind}_high"], r[f"{kind}_covered"]
            assert (lo is None) == (hi is None) == (cov is None)
            if cov is not None:
                assert cov == (lo <= truth <= hi)
        if r["strategy"] in ("kcenter", "margin", "full"):  # no unbiased weights: no interval, no weighted model
            assert r["theorem2_covered"] is None and r["clt_covered"] is None
        if r["strategy"] in ("kcenter", "margin"):
            assert r["test_weighted"] is None and r["weights"] == "none"
        if r["strategy"] == "sensitivity":
            assert r["theorem2_covered"] is not None and r["eps"] == pytest.approx(io_eps(r["budget"]))
        if r["strategy"] in ("uniform", "sensitivity-budget"):
            assert r["theorem2_covered"] is None and r["clt_covered"] is not None
    # the truth is the full model's mean loss over the training rows
    x, label, _ = make_data()
    task = ev.make_task(x, label, "label", 0.2, 0)
    assert truth == pytest.approx(float(task.loss.mean()))
    assert rows[0]["test_unweighted"] == pytest.approx(task.metric_full)


def io_eps(budget):
    from dataselect_cli import bounds

    return bounds.eps_for_size(budget)


def test_summary_and_html(label_run):
    out, _ = label_run
    md = (out / "summary.md").read_text(encoding="utf-8")
    for title in ("Held-out accuracy, unweighted training", "Relative error", "Theorem 2", "CLT 95 %"):
        assert title in md
    assert "Bold marks the clear best at a budget" in md  # the rule is stated where the bold is
    assert md.count("**") % 2 == 0
    assert "± " in md
    assert_valid_html((out / "report.html").read_text(encoding="utf-8"), images=3)


@pytest.mark.parametrize("name", ["uniform", "sensitivity", "sensitivity-budget", "leverage",
                                  "sensitivity-regression", "sensitivity-mixture", "sensitivity-poisson",
                                  "sensitivity-pareto", "sensitivity-stratified", "sensitivity-auto"])
def test_weighted_estimates_are_unbiased(name):
    """Over 300 seeds the mean estimate of the mean loss is within 4 standard errors of the truth
    (observed for the first five: |z| = 0.07, 0.10, 0.25, 1.49, 0.97; Pareto's weights are nearly
    unbiased, within that tolerance here). The model-assisted estimate, where a strategy has one, too."""
    x, label, target = make_data(n=200)
    task = ev.make_task(x, target, "target", 0.2, 0) if name in ("leverage", "sensitivity-regression") else \
        ev.make_task(x, label, "label", 0.2, 0)
    fn = ev.STRATEGIES[name][0]
    est, greg = [], []
    for seed in range(300):
        sel = fn(task, 20, ev.Seeds(0, seed), {"center_frac": 0.2, "lam": None})
        est.append(sel.total / task.n)
        if sel.greg is not None:
            greg.append(sel.greg[0] / task.n)
    truth = task.loss.mean()
    for e in (np.array(est), np.array(greg)):
        if len(e):
            assert abs(e.mean() - truth) < 4 * e.std(ddof=1) / np.sqrt(len(e)), (e.mean(), truth)


def test_target_run_has_leverage_and_regression_variant(tmp_path, emb):
    evaluate(emb, tmp_path / "out", "--target", "y")
    t = pq.read_table(tmp_path / "out" / "results.parquet")
    assert set(t.column("strategy").to_pylist()) == {"full", "uniform", "sensitivity", "sensitivity-mixture",
                                                     "sensitivity-poisson", "sensitivity-pareto",
                                                     "sensitivity-stratified", "sensitivity-auto",
                                                     "sensitivity-budget",
                                                     "sensitivity-regression", "kcenter", "leverage"}
    assert set(t.column("metric").to_pylist()) == {"1-R2"}
    full = t.filter(pa.compute.equal(t.column("strategy"), "full")).to_pylist()[0]
    assert 0 < full["test_unweighted"] < 1 and full["truth"] > 0


def test_same_seed_same_bytes(tmp_path, emb):
    args = ("--label", "label", "--strategies", "uniform,sensitivity,kcenter", "--seed", 3)
    evaluate(emb, tmp_path / "a", *args)
    evaluate(emb, tmp_path / "b", *args)
    for f in FILES:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    evaluate(emb, tmp_path / "c", "--label", "label", "--strategies", "uniform,sensitivity,kcenter", "--seed", 4)
    assert (tmp_path / "a" / "results.parquet").read_bytes() != (tmp_path / "c" / "results.parquet").read_bytes()


def test_without_matplotlib_tables_still_come_out(tmp_path, emb, monkeypatch):
    monkeypatch.setattr(plots, "pyplot", lambda: None)
    r = evaluate(emb, tmp_path / "out", "--label", "label", "--strategies", "uniform")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"results.parquet", "summary.md", "report.html"}
    hints = [line for line in r.stderr.splitlines() if "pip install 'dataselect[plots]'" in line]
    assert len(hints) == 1
    assert_valid_html((tmp_path / "out" / "report.html").read_text(encoding="utf-8"), images=0)


def test_label_from_data_table(tmp_path, emb):
    data = tmp_path / "data.parquet"
    t = pq.read_table(emb)
    pq.write_table(pa.table({"id": t.column("id"), "cls": t.column("name")}).take(np.arange(299, -1, -1)), data)
    evaluate(emb, tmp_path / "out", "--label", "cls", "--data", data, "--strategies", "uniform")
    assert io.read_meta(tmp_path / "out" / "results.parquet")["summary"]["classes"] == 300


@pytest.mark.parametrize("args, message", [
    (("--label", "label", "--strategies", "uniform,bogus"), "unknown strategy 'bogus'"),
    (("--label", "label", "--strategies", "leverage"), "applies only with --target"),
    (("--target", "y", "--strategies", "margin"), "applies only with --label"),
    (("--label", "nope"), "no column 'nope'"),
    ((), "exactly one of --label"),
    (("--label", "label", "--target", "y"), "exactly one of --label"),
    (("--target", "name"), "the target must be numeric"),
    (("--label", "y"), "classes must be integers, strings or booleans"),
    (("--label", "one"), "single class"),
    (("--label", "label", "--holdout", "0"), "--holdout must be a fraction in (0, 1)"),
    (("--label", "label", "--holdout", "1.5"), "--holdout must be a fraction in (0, 1)"),
    (("--label", "label", "--lambda", "-1"), "--lambda must be"),
])
def test_bad_input(tmp_path, emb, args, message):
    r = evaluate(emb, tmp_path / "out", *args, code=2)
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out" / "results.parquet").exists()


@pytest.mark.parametrize("budgets, message", [
    ("240", "below the 240 training rows"),
    ("0.5,5000", "below the 240 training rows"),
    ("abc", "'abc' is not a number"),
    ("12.5", "whole number of rows"),
    ("0.001", "must be at least 2"),
])
def test_bad_budgets(tmp_path, emb, budgets, message):
    r = run("evaluate", emb, "-o", tmp_path / "out", "--label", "label", "--budgets", budgets, code=2)
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_output_is_a_file_and_no_clobber(tmp_path, emb):
    (tmp_path / "file").write_text("x")
    r = evaluate(emb, tmp_path / "file", "--label", "label", code=2)
    assert "not a directory" in r.stderr
    evaluate(emb, tmp_path / "out", "--label", "label", "--strategies", "uniform")
    r = evaluate(emb, tmp_path / "out", "--label", "label", "--strategies", "uniform", "--no-clobber", code=2)
    assert "--no-clobber" in r.stderr


def test_logistic_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.linear_model")
    x, label, _ = make_data(n=200)
    xs = (x - x.mean(0)) / x.std(0)
    theta = ev.fit_logistic(xs, label, 3, l2=1e-2, iters=500)
    ref = sk.LogisticRegression(C=1 / (200 * 1e-2), tol=1e-10, max_iter=5000).fit(xs, label)
    p_ours = np.exp(ev.log_proba(theta, xs))
    np.testing.assert_allclose(p_ours, ref.predict_proba(xs), atol=2e-4)


def test_weighted_fits_equal_repeated_rows():
    """Integer weights are the same as repeating rows (both models)."""
    x, label, target = make_data(n=60)
    w = np.arange(60) % 3 + 1.0
    rep = np.repeat(np.arange(60), w.astype(int))
    np.testing.assert_allclose(ev.fit_least_squares(x, target, w), ev.fit_least_squares(x[rep], target[rep]),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ev.fit_logistic(x, label, 3, w, iters=400), ev.fit_logistic(x[rep], label[rep], 3,
                               iters=400), atol=1e-4)


def test_kcenter_greedy_picks_the_farthest_rows():
    x = np.array([[0.0], [1.0], [10.0], [4.0], [6.0]], dtype=np.float32)
    assert ev.kcenter_greedy(x, 3, first=0).tolist() == [0, 2, 3]


def _entry(name, budget, mean, sd, runs=10, key="test_unweighted"):
    return {"strategy": name, "budget": budget, "runs": runs, key: mean, key + "_sd": sd}


def test_best_is_bold_only_beyond_noise():
    """The best mean is the clear best only when it beats every other mean by more than 2 standard errors of
    the difference; else no clear best (None)."""
    best = ev.best_per_budget
    clear = [_entry("a", 10, 0.90, 0.01), _entry("b", 10, 0.80, 0.01), _entry("full", 10, 0.99, 0.0)]
    assert best(clear, "test_unweighted", True) == {10: "a"}
    # 0.02 apart with sd 0.05 over 10 runs: SE of the difference 0.022, so within noise
    close = [_entry("a", 10, 0.82, 0.05), _entry("b", 10, 0.80, 0.05)]
    assert best(close, "test_unweighted", True) == {10: None}
    # lower is better: the same numbers make b the clear best
    assert best(clear, "test_unweighted", False) == {10: "b"}
    # a third strategy far off in mean but noisy keeps the best from being clear
    noisy = clear + [_entry("c", 10, 0.70, 0.40)]
    assert best(noisy, "test_unweighted", True) == {10: None}
    # 2 SE exactly is not enough; a hair more is
    se = (2 * 0.01 ** 2 / 10) ** 0.5
    edge = [_entry("a", 10, 0.80 + 2 * se, 0.01), _entry("b", 10, 0.80, 0.01)]
    assert best(edge, "test_unweighted", True) == {10: None}
    edge[0]["test_unweighted"] += 1e-6
    assert best(edge, "test_unweighted", True) == {10: "a"}
    # one repeat, no sd (a percentile), a single strategy: no measure of noise, no clear best
    assert best([_entry("a", 10, 0.9, 0.0, runs=1), _entry("b", 10, 0.1, 0.0, runs=1)], "test_unweighted", True) \
        == {10: None}
    assert best([_entry("a", 10, 0.9, None), _entry("b", 10, 0.1, None)], "test_unweighted", True) == {10: None}
    assert best([_entry("a", 10, 0.9, 0.01)], "test_unweighted", True) == {10: None}
    # budgets are judged separately; null means are left out
    mixed = clear + [_entry("a", 20, 0.91, 0.05), _entry("b", 20, 0.90, 0.05), _entry("k", 20, None, None)]
    assert best(mixed, "test_unweighted", True) == {10: "a", 20: None}


def test_summary_bolds_only_the_clear_best_and_the_cli_says_so(label_run):
    from dataselect_cli.htmlreport import evaluate_markdown

    import json

    out, r = label_run
    summary = json.loads(r.stdout)
    info = {**io.read_meta(out / "results.parquet")["summary"]}
    rows = pq.read_table(out / "results.parquet").to_pylist()
    agg = ev.aggregate(rows)
    assert summary["best"] == {str(b): s for b, s in sorted(ev.best_per_budget(agg, "test_unweighted", True).items())}
    # a made-up aggregate with a clear best at one budget and none at the other
    fake = [_entry("uniform", 12, 0.70, 0.01), _entry("kcenter", 12, 0.50, 0.01),
            _entry("uniform", 24, 0.80, 0.10), _entry("kcenter", 24, 0.79, 0.10)]
    for e in fake:
        e["budget_fraction"] = e["budget"] / 240
    params = {"strategies": ["uniform", "kcenter"], "budgets": [12, 24], "repeats": 10, "label": "label",
              "target": None, "holdout": 0.2, "seed": 0, "center_frac": 0.2, "lambda": None}
    md = evaluate_markdown(fake, {**info, "params": params})
    table = md.split("## Held-out accuracy, unweighted training")[1].split("##")[0]
    assert "| uniform | **0.7000 ± 0.0100** | 0.8000 ± 0.1000 |" in table
    assert table.count("**") == 2
    # one strategy has nothing to beat: the CLI line says so rather than naming it
    line = run("evaluate", out.parent / "emb.parquet", "-o", out.parent / "again", "--label", "label",
               "--budgets", "12,24", "--repeats", 2, "--strategies", "uniform").stdout
    assert "best (unweighted) per budget: B = 12: no clear best, B = 24: no clear best" in line
