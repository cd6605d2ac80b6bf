"""Lloyd's iterations with Hamerly's bounds (dataselect_cli.lloyd): the iterations of plain Lloyd, fewer searches."""

import numpy as np
import pytest

from dataselect_cli import cluster, lloyd
from dataselect_cli.dataset import EmbeddingSource
from dataselect_cli.pqdataset import ParquetDataset


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
    c, obj, imbalance, searched, finished = lloyd.lloyd(x, start, niter=niter, tol=0.0)
    assert finished and len(obj) == niter
    np.testing.assert_allclose(obj, want_obj, rtol=1e-6)
    np.testing.assert_allclose(c, want_c, atol=1e-4)
    assert searched < 0.6 * niter * len(x)  # the bounds skip rows (measured: 45–50 % searched)


def test_it_stops_where_faiss_stops_with_the_same_centroids():
    """faiss's rule: stop after the first iteration that improves by less than tol, its update kept."""
    x = overlapping(20_000, 16, 40, 5)
    start = np.ascontiguousarray(x[cluster.kmeans_plusplus(x, 30, 0)])
    want_c, want_obj, want_imb = cluster._lloyd(x, 30, niter=25, seed=0, tol=1e-3, init="kmeans++",
                                               init_centroids=start.copy())
    c, obj, imbalance, _, finished = lloyd.lloyd(x, start, niter=25, tol=1e-3)
    assert finished and 2 <= len(obj) == len(want_obj) < 25
    np.testing.assert_allclose(obj, want_obj, rtol=1e-5)
    np.testing.assert_allclose(c, want_c, atol=1e-4)
    assert imbalance == pytest.approx(want_imb, rel=1e-6)


def test_the_objective_from_the_sums_is_that_of_the_rows():
    """Σ‖x‖² − 2Σ⟨S_j, c_j⟩ + Σ n_j‖c_j‖² equals Σ‖x − c‖² over the rows (one iteration, checked directly)."""
    x = overlapping(3000, 8, 10, 3) + np.float32(50)  # far from the origin: the form cancels most of Σ‖x‖²
    start = x[:7].copy()
    obj = lloyd.lloyd(x, start, niter=1, tol=0.0).obj
    labels, sqd = cluster.assign(x, start)
    assert obj[0] == pytest.approx(float(sqd.sum()), rel=1e-9)


def test_a_centroid_without_rows_hands_over_to_faiss():
    """A centroid far from every row loses them all in the first assignment: lloyd hands over before counting
    it, and the k-means stage then runs faiss (which splits a cluster for it) from the same start."""
    x = overlapping(4000, 8, 10, 4)
    start = np.vstack([x[:9], np.full((1, 8), 1e3, dtype=np.float32)])
    run = lloyd.lloyd(x, start, niter=10, tol=1e-3)
    assert not run.finished and run.obj == [] and np.array_equal(run.centroids, start)
    got = cluster._lloyd_stage("stage", cluster.silent, x, 10, bounded=True, niter=10, seed=0, tol=1e-3,
                               init="kmeans++", init_centroids=start.copy())
    want = cluster._lloyd(x, 10, niter=10, seed=0, tol=1e-3, init="kmeans++", init_centroids=start.copy())
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]


@pytest.mark.parametrize("tol", [0.0, 1e-2])
def test_bounds_that_skip_little_still_give_faiss_iterations(tol):
    """Centroids that start on 20 neighbouring rows of overlapping blobs move far: the bounds skip few rows in the
    early iterations, and the stage goes on itself (no hand-over) to faiss's objectives, centroids and stop."""
    x = overlapping(6000, 12, 25, 0)
    start = np.ascontiguousarray(x[:20])
    got = cluster._lloyd_stage("stage", cluster.silent, x, 20, bounded=True, niter=12, seed=0, tol=tol,
                               init="kmeans++", init_centroids=start.copy())
    want = cluster._lloyd(x, 20, niter=12, seed=0, tol=tol, init="kmeans++", init_centroids=start.copy())
    run = lloyd.lloyd(x, start, niter=12, tol=tol)
    assert run.finished and len(run.obj) == len(want[1]) and (len(want[1]) == 12 if tol == 0 else len(want[1]) < 12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)


@pytest.mark.parametrize("fit_sample", ["auto", "all"])
def test_kmeans_uses_the_bounds_for_a_large_fit_stage_and_gets_the_same_clustering(monkeypatch, fit_sample):
    """kmeans() runs the fit stage after a warm start with the bounds where fit rows × k reach MIN_WORK (lowered
    here): the stage ends at the same objective, after the same iterations, as with faiss's Lloyd; on the fit
    rows of the matrix (``auto``: 256·k of them) or on the whole matrix (``all``), never on a copy."""
    x = overlapping(40_000, 16, 60, 7)
    monkeypatch.setattr(lloyd, "MIN_WORK", 10**12)
    c_plain, plain = cluster.kmeans(x, 40, seed=0, fit_sample=fit_sample)
    calls, gathers = [], []
    real, real_fit_rows = lloyd.lloyd, cluster._fit_rows
    monkeypatch.setattr(lloyd, "lloyd", lambda *a, **kw: calls.append(kw["rows"]) or real(*a, **kw))
    monkeypatch.setattr(cluster, "_fit_rows", lambda *a, **kw: gathers.append(1) or real_fit_rows(*a, **kw))
    monkeypatch.setattr(lloyd, "MIN_WORK", 0)
    c_bound, bound = cluster.kmeans(x, 40, seed=0, fit_sample=fit_sample)
    # a matrix in memory: the fit rows are not gathered into a copy, lloyd reads them where they are
    assert plain["warm_start"] and len(calls) == 1 and not gathers
    assert calls[0] is None if fit_sample == "all" else len(calls[0]) == bound["n_train"] < len(x)
    assert bound["warm_obj"] == plain["warm_obj"] and len(bound["obj"]) == len(plain["obj"])
    np.testing.assert_allclose(bound["obj"], plain["obj"], rtol=1e-5)
    np.testing.assert_allclose(c_bound, c_plain, atol=1e-4)


def test_kmeans_leaves_rows_read_from_a_file_to_faiss(monkeypatch, tmp_path, write_embeddings):
    """Streamed from a file, the fit rows are gathered once and the fit stage is faiss's even above MIN_WORK."""
    x = overlapping(20_000, 8, 60, 8)
    path = write_embeddings(tmp_path / "emb.parquet", x)
    calls = []
    monkeypatch.setattr(lloyd, "lloyd", lambda *a, **kw: calls.append(1))
    monkeypatch.setattr(lloyd, "MIN_WORK", 0)
    c_file, stats = cluster.kmeans(EmbeddingSource(ParquetDataset(str(path))), 40, seed=0)
    assert stats["warm_start"] and not calls


def test_rows_of_a_larger_matrix_give_the_iterations_of_those_rows_gathered():
    """lloyd on ``rows`` of x (the fit rows left in the matrix) runs the iterations of x[rows]."""
    x = overlapping(8000, 12, 25, 6)
    rows = np.sort(np.random.default_rng(0).choice(len(x), 5000, replace=False))
    start = np.ascontiguousarray(x[rows[:20]])
    got = lloyd.lloyd(x, start, niter=12, tol=0.0, rows=rows)
    want = cluster._lloyd(np.ascontiguousarray(x[rows]), 20, niter=12, seed=0, tol=0.0, init="kmeans++",
                          init_centroids=start.copy())
    assert got.finished and len(got.obj) == len(want[1]) == 12
    np.testing.assert_allclose(got.obj, want[1], rtol=1e-5)
    np.testing.assert_allclose(got.centroids, want[0], atol=1e-4)
    assert got.searched < 0.8 * 12 * len(rows)  # the bounds still skip rows (measured: half searched)
