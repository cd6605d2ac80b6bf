"""Streaming near the I/O limit (issue 17, item 2): the shortcuts of the streamed passes change no result.

* the assignment computes the exact distance to faiss's second candidate only where faiss's two
  distances are within their rounding of each other (:func:`dataselect_cli.sqdist.faiss_error_bound`);
* the input's fingerprint is hashed in a background thread (:class:`dataselect_cli.fingerprints.PendingFingerprints`);
* a streamed source checks its values in the first pass that reads every row, not in every pass.
"""

from __future__ import annotations

import pickle

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataselect_cli import dataset, fingerprints, grid, pqdataset
from dataselect_cli.cluster import assign
from dataselect_cli.sqdist import faiss_error_bound, sqdist_rows
from dataselect_cli.errors import InputError


def assign_reference(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rule on every row: faiss's two candidates, both exact distances, the smaller (on a tie the smaller label)."""
    index = faiss.IndexFlatL2(centers.shape[1])
    index.add(centers)
    _, cand = index.search(x, 2)
    sq = np.stack([sqdist_rows(x, centers, cand[:, j]) for j in range(2)], axis=1)
    second = (sq[:, 1] < sq[:, 0]) | ((sq[:, 1] == sq[:, 0]) & (cand[:, 1] < cand[:, 0]))
    pick = second.astype(np.int64)
    rows = np.arange(len(x))
    return cand[rows, pick].astype(np.int64), sq[rows, pick]


def near_ties(seed: int, n: int = 3000, d: int = 48, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Rows on or next to the bisector of two centers, far from the origin (so faiss's ‖x‖² + ‖c‖² − 2⟨x, c⟩
    cancels), duplicated centers (exact ties) and ordinary rows."""
    rng = np.random.default_rng([seed, 17])
    offset = rng.normal(size=d) * 300
    centers = (offset + rng.normal(size=(k, d))).astype(np.float32)
    centers[k - 1] = centers[0]  # an exact tie between labels 0 and k − 1
    a, b = rng.integers(0, k, size=(2, n))
    t = 0.5 + rng.normal(size=(n, 1)) * rng.choice([0.0, 1e-7, 1e-5, 1e-3, 0.1], size=(n, 1))
    x = t * centers[a] + (1 - t) * centers[b] + rng.normal(size=(n, d)) * rng.choice([0.0, 1e-4, 1.0], size=(n, 1))
    return x.astype(np.float32), centers


@pytest.mark.parametrize("seed", range(6))
def test_assign_matches_the_rule_applied_to_both_exact_distances_on_every_row(seed):
    x, centers = near_ties(seed)
    labels, sq = assign(x, centers)
    want_labels, want_sq = assign_reference(x, centers)
    np.testing.assert_array_equal(labels, want_labels)
    assert sq.tobytes() == want_sq.tobytes()


def test_assign_with_one_center():
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    labels, sq = assign(x, x[:1].copy())
    assert (labels == 0).all() and sq[0] == 0 and sq.tobytes() == sqdist_rows(x, x[:1], labels).tobytes()


def test_the_error_bound_holds_for_faiss_distances_far_from_the_origin():
    """faiss's float32 distances stay within a quarter of the bound (the bound is 4·γ·(‖x‖ + ‖c‖)²) of the
    float64 distances, on rows whose norms dwarf their distances (the worst case for its formula)."""
    rng = np.random.default_rng(3)
    for d in (8, 384, 1024):
        offset = rng.normal(size=d) * 100
        x = (offset + rng.normal(size=(4000, d))).astype(np.float32)
        centers = (offset + rng.normal(size=(20, d))).astype(np.float32)
        index = faiss.IndexFlatL2(d)
        index.add(centers)
        approx, cand = index.search(x, 2)
        exact = ((x[:, None, :].astype(np.float64) - centers[cand].astype(np.float64)) ** 2).sum(axis=2)
        nx = np.linalg.norm(x.astype(np.float64), axis=1)
        for j in range(2):
            bound = faiss_error_bound(nx, np.linalg.norm(centers[cand[:, j]].astype(np.float64), axis=1), d)
            err = np.abs(approx[:, j] - exact[:, j])
            assert (err <= bound / 4).all(), (d, float((err / bound).max()))


def write(path, x, row_group_size=None):
    t = pa.table({"id": np.arange(len(x)), "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)),
                                                                                           x.shape[1])})
    pq.write_table(t, path, row_group_size=row_group_size)
    return path


def test_pending_fingerprints_equal_the_fingerprints_in_the_same_order(tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    (tmp_path / "emb").mkdir()
    write(tmp_path / "emb" / "a.parquet", x[:100])
    write(tmp_path / "emb" / "b.parquet", x[100:])
    losses = tmp_path / "losses.csv"
    losses.write_text("id,loss\n0,1.0\n")
    inputs = {"input": pqdataset.ParquetDataset(tmp_path / "emb"), "losses": str(losses), "data": None}
    pending = fingerprints.PendingFingerprints(inputs, later=("input",))
    want = fingerprints.input_fingerprints(inputs)
    assert list(pending.items()) == list(want.items())
    assert list(want) == ["input/a.parquet", "input/b.parquet", "losses"]


def test_pending_fingerprints_refuse_a_missing_file_now_unless_hashed_later(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        fingerprints.PendingFingerprints({"losses": str(tmp_path / "gone.csv")}, later=())
    pending = fingerprints.PendingFingerprints({"losses": str(tmp_path / "gone.csv")}, later=("losses",))
    with pytest.raises(InputError, match="no such file"):
        dict(pending)  # raised where the fingerprints are needed


def test_a_streamed_source_checks_every_row_once(tmp_path):
    x = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
    src = dataset.EmbeddingSource(pqdataset.ParquetDataset(write(tmp_path / "ok.parquet", x, 256)))
    nb = grid.n_blocks(src.n, 100)
    assert not src.checked
    list(src.iter_blocks(0, nb - 1, 100))  # not every row: still unchecked
    assert not src.checked
    src.take(np.array([3, 500]), 100)  # the fit-rows pass reads every row
    assert src.checked
    assert np.array_equal(np.concatenate([b for _, b in src.iter_blocks(0, nb, 100)]), x)
    x[777, 3] = np.nan
    bad = dataset.EmbeddingSource(pqdataset.ParquetDataset(write(tmp_path / "nan.parquet", x, 256)))
    with pytest.raises(InputError, match="NaN or infinite value at row 777"):
        bad.take(np.array([3, 500]), 100)
    assert not bad.checked


def test_kept_blocks_are_the_first_blocks_of_the_first_pass_and_serve_the_later_ones(tmp_path):
    x = np.random.default_rng(1).normal(size=(1000, 8)).astype(np.float32)
    src = dataset.EmbeddingSource(pqdataset.ParquetDataset(write(tmp_path / "e.parquet", x, 300)))
    nb = grid.n_blocks(src.n, 100)
    src.keep_blocks(3 * 100 * 8 * 4)  # room for three blocks
    reads = []
    real = src._blocks
    src._blocks = lambda b0, b1, rows: (reads.append((b0, b1)), real(b0, b1, rows))[1]
    first = [(b, blk.copy()) for b, blk in src.iter_blocks(0, nb, 100)]
    assert sorted(src._kept) == [0, 1, 2] and not src._kept[0].flags.writeable
    second = list(src.iter_blocks(0, nb, 100))
    assert reads == [(0, nb), (3, nb)]  # the second pass decodes only the blocks not kept
    assert [b for b, _ in second] == list(range(nb))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, second))
    assert [b for b, _ in src.iter_blocks(1, 2, 100)] == [1] and reads[-1] == (3, nb)  # a range of kept blocks
    list(src.iter_blocks(0, 4, 250))  # another grid: read from the file, nothing kept from it
    assert reads[-1] == (0, 4) and src._kept_grid == 100
    del src._blocks
    assert pickle.loads(pickle.dumps(src))._kept == {}  # a Dask worker reads its own blocks


def test_a_streamed_run_that_keeps_some_blocks_writes_the_bytes_of_an_in_memory_run(tmp_path, monkeypatch):
    from dataselect_cli.cluster import KMeansOptions
    from dataselect_cli.steps import common
    from dataselect_cli.steps.cluster import cluster_file

    n, d = 20_000, 128  # 9.8 MiB of vectors: streamed under a 16 MB limit, with room for some blocks
    x = np.random.default_rng(2).normal(size=(n, d)).astype(np.float32)
    write(tmp_path / "e.parquet", x, 4096)
    kept = []
    real = dataset.EmbeddingSource.keep_blocks
    monkeypatch.setattr(dataset.EmbeddingSource, "keep_blocks", lambda self, nb: (kept.append(self), real(self, nb)))
    outs = {}
    for name, limit in (("memory", 4 << 30), ("stream", 16_000_000)):
        cluster_file(str(tmp_path / "e.parquet"), str(tmp_path / f"{name}.parquet"), k=4,
                     kmeans=KMeansOptions(fit_sample=2000), scale=common.Scale(memory_limit=limit, block_rows=2000))
        outs[name] = [(tmp_path / f"{name}{s}.parquet").read_bytes() for s in ("", ".centers")]
    assert len(kept) == 1 and 0 < len(kept[0]._kept) < grid.n_blocks(n, 2000)
    assert outs["stream"] == outs["memory"]
