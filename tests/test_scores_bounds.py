"""Unit tests for dataselect_cli.scores and dataselect_cli.bounds on hand-worked toys."""

from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from dataselect_cli import bounds
from dataselect_cli.designs.iid import hansen_hurwitz
from dataselect_cli.methods.sensitivity import balanced_lambda, distance_term, sensitivity

# --------------------------------------------------------------------------- sensitivity()

# Five rows, two clusters: rows 0-2 in cluster 0 (center row 0), rows 3-4 in cluster 1 (center row 3).
LABELS = np.array([0, 0, 0, 1, 1])
DIST = np.array([0.0, 1.0, 2.0, 0.0, 3.0], dtype=np.float32)
CENTER_LOSS = np.array([2.0, 1.0])
LAM = np.array([0.5, 1.0 / 3.0])
# v = dist^z; mass = ℓ(c) + Λ·v; Σ mass = Σℓ̂ + Σ_i Λ_i Φ_z(C_i) with Σℓ̂ = 2+2+2+1+1 = 8.
TOY = {
    # z=1: v = 0,1,2,0,3; Φ = (3, 3); ΛΦ = 1.5 + 1 = 2.5; Σ mass = 10.5
    1: dict(v=[0, 1, 2, 0, 3], mass=[2, 2.5, 3, 1, 2], total=10.5, phi=6.0),
    # z=2: v = 0,1,4,0,9; Φ = (5, 9); ΛΦ = 2.5 + 3 = 5.5; Σ mass = 13.5
    2: dict(v=[0, 1, 4, 0, 9], mass=[2, 2.5, 4, 1, 4], total=13.5, phi=14.0),
}


@pytest.mark.parametrize("z", [1, 2])
def test_distance_term(z):
    v = distance_term(DIST, z)
    assert v.dtype == np.float64
    np.testing.assert_allclose(v, TOY[z]["v"], rtol=1e-15)


@pytest.mark.parametrize("z", [1, 2])
def test_sensitivity_hand_toy(z):
    t = TOY[z]
    s = sensitivity(LABELS, distance_term(DIST, z), CENTER_LOSS, LAM)
    np.testing.assert_allclose(s.proxy_loss, [2, 2, 2, 1, 1], rtol=1e-15)
    np.testing.assert_allclose(s.distance_term, t["v"], rtol=1e-15)
    np.testing.assert_allclose(s.mass, t["mass"], rtol=1e-15)
    np.testing.assert_allclose(s.prob, np.array(t["mass"]) / t["total"], rtol=1e-15)
    np.testing.assert_allclose(s.prob.sum(), 1.0, rtol=1e-15)
    # the paper's denominator Σ_j Λ_j Φ_z(C_j) + Σ ℓ̂ is exactly Σ mass
    phi = np.bincount(LABELS, weights=t["v"], minlength=2)
    np.testing.assert_allclose(np.dot(LAM, phi) + s.proxy_loss.sum(), t["total"], rtol=1e-15)


@pytest.mark.parametrize("z", [1, 2])
def test_sensitivity_no_loss_mode_is_lightweight_coreset(z):
    t = TOY[z]
    n = len(LABELS)
    v = distance_term(DIST, z)
    lam = balanced_lambda(float(n), t["phi"], n)
    np.testing.assert_allclose(lam, n / t["phi"], rtol=1e-15)
    s = sensitivity(LABELS, v, np.ones(2), np.full(2, lam))
    # p = ½·1/n + ½·v/Φ_z; z=2: 0.1 + v/28 = [0.1, 0.1357, 0.2429, 0.1, 0.4214]
    np.testing.assert_allclose(s.prob, 0.5 / n + 0.5 * np.array(t["v"]) / t["phi"], rtol=1e-14)
    np.testing.assert_allclose(s.prob.sum(), 1.0, rtol=1e-15)


@pytest.mark.parametrize("z", [1, 2])
def test_balanced_lambda_gives_equal_mass_to_both_terms(z):
    t = TOY[z]
    v = distance_term(DIST, z)
    proxy_total = float(CENTER_LOSS[LABELS].sum())  # 8
    lam = balanced_lambda(proxy_total, t["phi"], len(LABELS))
    np.testing.assert_allclose(lam, 8.0 / t["phi"], rtol=1e-15)
    s = sensitivity(LABELS, v, CENTER_LOSS, np.full(2, lam))
    np.testing.assert_allclose(np.sum(lam * v), s.proxy_loss.sum(), rtol=1e-14)
    np.testing.assert_allclose(s.mass.sum(), 16.0, rtol=1e-14)


def test_sensitivity_all_zero_mass_is_uniform():
    s = sensitivity(LABELS, np.zeros(5), np.zeros(2), np.array([1.0, 2.0]))
    np.testing.assert_array_equal(s.mass, 0.0)
    np.testing.assert_allclose(s.prob, np.full(5, 0.2), rtol=1e-15)


@pytest.mark.parametrize(
    "proxy_total, phi, n, expected",
    [
        (8.0, 0.0, 5, 0.0),  # Φ_z = 0: every row equals its center
        (0.0, 0.0, 5, 0.0),
        (0.0, 4.0, 5, 1.25),  # all proxy losses 0: falls back to n/Φ_z
        (8.0, 4.0, 5, 2.0),  # Σℓ̂/Φ_z
        (5.0, 14.0, 5, 5.0 / 14.0),  # unit proxy: n/Φ_z
    ],
)
def test_balanced_lambda_cases(proxy_total, phi, n, expected):
    np.testing.assert_allclose(balanced_lambda(proxy_total, phi, n), expected, rtol=1e-15)


# --------------------------------------------------------------------------- sample size

# ε as exact rationals; the expected size is ⌈ε⁻²(2 + 2ε/3)⌉ in exact arithmetic. 1/3, 1/6, 1/9, 1/12 hit
# an integer exactly (20, 76, 168, 296), where float rounding could add a spurious 1.
EPS_TABLE = ["1/10", "1/20", "1/5", "1/2", "1/4", "1/3", "1/6", "2/3", "1", "1/100", "3/10", "7/100", "1/9", "1/12"]


def exact_size(eps: Fraction) -> Fraction:
    return (2 + Fraction(2, 3) * eps) / eps**2


@pytest.mark.parametrize("eps", EPS_TABLE)
def test_sample_size_exact_table(eps):
    e = Fraction(eps)
    assert bounds.sample_size(float(e)) == math.ceil(exact_size(e))


def test_sample_size_paper_defaults():
    assert bounds.sample_size(0.1) == 207  # ⌈620/3⌉ = ⌈206.67⌉
    assert math.ceil(exact_size(Fraction(1, 10)) * math.log(20)) == 620  # 206.67·2.9957 = 619.12
    assert bounds.sample_size(0.1, 0.05) == 620


@pytest.mark.parametrize(
    "eps, delta, expected",
    [
        ("1/10", 0.05, 620),  # 206.67·ln 20 = 619.12
        ("1/20", 0.01, 3746),  # 813.33·ln 100 = 3745.5
        ("1/5", 0.1, 123),  # 53.33·ln 10 = 122.80
        ("1/2", 0.5, 7),  # 9.33·ln 2 = 6.47
    ],
)
def test_sample_size_with_delta(eps, delta, expected):
    e = Fraction(eps)
    assert math.ceil(float(exact_size(e)) * math.log(1 / delta)) == expected
    assert bounds.sample_size(float(e), delta) == expected


@pytest.mark.parametrize("eps", ["1/10", "1/3", "1/6", "1/2"])
def test_sample_size_delta_one_over_e_is_no_delta(eps):
    e = float(Fraction(eps))
    assert bounds.sample_size(e, math.exp(-1.0)) == bounds.sample_size(e)


@pytest.mark.parametrize("eps", EPS_TABLE)
@pytest.mark.parametrize("delta", [None, 0.05])
def test_eps_for_size_inverts_sample_size(eps, delta):
    e = float(Fraction(eps))
    s = bounds.sample_size(e, delta)
    back = bounds.eps_for_size(s, delta)
    assert back <= e * (1 + 1e-12)
    # rounding s up by < 1 draw moves ε by a relative ≤ 1/(1.75·s) (d ln s / d ln ε ≤ −1.75 for ε ≤ 1);
    # observed largest relative shift 0.45/s: ε = 0.1, δ = 0.05 → s = 620 → ε back 0.099928
    assert back >= e * (1 - 1 / (1.75 * s)), (back, e, s)


@pytest.mark.parametrize("s", [1, 2, 3, 10, 207, 620, 1000, 20067])
@pytest.mark.parametrize("delta", [None, 0.05])
def test_eps_for_size_solves_the_quadratic(s, delta):
    eps = bounds.eps_for_size(s, delta)
    log = 1.0 if delta is None else math.log(1 / delta)
    # ε⁻²(2 + 2ε/3)·L = s exactly, so sample_size gives back s
    np.testing.assert_allclose((2 + 2 * eps / 3) / eps**2 * log, s, rtol=1e-12)
    assert bounds.sample_size(eps, delta) == s


@pytest.mark.parametrize("delta, expected", [(None, 1 - math.exp(-1)), (0.05, 0.95), (0.01, 0.99)])
def test_confidence(delta, expected):
    np.testing.assert_allclose(bounds.confidence(delta), expected, rtol=1e-15)


# --------------------------------------------------------------------------- Theorem 2 interval


@pytest.mark.parametrize(
    "total_hat, eps, lam_phi, n, expected",
    [
        # 2εΛΦ = 10: [(100 − 10)/1.25, (100 + 10)/0.75]/10 = [7.2, 14.667]
        (100.0, 0.25, 20.0, 10, (7.2, 110.0 / 7.5)),
        # no Λ term: [T̂/1.5, T̂/0.5]/n
        (30.0, 0.5, 0.0, 3, (20.0 / 3.0, 20.0)),
        # T̂ − 2εΛΦ = 5 − 10 < 0: lower end clipped at 0; upper (5 + 10)/0.75/5 = 4
        (5.0, 0.25, 20.0, 5, (0.0, 4.0)),
    ],
)
def test_theorem2_interval_hand(total_hat, eps, lam_phi, n, expected):
    np.testing.assert_allclose(bounds.theorem2_interval(total_hat, eps, lam_phi, n), expected, rtol=1e-14)


def test_theorem2_interval_ends_are_where_the_bound_is_tight():
    total_hat, eps, lam_phi, n = 100.0, 0.1, 30.0, 7
    lo, hi = bounds.theorem2_interval(total_hat, eps, lam_phi, n)
    for t in (lo * n, hi * n):  # |T − T̂| = ε(T + 2ΛΦ) at both ends
        np.testing.assert_allclose(abs(t - total_hat), eps * (t + 2 * lam_phi), rtol=1e-12)


# --------------------------------------------------------------------------- Λ (Lemma 8)


@pytest.mark.parametrize(
    "k, p, expected",
    [
        (30, 0.5, 12),  # ⌈ln 3000 / ln 2⌉ = ⌈11.55⌉
        (1, 0.5, 7),  # ⌈ln 100 / ln 2⌉ = ⌈6.64⌉
        (10, 0.75, 5),  # ⌈ln 1000 / ln 4⌉ = ⌈4.98⌉
        (100, 0.9, 4),  # ln 10⁴ / ln 10 = 4 exactly
        (10, 0.9, 3),  # ln 10³ / ln 10 = 3 exactly (float 2.9999999999999996)
        (100, 0.99, 2),  # ln 10⁴ / ln 100 = 2 exactly (float 2.0000000000000004)
        (1, 0.99, 1),  # ln 100 / ln 100 = 1 exactly (float 1.0000000000000002)
    ],
)
def test_probes_needed(k, p, expected):
    assert bounds.probes_needed(k, p) == expected


def test_probe_ratios():
    loss = np.array([1.0, 3.0, 2.0, 5.0, 2.0])
    center = np.array([1.0, 1.0, 2.0, 4.0, 1.0])
    dterm = np.array([0.0, 4.0, 0.0, 0.5, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero warnings leak out
        r = bounds.probe_ratios(loss, center, dterm)
    # |Δℓ| = 0, 2, 0, 1, 1 over v = 0, 4, 0, 0.5, 0: 0/0 → 0, 2/4, 0/0 → 0, 1/0.5, 1/0 → inf
    np.testing.assert_allclose(r, [0.0, 0.5, 0.0, 2.0, np.inf], rtol=1e-15)


def test_estimate_lambda_max_ratio_times_log_n_and_borrowing():
    # cluster 0: ratios 0.5, 2 → 2; cluster 1: inf, 1, 3 → 3 (inf ignored); cluster 2: no probes;
    # cluster 3: only an infinite ratio → no usable probe either
    labels = np.array([0, 0, 1, 1, 1, 3])
    ratios = np.array([0.5, 2.0, np.inf, 1.0, 3.0, np.inf])
    lam, info = bounds.estimate_lambda(labels, ratios, k=4, n=100)
    ln = math.log(100)
    np.testing.assert_allclose(lam, [2 * ln, 3 * ln, 3 * ln, 3 * ln], rtol=1e-15)
    assert info["borrowed"] == [2, 3]
    assert info["probes"] == [2, 3, 0, 1]
    np.testing.assert_allclose(info["multiplier"], ln, rtol=1e-15)


def test_estimate_lambda_small_n_multiplier_is_at_least_one():
    lam, info = bounds.estimate_lambda(np.array([0, 1]), np.array([0.5, 0.25]), k=2, n=2)  # ln 2 < 1
    np.testing.assert_allclose(lam, [0.5, 0.25], rtol=1e-15)
    assert info["multiplier"] == 1.0 and info["borrowed"] == []


def test_estimate_lambda_no_usable_probe_anywhere():
    lam, info = bounds.estimate_lambda(np.array([0]), np.array([np.inf]), k=2, n=50)
    np.testing.assert_array_equal(lam, [0.0, 0.0])
    assert info["borrowed"] == [0, 1]


def test_holder_check_counts_violations_per_cluster():
    labels = np.array([0, 0, 1, 1, 2, 2])
    ratios = np.array([1.0, 3.0, 0.5, np.inf, 2.0, 5.0])
    lam = np.array([2.0, 1.0, 5.0])
    h = bounds.holder_check(labels, ratios, lam)
    # 3 > 2 and inf > 1 break it; 1 ≤ 2, 0.5 ≤ 1, 2 ≤ 5, 5 = 5 (equal is allowed) do not
    assert h["probes"] == 6
    assert h["violations"] == 2 and h["violated"] is True
    assert h["infinite_ratios"] == 1
    assert h["worst_excess"] == np.inf
    assert set(h["percentiles"]) == {"20", "40", "60", "80", "99"}
    # finite ratios sorted 0.5, 1, 2, 3, 5; linear interpolation at position q/100·4
    np.testing.assert_allclose([h["percentiles"][q] for q in ("20", "40", "60", "80", "99")],
                               [0.9, 1.6, 2.4, 3.4, 4.92], rtol=1e-14)


@pytest.mark.parametrize(
    "ratio, lam, violated",
    [(2.0, 2.0, False), (2.0 * (1 + 1e-9), 2.0, True), (0.0, 0.0, False), (1e-3, 0.0, True), (1.0, np.inf, False)],
)
def test_holder_check_boundary(ratio, lam, violated):
    h = bounds.holder_check(np.array([0]), np.array([ratio]), np.array([lam]))
    assert h["violated"] is violated and h["violations"] == int(violated)


def test_holder_check_worst_excess():
    h = bounds.holder_check(np.array([0, 1]), np.array([3.0, 4.0]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(h["worst_excess"], 3.0, rtol=1e-15)  # max(3/1, 4/2)


def test_holder_check_no_probes():
    h = bounds.holder_check(np.array([], dtype=np.int64), np.array([]), np.array([1.0]))
    assert h["probes"] == 0 and h["violations"] == 0 and h["violated"] is False and h["percentiles"] == {}


# --------------------------------------------------------------------------- Hansen–Hurwitz

# y = ℓ/p = 10, 0, 10, 15; T = 10; Σ p(y − T)² = 0.2·100 + 0.4·25 = 30 (the ℓ = 0 row has p > 0)
POP_LOSS = np.array([1.0, 0.0, 3.0, 6.0])
POP_PROB = np.array([0.1, 0.2, 0.3, 0.4])
POP_TOTAL = 10.0


def as_rows(draws: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    idx, count = np.unique(np.array(draws), return_counts=True)
    return idx, count


@pytest.mark.parametrize("s", [2, 3])
def test_hansen_hurwitz_exact_unbiasedness(s):
    # every ordered sequence of s draws with replacement, with its probability: an exact expectation
    e_total = e_var = e_sq = 0.0
    mass = 0.0
    for draws in itertools.product(range(len(POP_LOSS)), repeat=s):
        pr = float(np.prod(POP_PROB[list(draws)]))
        idx, count = as_rows(draws)
        t_hat, v_hat = hansen_hurwitz(POP_LOSS[idx], POP_PROB[idx], count, s)
        mass += pr
        e_total += pr * t_hat
        e_var += pr * v_hat
        e_sq += pr * (t_hat - POP_TOTAL) ** 2
    np.testing.assert_allclose(mass, 1.0, rtol=1e-14)
    np.testing.assert_allclose(e_total, POP_TOTAL, rtol=1e-13)  # E[T̂] = T
    var_formula = np.sum(POP_PROB * (POP_LOSS / POP_PROB - POP_TOTAL) ** 2) / s  # 30/s
    np.testing.assert_allclose(var_formula, 30.0 / s, rtol=1e-14)
    np.testing.assert_allclose(e_sq, var_formula, rtol=1e-13)  # Var(T̂) = (1/s)Σ p(ℓ/p − T)²
    np.testing.assert_allclose(e_var, var_formula, rtol=1e-13)  # E[v̂] = Var(T̂)


def test_hansen_hurwitz_hand_sample():
    # draws 1, 3, 3: y = 0, 15, 15 → T̂ = 10, v̂ = (100 + 25 + 25)/(3·2) = 25
    t_hat, v_hat = hansen_hurwitz(POP_LOSS[[1, 3]], POP_PROB[[1, 3]], np.array([1, 2]), 3)
    np.testing.assert_allclose([t_hat, v_hat], [10.0, 25.0], rtol=1e-15)


def test_hansen_hurwitz_single_draw_has_no_variance_estimate():
    t_hat, v_hat = hansen_hurwitz(np.array([3.0]), np.array([0.3]), np.array([1]), 1)
    np.testing.assert_allclose(t_hat, 10.0, rtol=1e-15)
    assert math.isnan(v_hat)


# --------------------------------------------------------------------------- t quantile and intervals


@pytest.mark.parametrize(
    "df, expected",
    # Student t 0.975 quantiles (scipy.stats.t.ppf, 7 digits); exact series up to df = 100, then
    # the Cornish–Fisher expansion (observed error at df = 101: < 1e-6), the normal quantile past 1e6
    [(1, 12.706205), (2, 4.302653), (3, 3.182446), (5, 2.570582), (10, 2.228139), (30, 2.042272),
     (100, 1.983972), (101, 1.983731), (10**7, 1.959964)],
)
def test_t_quantile_known_values(df, expected):
    np.testing.assert_allclose(bounds.t_quantile(0.975, df), expected, atol=2e-6)


@pytest.mark.parametrize("q, df, expected", [(0.995, 1, 63.656741), (0.995, 5, 4.032143), (0.9, 4, 1.533206)])
def test_t_quantile_tails(q, df, expected):
    np.testing.assert_allclose(bounds.t_quantile(q, df), expected, rtol=1e-6)


@pytest.mark.parametrize("df", [1, 5, 30, 10**7])
def test_t_quantile_symmetric(df):
    np.testing.assert_allclose(bounds.t_quantile(0.025, df), -bounds.t_quantile(0.975, df), rtol=1e-12)
    np.testing.assert_allclose(bounds.t_quantile(0.5, df), 0.0, atol=1e-15)


def test_t_quantile_decreases_with_df():
    q = [bounds.t_quantile(0.975, df) for df in (1, 2, 3, 5, 10, 30, 100, 1000, 10**7)]
    assert all(a > b for a, b in zip(q, q[1:])), q


def test_clt_interval_hand():
    # T̂ = 50, v̂ = 4, s = 10: half = t_{9, 0.975}·2 ≈ 4.524
    lo, hi = bounds.clt_interval(50.0, 4.0, 10, 0.05, 10)
    half = bounds.t_quantile(0.975, 9) * 2.0
    np.testing.assert_allclose(half, 2 * 2.2622, atol=2e-3)  # observed 4.52429 vs table 4.5244
    np.testing.assert_allclose([lo, hi], [(50 - half) / 10, (50 + half) / 10], rtol=1e-15)


def test_bernstein_interval_hand():
    # δ = 4e⁻² → ln(4/δ) = 2; v̂ = 9, B = 3, s = 8: √(2·9·2) + 7·3·2/(3·7) = 6 + 2 = 8
    delta = 4 * math.exp(-2)
    lo, hi = bounds.bernstein_interval(20.0, 9.0, 8, delta, 3.0, 4)
    np.testing.assert_allclose([lo, hi], [12.0 / 4, 28.0 / 4], rtol=1e-14)


@pytest.mark.parametrize("kind", ["clt", "bernstein"])
def test_intervals_shrink_with_s_and_contain_estimate(kind):
    total, sigma2, n, delta, bound = 1000.0, 400.0, 100, 0.05, 50.0
    widths = []
    for s in (2, 5, 10, 100, 1000, 10000):
        var = sigma2 / s  # v̂ of a mean of s draws with per-draw variance σ²
        if kind == "clt":
            lo, hi = bounds.clt_interval(total, var, s, delta, n)
        else:
            lo, hi = bounds.bernstein_interval(total, var, s, delta, bound, n)
        assert 0.0 <= lo <= total / n <= hi
        widths.append(hi - lo)
    assert all(a > b for a, b in zip(widths, widths[1:])), widths


@pytest.mark.parametrize("kind", ["clt", "bernstein"])
def test_intervals_lower_end_clipped_at_zero(kind):
    if kind == "clt":
        lo, hi = bounds.clt_interval(1.0, 100.0, 10, 0.05, 1)
    else:
        lo, hi = bounds.bernstein_interval(1.0, 100.0, 10, 0.05, 100.0, 1)
    assert lo == 0.0 and hi > 1.0


# --------------------------------------------------------------------------- effective sample size


@pytest.mark.parametrize(
    "weight, count, expected",
    [
        ([2.5] * 8, None, 8.0),  # equal weights: the number of weights
        ([3.0, 1.0], None, 1.6),  # 4²/(9 + 1)
        ([2.0, 1.0, 1.0], None, 16.0 / 6.0),  # rows merged, weights not split: 4²/(4 + 1 + 1)
        ([2.0, 1.0, 1.0], [2, 1, 1], 4.0),  # per-draw weights 1, 1, 1, 1: the number of draws s
        ([3.0, 1.0], [3, 1], 4.0),
        ([4.0, 1.0], [1, 1], 25.0 / 17.0),  # count 1 everywhere is the same as no count
    ],
)
def test_effective_sample_size(weight, count, expected):
    c = None if count is None else np.array(count)
    np.testing.assert_allclose(bounds.effective_sample_size(np.array(weight), c), expected, rtol=1e-14)


def test_effective_sample_size_uniform_design_is_s():
    # uniform p over 10 rows, s = 7 draws merged into rows with counts: weight = count/(s·p)
    count = np.array([3, 1, 2, 1])
    w = count / (7 * 0.1)
    np.testing.assert_allclose(bounds.effective_sample_size(w, count), 7.0, rtol=1e-14)
