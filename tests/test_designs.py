"""The sampling designs beyond iid: sizes, weights, inclusion probabilities, unbiasedness and variance
estimators over many seeds, hand-computed examples, and the same rows on every source and grid."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute in a test
import pyarrow.parquet as pq
import pytest

from clirun import clustered_with_probes, run
from dataselect_cli import designs, grid
from dataselect_cli.api import Scale, run_sample
from dataselect_cli.dataset import TableSource
from dataselect_cli.pqdataset import ParquetDataset
from dataselect_cli.designs import _inclusion
from dataselect_cli.designs.pareto import rosen_variance
from dataselect_cli.designs.poisson import horvitz_thompson
from dataselect_cli.designs.stratified import allocate, stratified_estimate
from dataselect_cli.io import embedding_array

RNG = np.random.default_rng(42)
N = 400
LABELS = RNG.integers(0, 6, N)
MASS = RNG.gamma(1.5, 1.0, N) + 0.05 * (LABELS == 2)
MASS[:3] *= 40  # a few rows large enough to be taken with certainty
LOSS = MASS * RNG.uniform(0.3, 1.7, N) + 0.2 * LABELS
PROB = MASS / MASS.sum()


def _draw(design, s, seed, block_rows=64):
    return design.draw_arrays(MASS, s, seed, block_rows, cluster=LABELS)


def _sel(d):
    return {"count": d.count, "prob": d.prob, "weight": d.weight, "cluster": d.columns["cluster"]}


# --------------------------------------------------------------------------- inclusion probabilities


def test_inclusion_scale_by_hand_and_sums_to_s():
    assert _inclusion.scale(np.array([0.5, 0.3, 0.1, 0.1]), 1.0, 2) == 2.0   # π = 1, .6, .2, .2
    assert _inclusion.scale(np.array([0.25] * 4), 1.0, 2) == 2.0             # no capping: c = s
    assert math.isinf(_inclusion.scale(np.array([0.5, 0.5]), 1.0, 3))       # s covers every row
    for s in (5, 40, 200):
        c = _inclusion.scale(np.sort(PROB)[-s:], PROB.sum(), s)
        pi = _inclusion.inclusion(PROB, c)
        assert math.isclose(pi.sum(), s, rel_tol=1e-12) and pi.max() <= 1.0
        assert (pi == 1.0).sum() >= (3 if s == 200 else 0)


# --------------------------------------------------------------------------- poisson


def test_horvitz_thompson_by_hand():
    assert horvitz_thompson(np.array([1.0, 2.0]), np.array([0.5, 1.0])) == (4.0, 2.0)


def test_poisson_inclusion_frequencies_match_pi():
    """Over R seeds each row is taken a Binomial(R, π) number of times: Pearson χ² below mean + 5 sd."""
    s, R = 40, 400
    pi = _inclusion.inclusion(PROB, _inclusion.scale(np.sort(PROB)[-s:], PROB.sum(), s))
    hits = np.zeros(N)
    for seed in range(R):
        hits[_draw(designs.get("poisson"), s, seed).index] += 1
    ok = (pi > 0) & (pi < 1)
    chi2 = np.sum((hits[ok] - R * pi[ok]) ** 2 / (R * pi[ok] * (1 - pi[ok])))
    df = ok.sum()
    assert chi2 < df + 5 * math.sqrt(2 * df), f"chi2 = {chi2:.0f}, df = {df}"
    assert np.all(hits[pi == 1] == R)


@pytest.mark.parametrize("name", ["poisson", "stratified", "mixture"])
def test_variance_estimator_is_unbiased(name):
    """E[v̂] = Var(T̂) for the unbiased designs: the mean of v̂ over 600 seeds is within 4 standard errors
    of the variance of T̂ observed over the same seeds (observed |z| < 2)."""
    design = designs.get(name)
    t, v = [], []
    for seed in range(600):
        d = _draw(design, 60, seed)
        e = design.estimate(LOSS[d.index], _sel(d), N)
        t.append(e.total)
        v.append(e.var)
    t, v = np.array(t), np.array(v)
    var_t = t.var(ddof=1)
    # the SE of the sample variance of T̂ is about var·√(2/(R−1)) (normal T̂); add the SE of mean(v̂)
    se = math.sqrt(var_t**2 * 2 / (len(t) - 1) + v.var(ddof=1) / len(v))
    assert abs(v.mean() - var_t) < 4 * se, f"E[v̂] = {v.mean():.4g}, Var(T̂) = {var_t:.4g}, se = {se:.3g}"


# --------------------------------------------------------------------------- pareto


def test_pareto_has_exactly_s_distinct_rows_and_small_measured_bias():
    """Fixed size. Its weights 1/π are nearly unbiased: over 1,500 seeds the mean of Σ w·ℓ lies within
    1 % of Σ ℓ (observed −0.1 %) and within 4 standard errors of it."""
    design = designs.get("pareto")
    est = []
    for seed in range(1500):
        d = _draw(design, 40, seed)
        assert len(d.index) == 40 and len(np.unique(d.index)) == 40 and d.count.max() == 1
        est.append(float(np.sum(d.weight * LOSS[d.index])))
    est = np.array(est)
    rel = est.mean() / LOSS.sum() - 1
    assert abs(rel) < 0.01, f"relative bias {rel:.4f}"
    assert abs(est.mean() - LOSS.sum()) < 4 * est.std(ddof=1) / math.sqrt(len(est))


def test_rosen_variance_by_hand():
    # y = ℓ/π = (2, 4), a = 1 − π = (0.5, 0.5), Â = 3, s/(s − 1)·Σ a(y − Â)² = 2·(0.5 + 0.5) = 2
    assert rosen_variance(np.array([1.0, 2.0]), np.array([0.5, 0.5])) == 2.0
    assert rosen_variance(np.array([1.0, 2.0]), np.array([1.0, 1.0])) == 0.0


# --------------------------------------------------------------------------- stratified


def test_allocation_by_hand():
    assert allocate(10, np.array([1.0, 1.0, 2.0]), np.array([100, 3, 100])).tolist() == [3, 3, 4]
    assert allocate(6, np.array([5.0, 0.0, 1.0]), np.array([10, 10, 10])).tolist() == [2, 2, 2]  # the floor
    assert allocate(9, np.array([5.0, 0.0, 1.0]), np.array([10, 10, 10])).tolist() == [5, 2, 2]
    n = allocate(50, np.array([10.0, 1.0, 1.0]), np.array([5, 100, 100]))
    assert n.tolist()[0] == 5 and n.sum() == 50 and n.min() >= 2


def test_stratified_takes_n_h_rows_per_cluster_with_weight_n_over_n_h():
    d = _draw(designs.get("stratified"), 60, seed=1)
    big_n = np.bincount(LABELS, minlength=6)
    got = np.bincount(d.columns["cluster"], minlength=6)
    assert got.sum() == 60 and got.min() >= 2
    np.testing.assert_allclose(d.weight, big_n[d.columns["cluster"]] / got[d.columns["cluster"]])
    np.testing.assert_allclose(got, np.array(d.stats["allocation"]))


def test_neyman_gives_more_rows_to_the_spread_out_cluster():
    mass = np.ones(N)
    mass[LABELS == 4] = RNG.gamma(0.5, 4.0, (LABELS == 4).sum())  # one cluster with a wide spread
    prop = designs.get("stratified").draw_arrays(mass, 60, 0, 64, cluster=LABELS)
    ney = designs.get("stratified", allocation="neyman").draw_arrays(mass, 60, 0, 64, cluster=LABELS)
    assert (ney.columns["cluster"] == 4).sum() > (prop.columns["cluster"] == 4).sum()
    assert ney.stats["allocation"][0] == 2  # no spread: the floor


def test_stratified_estimate_by_hand():
    # stratum 0: N = 4, rows 1, 3 → 4·2 = 8, var 16·(1 − 2/4)·2/2 = 8; stratum 1: N = 2, both rows → 2·5 = 10, var 0
    total, var = stratified_estimate(np.array([1.0, 3.0, 4.0, 6.0]), np.array([0, 0, 1, 1]),
                                     np.array([2.0, 2.0, 1.0, 1.0]))
    assert (total, var) == (18.0, 8.0)


def test_stratified_needs_two_rows_per_cluster():
    with pytest.raises(Exception, match="at least 12 rows"):
        _draw(designs.get("stratified"), 10, 0)


# --------------------------------------------------------------------------- mixture


def test_mixture_weights_are_bounded_and_q_is_the_mixture():
    alpha, s = 0.25, 80
    d = _draw(designs.get("mixture", alpha=alpha), s, 0)
    np.testing.assert_allclose(d.prob, (1 - alpha) * PROB[d.index] + alpha / N, rtol=1e-12)
    assert np.all(d.weight / d.count <= N / (alpha * s) * (1 + 1e-12))
    assert d.count.sum() == s


# --------------------------------------------------------------------------- the same rows everywhere


def _scores(tmp_path):
    t = pa.table({"id": pa.array(np.arange(N, dtype=np.int64) * 3), "cluster": pa.array(LABELS, pa.int32()),
                  "mass": MASS, "prob": PROB})
    pq.write_table(t, tmp_path / "scores.parquet", row_group_size=37)
    return t


@pytest.mark.parametrize("name", ["mixture", "poisson", "pareto", "stratified"])
def test_same_rows_from_memory_and_from_a_streamed_file(name, tmp_path):
    table = _scores(tmp_path)
    design = designs.get(name)
    src = TableSource(ParquetDataset(str(tmp_path / "scores.parquet")), ["id", *design.needs])
    summary = {"n": N, "k": 6}
    a, _ = run_sample(table, summary, s=50, eps=0.3, delta=None, seed=9, design=design, scale=Scale(block_rows=50))
    b, _ = run_sample(src, summary, s=50, eps=0.3, delta=None, seed=9, design=design, scale=Scale(block_rows=50))
    assert a.equals(b)
    arrays = design.draw_arrays(MASS, 50, 9, 50, cluster=LABELS)
    np.testing.assert_array_equal(a.column("id").to_numpy() // 3, arrays.index)


def test_cli_every_design_samples_and_estimates(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(600, 4)) + 5 * rng.integers(0, 4, size=(600, 1))).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(600), "embedding": embedding_array(x)}), tmp_path / "e.parquet")
    for name, extra in (("mixture", ["--alpha", "0.3"]), ("poisson", []), ("pareto", []),
                        ("stratified", ["--allocation", "neyman"])):
        out = tmp_path / f"{name}.parquet"
        run("sample", tmp_path / "e.parquet", "--k", 4, "--size", 60, "--design", name, *extra, "-o", out)
        sel = pq.read_table(out)
        pq.write_table(pa.table({"id": sel.column("id"), "loss": np.ones(sel.num_rows)}), tmp_path / "l.parquet")
        r = run("estimate", out, "--losses", tmp_path / "l.parquet", "--json")
        import json

        got = json.loads(r.stdout)
        assert got["design"] == name and "clt_interval" in got and "paper_interval" not in got
    r = run("sample", tmp_path / "e.parquet", "--k", 4, "--alpha", "0.3", "-o", tmp_path / "x.parquet", code=2)
    assert "--alpha does not apply to --design auto" in r.stderr


# --------------------------------------------------------------------------- auto


def _pipeline(tmp_path, loss_of, name):
    """cluster (with 3 probes a cluster) → losses of the centers and probes → score → sample --design auto."""
    import json

    rng = np.random.default_rng(3)
    centers = rng.normal(size=(8, 5)) * 6
    lab = rng.integers(0, 8, 3000)
    x = (centers[lab] + rng.normal(size=(3000, 5))).astype(np.float32)
    loss = loss_of(lab, rng)
    d = tmp_path / name
    d.mkdir()
    clustered_with_probes(d, x, loss, 8)
    run("score", d / "c.parquet", "--losses", d / "l.parquet", "-o", d / "s.parquet")
    run("sample", d / "s.parquet", "--design", "auto", "--size", 200, "-o", d / "sel.parquet", "--report",
        d / "r.json")
    return json.loads((d / "r.json").read_text()), d


def test_auto_leaves_uniform_only_when_the_losses_follow_the_clusters(tmp_path):
    follow, d = _pipeline(tmp_path, lambda lab, rng: np.array([0.1, 5, 0.2, 8, 0.3, 0.1, 6, 0.2])[lab]
                          * rng.uniform(0.9, 1.1, len(lab)), "follow")
    assert follow["design"] != "uniform" and follow["design_choice"]["chosen"] != "uniform"
    assert follow["design_choice"]["predicted_var"]["uniform"] > follow["design_choice"]["predicted_var"][
        follow["design_choice"]["chosen"]]
    meta = __import__("json").loads(pq.read_schema(d / "sel.parquet").metadata[b"dataselect"])
    assert meta["params"]["design"] == "auto" and meta["summary"]["design"] == follow["design"]
    unrelated, _ = _pipeline(tmp_path, lambda lab, rng: rng.gamma(1.0, 1.0, len(lab)), "unrelated")
    assert unrelated["design"] == "uniform", unrelated["design_choice"]
    assert "no design predicted" in unrelated["design_choice"]["reason"]


def test_auto_without_losses_is_uniform_and_says_why(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(500), "embedding": embedding_array(x)}), tmp_path / "e.parquet")
    r = run("sample", tmp_path / "e.parquet", "--k", 5, "--design", "auto", "--size", 50, "-o",
            tmp_path / "s.parquet", "--json")
    got = __import__("json").loads(r.stdout)
    assert got["design"] == "uniform" and "no losses were queried" in got["design_choice"]["reason"]


def test_lambda_comes_from_the_probes_by_default_and_the_interval_says_when_it_is_conditional(tmp_path):
    """With probe rows in --losses and no --lambda, Λ is the Lemma 8 estimate; with centers only it is
    the balanced default, and estimate marks the Theorem 2 interval conditional."""
    import json

    rep, d = _pipeline(tmp_path, lambda lab, rng: rng.gamma(1.0, 1.0, len(lab)), "probes")
    meta = json.loads(pq.read_schema(d / "s.parquet").metadata[b"dataselect"])["summary"]
    assert meta["lambda_mode"].startswith("estimated per cluster from probes")
    centers = pq.read_table(d / "c.centers.parquet").column("center_id")
    losses = pq.read_table(d / "l.parquet")
    only = losses.filter(pa.compute.is_in(losses.column("id"), value_set=centers))
    pq.write_table(only, d / "centers_only.parquet")
    run("score", d / "c.parquet", "--losses", d / "centers_only.parquet", "-o", d / "s2.parquet")
    run("sample", d / "s2.parquet", "--size", 100, "--design", "iid", "-o", d / "sel2.parquet")
    sel = pq.read_table(d / "sel2.parquet")
    pq.write_table(pa.table({"id": sel.column("id"), "loss": np.ones(sel.num_rows)}), d / "sl.parquet")
    r = json.loads(run("estimate", d / "sel2.parquet", "--losses", d / "sl.parquet", "--json").stdout)
    assert r["paper_interval"]["conditional"] is True and "conditional" in r["paper_interval"]["kind"]
    text = run("estimate", d / "sel2.parquet", "--losses", d / "sl.parquet").stdout
    assert "if the Hölder assumption holds (not checked)" in text


def test_proxy_mean_uses_the_clusters_queried_losses(tmp_path):
    import json

    _, d = _pipeline(tmp_path, lambda lab, rng: rng.gamma(1.0, 1.0, len(lab)), "proxy")
    run("score", d / "c.parquet", "--losses", d / "l.parquet", "--proxy", "mean", "-o", d / "m.parquet")
    t = pq.read_table(d / "m.parquet")
    meta = json.loads(t.schema.metadata[b"dataselect"])
    mean = np.array(meta["summary"]["clusters"]["queried_mean"])
    np.testing.assert_allclose(t.column("proxy_loss").to_numpy(), mean[t.column("cluster").to_numpy()])
    assert meta["params"]["proxy"] == "mean" and meta["summary"]["clusters"]["queried"][0] == 4  # center + 3


def test_neyman_takes_the_spread_of_the_queried_losses_when_probes_exist():
    """With queried losses per cluster (center + 3 probes), Neyman allocation follows their (shrunk) spread:
    the cluster whose queried losses vary most gets the most rows, although every mass is the same
    (the mass-based spread would be 0 everywhere and give the floor-plus-proportional 10 each)."""
    labels = np.repeat(np.arange(4), 100)
    mass = np.ones(400)
    design = designs.get("stratified", allocation="neyman")
    design.bind({"k": 4, "clusters": {"queried": [4, 4, 4, 4], "queried_mean": [1.0, 1.0, 1.0, 1.0],
                                      "queried_var": [0.01, 0.01, 0.01, 4.0]}})
    d = design.draw_arrays(mass, 40, 0, 64, cluster=labels)
    n_h = np.bincount(d.columns["cluster"], minlength=4)
    # shrunk variances (3·v + 4·pooled)/7, pooled ≈ 1.0: sd 0.76, 0.76, 0.76, 1.51; after the floor of 2
    # each, the other 32 rows ∝ those: 2 + 12.7 for the spread-out cluster
    assert n_h.tolist() == [9, 8, 8, 15], n_h.tolist()


@pytest.mark.parametrize("name, params", [("uniform", {}), ("pareto", {}), ("priority", {}), ("stratified", {}),
                                          ("softmax", {}), ("middle", {}), ("top", {}), ("gumbel-topk", {}),
                                          ("auto", {}), ("uniform", {"stratify": "label"}), ("iid", {})])
def test_cutting_the_offers_as_blocks_arrive_changes_no_selection(monkeypatch, name, params):
    # draw holds O(s) offered rows by cutting them to what finish could still keep (issue 18): with a cut after
    # every block the selection is the one drawn from all the blocks' offers at once
    from dataselect_cli.designs import base

    rng = np.random.default_rng(5)
    n = 3000
    mass = rng.gamma(0.5, 1.0, n)
    cluster = rng.integers(0, 7, n)
    columns = {"label": rng.integers(0, 3, n)}

    def drawn():
        d = designs.get(name, **params).draw_arrays(mass, 40, 3, block_rows=50, cluster=cluster, columns=columns)
        return d.index, d.count, d.prob, d.weight

    monkeypatch.setattr(base, "CUT_SLACK", 10**9)
    whole = drawn()
    cuts = []
    monkeypatch.setattr(base, "CUT_SLACK", 0)
    real = base._taken
    monkeypatch.setattr(base, "_taken", lambda part, keep: cuts.append(len(part[0]) - len(keep)) or real(part, keep))
    for a, b in zip(drawn(), whole):
        np.testing.assert_array_equal(a, b)
    if name != "iid":  # a design without replacement cuts: fewer rows held than all the blocks offered
        assert sum(cuts) > 0


def _held_numbers(obj) -> int:
    """Array elements (and scalars) reachable in nested tuples, lists and dicts of pass-1 statistics."""
    if isinstance(obj, np.ndarray):
        return obj.size
    if isinstance(obj, dict):
        return sum(_held_numbers(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_held_numbers(v) for v in obj)
    return 1


_MODEL = {"k": 7, "clusters": {"queried": [4] * 7, "queried_mean": [1.0, 2, 3, 1, 2, 3, 9],
                               "queried_var": [0.5, 1, 2, 0.1, 0.3, 4, 8]}}


@pytest.mark.parametrize("name, params, bind", [
    ("pareto", {}, None), ("poisson", {}, None), ("softmax", {}, None), ("linear", {}, None),
    ("stratified", {}, None), ("stratified", {"allocation": "neyman"}, _MODEL), ("auto", {}, _MODEL),
    ("auto", {}, None), ("softmax", {"stratify": "label"}, None), ("uniform", {"stratify": "label"}, None),
    ("iid", {}, None), ("gumbel-topk", {}, None), ("middle", {}, None)])
def test_compacting_the_block_statistics_changes_no_plan_and_holds_o_s_numbers(monkeypatch, name, params, bind):
    # draw folds pass 1's statistics as blocks arrive (issue 18): each block's s largest probabilities and
    # per-cluster sums are held once, not once a block, and the plan, its statistics and the selection are the
    # same floats as from every block's statistics at once
    from dataselect_cli.designs import base

    rng = np.random.default_rng(8)
    n, s, block_rows = 6000, 40, 50
    mass = rng.pareto(0.3, n)  # heavy-tailed: pareto and poisson make 20-odd of the 40 rows certain
    cluster = rng.integers(0, 7, n)
    columns = {"label": rng.integers(0, 3, n)}
    held = []

    def drawn():
        design = designs.get(name, **params)
        if bind:
            design.bind(bind)
        real_plan = design.plan
        monkeypatch.setattr(design, "plan", lambda stats, *a: held.append(_held_numbers(stats)) or real_plan(stats, *a))
        d = design.draw_arrays(mass, s, 3, block_rows=block_rows, cluster=cluster, columns=columns)
        return (d.index, d.count, d.prob, d.weight), d.stats

    monkeypatch.setattr(base, "COMPACT_BLOCKS", 10**9)
    whole, whole_stats = drawn()
    monkeypatch.setattr(base, "COMPACT_BLOCKS", 0)  # after every block
    got, got_stats = drawn()
    for a, b in zip(got, whole):
        np.testing.assert_array_equal(a, b)
    assert repr(got_stats) == repr(whole_stats)
    blocks = n // block_rows
    # what the blocks' statistics hold: a few numbers a block (auto: its candidates') plus O(s + k) (strata: 3 ×
    # that), against up to s or k numbers a block without compaction
    assert held[1] <= 40 * blocks + 3 * 4 * (s + 7), (held[1], held[0])
    if name in ("pareto", "poisson", "softmax", "linear", "stratified", "auto") and "stratify" not in params or \
            name == "softmax":
        assert held[0] > 3 * held[1], (held[0], held[1])


@pytest.mark.parametrize("name, params, bind", [
    ("pareto", {}, None), ("uniform", {}, None), ("stratified", {}, None), ("auto", {}, _MODEL),
    ("softmax", {"stratify": "label"}, None), ("iid", {}, None), ("priority", {}, None), ("top", {}, None)])
def test_a_task_folds_its_blocks_results_as_the_client_would(name, params, bind):
    # on Dask a task returns a range of blocks' results at once; it compacts its statistics and cuts its offers
    # before they travel (engine fold), so the client holds one task's share cut to O(s), and draws the same rows
    from dataselect_cli.dataset import MemorySource
    from dataselect_cli.designs import base
    from dataselect_cli.engine import LocalEngine, _run_range

    rng = np.random.default_rng(9)
    n, block_rows = 4000, 50
    mass = rng.pareto(0.3, n)
    cols = {"mass": mass, "prob": mass / grid.total(grid.block_sums(mass, block_rows)),
            "cluster": rng.integers(0, 7, n).astype(np.int32), "id": pa.array(np.arange(n, dtype=np.int64)),
            "score": mass, "label": rng.integers(0, 3, n)}

    class Ranges(LocalEngine):  # ranges of r blocks, each folded, as DaskEngine's tasks are
        def map_blocks(self, fn, source, block_rows, shared, fold=None):
            nb = grid.n_blocks(source.n, block_rows)
            for b0 in range(0, nb, r):
                yield from _run_range(fn, source, b0, min(nb, b0 + r), block_rows, fold, **shared)

    def drawn(engine):
        design = designs.get(name, **params)
        if bind:
            design.bind(bind)
        d = base.draw(design, MemorySource(cols), 40, 3, engine, block_rows)
        return d.index, d.count, d.prob, d.weight

    local = drawn(LocalEngine())
    for r in (13, 2 + base.COMPACT_BLOCKS):  # fewer blocks than a compaction takes, and more: the client then
        for a, b in zip(drawn(Ranges()), local):  # compacts statistics a task has compacted already
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(designs.REGISTRY))
def test_every_design_draws_the_same_rows_with_its_statistics_compacted_after_every_block(monkeypatch, name):
    # Design.compact must match the statistics its own check_block returns, in every design (a subclass that
    # changes check_block and inherits compact would break here)
    from dataselect_cli.designs import base

    rng = np.random.default_rng(4)
    n = 1500
    mass = rng.pareto(0.5, n) + 0.01
    cluster = rng.integers(0, 5, n)

    def drawn():
        design = designs.get(name, **({"threshold": 1.0} if name == "threshold" else {}))
        d = design.draw_arrays(mass, 30, 2, block_rows=40, cluster=cluster, columns={"score": mass})
        return d.index, d.count, d.prob, d.weight

    monkeypatch.setattr(base, "COMPACT_BLOCKS", 10**9)
    whole = drawn()
    monkeypatch.setattr(base, "COMPACT_BLOCKS", 0)
    for a, b in zip(drawn(), whole):
        np.testing.assert_array_equal(a, b)
