"""dataselect dedup: SemDeDup's duplicate groups inside clusters (NeMo's rule), the keep rules, the ε curve, D4's
pruning, the same bytes at every scale, and the bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import dedup as dd
from dataselect_cli.io import embedding_array


def _write(path, x, **extra):
    t = {"id": np.arange(100, 100 + len(x), dtype=np.int64), "embedding": embedding_array(np.asarray(x, np.float32))}
    pq.write_table(pa.table({**t, **extra}), path)
    return path


def _planted(n=900, d=24, copies=150, seed=0):
    """Random rows in 3 blobs, then ``copies`` near-copies (noise 0.02) of random earlier rows, and one exact copy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) + 3 * rng.normal(size=(3, d)).astype(np.float32)[np.arange(n) % 3]
    src = rng.choice(n - copies, copies, replace=False)
    x[n - copies:] = x[src] + 0.02 * rng.normal(size=(copies, d)).astype(np.float32)
    x[5] = x[7]
    return x


@pytest.fixture
def planted(tmp_path):
    x = _planted()
    rng = np.random.default_rng(1)
    return _write(tmp_path / "emb.parquet", x, quality=rng.random(len(x)), tie=np.arange(len(x)) % 7), x


def _table(path):
    return pq.read_table(path)


# --------------------------------------------------------------------------- the tiny example, by hand


def test_tiny_planted_groups_by_hand(tmp_path):
    """One cluster (--k 1), ranked by -rank (smallest first): a, b, c, e, f. b is 5.7° from a (cos 0.995), c is 5.7°
    from b but 11.4° from a (cos 0.980); e is far away and f is 0.8° from e. At ε = 0.01 (cos >= 0.99) b matches a and
    c matches b (an earlier row removed itself: NeMo's rule), so both go and c's kept row is a; f matches e."""
    deg = np.radians([0.0, 5.74, 11.48, 90.0, 90.8])
    x = np.stack([np.cos(deg), np.sin(deg)], axis=1)
    path = _write(tmp_path / "e.parquet", x, rank=np.arange(5))
    run("dedup", path, "--k", 1, "--eps", 0.01, "--keep", "-rank", "-o", tmp_path / "d.parquet")
    t = _table(tmp_path / "d.parquet")
    assert t.column("duplicate_of").to_pylist() == [None, 100, 101, None, 103]
    assert t.column("kept_id").to_pylist() == [100, 100, 100, 103, 103]
    assert t.column("keep").to_pylist() == [True, False, False, True, False]
    sim = t.column("max_similarity").to_pylist()
    assert sim[0] is None  # the first-ranked row has no earlier row
    np.testing.assert_allclose(sim[1:], [math.cos(math.radians(5.74)), math.cos(math.radians(5.74)),
                                         math.cos(math.radians(90 - 11.48)), math.cos(math.radians(0.8))], atol=1e-6)
    # ε = 0.001 (cos >= 0.999): only f (cos 0.9999) is a duplicate; the summary's curve says so without a rerun
    meta = json.loads(t.schema.metadata[b"dataselect"])
    curve = {c["eps"]: c["removed"] for c in meta["summary"]["curve"]}
    assert curve[0.001] == 1 and curve[0.01] == 3 and curve[0.3] == 3  # at 0.3 e (cos 0.199 to c) is still kept
    # the reverse order keeps the other end of each group
    run("dedup", path, "--k", 1, "--eps", 0.01, "--keep", "rank", "-o", tmp_path / "r.parquet")
    assert _table(tmp_path / "r.parquet").column("keep").to_pylist() == [False, False, True, False, True]


# --------------------------------------------------------------------------- against the brute-force reference


def _reference(x, labels, centroids, key_rule, quality, eps, seed=0):
    """NeMo's procedure, written out: unit rows; per cluster, the rows in keep order; the dense similarity matrix;
    the max over earlier rows."""
    v = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    c = centroids / np.linalg.norm(centroids.astype(np.float64), axis=1, keepdims=True)
    cos = np.sum(v * c[labels], axis=1)
    key = {"far": cos, "near": -cos, "quality": -quality, "-quality": quality,  # a cluster's rows by key, ascending
           "random": np.random.default_rng([seed, 3]).random(len(x))}[key_rule]
    n = len(x)
    dup_of, sim = np.full(n, -1), np.full(n, np.nan)
    for cl in np.unique(labels):
        rows = np.flatnonzero(labels == cl)
        rows = rows[np.lexsort((rows, key[rows]))]
        s = v[rows] @ v[rows].T
        for j in range(1, len(rows)):
            i = int(np.argmax(s[:j, j]))
            sim[rows[j]] = s[i, j]
            if s[i, j] >= 1 - eps:
                dup_of[rows[j]] = rows[i]
    return dup_of, sim


@pytest.mark.parametrize("keep", ["far", "near", "random", "quality", "-quality"])
def test_equals_brute_force_reference_for_every_keep_rule(planted, tmp_path, keep):
    path, x = planted
    run("cluster", path, "--k", 4, "-o", tmp_path / "c.parquet")
    run("dedup", path, "--clusters", tmp_path / "c.parquet", "--eps", 0.002, "--keep", keep, "-o",
        tmp_path / "d.parquet")
    t = _table(tmp_path / "d.parquet")
    labels = pq.read_table(tmp_path / "c.parquet").column("cluster").to_numpy()
    cen = np.stack(pq.read_table(tmp_path / "c.centers.parquet").column("centroid").to_numpy(zero_copy_only=False))
    quality = pq.read_table(path).column("quality").to_numpy()
    dup_of, sim = _reference(x, labels, cen, keep, quality, 0.002)
    got = t.column("duplicate_of").to_numpy(zero_copy_only=False)
    want = np.where(dup_of >= 0, dup_of + 100, np.nan)
    np.testing.assert_array_equal(np.nan_to_num(got.astype(float), nan=-1), np.nan_to_num(want, nan=-1))
    got_sim = np.array(t.column("max_similarity").to_pylist(), dtype=float)
    np.testing.assert_allclose(got_sim, sim, atol=1e-6, equal_nan=True)
    assert t.column("keep").to_numpy(zero_copy_only=False).sum() == len(x) - (dup_of >= 0).sum()
    assert (dup_of >= 0).sum() >= 150  # the planted copies (noise 0.02 in 24 dims: cos ≈ 0.9998) are found


@pytest.mark.parametrize("m", [1, 2, 5, 64, 700])
@pytest.mark.parametrize("batch", [1, 7, 256])
def test_earlier_max_equals_dense_triangle(m, batch):
    """The batched faiss search gives the dense upper triangle's maxima and argmaxes (ties: the earlier row)."""
    rng = np.random.default_rng(m)
    x = rng.normal(size=(m, 8)).astype(np.float32)
    if m > 4:
        x[3] = x[1]
        x[4] = x[1]  # an exact tie between rows 1 and 3 for row 4: the earlier (1) wins
    v, _ = dd.unit_rows(x)
    best, sim = dd.earlier_max(v, batch=batch)
    rbest, rsim = dd.earlier_max_brute(v)
    np.testing.assert_array_equal(best, rbest)
    np.testing.assert_allclose(sim, rsim, atol=1e-12, equal_nan=True)
    if m > 4:
        assert best[4] == 1 and best[3] == 1


def test_curve_counts_equal_separate_runs(planted, tmp_path):
    """One search serves every ε: the curve's counts equal those of a run at each ε."""
    path, _ = planted
    run("cluster", path, "--k", 3, "-o", tmp_path / "c.parquet")
    grid = [0.0001, 0.001, 0.01, 0.1]
    run("dedup", path, "--clusters", tmp_path / "c.parquet", "--eps", 0.001, "--curve", ",".join(map(str, grid)),
        "-o", tmp_path / "d.parquet")
    curve = json.loads(_table(tmp_path / "d.parquet").schema.metadata[b"dataselect"])["summary"]["curve"]
    assert [c["eps"] for c in curve] == grid
    for c in curve:
        run("dedup", path, "--clusters", tmp_path / "c.parquet", "--eps", c["eps"], "-o", tmp_path / "e.parquet")
        keep = _table(tmp_path / "e.parquet").column("keep").to_numpy(zero_copy_only=False)
        assert c["removed"] == int((~keep).sum())


def test_d4_prunes_the_most_prototypical_kept_rows(planted, tmp_path):
    path, x = planted
    run("dedup", path, "--k", 3, "--eps", 0.01, "--prune-prototypical", 0.25, "-o", tmp_path / "d.parquet")
    t = _table(tmp_path / "d.parquet")
    dup = t.column("duplicate_of").is_valid().to_numpy(zero_copy_only=False)
    pruned = t.column("pruned").to_numpy(zero_copy_only=False)
    proto = np.array(t.column("prototypicality").to_pylist(), dtype=float)
    assert not (pruned & dup).any() and np.isnan(proto[dup]).all() and np.isfinite(proto[~dup]).all()
    assert pruned.sum() == round(0.25 * (~dup).sum())
    assert proto[pruned].min() >= proto[~dup & ~pruned].max()
    np.testing.assert_array_equal(t.column("keep").to_numpy(zero_copy_only=False), ~dup & ~pruned)


# --------------------------------------------------------------------------- scale: the same bytes


def test_same_result_streaming_directory_and_block_grid(planted, tmp_path):
    """In memory, streamed under a small --memory-limit (several gathering passes), from a directory of two files:
    identical bytes; another --block-rows: the same table (only the recorded block_rows differs)."""
    path, x = planted
    # blocks and fit rows small enough that a streamed run's two blocks, decode batch and fit rows (115 KiB) fit
    grid = ("--block-rows", 200, "--fit-sample", 300)
    run("dedup", path, "--k", 3, "--eps", 0.01, "--prune-prototypical", 0.1, *grid, "-o", tmp_path / "a.parquet")
    run("dedup", path, "--k", 3, "--eps", 0.01, "--prune-prototypical", 0.1, *grid, "--memory-limit", "160KB",
        "-o", tmp_path / "b.parquet")  # 86 KiB of vectors, more than half of 160KB: streamed
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    run("dedup", path, "--k", 3, "--eps", 0.01, "--prune-prototypical", 0.1, "--block-rows", 100, "--fit-sample", 300,
        "--memory-limit", "160KB", "-o", tmp_path / "c.parquet")
    assert _table(tmp_path / "c.parquet").equals(_table(tmp_path / "a.parquet"))
    folder = tmp_path / "parts"
    folder.mkdir()
    t = pq.read_table(path)
    pq.write_table(t.slice(0, 400), folder / "a.parquet")
    pq.write_table(t.slice(400), folder / "b.parquet")
    run("dedup", folder, "--k", 3, "--eps", 0.01, "--prune-prototypical", 0.1, *grid, "-o", tmp_path / "d.parquet")
    assert _table(tmp_path / "d.parquet").equals(_table(tmp_path / "a.parquet"))


def test_same_bytes_on_dask(planted, tmp_path):
    pytest.importorskip("distributed")
    path, _ = planted
    run("dedup", path, "--k", 3, "--eps", 0.01, "-o", tmp_path / "a.parquet")
    run("dedup", path, "--k", 3, "--eps", 0.01, "--engine", "dask", "--workers", 1, "-o", tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_resume_skips_an_up_to_date_output(planted, tmp_path):
    path, _ = planted
    run("dedup", path, "--k", 3, "-o", tmp_path / "d.parquet")
    r = run("dedup", path, "--k", 3, "-o", tmp_path / "d.parquet", "--resume", "--json")
    assert json.loads(r.stdout)["skipped"] is True


# --------------------------------------------------------------------------- bad inputs: exit 2, one line, no output


def _refused(tmp_path, *args, frag):
    out = tmp_path / "out.parquet"
    r = run("dedup", *args, "-o", out, code=2)
    assert frag in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("eps", [0, 1, -0.1, 1.5])
def test_eps_outside_the_open_interval(planted, tmp_path, eps):
    _refused(tmp_path, planted[0], "--k", 3, "--eps", eps, frag="--eps must lie strictly between 0 and 1")


def test_bad_inputs(planted, tmp_path, write_embeddings):
    path, x = planted
    run("cluster", path, "--k", 3, "-o", tmp_path / "c.parquet")
    _refused(tmp_path, path, "--k", 3, "--keep", "nosuch", frag="EMB has no column 'nosuch'")
    _refused(tmp_path, path, frag="give --clusters FILE")
    _refused(tmp_path, path, "--k", 3, "--clusters", tmp_path / "c.parquet", frag="give --clusters FILE")
    _refused(tmp_path, path, "--k", 3, "--prune-prototypical", 1, frag="--prune-prototypical must be in [0, 1)")
    _refused(tmp_path, path, "--k", 3, "--curve", "0.1,2", frag="--curve values must lie strictly between 0 and 1")
    other = write_embeddings(tmp_path / "other.parquet", x[:-1])
    _refused(tmp_path, other, "--clusters", tmp_path / "c.parquet", frag="made from another embeddings file")
    same_ids = write_embeddings(tmp_path / "same_ids.parquet", x[::-1])
    _refused(tmp_path, same_ids, "--clusters", tmp_path / "c.parquet", frag="made from another embeddings file")
    zero = x.copy()
    zero[4] = 0
    _refused(tmp_path, write_embeddings(tmp_path / "z.parquet", zero), "--k", 3, frag="zero vector at row 4 (id 104)")
    _refused(tmp_path, path, "--clusters", tmp_path / "c.parquet", "--memory-limit", "8KB", frag="raise --memory-limit")
    named = _write(tmp_path / "named.parquet", x, name=[f"r{i}" for i in range(len(x))])
    _refused(tmp_path, named, "--k", 3, "--keep", "name", frag="column 'name' has type string; the keep rule needs numbers")


# --------------------------------------------------------------------------- apply and sample drop the non-kept rows


def test_apply_writes_the_kept_rows(planted, tmp_path):
    path, _ = planted
    run("dedup", path, "--k", 3, "--eps", 0.01, "-o", tmp_path / "d.parquet")
    keep = _table(tmp_path / "d.parquet").column("keep").to_numpy(zero_copy_only=False)
    r = run("apply", tmp_path / "d.parquet", path, "-o", tmp_path / "deduped.parquet", "--json")
    t = _table(tmp_path / "deduped.parquet")
    assert json.loads(r.stdout)["rows"] == keep.sum() == t.num_rows
    assert t.column_names == pq.read_table(path).column_names  # DATA's columns as they are: no weight, no count
    np.testing.assert_array_equal(t.column("id").to_numpy(), np.flatnonzero(keep) + 100)


def test_sample_dedup_draws_from_the_kept_rows_only(planted, tmp_path):
    path, _ = planted
    run("dedup", path, "--k", 3, "--eps", 0.01, "-o", tmp_path / "d.parquet")
    kept_ids = set(np.flatnonzero(_table(tmp_path / "d.parquet").column("keep").to_numpy(zero_copy_only=False)) + 100)
    r = run("sample", path, "--k", 5, "--size", 300, "--dedup", tmp_path / "d.parquet", "-o", tmp_path / "s.parquet",
            "--json")
    rep = json.loads(r.stdout)
    assert rep["n"] == len(kept_ids) and rep["dedup"]["kept"] == len(kept_ids)
    sel = _table(tmp_path / "s.parquet")
    assert set(sel.column("id").to_pylist()) <= kept_ids
    # Σ weight estimates the kept rows' count, n_kept, not the full data's
    w = sel.column("weight").to_numpy()
    assert abs(w.sum() - len(kept_ids)) < 0.25 * len(kept_ids)
    # a per-row scores file: drawn from its kept rows
    pq.write_table(pa.table({"id": np.arange(100, 1000), "score": np.arange(900.0)}), tmp_path / "sc.parquet")
    run("sample", tmp_path / "sc.parquet", "--design", "top", "--size", 50, "--dedup", tmp_path / "d.parquet",
        "-o", tmp_path / "t.parquet")
    top = _table(tmp_path / "t.parquet").column("id").to_pylist()
    assert set(top) == set(sorted(kept_ids)[-50:])


def test_sample_dedup_refuses_other_rows_and_sensitivity_scores(planted, tmp_path, write_embeddings):
    path, x = planted
    run("dedup", path, "--k", 3, "-o", tmp_path / "d.parquet")
    other = write_embeddings(tmp_path / "o.parquet", x[::-1])
    r = run("sample", other, "--k", 3, "--size", 10, "--dedup", tmp_path / "d.parquet", "-o", tmp_path / "s.parquet",
            code=2)
    assert "made from another embeddings file" in r.stderr and r.stderr.count("\n") == 1
    run("cluster", path, "--k", 3, "-o", tmp_path / "c.parquet")
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "sc.parquet")
    r = run("sample", tmp_path / "sc.parquet", "--size", 10, "--dedup", tmp_path / "d.parquet", "-o",
            tmp_path / "s.parquet", code=2)
    assert "prob is normalised over all its rows" in r.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_sample_dedup_weights_estimate_the_kept_total(planted, tmp_path):
    """Over 100 seeds, Σ weight·value of a uniform draw from the kept rows averages to the kept rows' total (within 4
    standard errors of the spread over the seeds), and is far from the full data's total."""
    from dataselect_cli import api

    path, _ = planted
    run("dedup", path, "--k", 3, "--eps", 0.01, "-o", tmp_path / "d.parquet")
    keep = _table(tmp_path / "d.parquet").column("keep").to_numpy(zero_copy_only=False)
    value = np.where(np.arange(900) >= 750, 10.0, 1.0)  # the planted copies (rows 750..899, mostly removed) weigh more
    pq.write_table(pa.table({"id": np.arange(100, 1000), "score": value}), tmp_path / "sc.parquet")
    est = []
    for seed in range(100):
        out = tmp_path / f"s{seed}.parquet"
        api.sample_file(str(tmp_path / "sc.parquet"), str(out), design=__import__("dataselect_cli").designs.get(
            "uniform"), size=60, seed=seed, dedup=str(tmp_path / "d.parquet"))
        t = pq.read_table(out)
        est.append(float(np.sum(t.column("weight").to_numpy() * value[t.column("id").to_numpy() - 100])))
    est = np.array(est)
    z = (est.mean() - value[keep].sum()) / (est.std(ddof=1) / math.sqrt(len(est)))
    assert abs(z) < 4, f"z = {z:.2f}"
    assert abs(est.mean() - value.sum()) > 10 * est.std(ddof=1) / math.sqrt(len(est))
