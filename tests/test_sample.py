"""The sampler: invariants of counts and weights, unbiasedness over many seeds, draw frequencies."""

import math

import numpy as np
import pytest

from dataselect_cli.bounds import hansen_hurwitz, sample_size
from dataselect_cli.sample import draw_iid, weights
from dataselect_cli.scores import sensitivity


def population(n=400, k=8, seed=7):
    """Losses that vary smoothly around cluster centers, and the sensitivity distribution for them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    dist = rng.gamma(2.0, 0.5, n)
    center_loss = rng.uniform(0.2, 2.0, k)
    loss = np.abs(center_loss[labels] + rng.normal(0, 0.5, n) * dist)
    sc = sensitivity(labels, dist**2, center_loss, np.full(k, 0.7))
    return loss, sc.prob, sc.mass


def test_counts_sum_to_s_and_weights_are_count_over_s_p():
    loss, prob, mass = population()
    s = 207
    index, count = draw_iid(mass, s, seed=3)
    assert count.sum() == s
    assert np.all(np.diff(index) > 0), "distinct rows in increasing order"
    w = weights(count, prob[index], s)
    np.testing.assert_allclose(w, count / (s * prob[index]), rtol=0, atol=0)


def test_zero_mass_rows_are_never_drawn():
    mass = np.array([0.0, 1.0, 0.0, 3.0, 0.0])
    index, count = draw_iid(mass, 10_000, seed=0)
    assert set(index.tolist()) <= {1, 3}


@pytest.mark.parametrize("s", [1, 5, 207])
def test_unbiased_over_many_seeds(s):
    """Mean of Σ w·ℓ over R seeds lies within 4 standard errors of Σ ℓ.

    The standard error comes from the design's exact variance, Var(T̂) = (1/s)·Σ p_i(ℓ_i/p_i − T)²,
    so SE = √(Var/R). Observed: |z| < 1.5 for all three s.
    """
    loss, prob, mass = population()
    total = loss.sum()
    var = np.sum(prob * (loss / prob - total) ** 2) / s
    R = 400
    est = np.empty(R)
    for seed in range(R):
        index, count = draw_iid(mass, s, seed)
        est[seed] = np.sum(weights(count, prob[index], s) * loss[index])
    z = (est.mean() - total) / math.sqrt(var / R)
    assert abs(z) < 4, f"z = {z:.2f}"


def test_variance_estimate_is_unbiased_over_seeds():
    """E[v̂] = Var(T̂): the mean of v̂ over R seeds lies within 4 of its own standard errors."""
    loss, prob, mass = population()
    s, R = 50, 400
    var = np.sum(prob * (loss / prob - loss.sum()) ** 2) / s
    vhat = np.empty(R)
    for seed in range(R):
        index, count = draw_iid(mass, s, seed)
        vhat[seed] = hansen_hurwitz(loss[index], prob[index], count, s)[1]
    z = (vhat.mean() - var) / (vhat.std(ddof=1) / math.sqrt(R))
    assert abs(z) < 4, f"z = {z:.2f}"


def test_draw_frequencies_match_prob():
    """Pearson χ² of one big draw against s·p: below its mean + 5 sd (df = n − 1)."""
    _, prob, mass = population(n=200)
    s = 200_000
    index, count = draw_iid(mass, s, seed=11)
    observed = np.zeros(len(prob))
    observed[index] = count
    expected = s * prob
    chi2 = np.sum((observed - expected) ** 2 / expected)
    df = len(prob) - 1
    assert chi2 < df + 5 * math.sqrt(2 * df), f"chi2 = {chi2:.1f}, df = {df}"


def test_same_seed_same_draw_other_seed_different():
    _, _, mass = population()
    a = draw_iid(mass, 207, seed=1)
    b = draw_iid(mass, 207, seed=1)
    c = draw_iid(mass, 207, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (len(a[0]) == len(c[0]) and np.array_equal(a[0], c[0]))


def test_sample_sizes_of_the_issue():
    assert sample_size(0.1) == 207
    assert sample_size(0.1, 0.05) == math.ceil(206.66666666666666 * math.log(20))
