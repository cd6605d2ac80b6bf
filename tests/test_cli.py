"""Every subcommand through the command line, on small data made here."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import dataset, io


def blobs(n=1200, d=8, centers=12, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d)) * 4
    return (c[rng.integers(0, centers, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture
def emb(tmp_path):
    x = blobs()
    path = tmp_path / "emb.parquet"
    table = pa.table({"id": pa.array(np.arange(len(x)) * 10, pa.int64()), "embedding": io.embedding_array(x)})
    pq.write_table(table, path)
    return path


def true_loss(ids: np.ndarray) -> np.ndarray:
    """A smooth synthetic 'model loss' of a row, from its id (ids are 10·row)."""
    x = blobs()
    rows = ids // 10
    return np.abs(np.sin(x[rows, 0]) + 0.1 * x[rows, 1] ** 2)


def write_losses(path, ids):
    ids = np.asarray(ids, dtype=np.int64)
    pq.write_table(pa.table({"id": ids, "loss": true_loss(ids)}), path)
    return path


@pytest.fixture
def pipeline(tmp_path, emb):
    """cluster (with probes) → losses of centers and probes → score --estimate-lambda → sample."""
    run("cluster", emb, "-o", tmp_path / "clusters.parquet", "--k", 10, "--probes", 3)
    centers = pq.read_table(tmp_path / "clusters.centers.parquet")
    cl = pq.read_table(tmp_path / "clusters.parquet")
    probe_ids = cl.filter(cl.column("probe")).column("id").to_numpy()
    write_losses(tmp_path / "center_losses.parquet", np.concatenate([centers.column("center_id").to_numpy(), probe_ids]))
    run("score", tmp_path / "clusters.parquet", "--losses", tmp_path / "center_losses.parquet", "--estimate-lambda",
        "-o", tmp_path / "scores.parquet")
    run("sample", tmp_path / "scores.parquet", "-o", tmp_path / "selected.parquet", "--eps", 0.1, "--design", "iid",
        "--report", tmp_path / "r.json", "--report-md", tmp_path / "r.md")
    return tmp_path


# --------------------------------------------------------------------------- cluster


def test_cluster_writes_the_contract(tmp_path, emb):
    r = run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 10)
    cl = pq.read_table(tmp_path / "c.parquet")
    ce = pq.read_table(tmp_path / "c.centers.parquet")
    assert cl.schema.field("id").type == pa.int64()
    assert cl.schema.field("cluster").type == pa.int32()
    assert cl.schema.field("distance").type == pa.float32()
    assert ce.column_names == ["cluster", "center_id", "size", "cost", "centroid"]
    assert ce.schema.field("centroid").type == pa.list_(pa.float32(), 8)
    assert ce.column("size").to_numpy().sum() == 1200 and (ce.column("size").to_numpy() > 0).all()
    assert np.isfinite(np.asarray(ce.column("centroid").combine_chunks().flatten())).all()
    # centers are real rows, at distance 0 in their own cluster
    cid = ce.column("center_id").to_numpy()
    pos = np.searchsorted(cl.column("id").to_numpy(), cid)
    assert (cl.column("distance").to_numpy()[pos] == 0).all()
    assert (cl.column("cluster").to_numpy()[pos] == ce.column("cluster").to_numpy()).all()
    # cost = Σ distance² per cluster
    d = cl.column("distance").to_numpy().astype(np.float64)
    np.testing.assert_allclose(np.bincount(cl.column("cluster").to_numpy(), d**2, 10), ce.column("cost").to_numpy(),
                               rtol=1e-9)
    assert "k-means++ seeding on 300 rows" in r.stderr  # a quarter of the 1200 Lloyd rows (within 25·k, 100·k)
    assert "Lloyd iterations on 1200 of 1200 rows (120.0 per centroid)" in r.stderr


def test_cluster_fit_sample_is_explicit_and_reported(tmp_path, emb):
    r = run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 4, "--fit-sample", 500, "--json")
    s = json.loads(r.stdout)
    assert s["n_train"] == 500 and s["n_init"] == 125
    assert "on 500 of 1200 rows" in r.stderr
    assert io.read_meta(tmp_path / "c.parquet")["summary"]["n_train"] == 500


def test_every_kmeans_stage_says_how_many_rows_it_used(tmp_path, emb):
    r = run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 3, "--fit-sample", 900, "--init-sample", 600,
            "--refine", 2, "--tol", 0)
    summary = io.read_meta(tmp_path / "c.parquet")["summary"]
    warm, iters = len(summary["warm_obj"]), len(summary["obj"])  # tol 0: until nothing changes
    assert summary["warm_start"] and summary["fit_niter"] == 25
    line = (f"k-means: k-means++ seeding on 600 rows, {warm} Lloyd iterations on them, {iters} Lloyd iterations on "
            "900 of 1200 rows (300.0 per centroid), 2 more on all 1200 rows")
    assert line in r.stderr
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet")
    run("sample", tmp_path / "s.parquet", "-o", tmp_path / "x.parquet", "--report-md", tmp_path / "r.md")
    assert line in (tmp_path / "r.md").read_text()
    rep = io.read_meta(tmp_path / "x.parquet")["summary"]["clustering"]
    assert (rep["n_init"], rep["n_train"], rep["n_refine"], len(rep["refine_obj"])) == (600, 900, 1200, 2)


def test_warm_start_alone_and_no_warm_start_say_which_rows_lloyd_ran_on(tmp_path, emb):
    """--fit-niter 0 keeps the warm start's centroids: the line names no iteration on the fit rows; --no-warm-start
    runs every iteration on the fit rows, as the line then says."""
    r = run("cluster", emb, "-o", tmp_path / "a.parquet", "--k", 3, "--fit-sample", 900, "--init-sample", 600,
            "--fit-niter", 0)
    s = io.read_meta(tmp_path / "a.parquet")["summary"]
    assert s["warm_start"] and s["fit_niter"] == 0 and s["obj"] == s["warm_obj"]
    assert f"k-means: k-means++ seeding on 600 rows, {len(s['warm_obj'])} Lloyd iterations on them\n" in r.stderr
    r = run("cluster", emb, "-o", tmp_path / "b.parquet", "--k", 3, "--fit-sample", 900, "--init-sample", 600,
            "--no-warm-start")
    s = io.read_meta(tmp_path / "b.parquet")["summary"]
    assert not s["warm_start"] and s["warm_obj"] == []
    assert (f"k-means: k-means++ seeding on 600 rows, {s['iterations']} Lloyd iterations on 900 of 1200 rows "
            "(300.0 per centroid)\n") in r.stderr


def test_cluster_warns_when_few_points_per_centroid(tmp_path, emb):
    r = run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 100)
    assert "12.0 training points per centroid" in r.stderr and "lower --k" in r.stderr


def test_cluster_z1_cost_is_sum_of_distances(tmp_path, emb):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 5, "--z", 1)
    cl = pq.read_table(tmp_path / "c.parquet")
    ce = pq.read_table(tmp_path / "c.centers.parquet")
    d = cl.column("distance").to_numpy().astype(np.float64)
    np.testing.assert_allclose(np.bincount(cl.column("cluster").to_numpy(), d, 5), ce.column("cost").to_numpy(),
                               rtol=1e-9)


def test_metadata_records_inputs_not_output_paths(tmp_path, emb):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 5, "--seed", 3)
    meta = io.read_meta(tmp_path / "c.parquet")
    assert meta["command"] == "cluster" and meta["seed"] == 3 and meta["schema_version"] == 1
    assert meta["inputs"]["embeddings"]["sha256"] == io.fingerprint(emb)["sha256"]
    assert "c.parquet" not in json.dumps(meta)


# --------------------------------------------------------------------------- score


def test_score_without_losses_is_half_uniform_half_distance(tmp_path, emb):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 6)
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet")
    s = pq.read_table(tmp_path / "s.parquet")
    v = s.column("distance_term").to_numpy()
    n = len(v)
    np.testing.assert_allclose(s.column("prob").to_numpy(), 0.5 / n + 0.5 * v / v.sum(), rtol=1e-12)
    np.testing.assert_allclose(s.column("proxy_loss").to_numpy(), 1.0)
    np.testing.assert_allclose(s.column("mass").to_numpy(), 1.0 + n / v.sum() * v, rtol=1e-12)


def test_score_with_losses_and_lambda(tmp_path, emb):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 6)
    ce = pq.read_table(tmp_path / "c.centers.parquet")
    write_losses(tmp_path / "l.parquet", ce.column("center_id").to_numpy())
    run("score", tmp_path / "c.parquet", "--losses", tmp_path / "l.parquet", "--lambda", 0.5, "-o", tmp_path / "s.parquet")
    s = pq.read_table(tmp_path / "s.parquet")
    cl = pq.read_table(tmp_path / "c.parquet")
    labels = cl.column("cluster").to_numpy()
    center_loss = true_loss(ce.column("center_id").to_numpy())
    np.testing.assert_allclose(s.column("proxy_loss").to_numpy(), center_loss[labels])
    d = cl.column("distance").to_numpy().astype(np.float64)
    np.testing.assert_allclose(s.column("mass").to_numpy(), center_loss[labels] + 0.5 * d**2, rtol=1e-6)
    np.testing.assert_allclose(s.column("prob").to_numpy().sum(), 1.0)


def test_estimate_lambda_is_recorded(pipeline):
    meta = io.read_meta(pipeline / "scores.parquet")["summary"]
    assert meta["lambda_mode"].startswith("estimated per cluster")
    assert len(meta["lambda"]) == 10 and all(v >= 0 for v in meta["lambda"])
    assert meta["holder"]["probes"] == 30 and meta["holder"]["violations"] == 0
    rep = json.loads((pipeline / "r.json").read_text())
    assert rep["lambda_mode"] == meta["lambda_mode"]
    assert len(rep["clusters"]) == 10 and rep["clusters"][0]["lambda"] == meta["lambda"][0]


def test_holder_violation_is_said_plainly(tmp_path, emb):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 6, "--probes", 3)
    ce = pq.read_table(tmp_path / "c.centers.parquet")
    cl = pq.read_table(tmp_path / "c.parquet")
    ids = np.concatenate([ce.column("center_id").to_numpy(), cl.filter(cl.column("probe")).column("id").to_numpy()])
    write_losses(tmp_path / "l.parquet", ids)
    r = run("score", tmp_path / "c.parquet", "--losses", tmp_path / "l.parquet", "--lambda", 1e-6,
            "-o", tmp_path / "s.parquet")
    assert "break the Hölder assumption" in r.stderr
    run("sample", tmp_path / "s.parquet", "--design", "iid", "-o", tmp_path / "sel.parquet", "--report-md",
        tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "**VIOLATED**" in md and "NOT guaranteed" in md


# --------------------------------------------------------------------------- sample


def test_sample_report_has_every_number(pipeline):
    rep = json.loads((pipeline / "r.json").read_text())
    for key in ("n", "d", "k", "z", "eps", "delta", "s", "lambda", "lambda_mode", "phi_z", "lambda_phi", "confidence",
                "guarantee", "additive_per_example", "effective_sample_size", "max_weight", "clusters"):
        assert key in rep, key
    assert rep["s"] == 207 and rep["n"] == 1200 and rep["d"] == 8 and rep["k"] == 10
    assert abs(rep["confidence"] - (1 - np.exp(-1))) < 1e-12
    assert rep["additive_per_example"] == pytest.approx(2 * 0.1 * rep["lambda_phi"] / 1200)
    assert sum(c["drawn"] for c in rep["clusters"]) == 207
    assert set(rep["clusters"][0]) == {"cluster", "size", "center_id", "center_loss", "lambda", "cost", "drawn"}
    md = (pipeline / "r.md").read_text()
    assert "| cluster | size | center_id | center loss | Λ_i | cost Φ_z | drawn |" in md
    assert "63.2%" in md and "effective sample size" in md


def test_selected_contract_and_weights(pipeline):
    sel = pq.read_table(pipeline / "selected.parquet")
    assert sel.column_names == ["id", "count", "prob", "weight", "cluster"]
    assert sel.schema.field("count").type == pa.int32() and sel.schema.field("cluster").type == pa.int32()
    count = sel.column("count").to_numpy()
    assert count.sum() == 207
    np.testing.assert_allclose(sel.column("weight").to_numpy(), count / (207 * sel.column("prob").to_numpy()))


def test_one_step_exactly_as_typed(tmp_path, emb, monkeypatch):
    x = blobs(n=3000)
    pq.write_table(pa.table({"id": pa.array(np.arange(3000), pa.int64()), "embedding": io.embedding_array(x)}),
                   tmp_path / "big.parquet")
    monkeypatch.chdir(tmp_path)
    r = run("sample", "--k", "100", "--eps", "0.1", "big.parquet")
    assert (tmp_path / "selected.parquet").exists()
    # the default design is auto; without any loss it keeps uniform sampling and says so
    assert "selected 207 distinct rows (design uniform, target s = 207)" in r.stdout
    assert pq.read_table("selected.parquet").column("count").to_numpy().sum() == 207
    r = run("sample", "--k", "100", "--eps", "0.1", "--design", "iid", "big.parquet", "-o", "iid.parquet")
    assert "207 draws" in r.stdout and "With probability at least 63.2%" in r.stdout


def test_one_step_keeps_intermediates_identical_to_steps(tmp_path, emb):
    run("sample", "--k", 7, emb, "-o", tmp_path / "one.parquet", "--keep-intermediate", tmp_path / "mid", "--seed", 4)
    for f in ("clusters.parquet", "clusters.centers.parquet", "scores.parquet"):
        assert (tmp_path / "mid" / f).exists()
    run("sample", tmp_path / "mid" / "scores.parquet", "-o", tmp_path / "two.parquet", "--seed", 4)
    a, b = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "two.parquet")
    assert a.select(["id", "count", "prob", "weight"]).equals(b.select(["id", "count", "prob", "weight"]))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, emb):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        run("sample", "--k", 8, emb, "-o", tmp_path / f"{name}.parquet", "--seed", seed, "--keep-intermediate",
            tmp_path / name)
    read = lambda p: (tmp_path / p).read_bytes()  # noqa: E731
    assert read("a.parquet") == read("b.parquet")
    for f in ("clusters.parquet", "clusters.centers.parquet", "scores.parquet"):
        assert read(f"a/{f}") == read(f"b/{f}")
    assert read("a.parquet") != read("c.parquet")


def test_size_and_delta(tmp_path, pipeline):
    r = run("sample", pipeline / "scores.parquet", "-o", tmp_path / "x.parquet", "--eps", 0.1, "--delta", 0.05,
            "--json")
    assert json.loads(r.stdout)["s"] == 620
    r = run("sample", pipeline / "scores.parquet", "-o", tmp_path / "y.parquet", "--size", 300, "--json")
    rep = json.loads(r.stdout)
    assert rep["s"] == 300 and 0 < rep["eps"] < 0.1  # 300 draws guarantee a tighter ε than 207


def test_json_mode_prints_one_object(pipeline, tmp_path):
    r = run("sample", pipeline / "scores.parquet", "-o", tmp_path / "x.parquet", "--json", "-q")
    assert json.loads(r.stdout)["s"] == 207
    assert r.stderr == ""


# --------------------------------------------------------------------------- estimate


def test_estimate_intervals(pipeline):
    sel = pq.read_table(pipeline / "selected.parquet")
    write_losses(pipeline / "sel_losses.parquet", sel.column("id").to_numpy())
    r = run("estimate", pipeline / "selected.parquet", "--losses", pipeline / "sel_losses.parquet", "--loss-max", 50,
            "--json", "--report", pipeline / "e.json")
    e = json.loads(r.stdout)
    rep = json.loads((pipeline / "e.json").read_text())
    assert rep.pop("dataselect")["command"] == "estimate"  # the run's metadata, for --resume
    assert e.pop("skipped") is False and e.pop("outputs") == [str(pipeline / "e.json")]
    assert e == rep
    truth = true_loss(np.arange(1200) * 10).mean()
    w, ids = sel.column("weight").to_numpy(), sel.column("id").to_numpy()
    assert e["estimate_mean"] == pytest.approx(np.sum(w * true_loss(ids)) / 1200)
    for key in ("paper_interval", "clt_interval", "bernstein_interval"):
        assert e[key]["low"] <= e["estimate_mean"] <= e[key]["high"], key
    assert "CLT" in e["clt_interval"]["kind"] and "Bernstein" in e["bernstein_interval"]["kind"]
    assert e["paper_interval"]["low"] <= truth <= e["paper_interval"]["high"]


# --------------------------------------------------------------------------- apply


def test_apply_keeps_data_order_and_adds_weight(pipeline):
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(1200) * 10)
    data = pa.table({"id": ids, "text": [f"row {i}" for i in ids]})
    pq.write_table(data, pipeline / "data.parquet")
    r = run("apply", pipeline / "selected.parquet", pipeline / "data.parquet", "-o", pipeline / "subset.parquet")
    sub = pq.read_table(pipeline / "subset.parquet")
    sel = pq.read_table(pipeline / "selected.parquet")
    assert sub.column_names == ["id", "text", "weight", "count"]
    assert sub.num_rows == sel.num_rows and f"{sel.num_rows} of 1200 rows" in r.stdout
    pos = {v: i for i, v in enumerate(ids.tolist())}
    assert [pos[v] for v in sub.column("id").to_pylist()] == sorted(pos[v] for v in sub.column("id").to_pylist())
    w = dict(zip(sel.column("id").to_pylist(), sel.column("weight").to_pylist()))
    assert all(w[i] == x for i, x in zip(sub.column("id").to_pylist(), sub.column("weight").to_pylist()))
    assert sub.column("text").to_pylist()[0] == f"row {sub.column('id')[0].as_py()}"


def test_apply_with_other_id_column(pipeline):
    data = pa.table({"key": np.arange(1200) * 10, "y": np.arange(1200)})
    pq.write_table(data, pipeline / "data.parquet")
    run("apply", pipeline / "selected.parquet", pipeline / "data.parquet", "-o", pipeline / "s.parquet",
        "--id-column", "key")
    assert pq.read_table(pipeline / "s.parquet").num_rows == pq.read_table(pipeline / "selected.parquet").num_rows


# --------------------------------------------------------------------------- embed


def _write_inputs(tmp_path, x):
    np.save(tmp_path / "v.npy", x)
    np.savez(tmp_path / "v.npz", vectors=x)
    np.savez(tmp_path / "two.npz", vectors=x, other=x[:2])
    header = ",".join(f"f{j}" for j in range(x.shape[1]))
    np.savetxt(tmp_path / "v.csv", x, delimiter=",", header=header, comments="")
    np.savetxt(tmp_path / "v.tsv", x, delimiter="\t", header=header.replace(",", "\t"), comments="")
    with open(tmp_path / "v.jsonl", "w") as f:
        for i, row in enumerate(x):
            f.write(json.dumps({"id": f"doc{i}", "vec": row.tolist(), "label": i % 2}) + "\n")
    pq.write_table(pa.table({"id": np.arange(len(x)), "emb": [r.tolist() for r in x.astype(np.float64)],
                             "label": np.arange(len(x)) % 3}), tmp_path / "v.parquet")


@pytest.mark.parametrize("name, extra", [
    ("v.npy", []), ("v.npz", []), ("two.npz", ["--array", "vectors"]), ("v.csv", []), ("v.tsv", []),
    ("v.jsonl", ["--column", "vec"]), ("v.parquet", ["--column", "emb"]),
])
def test_embed_numeric_inputs(tmp_path, name, extra):
    x = blobs(n=50, d=5)
    _write_inputs(tmp_path, x)
    run("embed", tmp_path / name, "-o", tmp_path / "e.parquet", *extra)
    ids, got = dataset.read_embeddings(tmp_path / "e.parquet")
    np.testing.assert_allclose(got, x, rtol=1e-6)
    t = pq.read_table(tmp_path / "e.parquet")
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), 5)
    if name == "v.jsonl":
        assert ids.to_pylist()[:2] == ["doc0", "doc1"] and t.column("label").to_pylist()[:3] == [0, 1, 0]
    elif name == "v.parquet":
        assert t.column("label").to_pylist()[:4] == [0, 1, 2, 0]
    else:
        assert ids.to_pylist() == list(range(50))


def test_embed_normalize(tmp_path):
    x = blobs(n=20, d=4)
    np.save(tmp_path / "v.npy", x)
    run("embed", tmp_path / "v.npy", "-o", tmp_path / "e.parquet", "--normalize")
    _, got = dataset.read_embeddings(tmp_path / "e.parquet")
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_embed_id_column_from_csv(tmp_path):
    (tmp_path / "v.csv").write_text("key,a,b\n7,1.0,2.0\n9,3.0,4.0\n")
    run("embed", tmp_path / "v.csv", "-o", tmp_path / "e.parquet", "--id-column", "key")
    ids, x = dataset.read_embeddings(tmp_path / "e.parquet")
    assert ids.to_pylist() == [7, 9] and x.tolist() == [[1.0, 2.0], [3.0, 4.0]]


# --------------------------------------------------------------------------- entry points


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "dataselect_cli", "--help"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "100"})
    assert r.returncode == 0 and "sample" in r.stdout and "cluster" in r.stdout


@pytest.mark.parametrize("cmd", ["embed", "cluster", "score", "sample", "estimate", "apply"])
def test_every_command_has_help_with_an_example(cmd):
    r = run(cmd, "--help")
    assert "Example: dataselect " + cmd in r.stdout
