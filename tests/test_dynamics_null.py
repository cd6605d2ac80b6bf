"""``dataselect dynamics --null``: the null model of PVI (a model trained on empty inputs), its ``null_logits``
column, and ``score --method pvi`` from that table."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import io
from dataselect_cli.dynamics import Recorder, make_plan
from dataselect_cli.dynamics.proxy import LinearProxy, NullLinear, train

N, D, C = 120, 4, 3
#: Class frequencies far from uniform, so that the prior the null model learns is visible.
FREQ = np.array([0.6, 0.3, 0.1])


def centred(z):
    z = np.asarray(z, np.float64)
    return z - z.mean(axis=-1, keepdims=True)


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.repeat(np.arange(C), (FREQ * N).astype(int)))
    x = rng.normal(size=(C, D))[label] * 1.5 + rng.normal(size=(N, D))
    return x.astype(np.float32), label


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    x, label = make_data()
    path = tmp_path_factory.mktemp("emb") / "emb.parquet"
    pq.write_table(pa.table({"id": pa.array(np.arange(N) * 3 + 5, pa.int64()), "embedding": io.embedding_array(x),
                             "label": pa.array(label, pa.int64())}), path)
    return path


def dyn(emb, out, *extra, code=0):
    return run("dynamics", emb, "--label", "label", "-o", out, "--epochs", 4, "--batch-size", 16, *extra, code=code)


def vectors(t, name):
    return np.stack(t.column(name).to_numpy(zero_copy_only=False)).astype(np.float64)


# --------------------------------------------------------------------------- the null model


def test_bias_only_null_model_converges_to_the_log_class_frequencies():
    _, y = make_data()
    null = NullLinear(C, lr=0.05)
    for _ in range(2000):  # full batch: the optimum is b = log f + const exactly
        null.step(y)
    np.testing.assert_allclose(centred(null.logits(null.snapshot())), centred(np.log(FREQ)), atol=1e-3)


def test_the_linear_null_model_is_the_linear_proxy_on_an_empty_input():
    """xs = 0: W gets no gradient, so the softmax regression is the bias-only softmax, step for step."""
    x, y = make_data()
    plan = make_plan("all", 3, N, 16)
    proxy = LinearProxy(D, C, 1e-2, np.random.SeedSequence(1))
    w0 = proxy.w.copy()
    null = NullLinear(C, 1e-2)
    from dataselect_cli.dynamics.proxy import WithNull

    snaps = train(WithNull(proxy, null), np.zeros_like(x), y, plan, 16, np.random.default_rng(2))
    assert np.array_equal(proxy.w, w0)
    for (w, b), nb in snaps:
        np.testing.assert_allclose(b, nb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model, extra", [("linear", ["--lr", "0.02"]), ("mlp", ["--lr", "0.01", "--hidden", 8])])
def test_null_logits_approach_the_class_prior_in_a_dynamics_run(emb, tmp_path, model, extra):
    out = tmp_path / "dyn.parquet"
    r = dyn(emb, out, "--model", model, "--epochs", 40, "--checkpoints", "1,40", "--runs", 2, "--json", *extra)
    t = pq.read_table(out)
    assert t.schema.field("null_logits").type == pa.list_(pa.float32(), C)
    assert ("bias-only" if model == "linear" else "all-zero") in json.loads(r.stdout)["null"]
    z0 = vectors(t, "null_logits").reshape(N, 2, 2, C)
    assert (z0 == z0[:1]).all()  # one vector per (run, checkpoint), the same for every id
    # after 40 epochs of mini-batch Adam the prior is learnt up to the batches' noise (about lr per step)
    np.testing.assert_allclose(centred(z0[0, :, 1]), np.broadcast_to(centred(np.log(FREQ)), (2, C)), atol=0.15)
    first = np.abs(centred(z0[0, :, 0]) - centred(np.log(FREQ))).max()
    last = np.abs(centred(z0[0, :, 1]) - centred(np.log(FREQ))).max()
    assert last < first or model == "linear" and first < 0.15


# --------------------------------------------------------------------------- pvi end to end


def test_pvi_from_a_dynamics_table_equals_the_formula_by_hand(emb, tmp_path):
    out, scores = tmp_path / "dyn.parquet", tmp_path / "pvi.parquet"
    dyn(emb, out, "--runs", 2, "--null")
    run("score", "--method", "pvi", "--dynamics", out, "-o", scores, "--block-rows", 7)
    t = pq.read_table(out)
    k = len(set(t.column("checkpoint").to_pylist()))
    z, z0 = vectors(t, "logits").reshape(N, 2, k, C), vectors(t, "null_logits").reshape(N, 2, k, C)
    y = t.column("label").to_numpy()[:: 2 * k]

    def log2_gold(v):  # log2 softmax(v)_y at the last checkpoint, per (id, run)
        v = v[:, :, -1]
        lse = np.log(np.exp(v - v.max(-1, keepdims=True)).sum(-1)) + v.max(-1)
        return (np.take_along_axis(v, y[:, None, None], 2)[..., 0] - lse) / np.log(2)

    want = (log2_gold(z) - log2_gold(z0)).mean(axis=1)
    s = pq.read_table(scores)
    assert s.column("id").to_pylist() == t.column("id").to_pylist()[:: 2 * k]
    np.testing.assert_allclose(s.column("score").to_numpy(), want, rtol=1e-12, atol=1e-12)


def test_no_null_leaves_the_column_out_and_pvi_says_how_to_get_it(emb, tmp_path):
    dyn(emb, tmp_path / "a.parquet", "--no-null")
    assert "null_logits" not in pq.read_schema(tmp_path / "a.parquet").names
    r = run("score", "--method", "pvi", "--dynamics", tmp_path / "a.parquet", "-o", tmp_path / "p.parquet", code=2)
    assert "null_logits" in r.stderr and "--no-null" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_null_same_seed_same_bytes_and_other_columns_unchanged(emb, tmp_path, model):
    args = ["--model", model, "--hidden", 8, "--runs", 2]
    for name in ("a", "b"):
        dyn(emb, tmp_path / f"{name}.parquet", *args, "--null")
    dyn(emb, tmp_path / "c.parquet", *args, "--null", "--seed", 1)
    dyn(emb, tmp_path / "off.parquet", *args, "--no-null")
    a, b, c = ((tmp_path / f"{n}.parquet").read_bytes() for n in "abc")
    assert a == b and a != c
    # the null model draws nothing from the runs' random streams: every other column is the same without it
    assert pq.read_table(tmp_path / "a.parquet").drop(["null_logits"]).equals(pq.read_table(tmp_path / "off.parquet"))
    for name in ("a", "b"):
        run("score", "--method", "pvi", "--dynamics", tmp_path / f"{name}.parquet", "-o", tmp_path / f"{name}.pvi")
    assert pq.read_table(tmp_path / "a.pvi").equals(pq.read_table(tmp_path / "b.pvi"))  # (the metadata names the input)


# --------------------------------------------------------------------------- the Recorder


def test_recorder_writes_null_logits(tmp_path):
    path = tmp_path / "rec.parquet"
    with Recorder(path, num_classes=C) as rec:
        for ck in range(2):
            rec.log(np.arange(4), np.eye(4, C), np.array([0, 1, 2, 0]), checkpoint=ck,
                    null_logits=np.log(FREQ) + ck)
    t = pq.read_table(path)
    np.testing.assert_allclose(vectors(t, "null_logits"), np.repeat([np.log(FREQ), np.log(FREQ) + 1], 4, axis=0),
                               rtol=1e-6)
    with pytest.raises(Exception, match="null_logits must have shape"):
        with Recorder(tmp_path / "bad.parquet", num_classes=C) as rec:
            rec.log(np.arange(2), np.zeros((2, C)), np.zeros(2, int), checkpoint=0, null_logits=np.zeros(2))
