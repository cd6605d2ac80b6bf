"""The sampler: invariants of counts and weights, unbiasedness over many seeds, draw frequencies."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataselect_cli import designs
from dataselect_cli.api import Scale, run_sample
from dataselect_cli.dataset import TableSource
from dataselect_cli.pqdataset import ParquetDataset

from dataselect_cli.bounds import sample_size
from dataselect_cli.designs.iid import hansen_hurwitz
from dataselect_cli.designs.iid import draw_iid, weights
from dataselect_cli.methods.sensitivity import sensitivity


def population(n=400, k=8, seed=7):
    """Losses that vary smoothly around cluster centers, and the sensitivity distribution for them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    dist = rng.gamma(2.0, 0.5, n)
    center_loss = rng.uniform(0.2, 2.0, k)
    loss = np.abs(center_loss[labels] + rng.normal(0, 0.5, n) * dist)
    sc = sensitivity(labels, dist**2, center_loss, np.full(k, 0.7))
    return loss, sc.prob, sc.mass


def test_counts_sum_to_s_and_rows_are_distinct():
    _, _, mass = population()
    index, count = draw_iid(mass, 207, seed=3)
    assert count.sum() == 207
    assert np.all(np.diff(index) > 0), "distinct rows in increasing order"


def test_weights_by_hand():
    """weight = count/(s·p): row 0 (p = 1/4) drawn once and row 1 (p = 3/4) three times in s = 4 draws
    both weigh 1, so Σ w = 2 counts the two rows; a row of p = 0.1 drawn twice in 5 draws weighs 4."""
    np.testing.assert_array_equal(weights(np.array([1, 3]), np.array([0.25, 0.75]), 4), [1.0, 1.0])
    np.testing.assert_array_equal(weights(np.array([2]), np.array([0.1]), 5), [4.0])


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


def _scores_table(mass: np.ndarray) -> pa.Table:
    prob = mass / mass.sum()
    return pa.table({"id": pa.array(np.arange(len(mass), dtype=np.int64) * 5 + 2), "cluster": pa.array(
        np.arange(len(mass)) % 4, pa.int32()), "mass": mass, "prob": prob})


@pytest.mark.parametrize("block_rows", [7, 64, 65536])
def test_the_commands_draw_is_unbiased_on_several_grids(block_rows):
    """``dataselect sample``'s own path (steps.sample.run_sample on a scores table) over R seeds:
    the mean of Σ w·ℓ lies within 4 standard errors of Σ ℓ (SE from the design's exact variance).
    Observed |z| < 1.6 on every grid."""
    loss, prob, mass = population()
    table = _scores_table(mass)
    total, s, R = loss.sum(), 30, 300
    var = np.sum(prob * (loss / prob - total) ** 2) / s
    scale = Scale(block_rows=block_rows)
    est = np.empty(R)
    for seed in range(R):
        sel, _ = run_sample(table, {"n": len(mass), "k": 4}, s=s, eps=0.5, delta=None, seed=seed, scale=scale,
                            design=designs.get("iid"))
        rows = (sel.column("id").to_numpy() - 2) // 5
        est[seed] = np.sum(sel.column("weight").to_numpy() * loss[rows])
    z = (est.mean() - total) / math.sqrt(var / R)
    assert abs(z) < 4, f"z = {z:.2f}"


@pytest.mark.parametrize("block_rows", [7, 100])
def test_the_commands_draw_is_draw_iid(block_rows, tmp_path):
    """The same seed and grid give the same rows and counts through the command's path from a table in
    memory, from a scores file streamed block by block, and through draw_iid."""
    _, _, mass = population()
    table = _scores_table(mass)
    pq.write_table(table, tmp_path / "scores.parquet", row_group_size=33)
    source = TableSource(ParquetDataset(str(tmp_path / "scores.parquet")), ["id", "cluster", "mass", "prob"])
    scale = Scale(block_rows=block_rows)
    index, count = draw_iid(mass, 207, seed=5, block_rows=block_rows)
    for scores in (table, source):
        sel, _ = run_sample(scores, {"n": len(mass), "k": 4}, s=207, eps=0.1, delta=None, seed=5, scale=scale,
                            design=designs.get("iid"))
        np.testing.assert_array_equal((sel.column("id").to_numpy() - 2) // 5, index)
        np.testing.assert_array_equal(sel.column("count").to_numpy(), count)
