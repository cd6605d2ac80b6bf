"""k-center greedy's state (dataselect_cli.traversal): the float32 BLAS update picks what the float64 definition picks."""

import numpy as np
import pytest

from dataselect_cli.traversal import Traversal


def brute_kcenter(x: np.ndarray, size: int, first: int) -> list[int]:
    """The definition, in float64 with explicit differences: add the row whose nearest chosen row is farthest."""
    order = [first]
    while len(order) < size:
        d = ((x[:, None, :] - x[order][None, :, :]) ** 2).sum(-1).min(1)
        d[order] = -1
        order.append(int(np.argmax(d)))
    return order


@pytest.mark.parametrize("seed", range(5))
def test_farthest_first_matches_the_definition(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 8)) * rng.uniform(0.5, 3, size=8)
    t = Traversal(x)
    t.add(seed)
    assert t.extend_farthest(40) == brute_kcenter(x, 40, seed)


def test_a_longer_traversal_extends_a_shorter_one_and_never_repeats_a_row():
    x = np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32)
    t = Traversal(x)
    t.add(3)
    short = list(t.extend_farthest(10))
    assert t.extend_farthest(30)[:10] == short
    full = t.extend_farthest(500)  # more than n: every row once
    assert sorted(full) == list(range(200))


def test_distances_are_those_to_the_nearest_chosen_row():
    x = np.random.default_rng(2).normal(size=(100, 4))
    t = Traversal(x)
    for r in (5, 17, 60):
        t.add(r)
    want = ((x[:, None, :] - x[[5, 17, 60]][None]) ** 2).sum(-1).min(1)
    free = np.setdiff1d(np.arange(100), [5, 17, 60])
    np.testing.assert_allclose(t.sqdist[free], want[free], rtol=1e-4, atol=1e-4)
    assert np.all(np.isneginf(t.sqdist[[5, 17, 60]]))
