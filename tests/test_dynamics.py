"""``dataselect dynamics`` and the Recorder: the table's schema, exact gradients, the schedule, determinism and
bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import io
from dataselect_cli.dynamics import COLUMNS, Recorder, make_plan, parse_checkpoints
from dataselect_cli.dynamics.proxy import LinearProxy, softmax_stats, standardize, train
from dataselect_cli.errors import InputError

torch = pytest.importorskip("torch")

N, D, C = 90, 5, 3


def make_data(n=N, d=D, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, C, n)
    x = rng.normal(size=(C, d))[label] * 2 + rng.normal(size=(n, d)) + 3.0  # offset: standardising matters
    return (x * rng.uniform(0.5, 3, d)).astype(np.float32), label


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    x, label = make_data()
    path = tmp_path_factory.mktemp("emb") / "emb.parquet"
    names = np.array(["cat", "dog", "emu"])[label]
    pq.write_table(pa.table({"id": pa.array(np.arange(N) * 7 + 1, pa.int64()), "embedding": io.embedding_array(x),
                             "label": pa.array(label, pa.int64()), "name": pa.array(names.tolist()),
                             "one": pa.array(np.zeros(N, np.int64))}), path)
    return path


def dyn(emb, out, *extra, code=0):
    return run("dynamics", emb, "--label", "label", "-o", out, "--epochs", 3, "--batch-size", 16, *extra, code=code)


def meta(path):
    return json.loads(pq.read_schema(path).metadata[b"dataselect"])


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_table_schema_and_contents(emb, tmp_path, model):
    out = tmp_path / "dyn.parquet"
    lr = 1e-2 if model == "linear" else 3e-2  # the mlp's default 1e-3 is for more than 18 steps
    r = dyn(emb, out, "--model", model, "--hidden", 8, "--json", *(["--lr", lr] if model == "mlp" else []))
    s = json.loads(r.stdout)
    t = pq.read_table(out)
    assert t.column_names == list(COLUMNS)  # null_logits: --null is the default
    types = {f.name: f.type for f in t.schema}
    assert types["id"] == pa.int64() and types["run"] == pa.int32() and types["checkpoint"] == pa.int32()
    assert types["epoch"] == pa.float64() and types["step"] == pa.int64() and types["label"] == pa.int32()
    assert types["logits"] == pa.list_(pa.float32(), C) and types["input_grad"] == pa.list_(pa.float32(), D)
    assert types["correct"] == pa.bool_() and all(types[c] == pa.float32() for c in ("loss", "grad_sqnorm", "lr"))
    assert t.num_rows == N * 3 == s["rows"] and s["checkpoints"] == 3 and s["classes"] == C
    # grouped by id in EMB's order, each id's rows in (run, checkpoint) order: sorted by (id, run, checkpoint)
    key = np.stack([t.column("id").to_numpy(), t.column("run").to_numpy(), t.column("checkpoint").to_numpy()])
    assert np.array_equal(np.lexsort(key[::-1]), np.arange(t.num_rows))
    spe = -(-N // 16)
    assert t.column("step").to_numpy()[:3].tolist() == [spe, 2 * spe, 3 * spe]
    assert t.column("epoch").to_numpy()[:3].tolist() == [1.0, 2.0, 3.0]
    logits = np.stack(t.column("logits").to_numpy(zero_copy_only=False))
    y = t.column("label").to_numpy()
    _, label = make_data()
    assert np.array_equal(y, np.repeat(label, 3))
    assert np.array_equal(t.column("correct").to_numpy(zero_copy_only=False), logits.argmax(axis=1) == y)
    lse = np.log(np.exp(logits.astype(np.float64)).sum(axis=1))
    np.testing.assert_allclose(t.column("loss").to_numpy(), lse - logits[np.arange(len(y)), y], rtol=1e-5, atol=1e-6)
    assert np.all(t.column("lr").to_numpy() == np.float32(lr))
    m = meta(out)
    assert m["command"] == "dynamics" and m["summary"]["labels"] == [0, 1, 2] and m["params"]["model"] == model
    assert m["summary"]["grad_block"] == ("all parameters (W, b)" if model == "linear" else "last layer (W2, b2)")
    # the proxy learns: the last checkpoint classifies most training rows
    assert s["accuracy_last"][0] > 0.8 and np.mean(t.column("correct").to_numpy(zero_copy_only=False)[2::3]) > 0.8
    assert "dynamics file" in run("show", out).stdout


def test_linear_input_grad_is_the_gold_class_weight_row(emb, tmp_path):
    """Under the linear proxy input_grad is W[:, y]/σ: one vector per (class, checkpoint), as the help warns."""
    dyn(emb, tmp_path / "d.parquet")
    t = pq.read_table(tmp_path / "d.parquet")
    g = np.stack(t.column("input_grad").to_numpy(zero_copy_only=False))
    key = t.column("label").to_numpy() * 10 + t.column("checkpoint").to_numpy()
    for k in np.unique(key):
        assert np.ptp(g[key == k], axis=0).max() == 0


def test_string_labels_from_data_joined_on_id(emb, tmp_path):
    """--data: the label comes from another table in another row order; the classes are the sorted names."""
    t = pq.read_table(emb)
    other = t.select(["id", "name"]).take(pa.array(np.arange(N)[::-1]))
    pq.write_table(other, tmp_path / "data.parquet")
    run("dynamics", emb, "--data", tmp_path / "data.parquet", "--label", "name", "-o", tmp_path / "a.parquet",
        "--epochs", 2)
    run("dynamics", emb, "--label", "label", "-o", tmp_path / "b.parquet", "--epochs", 2)
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert meta(tmp_path / "a.parquet")["summary"]["labels"] == ["cat", "dog", "emu"]
    assert a.column("label").equals(b.column("label")) and a.column("logits").equals(b.column("logits"))


# --------------------------------------------------------------------------- exact gradients


def _per_example_reference(forward, params, xs, y):
    """Per-example ‖∂CE/∂params‖² by autograd, one example at a time (the slow, obvious way)."""
    out = []
    for i in range(len(y)):
        for p in params:
            p.grad = None
        z = forward(torch.from_numpy(xs[i:i + 1]))
        torch.nn.functional.cross_entropy(z, torch.tensor([int(y[i])])).backward()
        out.append(sum(float((p.grad.double() ** 2).sum()) for p in params))
    return np.array(out)


def test_linear_grad_sqnorm_and_input_grad_match_autograd():
    x, y = make_data(n=40)
    xs, mu, sd = standardize(x)
    proxy = LinearProxy(D, C, 0.05, np.random.SeedSequence(1))
    plan = make_plan("2", 2, len(y), 8)
    snap = train(proxy, xs, y, plan, 8, np.random.default_rng(0))[-1]
    got = LinearProxy.evaluate(snap, xs, y, sd)
    w = torch.tensor(snap[0], requires_grad=True)
    b = torch.tensor(snap[1], requires_grad=True)
    ref = _per_example_reference(lambda v: v.double() @ w + b, [w, b], xs, y)
    np.testing.assert_allclose(got["grad_sqnorm"], ref, rtol=1e-10)
    # the gold logit's gradient with respect to the raw embedding, through the standardisation
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    z = ((xt - torch.tensor(mu)) / torch.tensor(sd)) @ w.detach() + b.detach()
    z.gather(1, torch.tensor(y)[:, None]).sum().backward()
    np.testing.assert_allclose(got["input_grad"], xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(got["input_grad"], (snap[0] / sd[:, None]).T[y], rtol=0)


def test_grad_sqnorm_matches_finite_differences():
    """‖p − e_y‖²·(‖h‖² + 1) against central differences of the cross-entropy in every weight (float64)."""
    rng = np.random.default_rng(3)
    h, w, b, y = rng.normal(size=(4, 3)), rng.normal(size=(3, C)), rng.normal(size=C), np.array([0, 2, 1, 2])

    def ce(w, b, i):
        z = h[i] @ w + b
        return np.log(np.exp(z - z.max()).sum()) + z.max() - z[y[i]]

    got = softmax_stats(h @ w + b, y, (h**2).sum(axis=1))["grad_sqnorm"]
    eps = 1e-6
    for i in range(len(y)):
        g = []
        for p in (w, b):
            for j in np.ndindex(p.shape):
                old = p[j]
                p[j] = old + eps
                up = ce(w, b, i)
                p[j] = old - eps
                down = ce(w, b, i)
                p[j] = old
                g.append((up - down) / (2 * eps))
        np.testing.assert_allclose(got[i], np.sum(np.square(g)), rtol=1e-6)


def test_mlp_grad_sqnorm_and_input_grad_match_autograd():
    from dataselect_cli.dynamics.mlp import MLPProxy, deterministic

    x, y = make_data(n=30)
    xs, mu, sd = standardize(x)
    with deterministic(torch):
        proxy = MLPProxy(D, C, 1e-2, np.random.SeedSequence(2), hidden=6)
        snap = train(proxy, xs, y, make_plan("1", 1, len(y), 8), 8, np.random.default_rng(0))[-1]
        got = proxy.evaluate(snap, xs, y, sd)
    net = proxy.net
    net.load_state_dict(snap)
    last = list(net[2].parameters())
    ref = _per_example_reference(net, last, xs, y)
    np.testing.assert_allclose(got["grad_sqnorm"], ref, rtol=1e-4)
    for i in range(len(y)):  # one example at a time, through the standardisation
        xt = torch.tensor(x[i:i + 1].astype(np.float64), requires_grad=True)
        z = net(((xt - torch.tensor(mu)) / torch.tensor(sd)).float())
        z[0, int(y[i])].backward()
        np.testing.assert_allclose(got["input_grad"][i], xt.grad.numpy()[0], rtol=1e-4, atol=1e-7)
    assert np.ptp(got["input_grad"][y == 0], axis=0).max() > 0  # unlike the linear proxy, it varies within a class


def test_numpy_adam_matches_torch_adam():
    """The linear proxy's training is torch's Adam on the same batches (float64), step for step."""
    x, y = make_data(n=50)
    xs, _, _ = standardize(x)
    proxy = LinearProxy(D, C, 0.03, np.random.SeedSequence(4))
    w = torch.tensor(proxy.w.copy(), requires_grad=True)
    b = torch.tensor(proxy.b.copy(), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.03)
    plan = make_plan("3", 3, len(y), 16)
    snaps = train(proxy, xs, y, plan, 16, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    for _ in range(3):
        order = rng.permutation(len(y))
        for lo in range(0, len(y), 16):
            idx = order[lo:lo + 16]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(torch.from_numpy(xs[idx]).double() @ w + b,
                                              torch.from_numpy(y[idx])).backward()
            opt.step()
    np.testing.assert_allclose(snaps[-1][0], w.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(snaps[-1][1], b.detach().numpy(), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- the schedule


def test_parse_checkpoints():
    assert parse_checkpoints("all", 4) == [1, 2, 3, 4] and parse_checkpoints("last", 4) == [4]
    assert parse_checkpoints("2", 10) == [5, 10] and parse_checkpoints("10", 10) == list(range(1, 11))
    assert parse_checkpoints(" 5,1,1,0 ", 5) == [0, 1, 5] and parse_checkpoints("3,", 5) == [3]
    for bad in ("11", "0", "1,11", "-1,2", "x", "1.5,2", ","):
        with pytest.raises(InputError):
            parse_checkpoints(bad, 10)


def test_plan_with_every_steps():
    p = make_plan("1,3", 3, 100, 10, every_steps=4, every_until=1.5)  # 10 steps an epoch
    assert p.steps_per_epoch == 10 and p.steps == (4, 8, 10, 12, 30)
    assert p.epoch_of(12) == 1.2


def test_checkpoints_and_runs(emb, tmp_path):
    out = tmp_path / "d.parquet"
    dyn(emb, out, "--checkpoints", "0,2", "--every-steps", 2, "--every-steps-until", 0.5, "--runs", 2)
    t = pq.read_table(out)
    spe = -(-N // 16)  # 6 steps an epoch: every 2 steps up to step 3, then epochs 0 and 2
    steps = [0, 2, 2 * spe]
    assert t.num_rows == N * 2 * 3
    assert t.column("step").to_numpy()[:6].tolist() == steps * 2
    assert t.column("run").to_numpy()[:6].tolist() == [0, 0, 0, 1, 1, 1]
    assert t.column("checkpoint").to_numpy()[:6].tolist() == [0, 1, 2] * 2
    np.testing.assert_allclose(t.column("epoch").to_numpy()[:3], np.array(steps) / spe)
    logits = np.stack(t.column("logits").to_numpy(zero_copy_only=False)).reshape(N, 2, 3, C)
    assert not np.allclose(logits[:, 0], logits[:, 1])  # the runs differ (seeds (seed, run))
    # a run's checkpoints do not depend on the later ones asked for: epoch 2 of a 3-epoch schedule
    dyn(emb, tmp_path / "all.parquet", "--runs", 2)
    full = np.stack(pq.read_table(tmp_path / "all.parquet").column("logits").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(full.reshape(N, 2, 3, C)[:, :, 1], logits[:, :, 2])


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_same_seed_same_bytes(emb, tmp_path, model):
    for name in ("a", "b"):
        dyn(emb, tmp_path / f"{name}.parquet", "--model", model, "--hidden", 8, "--runs", 2)
    dyn(emb, tmp_path / "c.parquet", "--model", model, "--hidden", 8, "--runs", 2, "--seed", 1)
    a, b, c = ((tmp_path / f"{n}.parquet").read_bytes() for n in "abc")
    assert a == b and a != c


def test_input_grad_none_and_projected(emb, tmp_path):
    dyn(emb, tmp_path / "none.parquet", "--input-grad", "none")
    assert "input_grad" not in pq.read_schema(tmp_path / "none.parquet").names
    dyn(emb, tmp_path / "full.parquet")
    dyn(emb, tmp_path / "proj.parquet", "--input-grad", 3)
    from dataselect_cli.steps.dynamics import projection

    full = np.stack(pq.read_table(tmp_path / "full.parquet").column("input_grad").to_numpy(zero_copy_only=False))
    proj = pq.read_table(tmp_path / "proj.parquet")
    assert proj.schema.field("input_grad").type == pa.list_(pa.float32(), 3)
    got = np.stack(proj.column("input_grad").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(got, full.astype(np.float64) @ projection(D, 3, 0), rtol=1e-5, atol=1e-6)


def test_resume_skips_an_up_to_date_output(emb, tmp_path):
    out = tmp_path / "d.parquet"
    dyn(emb, out)
    r = dyn(emb, out, "--resume", "--json")
    assert json.loads(r.stdout)["skipped"] is True
    r = dyn(emb, out, "--resume", "--json", "--runs", 2)
    assert json.loads(r.stdout)["skipped"] is False and pq.read_metadata(out).num_rows == N * 3 * 2


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra, frag", [
    (["--label", "nosuch"], "--label: no column 'nosuch'"),
    (["--label", "one"], "holds a single class"),
    (["--label", "label", "--checkpoints", "4"], "in 1..3"),
    (["--label", "label", "--checkpoints", "1,12"], "epoch 12 is beyond --epochs 3"),
    (["--label", "label", "--model", "tree"], "--model must be one of linear, mlp"),
    (["--label", "label", "--lr", "0"], "--lr must be a finite number > 0"),
    (["--label", "label", "--input-grad", "0"], "--input-grad must be a positive number"),
    (["--label", "label", "--input-grad", "9"], "use --input-grad full"),
    (["--label", "label", "--every-steps", "2", "--every-steps-until", "4"], "--every-steps-until must be"),
    (["--label", "label", "--runs", "0"], "--runs must be >= 1"),
])
def test_bad_input_exits_2_with_one_line(emb, tmp_path, extra, frag):
    out = tmp_path / "d.parquet"
    r = run("dynamics", emb, "-o", out, "--epochs", 3, *extra, code=2)
    assert frag in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_mlp_without_torch_says_what_to_install(emb, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    r = run("dynamics", emb, "--label", "label", "--model", "mlp", "-o", tmp_path / "d.parquet", code=2)
    assert "pip install 'dataselect[text]'" in r.stderr and r.stderr.count("\n") == 1


# --------------------------------------------------------------------------- the Recorder


def test_recorder_with_a_tiny_torch_training_loop(tmp_path):
    """A two-layer model trained 2 epochs on random data; the rows logged at each epoch's end round-trip."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=gen)
    y = torch.randint(0, 3, (50,), generator=gen)
    ids = torch.arange(1000, 1050)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    logged = []
    with Recorder(tmp_path / "dyn.parquet", num_classes=3, params={"model": "tiny"}) as rec:
        for epoch in range(2):
            model.train()
            for lo in range(0, 50, 16):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[lo:lo + 16]), y[lo:lo + 16]).backward()
                opt.step()
            model.eval()
            for lo in range(0, 50, 16):  # evaluate the training rows at the checkpoint, batch by batch
                xb = x[lo:lo + 16].clone().requires_grad_(True)
                z = model(xb)
                loss = torch.nn.functional.cross_entropy(z, y[lo:lo + 16], reduction="none")
                z.gather(1, y[lo:lo + 16, None]).sum().backward()
                rec.log(ids[lo:lo + 16], z, y[lo:lo + 16], checkpoint=epoch, epoch=epoch + 1, step=4 * (epoch + 1),
                        loss=loss, lr=0.1, input_grad=xb.grad)
                logged.append((z.detach().numpy().copy(), loss.detach().numpy().copy(), xb.grad.numpy().copy()))
    t = pq.read_table(tmp_path / "dyn.parquet")
    assert t.column_names == ["id", "run", "checkpoint", "epoch", "step", "label", "logits", "correct", "loss", "lr",
                              "input_grad"]
    assert t.num_rows == 100 and rec.rows == 100
    assert t.column("id").to_pylist() == list(range(1000, 1050)) * 2
    assert t.column("checkpoint").to_pylist() == [0] * 50 + [1] * 50 and set(t.column("run").to_pylist()) == {0}
    assert t.column("label").to_pylist() == y.tolist() * 2 and t.column("step").to_pylist() == [4] * 50 + [8] * 50
    logits = np.concatenate([a for a, _, _ in logged])
    np.testing.assert_array_equal(np.stack(t.column("logits").to_numpy(zero_copy_only=False)), logits)
    np.testing.assert_array_equal(t.column("loss").to_numpy(), np.concatenate([b for _, b, _ in logged]))
    np.testing.assert_array_equal(np.stack(t.column("input_grad").to_numpy(zero_copy_only=False)),
                                  np.concatenate([c for _, _, c in logged]))
    assert t.column("correct").to_pylist() == (logits.argmax(axis=1) == np.tile(y.numpy(), 2)).tolist()
    m = meta(tmp_path / "dyn.parquet")
    assert m["command"] == "dynamics-recorder" and m["params"] == {"num_classes": 3, "model": "tiny"}
    assert "dynamics file" in run("show", tmp_path / "dyn.parquet").stdout


def test_recorder_string_ids_and_numpy(tmp_path):
    with Recorder(tmp_path / "d.parquet", 2) as rec:
        rec.log(np.array(["a", "b"]), np.array([[0.0, 1.0], [2.0, 1.0]]), [1, 1], checkpoint=0, run=[0, 1])
    t = pq.read_table(tmp_path / "d.parquet")
    assert t.column("id").type == pa.string() and t.column("run").to_pylist() == [0, 1]
    assert t.column("correct").to_pylist() == [True, False]


def test_recorder_writes_nothing_on_error(tmp_path):
    out = tmp_path / "d.parquet"
    with pytest.raises(RuntimeError), Recorder(out, 2) as rec:
        rec.log([1, 2], np.zeros((2, 2)), [0, 1], checkpoint=0)
        raise RuntimeError("training crashed")
    assert not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="no rows were logged"):
        Recorder(out, 2).close()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("call, frag", [
    (lambda r: r.log([1, 2], np.zeros((2, 3)), [0, 1], checkpoint=0), r"logits must have shape \(m, 2\)"),
    (lambda r: r.log([1], np.zeros((2, 2)), [0, 1], checkpoint=0), r"ids must have shape \(2,\)"),
    (lambda r: r.log([1, 2], np.zeros((2, 2)), [0, 2], checkpoint=0), r"labels must be in 0..1"),
    (lambda r: r.log([1, 2], np.zeros((2, 2)), [0, 1], checkpoint=[0, 1, 2]), "checkpoint must be one value or"),
    (lambda r: r.log([1, 2], np.zeros((2, 2)), [0, 1], checkpoint=0, loss=1.0), "loss must be one value per row"),
    (lambda r: r.log([1, 2], np.zeros((2, 2)), [0, 1], checkpoint=0.5), "checkpoint must be whole numbers"),
    (lambda r: r.log([1, 2], np.full((2, 2), np.nan), [0, 1], checkpoint=0), "NaN or infinite"),
    (lambda r: r.log([1, 2], np.zeros((2, 2)), [0, 1], checkpoint=0, input_grad=np.zeros((3, 4))),
     r"input_grad must have shape \(2, D\)"),
])
def test_recorder_refuses_bad_shapes(tmp_path, call, frag):
    rec = Recorder(tmp_path / "d.parquet", 2)
    with pytest.raises(InputError, match=frag) as info:
        call(rec)
    assert "\n" not in str(info.value)


def test_recorder_refuses_changing_columns(tmp_path):
    rec = Recorder(tmp_path / "d.parquet", 2)
    rec.log([1, 2], np.zeros((2, 2)), [0, 1], checkpoint=0, loss=[0.1, 0.2])
    with pytest.raises(InputError, match="same columns at every call; loss"):
        rec.log([3], np.zeros((1, 2)), [0], checkpoint=0)
    with pytest.raises(InputError, match="ids are string here but int64"):
        rec.log(["x"], np.zeros((1, 2)), [0], checkpoint=0, loss=[0.1])
    rec.abort()
    assert not list(tmp_path.iterdir())


def test_recorder_bounded_buffer_spans_row_groups(tmp_path, monkeypatch):
    """Many small batches go out in fixed row groups (a small ROW_GROUP_SIZE here), every row once."""
    monkeypatch.setattr(io, "ROW_GROUP_SIZE", 64)
    with Recorder(tmp_path / "d.parquet", 2) as rec:
        for i in range(0, 300, 7):
            m = min(7, 300 - i)
            rec.log(np.arange(i, i + m), np.ones((m, 2)), np.zeros(m, int), checkpoint=0)
    md = pq.read_metadata(tmp_path / "d.parquet")
    assert md.num_rows == 300 and md.num_row_groups == 5
    assert pq.read_table(tmp_path / "d.parquet").column("id").to_pylist() == list(range(300))
