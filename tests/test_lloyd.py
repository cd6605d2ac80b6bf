"""Lloyd's iterations with Hamerly's bounds (dataselect_cli.lloyd): the iterations of plain Lloyd, fewer searches."""

import numpy as np
import pytest

from dataselect_cli import cluster, lloyd


def plain_lloyd(x: np.ndarray, c: np.ndarray, niter: int) -> tuple[np.ndarray, list[float]]:
    """Lloyd in float64 on exact distances: every row to its nearest centroid, then the means."""
    x64, c = x.astype(np.float64), c.astype(np.float64)
    obj = []
    for _ in range(niter):
        d2 = (x64 * x64).sum(1)[:, None] - 2 * x64 @ c.T + (c * c).sum(1)[None]
        lab = d2.argmin(1)
        obj.append(float(((x64 - c[lab]) ** 2).sum()))
        counts = np.bincount(lab, minlength=len(c))
        assert counts.min() > 0
        c = np.stack([x64[lab == j].mean(0) for j in range(len(c))])
    return c, obj


def overlapping(n: int, d: int, blobs: int, seed: int) -> np.ndarray:
    """Blobs that overlap: many rows near the boundary between two centroids, where a wrong skip would show."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(blobs, d)) * 1.5
    return (centers[rng.integers(blobs, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_iterations_are_plain_lloyds(seed):
    """From rows picked at random (centroids that move a lot, then settle), tol 0: every iteration's objective
    and the final centroids are those of plain Lloyd on exact distances, while far fewer rows were searched."""
    x = overlapping(6000, 12, 25, seed)
    k, niter = 20, 15
    start = x[np.random.default_rng(seed + 10).choice(len(x), k, replace=False)]
    want_c, want_obj = plain_lloyd(x, start, niter)
    c, obj, imbalance, searched = lloyd.lloyd(x, start, niter=niter, tol=0.0)
    assert len(obj) == niter
    np.testing.assert_allclose(obj, want_obj, rtol=1e-6)
    np.testing.assert_allclose(c, want_c, atol=1e-4)
    assert searched < 0.6 * niter * len(x)  # the bounds skip rows (measured: 45–50 % searched)


def test_it_stops_where_faiss_stops_with_the_same_centroids():
    """faiss's rule: stop after the first iteration that improves by less than tol, its update kept."""
    x = overlapping(20_000, 16, 40, 5)
    start = np.ascontiguousarray(x[cluster.kmeans_plusplus(x, 30, 0)])
    want_c, want_obj, want_imb = cluster._lloyd(x, 30, niter=25, seed=0, tol=1e-3, init="kmeans++",
                                               init_centroids=start.copy())
    c, obj, imbalance, _ = lloyd.lloyd(x, start, niter=25, tol=1e-3)
    assert 2 <= len(obj) == len(want_obj) < 25
    np.testing.assert_allclose(obj, want_obj, rtol=1e-5)
    np.testing.assert_allclose(c, want_c, atol=1e-4)
    assert imbalance == pytest.approx(want_imb, rel=1e-6)


def test_the_objective_from_the_sums_is_that_of_the_rows():
    """Σ‖x‖² − 2Σ⟨S_j, c_j⟩ + Σ n_j‖c_j‖² equals Σ‖x − c‖² over the rows (one iteration, checked directly)."""
    x = overlapping(3000, 8, 10, 3) + np.float32(50)  # far from the origin: the form cancels most of Σ‖x‖²
    start = x[:7].copy()
    _, obj, _, _ = lloyd.lloyd(x, start, niter=1, tol=0.0)
    labels, sqd = cluster.assign(x, start)
    assert obj[0] == pytest.approx(float(sqd.sum()), rel=1e-9)


def test_a_centroid_without_rows_hands_over_to_faiss():
    """A centroid far from every row loses them all: lloyd says so (None), and the k-means stage then runs faiss,
    which splits a cluster for it, from the same start."""
    x = overlapping(4000, 8, 10, 4)
    start = np.vstack([x[:9], np.full((1, 8), 1e3, dtype=np.float32)])
    assert lloyd.lloyd(x, start, niter=10, tol=1e-3) is None
    got = cluster._lloyd_stage("stage", cluster.silent, x, 10, bounded=True, niter=10, seed=0, tol=1e-3,
                               init="kmeans++", init_centroids=start.copy())
    want = cluster._lloyd(x, 10, niter=10, seed=0, tol=1e-3, init="kmeans++", init_centroids=start.copy())
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
