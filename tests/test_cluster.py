"""Unit tests for dataselect_cli.cluster: k-means, snapping to real rows, assignment, probes."""

from __future__ import annotations

import numpy as np
import pytest

from dataselect_cli.cluster import (WARM_PER_CENTROID, KMeansOptions, assign, auto_init_rows, choose_probes, cluster,
                                    kmeans, resolve_sample, sample_index)
from dataselect_cli.seeding import _transposed, kmeans_plusplus

# Two tight groups, 100+ apart. Centroid A = (1/3, 2/3): nearest member (0, 0) (0.745 vs 0.943, 1.374).
# Centroid B = (101, 101.33): nearest member (100, 100) (1.667 vs 2.404, 2.848). Every distance to the
# snapped center is an integer, exact in float32: A → 0, 1, 2; B → 0, 3, 4.
TOY = np.array(
    [[0, 0], [1, 0], [0, 2],
     [100, 100], [103, 100], [100, 104]],
    dtype=np.float32,
)
TOY_GROUPS = [[0, 1, 2], [3, 4, 5]]
TOY_CENTER_ROWS = [0, 3]
TOY_DISTANCE = np.array([0.0, 1.0, 2.0, 0.0, 3.0, 4.0])
# Φ_z per group (A, B): z=1: 0+1+2, 0+3+4; z=2: 0+1+4, 0+9+16.
TOY_COST = {1: [3.0, 7.0], 2: [5.0, 25.0]}


def blobs(n: int, d: int, k: int, seed: int, spread: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * spread
    return np.ascontiguousarray((means[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32))


def sqdist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Brute-force squared L2 distances in float64, shape (len(x), len(c))."""
    x64, c64 = x.astype(np.float64), c.astype(np.float64)
    return ((x64[:, None, :] - c64[None, :, :]) ** 2).sum(-1)


# --------------------------------------------------------------------------- toy case


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("z", [1, 2])
def test_toy_two_groups(seed, z):
    c = cluster(TOY, 2, z=z, seed=seed)
    # labels group the rows correctly, up to a permutation of the cluster ids
    ga, gb = (c.labels[g] for g in TOY_GROUPS)
    assert len(set(ga.tolist())) == 1 and len(set(gb.tolist())) == 1
    assert ga[0] != gb[0]
    a, b = int(ga[0]), int(gb[0])
    # the center rows are the members nearest each centroid, in their own cluster, at distance exactly 0
    assert c.center_index[a] == TOY_CENTER_ROWS[0] and c.center_index[b] == TOY_CENTER_ROWS[1]
    np.testing.assert_array_equal(c.labels[c.center_index], np.arange(2))
    np.testing.assert_array_equal(c.distance[c.center_index], 0.0)
    # distances: hand values, and numpy's L2 distance to the center row
    np.testing.assert_allclose(c.distance, TOY_DISTANCE, rtol=1e-7)
    np.testing.assert_allclose(c.distance, np.linalg.norm(TOY - TOY[c.center_index[c.labels]], axis=1), rtol=1e-7)
    np.testing.assert_array_equal(c.size[[a, b]], [3, 3])
    np.testing.assert_allclose(c.cost[[a, b]], TOY_COST[z], rtol=1e-12)
    assert c.labels.dtype == np.int32 and c.distance.dtype == np.float32
    assert c.center_index.dtype == np.int64 and c.size.dtype == np.int64 and c.cost.dtype == np.float64


@pytest.mark.parametrize("z", [1, 2])
def test_toy_row_order_does_not_matter(z):
    perm = np.array([4, 0, 5, 2, 3, 1])
    c = cluster(np.ascontiguousarray(TOY[perm]), 2, z=z, seed=0)
    np.testing.assert_allclose(c.distance, TOY_DISTANCE[perm], rtol=1e-7)
    assert sorted(perm[c.center_index].tolist()) == TOY_CENTER_ROWS
    np.testing.assert_allclose(np.sort(c.cost), TOY_COST[z], rtol=1e-12)


# --------------------------------------------------------------------------- random blobs


@pytest.fixture(scope="module")
def blob_run():
    x = blobs(2000, 8, 10, seed=0)
    return x, cluster(x, 10, z=2, seed=0)


def test_blobs_assignment_is_nearest_centroid_distance_to_center_row(blob_run):
    x, c = blob_run
    d2 = sqdist(x, c.centroids)
    best = d2.min(axis=1)
    mine = d2[np.arange(len(x)), c.labels]
    # the clusters are the k-means clusters (as in the paper); a row may sit in another cluster than
    # argmin only on a tie (observed: 0 rows differ at all)
    np.testing.assert_allclose(mine, best, rtol=1e-5, atol=1e-5)
    own = np.sqrt(sqdist(x, x[c.center_index])[np.arange(len(x)), c.labels])
    np.testing.assert_allclose(c.distance, own, rtol=1e-5, atol=1e-6)  # observed max rel 1.4e-7


def test_blobs_output_shapes_and_invariants(blob_run):
    x, c = blob_run
    n, k = len(x), 10
    assert c.labels.shape == (n,) and c.labels.dtype == np.int32
    assert c.distance.shape == (n,) and c.distance.dtype == np.float32
    assert c.center_index.shape == (k,) and len(np.unique(c.center_index)) == k
    assert c.centroids.shape == (k, 8) and np.isfinite(c.centroids).all()
    assert c.labels.min() >= 0 and c.labels.max() < k
    assert (c.size > 0).all() and c.size.sum() == n
    np.testing.assert_array_equal(c.size, np.bincount(c.labels, minlength=k))
    np.testing.assert_array_equal(c.labels[c.center_index], np.arange(k))
    np.testing.assert_array_equal(c.distance[c.center_index], 0.0)
    np.testing.assert_allclose(c.cost, np.bincount(c.labels, weights=c.distance.astype(np.float64) ** 2, minlength=k),
                               rtol=1e-12)
    assert c.stats["distinct_centers"] == k


# --------------------------------------------------------------------------- no silent subsampling


def assert_objective_over(obj: float, x: np.ndarray, centroids: np.ndarray) -> None:
    """faiss's last objective was computed on exactly the rows of ``x`` (Lloyd: it bounds the final one)."""
    final = float(sqdist(x, centroids).min(axis=1).sum())
    assert obj >= final * (1 - 1e-6), (obj, final)  # float32 sums inside faiss
    np.testing.assert_allclose(obj, final, rtol=0.05)


def test_trains_on_every_row_when_asked_although_n_exceeds_256k():
    x = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    c = cluster(x, 5, seed=0, options=KMeansOptions(fit_sample="all"))
    assert c.stats["n_train"] == 5000
    # faiss's objective is summed over its training rows, with the centroids before the last update, so on
    # all rows it is >= the objective of the final centroids on x and close to it (observed 11428.68 vs
    # 11422.92, rel 5e-4); faiss's default cap of 256·k = 1280 rows gives about a quarter (observed 2936).
    assert_objective_over(c.stats["obj"][-1], x, c.centroids)


def test_default_fit_sample_is_256k_and_says_so():
    x = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    c = cluster(x, 5, seed=3)
    assert c.stats["n_train"] == 1280 and c.stats["points_per_centroid"] == 256
    assert_objective_over(c.stats["obj"][-1], x[sample_index(5000, 1280, 3, 1)], c.centroids)


def test_refine_runs_on_every_row():
    x = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    c = cluster(x, 5, seed=3, options=KMeansOptions(fit_sample=1000, refine=3, tol=0))
    assert c.stats["n_refine"] == 5000 and len(c.stats["refine_obj"]) == 3
    assert_objective_over(c.stats["refine_obj"][-1], x, c.centroids)


def test_fit_sample_trains_on_that_many_rows():
    x = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    c = cluster(x, 5, seed=3, options=KMeansOptions(fit_sample=1000))
    assert c.stats["n_train"] == 1000
    train = x[sample_index(5000, 1000, 3, 1)]
    # observed 2317.987 vs 2317.987 on the 1000 training rows (vs about 11400 on all rows)
    assert_objective_over(c.stats["obj"][-1], train, c.centroids)
    assert len(c.labels) == 5000  # still assigns every row


def test_sample_index_sorted_and_seeded():
    a = sample_index(5000, 1000, 0, 1)
    assert a.shape == (1000,) and len(np.unique(a)) == 1000
    assert (np.diff(a) > 0).all()
    assert a.min() >= 0 and a.max() < 5000
    np.testing.assert_array_equal(a, sample_index(5000, 1000, 0, 1))
    assert not np.array_equal(a, sample_index(5000, 1000, 1, 1))
    assert not np.array_equal(a, sample_index(5000, 1000, 0, 2))  # another stream


@pytest.mark.parametrize("fit_sample, rows", [(None, 5000), ("all", 5000), (5000, 5000), (6000, 5000),
                                              ("auto", 768), (900, 900)])
def test_resolve_sample(fit_sample, rows):
    assert resolve_sample(fit_sample, 5000, 3, 256) == rows
    x = np.random.default_rng(1).normal(size=(5000, 2)).astype(np.float32)
    assert cluster(x, 3, options=KMeansOptions(niter=2, fit_sample=fit_sample)).stats["n_train"] == rows


@pytest.mark.parametrize("n_train, k, rows", [(51200, 200, 12800), (30000, 200, 7500), (4000, 200, 4000),
                                              (100000, 200, 20000), (8000, 200, 5000)])
def test_auto_init_rows_is_a_quarter_within_25k_and_100k(n_train, k, rows):
    assert auto_init_rows(n_train, k) == rows


def test_kmeans_plusplus_is_seeded_distinct_and_spreads():
    x = blobs(3000, 8, 10, seed=1)
    a = kmeans_plusplus(x, 10, seed=0)
    assert len(np.unique(a)) == 10
    np.testing.assert_array_equal(a, kmeans_plusplus(x, 10, seed=0))
    assert not np.array_equal(a, kmeans_plusplus(x, 10, seed=1))
    # greedy D² seeding on 10 well separated blobs puts one seed in each: seeds are far apart
    # (blob means ≈ 40 apart, rows of one blob ≈ 4; observed smallest gap between seeds 22.9)
    gaps = np.sqrt(sqdist(x[a], x[a]))[np.triu_indices(10, 1)]
    assert gaps.min() > 12, gaps.min()


def _seeding_law(x: np.ndarray, k: int, n_trials: int) -> dict:
    """Exact probability of every ordered sequence of k seeds under greedy k-means++, by enumeration.

    First seed uniform; at each step n_trials candidates drawn independently ∝ D², the first of those
    with the least potential Σ min(D², ‖x − c‖²) kept (np.argmin's tie rule).
    """
    import itertools

    m = len(x)
    sq = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    law = {}

    def walk(seq, closest, p):
        if len(seq) == k:
            law[tuple(seq)] = law.get(tuple(seq), 0.0) + p
            return
        q = closest / closest.sum()
        nxt = {}
        for tup in itertools.product(range(m), repeat=n_trials):
            pt = float(np.prod(q[list(tup)]))
            if pt == 0.0:
                continue
            pots = [np.minimum(closest, sq[c]).sum() for c in tup]
            best = tup[int(np.argmin(pots))]
            nxt[best] = nxt.get(best, 0.0) + pt
        for c, pc in nxt.items():
            walk(seq + [c], np.minimum(closest, sq[c]), p * pc)

    for i in range(m):
        walk([i], sq[i].copy(), 1.0 / m)
    return law


@pytest.mark.parametrize("pool", [1, 3])
@pytest.mark.parametrize("n_trials", [1, 2])
def test_pooled_kmeans_plusplus_draws_exactly_the_greedy_law(pool, n_trials):
    """Candidates drawn ahead (pool > 1) and accepted with probability D²/D₀² follow the law of drawing
    at each step: the frequencies of the 4-seed sequences over 6000 seeds against the exact
    probabilities, by a chi-square statistic (df cells; mean df, sd √(2·df); bound df + 6·√(2·df))."""
    x = np.array([[0, 0], [1, 0], [0, 3], [5, 1], [4, 6]], dtype=np.float32)
    law = _seeding_law(x, 4, n_trials)
    runs = 6000
    seen: dict = {}
    for seed in range(runs):
        key = tuple(kmeans_plusplus(x, 4, seed=seed, n_trials=n_trials, pool=pool).tolist())
        seen[key] = seen.get(key, 0) + 1
    assert set(seen) <= set(law)
    big = {s for s, p in law.items() if p * runs >= 5}
    chi2 = sum((seen.get(s, 0) - law[s] * runs) ** 2 / (law[s] * runs) for s in big)
    rest = sum(law[s] for s in law if s not in big) * runs  # the small cells pooled into one
    rest_seen = sum(v for s, v in seen.items() if s not in big)
    chi2 += (rest_seen - rest) ** 2 / max(rest, 1.0)
    df = len(big)
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, df)


def test_pooled_kmeans_plusplus_one_step_per_pool_is_drawing_at_each_step():
    """pool=1 draws each step's candidates from that step's D², so no acceptance draw is made and the
    random stream, and the seeds, are those of the plain greedy loop written out here."""
    x = blobs(2000, 8, 10, seed=3)
    k, n_trials = 12, 4
    rng = np.random.default_rng([5, 4])
    sq = (x.astype(np.float64) ** 2).sum(1)
    d = lambda c: np.maximum(sq + sq[c] - 2.0 * (x @ x[c]).astype(np.float64), 0.0)  # noqa: E731
    index = [int(rng.integers(len(x)))]
    closest = d(index[0])
    for _ in range(1, k):
        cand = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(n_trials) * closest.sum(), side="right"),
                          len(x) - 1)
        pots = [np.minimum(closest, d(c)).sum() for c in cand]
        index.append(int(cand[int(np.argmin(pots))]))
        closest = np.minimum(closest, d(index[-1]))
    assert kmeans_plusplus(x, k, seed=5, n_trials=n_trials, pool=1).tolist() == index


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("init", ["kmeans++", "random", "afkmc2"])
def test_same_seed_same_result(init):
    x = blobs(4000, 8, 10, seed=1)
    opt = KMeansOptions(init=init, fit_sample=3000, init_sample=1500, refine=1)  # every stage samples
    a, b = cluster(x, 10, seed=7, options=opt), cluster(x, 10, seed=7, options=opt)
    # bitwise equality is the point here, not closeness
    for name in ("labels", "distance", "center_index", "centroids", "size", "cost"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("init", ["kmeans++", "random", "afkmc2"])
def test_other_seed_other_centroids(init):
    # structureless data: the local optimum k-means reaches depends on the initial centroids
    x = np.random.default_rng(2).uniform(size=(2000, 8)).astype(np.float32)
    opt = KMeansOptions(init=init)
    a, b = cluster(x, 10, seed=0, options=opt), cluster(x, 10, seed=1, options=opt)
    # observed max |difference| of the column-sorted centroids 0.16
    assert not np.allclose(np.sort(a.centroids, axis=0), np.sort(b.centroids, axis=0), atol=1e-3)
    assert not np.array_equal(np.sort(a.center_index), np.sort(b.center_index))


# --------------------------------------------------------------------------- k == n, k == 1, duplicates

# (0,0), (2,0), (0,2), (2,2) around (1,1), which is also their mean
SQUARE = np.array([[0, 0], [2, 0], [0, 2], [2, 2], [1, 1]], dtype=np.float32)


def test_k_equals_n_every_row_its_own_center():
    c = cluster(SQUARE, 5, seed=0)
    np.testing.assert_array_equal(np.sort(c.center_index), np.arange(5))
    np.testing.assert_array_equal(c.labels[c.center_index], np.arange(5))
    np.testing.assert_array_equal(c.size, np.ones(5))
    np.testing.assert_array_equal(c.distance, 0.0)
    np.testing.assert_array_equal(c.cost, 0.0)


@pytest.mark.parametrize("z, cost", [(1, 4 * np.sqrt(2)), (2, 8.0)])
def test_k_equals_one(z, cost):
    c = cluster(SQUARE, 1, z=z, seed=0)
    np.testing.assert_array_equal(c.labels, 0)
    np.testing.assert_array_equal(c.center_index, [4])  # the row at the mean
    np.testing.assert_allclose(c.distance, [np.sqrt(2)] * 4 + [0.0], rtol=1e-7)
    np.testing.assert_array_equal(c.size, [5])
    np.testing.assert_allclose(c.cost, [cost], rtol=1e-6)  # observed 7.99999973 for z=2 (float32 √2)


@pytest.mark.parametrize("seed", range(5))
def test_duplicates_fewer_distinct_points_than_k(seed):
    base = np.array([[0, 0], [5, 5], [-3, 7]], dtype=np.float32)
    x = np.ascontiguousarray(base[[0, 0, 0, 0, 1, 1, 1, 2, 2]])
    c = cluster(x, 5, seed=seed)
    assert c.stats["distinct_centers"] == 3
    assert len(np.unique(c.center_index)) == 5
    assert (c.size > 0).all() and c.size.sum() == 9
    np.testing.assert_array_equal(c.labels[c.center_index], np.arange(5))
    np.testing.assert_array_equal(c.distance, 0.0)
    np.testing.assert_array_equal(c.cost, 0.0)


# --------------------------------------------------------------------------- objective


@pytest.mark.parametrize("init", ["random", "kmeans++", "afkmc2"])
@pytest.mark.parametrize("seed", range(3))
def test_objective_never_increases(init, seed):
    x = np.random.default_rng(10 + seed).normal(size=(3000, 8)).astype(np.float32)
    obj = np.asarray(cluster(x, 20, seed=seed, options=KMeansOptions(init=init, tol=0)).stats["obj"])
    assert len(obj) >= 2
    # observed: strictly decreasing, largest relative step −2.8e-5; allow float32 summation noise
    assert (np.diff(obj) <= 1e-6 * obj[1:]).all(), obj


# --------------------------------------------------------------------------- probes

# clusters 0..4 interleaved; sizes 5, 3, 1, 1, 2
PROBE_LABELS = np.array([0, 1, 0, 2, 1, 0, 3, 0, 1, 4, 4, 0])
PROBE_CENTERS = np.array([5, 4, 3, 6, 10])


@pytest.mark.parametrize("t", [0, 1, 3, 10])
@pytest.mark.parametrize("seed", range(3))
def test_choose_probes_counts_and_never_a_center(t, seed):
    probe = choose_probes(PROBE_LABELS, PROBE_CENTERS, t, seed)
    assert probe.dtype == bool and probe.shape == PROBE_LABELS.shape
    assert not probe[PROBE_CENTERS].any()
    size = np.bincount(PROBE_LABELS, minlength=5)
    np.testing.assert_array_equal(np.bincount(PROBE_LABELS[probe], minlength=5), np.minimum(t, size - 1))


def test_choose_probes_t3_hand_counts():
    probe = choose_probes(PROBE_LABELS, PROBE_CENTERS, 3, seed=0)
    np.testing.assert_array_equal(np.bincount(PROBE_LABELS[probe], minlength=5), [3, 2, 0, 0, 1])
    # the 2-row cluster 4 has one non-center row (9) and it must be the probe
    assert probe[9] and not probe[10]


def test_choose_probes_deterministic_and_seeded():
    labels = np.repeat(np.arange(20), 50)
    centers = np.arange(20) * 50 + 7
    a = choose_probes(labels, centers, 3, seed=0)
    np.testing.assert_array_equal(a, choose_probes(labels, centers, 3, seed=0))
    assert not np.array_equal(a, choose_probes(labels, centers, 3, seed=1))


def test_choose_probes_uniform_over_non_centers():
    # one cluster of 5 rows, center row 2, one probe: each of the other 4 rows is drawn with probability 1/4
    labels, centers = np.zeros(5, dtype=np.int64), np.array([2])
    hits = sum(choose_probes(labels, centers, 1, seed=s).astype(int) for s in range(400))
    assert hits[2] == 0 and hits.sum() == 400
    # expectation 100 each, binomial sd 8.7; observed [102, 94, 0, 99, 105]
    assert (np.abs(hits[[0, 1, 3, 4]] - 100) < 40).all(), hits


def test_lloyd_stops_at_the_first_step_below_the_default_tol():
    """The default early stop: every step but the last improves the objective by at least tol (relative), the last
    by less (or the iteration cap is reached); the CLI's --tol default is the library's."""
    from dataselect_cli.cli.options import TolOpt
    from dataselect_cli.options import KMEANS_TOL

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, 16)) * 3)[rng.integers(40, size=6000)] + rng.normal(size=(6000, 16))
    for warm_start, key in ((False, "obj"), (True, "warm_obj")):  # on the fit rows; or the warm start's seeding rows
        _, stats = kmeans(x.astype(np.float32), 20, seed=0, warm_start=warm_start)
        assert stats["warm_start"] is warm_start
        obj = np.array(stats[key])
        gain = -np.diff(obj) / obj[:-1]
        assert KMeansOptions().tol == KMEANS_TOL == TolOpt.default and stats["tol"] == KMEANS_TOL
        assert len(obj) >= 3 and np.all(gain[:-1] >= KMEANS_TOL)
        assert gain[-1] < KMEANS_TOL or len(obj) == stats["niter"]
        _, slow = kmeans(x.astype(np.float32), 20, seed=0, tol=1e-6, warm_start=warm_start)
        assert slow[key][: len(obj)] == stats[key] and len(slow[key]) > len(obj)


def _cost(x: np.ndarray, centroids: np.ndarray) -> float:
    return float(assign(x, centroids)[1].sum())


def test_warm_start_converges_on_the_seeding_rows_then_iterates_on_the_fit_rows():
    """The default Lloyd schedule: to tol on the seeding rows, then to tol (at most fit_niter) on the fit rows; each
    stage's rows and iterations are recorded. On a clustered set where the seeding rows are a quarter of the fit rows
    (measured: the final cost 1.0005× that of every iteration on the fit rows, and 1.0115, 1.0019, 1.0011× with
    at most 0, 1 and 2 iterations on them), the default stays within 0.2 %, a cap within 0.5 %, and the warm
    start's centroids alone within 2 %."""
    rng = np.random.default_rng(1)
    x = ((rng.normal(size=(60, 24)) * 2)[rng.integers(60, size=20_000)] + rng.normal(size=(20_000, 24))
         ).astype(np.float32)
    k = 30
    cold_c, cold = kmeans(x, k, seed=0, warm_start=False)
    assert not cold["warm_start"] and cold["warm_obj"] == [] and cold["n_init"] < cold["n_train"]
    for fit_niter, bound in ((None, 1.002), (0, 1.02), (1, 1.005), (2, 1.005)):
        c, s = kmeans(x, k, seed=0, fit_niter=fit_niter)
        assert s["warm_start"] and s["n_init"] == cold["n_init"] and s["n_train"] == cold["n_train"]
        assert s["fit_niter"] == (s["niter"] if fit_niter is None else fit_niter) and len(s["warm_obj"]) >= 2
        if fit_niter != 0:
            assert 1 <= s["iterations"] <= s["fit_niter"] and len(s["obj"]) == s["iterations"]
        else:  # the warm start's centroids, its objective
            assert s["obj"] == s["warm_obj"]
        assert _cost(x, c) <= bound * _cost(x, cold_c)
    # the same seeding either way: fit_niter 0 is the warm start's centroids, which 1 and 2 then improve on the fit rows
    c0, c1, c2 = (kmeans(x, k, seed=0, fit_niter=f)[0] for f in (0, 1, 2))
    assert _cost(x, c2) <= _cost(x, c1) <= _cost(x, c0)


@pytest.mark.parametrize("opt, k", [(KMeansOptions(init="random"), 10), (KMeansOptions(init_sample="all"), 10),
                                    (KMeansOptions(warm_start=False, fit_niter=2), 10), (KMeansOptions(), 40)])
def test_no_warm_start_without_fewer_kmeanspp_seeding_rows(opt, k):
    """Other seedings, k-means++ seeded on every fit row, --no-warm-start (fit_niter then has no effect), or fewer
    than WARM_PER_CENTROID seeding rows per centroid (k = 40 on 6,000 rows: a quarter of them, 37.5 per centroid):
    Lloyd runs on the fit rows only, at most niter iterations."""
    x = np.random.default_rng(2).normal(size=(6000, 8)).astype(np.float32)
    _, s = kmeans(x, k, seed=0, **vars(opt))
    assert not s["warm_start"] and s["warm_obj"] == [] and s["fit_niter"] == s["niter"]
    assert 1 <= s["iterations"] <= s["niter"]
    if k == 40:
        assert s["n_init"] == 1500 < WARM_PER_CENTROID * k
        _, warm = kmeans(x, k, seed=0, init_sample=WARM_PER_CENTROID * k)  # enough seeding rows: the warm start
        assert warm["warm_start"] and warm["warm_obj"]


def test_a_task_folds_its_blocks_center_candidates_to_the_same_centers():
    """On Dask with a directory output each task sends back, per cluster, its blocks' nearest row (the earlier
    block's of equals), not every block's: the centers are those of a run that gathers every block's."""
    from dataselect_cli import grid
    from dataselect_cli.engine import LocalEngine, _run_range

    class Ranges(LocalEngine):  # ranges of 3 blocks, each folded, as DaskEngine's tasks are
        def map_blocks(self, fn, source, block_rows, shared, fold=None):
            nb = grid.n_blocks(source.n, block_rows)
            for b0 in range(0, nb, 3):
                yield from _run_range(fn, source, b0, min(nb, b0 + 3), block_rows, fold, **shared)

    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 3)).astype(np.float32)
    x[1500:1600] = x[100:200]  # equal rows in other blocks: ties the earlier block must win
    written = {}
    got = cluster(x, 12, engine=Ranges(), block_rows=128, seed=1,
                  sink=lambda b, rows, cols: written.setdefault(b, cols["cluster"].copy()) is not None)
    want = cluster(x, 12, block_rows=128, seed=1)
    np.testing.assert_array_equal(got.center_index, want.center_index)
    np.testing.assert_array_equal(np.concatenate([written[b] for b in sorted(written)]), want.labels)


@pytest.mark.parametrize("case", ["blobs", "ties"])
def test_assign_block_nearest_members_are_those_of_exact_distances_on_every_row(case):
    """assign_block computes exact distances only for the rows faiss puts within the error slack of their
    cluster's least distance; its nearest members (first of equals) and their distances are those found
    from exact distances on every row. "ties": integer rows, many repeated, whose nearest members tie."""
    from dataselect_cli.cluster import _nearest, assign_block

    rng = np.random.default_rng(4)
    if case == "blobs":
        x, centroids = blobs(5000, 16, 20, seed=2), blobs(20, 16, 20, seed=2)
    else:
        x = rng.integers(-3, 4, size=(5000, 8)).astype(np.float32)
        centroids = rng.integers(-2, 3, size=(30, 8)).astype(np.float32) + 0.5
    got = assign_block(3, x, centroids=centroids, block_rows=5000)
    labels, sq = assign(x, centroids)
    best = _nearest(labels, sq)
    np.testing.assert_array_equal(got[0], labels.astype(np.int32))
    np.testing.assert_array_equal(got[1], labels[best])
    np.testing.assert_array_equal(got[2], sq[best])
    np.testing.assert_array_equal(got[3], 3 * 5000 + best)
    np.testing.assert_array_equal(got[4], x[best])


@pytest.mark.parametrize("m, d, rows", [(2500, 7, 1024), (3, 384, 1024), (1000, 16, 1)])
def test_the_seeding_transpose_is_a_contiguous_x_T(m, d, rows):
    x = np.random.default_rng(m).standard_normal((m, d)).astype(np.float32)
    t = _transposed(x, rows)
    assert t.flags.c_contiguous and t.dtype == np.float32
    np.testing.assert_array_equal(t, x.T)
