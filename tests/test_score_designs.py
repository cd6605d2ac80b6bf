"""The score-driven designs (issue 13, item 4): top, bottom, middle, threshold, softmax, linear, gumbel-topk
and --stratify. Hand examples, sizes and allocations, determinism on every source and grid, inclusion
frequencies against π over many seeds, Σ w·ℓ unbiased where the design says so, and the refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import designs, io
from dataselect_cli.api import Scale, run_sample
from dataselect_cli.dataset import TableSource
from dataselect_cli.pqdataset import ParquetDataset
from dataselect_cli.designs import _inclusion
from dataselect_cli.designs.stratified import allocate
from dataselect_cli.io import embedding_array

RNG = np.random.default_rng(7)
N = 400
LABEL = RNG.choice(4, N, p=[0.6, 0.25, 0.12, 0.03]).astype(np.int32)
SCORE = RNG.normal(size=N) + 0.5 * LABEL
LOSS = np.exp(0.6 * SCORE) * RNG.uniform(0.5, 1.5, N)


def _draw(name, s, seed, block_rows=64, score=SCORE, **params):
    design = designs.get(name, **params)
    return design, design.draw_arrays(np.ones(len(score)), s, seed, block_rows,
                                      columns={"score": score, "label": LABEL[: len(score)]})


def _sel(d, extra=()):
    return {"count": d.count, "prob": d.prob, "weight": d.weight, **{c: d.columns[c] for c in extra}}


def _scores_file(path, score=SCORE, label=LABEL, direction="higher=harder", meta=True):
    t = pa.table({"id": np.arange(len(score), dtype=np.int64), "score": score, "label": label})
    summary = {"n": len(score), "method": "el2n", "direction": direction, "normalization": "dataset"}
    if meta:
        io.write_table(t, str(path), io.make_meta("score", {"method": "el2n"}, {}, summary))
    else:
        pq.write_table(t, path)
    return t


def _error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# --------------------------------------------------------------------------- selections by rank


HAND = np.array([0.5, 3.0, -1.0, 2.0, 0.0, 3.0, 1.0, -2.0])  # ranks low→high: 7, 2, 4, 0, 6, 3, then 1 and 5 tied


def test_top_bottom_middle_pick_the_expected_rows_by_hand():
    assert _draw("top", 3, 0, score=HAND)[1].index.tolist() == [1, 3, 5]
    assert _draw("bottom", 3, 0, score=HAND)[1].index.tolist() == [2, 4, 7]
    # middle: n − s = 4 dropped, 2 at each end (7, 2 and the two 3.0s): 4, 0, 6, 3 remain
    assert _draw("middle", 4, 0, score=HAND)[1].index.tolist() == [0, 3, 4, 6]
    # n − s = 5: ⌊5/2⌋ = 2 dropped below, 3 above (1, 5 and 3)
    assert _draw("middle", 3, 0, score=HAND)[1].index.tolist() == [0, 4, 6]
    d = _draw("top", 3, 0, score=HAND)[1]
    assert d.weight.tolist() == [1.0, 1.0, 1.0] and d.prob.tolist() == [1.0, 1.0, 1.0]


def test_ties_are_broken_by_the_seed_and_only_by_it():
    """Rows 1 and 5 tie at 3.0: top-1 takes one of them, the same for a seed on any grid of the same
    block_rows, and both occur over seeds."""
    picks = {seed: _draw("top", 1, seed, block_rows=64, score=HAND)[1].index.tolist() for seed in range(40)}
    assert set(map(tuple, picks.values())) == {(1,), (5,)}
    for seed in range(5):
        assert _draw("top", 1, seed, score=HAND)[1].index.tolist() == picks[seed]


@pytest.mark.parametrize("block_rows", [3, 64])
def test_rank_windows_do_not_depend_on_the_blocks_without_ties(block_rows):
    x = RNG.permutation(200).astype(float)
    order = np.argsort(x)
    for name, want in (("top", order[-30:]), ("bottom", order[:30]), ("middle", order[85:115])):
        got = _draw(name, 30, 1, block_rows=block_rows, score=x)[1].index
        np.testing.assert_array_equal(got, np.sort(want))


def test_threshold_keeps_the_rows_beyond_the_cut_and_above_below_are_complements():
    above = _draw("threshold", 0, 0, score=HAND, threshold=1.0)[1]
    below = _draw("threshold", 0, 0, score=HAND, threshold=1.0, keep="below")[1]
    assert above.index.tolist() == [1, 3, 5, 6] and below.index.tolist() == [0, 2, 4, 7]
    assert above.stats["kept"] == 4


# --------------------------------------------------------------------------- sizes and allocation


def test_balanced_allocation_caps_small_classes_and_redistributes():
    # 4 classes of 240, 100, 48 and 12 rows, 200 to allocate: 50 each, the 12-row class capped, its 38 spread
    sizes = np.array([240, 100, 48, 12])
    assert allocate(200, np.ones(4), sizes, floor=1).tolist() == [70, 70, 48, 12]
    n_h = allocate(100, np.ones(4), sizes, floor=1)  # 25 each, the 12 rows capped: 88 → 29, 29, 30 (remainders)
    assert n_h.sum() == 100 and n_h[3] == 12 and sorted(n_h[:3].tolist()) == [29, 29, 30]


@pytest.mark.parametrize("allocation", ["proportional", "balanced"])
@pytest.mark.parametrize("name", ["top", "softmax", "uniform", "gumbel-topk"])
def test_stratified_sizes_per_stratum(name, allocation):
    big_n = np.bincount(LABEL)
    _, d = _draw(name, 60, 3, stratify="label", allocation=allocation)
    got = np.bincount(np.asarray(d.columns["label"]), minlength=4)
    want = allocate(60, big_n.astype(float) if allocation == "proportional" else np.ones(4), big_n, floor=1)
    np.testing.assert_array_equal(got, want)
    assert [st["selected"] for st in d.stats["strata"]] == want.tolist()
    assert [st["size"] for st in d.stats["strata"]] == big_n.tolist()
    assert len(d.index) == 60 and np.all(np.diff(d.index) > 0)
    if name == "top":  # the highest scores of each class
        for h in range(4):
            rows = np.flatnonzero(LABEL == h)
            np.testing.assert_array_equal(np.sort(d.index[np.asarray(d.columns["label"]) == h]),
                                          np.sort(rows[np.argsort(SCORE[rows])[::-1][: want[h]]]))


def test_min_per_stratum_keeps_every_class_and_is_capped_by_its_rows():
    big_n = np.bincount(LABEL)  # the smallest class has about 12 rows
    _, d = _draw("top", 20, 0, stratify="label", min_per_stratum=5)
    got = np.bincount(np.asarray(d.columns["label"]), minlength=4)
    assert got.min() >= 5 and got.sum() == 20
    small = int(big_n.min())
    assert small < 20
    _, d = _draw("top", 3 * 20 + small + 8, 0, stratify="label", min_per_stratum=20)  # the floor capped by its rows
    got = np.bincount(np.asarray(d.columns["label"]), minlength=4)
    assert got[big_n.argmin()] == small and got.min() == small and got.sum() == 3 * 20 + small + 8
    # proportional at 1 % would give the small class 0 rows; the default floor of 1 keeps it
    _, d = _draw("uniform", 4, 0, stratify="label")
    assert np.bincount(np.asarray(d.columns["label"]), minlength=4).min() == 1
    _, d = _draw("uniform", 4, 0, stratify="label", min_per_stratum=0)
    assert len(d.index) == 4


def test_fraction_sets_s_for_every_kind_of_input(tmp_path):
    _scores_file(tmp_path / "s.parquet")
    r = run("sample", tmp_path / "s.parquet", "--design", "softmax", "--fraction", 0.25, "-o", tmp_path / "a.parquet",
            "--json")
    assert json.loads(r.stdout)["selected_rows"] == 100 == pq.read_table(tmp_path / "a.parquet").num_rows
    run("sample", tmp_path / "s.parquet", "--design", "top", "--fraction", 0.1234, "-o", tmp_path / "b.parquet")
    assert pq.read_table(tmp_path / "b.parquet").num_rows == round(0.1234 * N)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 4)) + 5 * rng.integers(0, 3, size=(300, 1))).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(300), "embedding": embedding_array(x)}), tmp_path / "e.parquet")
    r = run("sample", tmp_path / "e.parquet", "--k", 3, "--design", "pareto", "--fraction", 0.2, "-o",
            tmp_path / "c.parquet", "--json")
    assert json.loads(r.stdout)["s"] == 60 == pq.read_table(tmp_path / "c.parquet").num_rows


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name, params", [("top", {}), ("middle", {}), ("softmax", {"temperature": 0.7}),
                                          ("linear", {"floor": 0.2}), ("gumbel-topk", {}),
                                          ("softmax", {"stratify": "label", "allocation": "balanced"}),
                                          ("uniform", {"stratify": "label"})])
def test_same_rows_from_memory_and_from_a_streamed_file(name, params, tmp_path):
    table = _scores_file(tmp_path / "s.parquet")
    pq.write_table(table, tmp_path / "rg.parquet", row_group_size=37)
    design = designs.get(name, **params)
    cols = ["id", *design.needs]
    summary = {"n": N}
    a, ra = run_sample(table, summary, s=50, eps=0.3, delta=None, seed=9, design=design, scale=Scale(block_rows=50))
    b, rb = run_sample(TableSource(ParquetDataset(str(tmp_path / "rg.parquet")), cols), summary, s=50, eps=0.3,
                       delta=None, seed=9, design=designs.get(name, **params), scale=Scale(block_rows=50))
    assert a.equals(b) and a.num_rows == 50 and ra["guarantee"] == rb["guarantee"]
    assert a.column_names[:4] == ["id", "count", "prob", "weight"] and ("score" in a.column_names) == design.scored


def test_same_seed_same_bytes_and_small_blocks_stream(tmp_path):
    _scores_file(tmp_path / "s.parquet")
    args = ["--design", "softmax", "--size", 80, "--stratify", "label", "--seed", 4]
    for out in ("a", "b"):
        run("sample", tmp_path / "s.parquet", *args, "-o", tmp_path / f"{out}.parquet")
    for out in ("c", "d"):
        run("sample", tmp_path / "s.parquet", *args, "--block-rows", 16, "--memory-limit", "1MB", "-o",
            tmp_path / f"{out}.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "c.parquet").read_bytes() == (tmp_path / "d.parquet").read_bytes()


# --------------------------------------------------------------------------- inclusion and unbiasedness


def _target_pi(name, s, score=SCORE, **params):
    if name == "softmax":
        t = params.get("temperature", 1.0)
        q = np.exp((score - score.max()) / t)
    else:
        e = params.get("floor", 0.1)
        q = e + (1 - e) * (score - score.min()) / (score.max() - score.min())
    return _inclusion.inclusion(q, _inclusion.scale(np.sort(q)[-s:], q.sum(), s))


@pytest.mark.parametrize("name, params", [("softmax", {}), ("softmax", {"temperature": 0.5}), ("linear", {}),
                                          ("linear", {"floor": 0.5})])
def test_inclusion_frequencies_match_pi(name, params):
    """Over R seeds row i is drawn about Binomial(R, π_i) times (Pareto sampling: within O(1/s) of π).
    Pearson χ² over the rows with 0 < π < 1 below df + 5·√(2·df); rows with π = 1 always drawn.
    Observed χ²/df: 0.9–1.1."""
    s, R = 40, 400
    pi = _target_pi(name, s, **params)
    hits = np.zeros(N)
    for seed in range(R):
        _, d = _draw(name, s, seed, **params)
        hits[d.index] += 1
        np.testing.assert_allclose(d.prob, pi[d.index], rtol=1e-9)
        np.testing.assert_allclose(d.weight, 1 / pi[d.index], rtol=1e-9)
    ok = (pi > 0) & (pi < 1)
    chi2 = float(np.sum((hits[ok] - R * pi[ok]) ** 2 / (R * pi[ok] * (1 - pi[ok]))))
    df = int(ok.sum())
    assert chi2 < df + 5 * math.sqrt(2 * df), f"chi2 = {chi2:.0f}, df = {df}"
    assert np.all(hits[pi == 1] == R)


@pytest.mark.parametrize("name, params", [("softmax", {}), ("linear", {}),
                                          ("softmax", {"stratify": "label", "allocation": "balanced"}),
                                          ("linear", {"stratify": "label", "min_per_stratum": 5}),
                                          ("uniform", {"stratify": "label", "allocation": "balanced"})])
def test_weighted_sum_is_nearly_unbiased(name, params):
    """Σ w·ℓ over 1,500 seeds: its mean within 4 standard errors of Σ ℓ (the standard error from the
    spread over the seeds) and within 1 % of it. Measured over 6,000 seeds (relative bias, z): softmax
    −0.09 % (−0.9), linear −0.08 % (−0.9), stratified softmax −0.10 % (−0.9), stratified linear −0.03 %
    (−0.3), stratified uniform +0.18 % (+1.0); mean variance estimate / observed variance 0.97–1.04."""
    est, var = [], []
    for seed in range(1500):
        design, d = _draw(name, 40, seed, block_rows=200, **params)
        e = design.estimate(LOSS[d.index], _sel(d, ("label",)), N)
        assert math.isclose(e.total, float(np.sum(d.weight * LOSS[d.index])), rel_tol=1e-9)
        est.append(e.total)
        var.append(e.var)
    est = np.array(est)
    se = est.std(ddof=1) / math.sqrt(len(est))
    rel = est.mean() / LOSS.sum() - 1
    assert abs(est.mean() - LOSS.sum()) < 4 * se, f"bias {rel:+.4f}, z = {(est.mean() - LOSS.sum()) / se:.2f}"
    assert abs(rel) < 0.01, f"relative bias {rel:+.4f}"
    # the variance estimate (Rosén per stratum) tracks the observed variance within 25 %
    assert 0.75 < np.mean(var) / est.var(ddof=1) < 1.25, np.mean(var) / est.var(ddof=1)


def test_stratified_weights_are_unbiased_within_each_stratum():
    """Σ weight over a stratum estimates its rows N_h (N_h-consistent): mean over 600 seeds within 4 SE."""
    sums = []
    for seed in range(600):
        _, d = _draw("softmax", 40, seed, block_rows=200, stratify="label", allocation="balanced")
        lab = np.asarray(d.columns["label"])
        sums.append([d.weight[lab == h].sum() for h in range(4)])
    sums = np.array(sums)
    big_n = np.bincount(LABEL)
    z = (sums.mean(0) - big_n) / np.maximum(sums.std(0, ddof=1) / math.sqrt(len(sums)), 1e-12)
    assert np.all(np.abs(z) < 4), z


def test_gumbel_topk_draws_successively_in_proportion_to_exp_score():
    """4 rows, q ∝ exp(score): one draw takes row i with probability q_i; two draws (without replacement)
    take it with q_i + Σ_j q_j·q_i/(1 − q_j). Frequencies over 4,000 seeds within 4 binomial standard errors."""
    score = np.log(np.array([1.0, 2.0, 3.0, 4.0]))
    q = np.exp(score) / np.exp(score).sum()
    two = np.array([q[i] + sum(q[j] * q[i] / (1 - q[j]) for j in range(4) if j != i) for i in range(4)])
    R = 4000
    for s, want in ((1, q), (2, two)):
        hits = np.zeros(4)
        for seed in range(R):
            hits[_draw("gumbel-topk", s, seed, score=score)[1].index] += 1
        se = np.sqrt(R * want * (1 - want))
        assert np.all(np.abs(hits - R * want) < 4 * se), (hits / R, want)
    d = _draw("gumbel-topk", 2, 0, score=score)[1]
    np.testing.assert_allclose(d.prob, q[d.index])
    np.testing.assert_array_equal(d.weight, [1.0, 1.0])
    # --prefer low reverses the order: row 0 is then the likeliest first draw
    hits = np.zeros(4)
    for seed in range(R):
        hits[_draw("gumbel-topk", 1, seed, score=score, prefer="low")[1].index] += 1
    assert hits.argmax() == 0


def test_linear_maps_scores_onto_floor_and_one():
    _, d = _draw("linear", 40, 0, floor=0.25)
    assert math.isclose(d.stats["q_ratio"], 4.0)
    _, flat = _draw("linear", 40, 0, score=np.full(N, 2.0))  # equal scores: uniform, π = s/n
    np.testing.assert_allclose(flat.prob, 40 / N)


# --------------------------------------------------------------------------- the CLI: report, estimate, refusals


def test_report_says_what_is_kept_and_estimate_dispatches(tmp_path):
    _scores_file(tmp_path / "s.parquet")
    r = run("sample", tmp_path / "s.parquet", "--design", "top", "--size", 50, "-o", tmp_path / "t.parquet",
            "--report", tmp_path / "t.json", "--report-md", tmp_path / "t.md")
    rep = json.loads((tmp_path / "t.json").read_text())
    assert rep["design"] == "top" and rep["unbiased"] is False and rep["score"]["direction"] == "higher=harder"
    assert "the 50 rows of highest score (higher=harder: the hardest)" in rep["guarantee"]
    assert "NOT an unbiased estimate" in r.stdout and "| score method | el2n |" in (tmp_path / "t.md").read_text()
    t = pq.read_table(tmp_path / "t.parquet")
    np.testing.assert_array_equal(np.sort(t.column("id").to_numpy()), np.sort(np.argsort(SCORE)[-50:]))
    pq.write_table(pa.table({"id": t.column("id"), "loss": np.ones(50)}), tmp_path / "l.parquet")
    line = _error_line(run("estimate", tmp_path / "t.parquet", "--losses", tmp_path / "l.parquet", code=2))
    assert "a top selection has no unbiased weights" in line and "does not estimate the full loss" in line

    run("sample", tmp_path / "s.parquet", "--design", "linear", "--size", 80, "--stratify", "label", "--allocation",
        "balanced", "-o", tmp_path / "l80.parquet", "--report", tmp_path / "l80.json")
    rep = json.loads((tmp_path / "l80.json").read_text())
    assert [st["selected"] for st in rep["strata"]] == allocate(80, np.ones(4), np.bincount(LABEL), 1).tolist()
    assert rep["stratify"] == "label" and "unbiased within each stratum" in rep["guarantee"]
    sel = pq.read_table(tmp_path / "l80.parquet")
    assert sel.column("label").type == pa.int32()
    ids = sel.column("id").to_numpy()
    pq.write_table(pa.table({"id": ids, "loss": LOSS[ids]}), tmp_path / "ll.parquet")
    got = json.loads(run("estimate", tmp_path / "l80.parquet", "--losses", tmp_path / "ll.parquet", "--json").stdout)
    assert got["design"] == "linear" and "clt_interval" in got and "paper_interval" not in got
    assert math.isclose(got["estimate_total"], float(np.sum(sel.column("weight").to_numpy() * LOSS[ids])))
    run("report", tmp_path / "l80.parquet")  # the stored report re-renders


def test_scores_without_metadata_and_string_strata(tmp_path):
    names = np.array(["cat", "dog", "eel", "fox"])[LABEL]
    t = pa.table({"id": np.arange(N), "score": SCORE, "label": names})
    pq.write_table(t, tmp_path / "s.parquet")
    r = run("sample", tmp_path / "s.parquet", "--design", "bottom", "--size", 40, "--stratify", "label",
            "--allocation", "balanced", "-o", tmp_path / "b.parquet", "--json")
    rep = json.loads(r.stdout)
    assert [st["stratum"] for st in rep["strata"]] == ["cat", "dog", "eel", "fox"]
    assert rep["score"]["direction"] is None and "lowest score" in rep["guarantee"]
    assert pq.read_table(tmp_path / "b.parquet").column("label").type == pa.string()


@pytest.mark.parametrize("args, frag", [
    (["--design", "top", "--size", 10, "--alpha", 0.3], "--alpha does not apply to --design top"),
    (["--design", "top", "--size", 10, "--temperature", 2], "--temperature does not apply to --design top"),
    (["--design", "softmax", "--size", 10, "--floor", 0.2], "--floor does not apply to --design softmax"),
    (["--design", "top", "--size", 10, "--stratify", "nosuch"], "--stratify nosuch: INPUT has no column 'nosuch'"),
    (["--design", "top", "--fraction", 0], "--fraction must be in (0, 1]"),
    (["--design", "top", "--fraction", 1.5], "--fraction must be in (0, 1]"),
    (["--design", "top", "--fraction", 0.5, "--size", 3], "give one of --eps, --size, --rows or --fraction"),
    (["--design", "top", "--fraction", 0.001], "--fraction 0.001 of the 400 rows is 0 rows"),
    (["--design", "top", "--eps", 0.1], "--eps sets s from the sensitivity bound"),
    (["--design", "top"], "--design top on scores needs a size"),
    (["--design", "top", "--size", 401], "--size 401 is more than the 400 rows"),
    (["--design", "threshold", "--size", 5, "--threshold", 0], "the data set its size: drop --size"),
    (["--design", "threshold"], "--design threshold needs --threshold T"),
    (["--design", "threshold", "--threshold", 99], "no row has a score >= 99"),
    (["--design", "threshold", "--threshold", 0, "--stratify", "label"], "--stratify does not apply to --design "
                                                                          "threshold"),
    (["--design", "threshold", "--threshold", 0, "--keep", "sideways"], "--keep must be one of above, below"),
    (["--design", "softmax", "--size", 10, "--temperature", 0], "--temperature must be a positive number"),
    (["--design", "linear", "--size", 10, "--floor", 0], "--floor must be in (0, 1]"),
    (["--design", "linear", "--size", 10, "--prefer", "hard"], "--prefer must be one of high, low"),
    (["--design", "top", "--size", 10, "--min-per-stratum", 2], "--min-per-stratum applies with --stratify COL"),
    (["--design", "top", "--size", 10, "--allocation", "balanced"], "--allocation applies with --stratify COL"),
    (["--design", "top", "--size", 10, "--stratify", "label", "--allocation", "neyman"],
     "--allocation must be one of proportional, balanced with --stratify"),
    (["--design", "top", "--size", 3, "--stratify", "label", "--min-per-stratum", 1], "needs 4 rows; got s = 3"),
    (["--design", "iid", "--size", 10], "--design iid draws from a sensitivity scores file"),
    (["--design", "auto", "--size", 10], "--design auto draws from a sensitivity scores file"),
    (["--design", "uniform", "--size", 10, "--calibrate"], "--calibrate calibrates to the clusters' sizes"),
    (["--design", "stratified", "--size", 10, "--stratify", "label"], "--stratify does not apply to --design "
                                                                      "stratified"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path, args, frag):
    _scores_file(tmp_path / "s.parquet")
    r = run("sample", tmp_path / "s.parquet", *args, "-o", tmp_path / "x.parquet", code=2)
    assert frag in _error_line(r)
    assert not (tmp_path / "x.parquet").exists()


def test_a_score_design_on_a_sensitivity_scores_file_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(200, 4)) + 5 * rng.integers(0, 3, size=(200, 1))).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(200), "embedding": embedding_array(x)}), tmp_path / "e.parquet")
    run("cluster", tmp_path / "e.parquet", "--k", 3, "-o", tmp_path / "c.parquet")
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet")
    line = _error_line(run("sample", tmp_path / "s.parquet", "--design", "top", "--size", 10, "-o",
                           tmp_path / "x.parquet", code=2))
    assert "--design top draws by a per-row score" in line and "sensitivity scores file" in line
    line = _error_line(run("sample", tmp_path / "e.parquet", "--k", 3, "--design", "softmax", "--size", 10, "-o",
                           tmp_path / "x.parquet", code=2))
    assert "a one-step run scores by sensitivity" in line
    # uniform still runs on it, and --fraction sizes it
    run("sample", tmp_path / "s.parquet", "--design", "uniform", "--fraction", 0.1, "-o", tmp_path / "u.parquet")
    assert pq.read_table(tmp_path / "u.parquet").num_rows == 20
