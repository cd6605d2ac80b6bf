"""--loss-command: the user's scorer run as a real subprocess for every loss the method needs (issue 15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import io
from dataselect_cli.errors import InputError
from dataselect_cli.losscmd import CommandOracle

ROOT = Path(__file__).resolve().parents[1]

#: The scorer of these tests: ``scorer.py MODE {in} {out}``. Its loss of row id i is (i % 7) / 4; it logs
#: (purpose, ids) of every run to $SCORER_LOG, one JSON line each, and MODE makes it misbehave in one way. (The log
#: is not named on the command line: a file named there is fingerprinted, and one that changes at every run would
#: defeat --resume.)
SCORER = r'''
import json, os, sys, time
import pyarrow as pa, pyarrow.parquet as pq

if len(sys.argv) != 4:
    sys.exit(f"usage: scorer.py MODE IN OUT; got {sys.argv[1:]}")
mode, req, out = sys.argv[1:]
log = os.environ["SCORER_LOG"]
t = pq.read_table(req)
ids = t.column("id").to_pylist()
with open(log, "a") as f:
    f.write(json.dumps({"purpose": os.environ.get("DATASELECT_PURPOSE"), "ids": ids,
                        "columns": t.column_names}) + "\n")
loss = [(i % 7) / 4 for i in ids]
if mode == "data":
    loss = t.column("x").to_pylist()
if mode == "fail":
    print("loading model.pt", file=sys.stderr)
    print("RuntimeError: model exploded", file=sys.stderr)
    sys.exit(3)
if mode == "killed":
    os.kill(os.getpid(), 9)
if mode == "sleep":
    with open(log + ".pid", "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
if mode == "chatty":
    for i in range(200):
        print(f"scoring row {i} {{not json}}")
    sys.stdout.flush()
if mode == "none":
    sys.exit(0)
if mode == "missing":
    ids, loss = ids[1:], loss[1:]
if mode == "extra":
    ids, loss = ids + [999999], loss + [0.5]
if mode == "dup":
    ids, loss = ids + ids[:1], loss + loss[:1]
if mode == "nan":
    loss[0] = float("nan")
if mode == "negative":
    loss[-1] = -1.0
if mode == "strings":
    ids = [str(i) for i in ids]
cols = {"id": ids, ("score" if mode == "columns" else "loss"): loss}
pq.write_table(pa.table(cols), out)
'''


def loss_of(ids) -> np.ndarray:
    return (np.asarray(ids, dtype=np.int64) % 7) / 4


@pytest.fixture
def world(tmp_path, write_embeddings, monkeypatch):
    """Four blobs of 30 rows (ids 100…219) and the scorer; ``cmd(mode)`` is its command line."""
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(4, 6)) * 6, 30, axis=0) + rng.normal(size=(120, 6))
    emb = write_embeddings(tmp_path / "emb.parquet", x)
    scorer = tmp_path / "scorer.py"
    scorer.write_text(SCORER)
    log = tmp_path / "asked.jsonl"
    monkeypatch.setenv("SCORER_LOG", str(log))

    class World:
        pass

    w = World()
    w.dir, w.emb, w.log, w.scorer = tmp_path, emb, log, scorer
    w.cmd = lambda mode="ok": f"{sys.executable} {scorer} {mode} {{in}} {{out}}"
    w.asked = lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return w


@pytest.fixture
def clusters(world):
    run("cluster", world.emb, "-o", world.dir / "clusters.parquet", "--k", 4, "--probes", 2, "--seed", 0, "-q")
    return world.dir / "clusters.parquet"


def _centers_and_probes(clusters_path):
    centers = pq.read_table(str(clusters_path).replace(".parquet", ".centers.parquet"))
    t = pq.read_table(clusters_path)
    return centers.column("center_id").to_pylist(), t.filter(t.column("probe")).column("id").to_pylist()


# --------------------------------------------------------------------------- success, and what is asked


def test_score_asks_the_centers_then_the_probes_and_scores_as_a_losses_file_would(world, clusters):
    r = run("score", clusters, "--loss-command", world.cmd(), "-o", world.dir / "scores.parquet", "--json")
    centers, probes = _centers_and_probes(clusters)
    asked = world.asked()
    assert [(a["purpose"], a["ids"]) for a in asked] == [("centers", centers), ("probes", probes)]
    assert asked[0]["columns"] == ["id"]  # without --data the request holds the ids only
    summary = json.loads(r.stdout)
    assert summary["oracle"]["queries"] == 4 + 8
    assert summary["oracle"]["by_purpose"] == [{"purpose": "centers", "ids": 4}, {"purpose": "probes", "ids": 8}]
    ids = centers + probes
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "loss": loss_of(ids)}), world.dir / "losses.parquet")
    run("score", clusters, "--losses", world.dir / "losses.parquet", "-o", world.dir / "by_file.parquet")
    a, b = pq.read_table(world.dir / "scores.parquet"), pq.read_table(world.dir / "by_file.parquet")
    assert a.select(["id", "proxy_loss", "mass", "prob"]).equals(b.select(["id", "proxy_loss", "mass", "prob"]))
    meta = io.read_meta(world.dir / "scores.parquet")
    assert meta["params"]["loss_command"] == world.cmd() and meta["params"]["shell"] is False
    assert "loss_command:" + str(world.scorer) in meta["inputs"]  # the scorer named in CMD is fingerprinted


def test_one_step_sample_estimate_asks_k_plus_probes_then_the_selected_rows_and_equals_the_pipeline(world):
    d = world.dir
    r = run("sample", "--k", 4, "--probes", 2, "--size", 30, "--seed", 0, world.emb, "--loss-command", world.cmd(),
            "--estimate", "--centers", d / "centers.parquet", "--keep-intermediate", d / "work", "-o",
            d / "selected.parquet")
    rep = io.read_meta(d / "selected.parquet")["summary"]
    asked = world.asked()
    centers = pq.read_table(d / "centers.parquet").column("center_id").to_pylist()
    kept = pq.read_table(d / "work" / "clusters.parquet")
    probes = kept.filter(kept.column("probe")).column("id").to_pylist()
    selected = pq.read_table(d / "selected.parquet")
    assert [a["purpose"] for a in asked] == ["centers", "probes", "selected"]
    assert asked[0]["ids"] == centers and asked[1]["ids"] == probes  # exactly k + probes, in that order
    assert asked[2]["ids"] == selected.column("id").to_pylist()      # then the s selected rows, and nothing more
    assert len(centers) == 4 and len(probes) == 8
    assert rep["oracle"]["queries"] == 4 + 8 + selected.num_rows
    # the five-command pipeline with losses files gives the same selection and the same estimate
    run("cluster", world.emb, "-o", d / "c.parquet", "--k", 4, "--probes", 2, "--seed", 0)
    ids = centers + probes
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "loss": loss_of(ids)}), d / "cl.parquet")
    run("score", d / "c.parquet", "--losses", d / "cl.parquet", "-o", d / "s.parquet")
    run("sample", d / "s.parquet", "--size", 30, "--seed", 0, "-o", d / "sel.parquet")
    by_hand = pq.read_table(d / "sel.parquet")
    assert by_hand.select(["id", "count", "weight"]).equals(selected.select(["id", "count", "weight"]))
    sid = by_hand.column("id").to_numpy()
    pq.write_table(pa.table({"id": sid, "loss": loss_of(sid)}), d / "sl.parquet")
    est = json.loads(run("estimate", d / "sel.parquet", "--losses", d / "sl.parquet", "--json").stdout)
    assert rep["estimate"]["estimate_mean"] == est["estimate_mean"]
    assert rep["estimate"]["clt_interval"] == est["clt_interval"]
    text = r.stdout
    assert f"estimated mean loss {est['estimate_mean']:.6g}" in text
    assert f"loss queries: {12 + selected.num_rows} = 4 centers + 8 probes + {selected.num_rows} selected, asked of" \
        in text


def test_estimate_asks_every_selected_row_once(world):
    d = world.dir
    run("sample", "--k", 4, "--size", 25, world.emb, "-o", d / "sel.parquet")
    r = json.loads(run("estimate", d / "sel.parquet", "--loss-command", world.cmd(), "--json").stdout)
    ids = pq.read_table(d / "sel.parquet").column("id").to_pylist()
    assert [(a["purpose"], a["ids"]) for a in world.asked()] == [("selected", ids)]
    assert r["oracle"]["queries"] == len(ids)
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "loss": loss_of(ids)}), d / "sl.parquet")
    by_file = json.loads(run("estimate", d / "sel.parquet", "--losses", d / "sl.parquet", "--json").stdout)
    assert r["estimate_mean"] == by_file["estimate_mean"] and r["clt_interval"] == by_file["clt_interval"]


def test_data_columns_travel_with_the_asked_ids(world, clusters):
    ids = np.arange(100, 220)
    (world.dir / "data.csv").write_text("id,x,label\n" + "".join(f"{i},{i / 1000},{i % 3}\n" for i in ids))
    r = run("score", clusters, "--loss-command", world.cmd("data"), "--data", world.dir / "data.csv", "-o",
            world.dir / "scores.parquet", "--json")
    asked = world.asked()
    assert asked[0]["columns"] == ["id", "x", "label"]
    centers, _ = _centers_and_probes(clusters)
    center_loss = io.read_meta(world.dir / "scores.parquet")["summary"]["clusters"]["center_loss"]
    np.testing.assert_allclose(center_loss, np.array(centers) / 1000)  # the scorer's loss is the data's x
    assert "data" in io.read_meta(world.dir / "scores.parquet")["inputs"]
    assert json.loads(r.stdout)["oracle"]["queries"] == 12
    (world.dir / "part.csv").write_text("id,x\n" + "".join(f"{i},0.5\n" for i in ids if i != centers[0]))
    r = run("score", clusters, "--loss-command", world.cmd("data"), "--data", world.dir / "part.csv", "-o",
            world.dir / "s2.parquet", code=2)
    assert f"part.csv: 1 centers row id has no row here: {centers[0]}; --data must hold every row" in r.stderr
    assert len(world.asked()) == 2  # refused before the scorer ran


def test_one_step_sample_passes_data_columns_to_the_scorer(world):
    ids = np.arange(100, 220)
    (world.dir / "data.csv").write_text("id,x\n" + "".join(f"{i},{i / 1000}\n" for i in ids))
    run("sample", world.emb, "--k", 4, "--probes", 1, "--size", 10, "--loss-command", world.cmd("data"), "--data",
        world.dir / "data.csv", "--estimate", "-o", world.dir / "sel.parquet")
    asked = world.asked()
    assert [a["purpose"] for a in asked] == ["centers", "probes", "selected"]
    assert all(a["columns"] == ["id", "x"] for a in asked)
    assert "data" in io.read_meta(world.dir / "sel.parquet")["inputs"]


def test_shell_runs_the_command_through_sh(world, clusters):
    cmd = world.cmd() + " && echo scored >&2"
    r = run("score", clusters, "--loss-command", cmd, "-o", world.dir / "x.parquet", code=2)  # no shell: && is a word
    assert "its stderr ends: usage: scorer.py MODE IN OUT" in r.stderr
    r = run("score", clusters, "--loss-command", cmd, "--shell", "-o", world.dir / "x.parquet")
    assert "[loss-command] scored" in r.stderr
    assert io.read_meta(world.dir / "x.parquet")["params"]["shell"] is True


def test_resume_and_loss_batch(world, clusters):
    """--resume skips while the command and the files it names are the same; --loss-batch splits the queries
    into runs and changes no byte (it is not recorded)."""
    out = world.dir / "scores.parquet"
    run("score", clusters, "--loss-command", world.cmd(), "-o", out)
    r = run("score", clusters, "--loss-command", world.cmd(), "-o", out, "--resume")
    assert "up to date, skipped" in r.stdout and len(world.asked()) == 2  # the scorer did not run again
    run("score", clusters, "--loss-command", world.cmd(), "--loss-batch", 3, "-o", world.dir / "batched.parquet")
    asked = world.asked()[2:]
    assert [(a["purpose"], len(a["ids"])) for a in asked] == [("centers", 3), ("centers", 1), ("probes", 3),
                                                              ("probes", 3), ("probes", 2)]
    centers, probes = _centers_and_probes(clusters)
    assert [i for a in asked for i in a["ids"]] == centers + probes
    assert (world.dir / "batched.parquet").read_bytes() == out.read_bytes()
    run("score", clusters, "--loss-command", world.cmd() + " ", "-o", out, "--resume")  # another command line
    assert len(world.asked()) == 9
    world.scorer.write_text(SCORER + "\n# changed\n")
    run("score", clusters, "--loss-command", world.cmd(), "-o", out, "--resume")  # the scorer it names changed
    assert len(world.asked()) == 11


# --------------------------------------------------------------------------- failures: exit 2, one line, no output


def _fails(world, clusters, mode, *extra):
    out = world.dir / "scores.parquet"
    r = run("score", clusters, "--loss-command", world.cmd(mode), *extra, "-o", out, code=2)
    assert not out.exists() and not list(world.dir.glob("*.tmp*"))
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --loss-command '") and world.cmd(mode) in lines[-1]
    return lines[-1]


def test_a_failing_command_is_named_with_its_exit_status_and_stderr_tail(world, clusters):
    msg = _fails(world, clusters, "fail")
    assert "(centers, 4 ids) failed: exit status 3" in msg
    assert "its stderr ends: loading model.pt | RuntimeError: model exploded" in msg
    assert "(centers, 4 ids) failed: killed by SIGKILL; run it by hand" in _fails(world, clusters, "killed")


@pytest.mark.parametrize("mode, expect", [
    ("missing", "1 centers row id has no row here"),
    ("extra", "has 1 ids that were not asked for: 999999"),
    ("dup", "duplicate ids"),
    ("nan", "NaN or infinite value at row 0"),
    ("negative", "is negative at row 3"),
    ("none", "exited 0 but wrote no file at {out}"),
    ("columns", "missing column 'loss'"),
    ("strings", "has string ids, the request int64 ids"),
])
def test_bad_output_is_refused_naming_the_problem(world, clusters, mode, expect):
    msg = _fails(world, clusters, mode)
    assert expect in msg, msg
    assert "(centers, 4 ids)" in msg


def test_timeout_kills_the_child_and_says_so(world, clusters):
    t0 = time.monotonic()
    # long enough for the scorer to start and write its pid on a loaded machine (it imports pyarrow first)
    msg = _fails(world, clusters, "sleep", "--loss-timeout", "5")
    assert time.monotonic() - t0 < 40
    assert "timed out after 5 s (--loss-timeout) and was killed" in msg
    pid = int(Path(str(world.log) + ".pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


@pytest.mark.parametrize("args, expect", [
    (["--loss-command", "python score.py {in} out.parquet"], "has no {out}"),
    (["--loss-command", "python score.py"], "has no {in} and no {out}"),
    (["--loss-command", "no-such-scorer-xyz {in} {out}"], "'no-such-scorer-xyz' is not a command on PATH"),
    (["--loss-command", "python 'score.py {in} {out}"], "cannot be split into words"),
    (["--loss-command", "python s.py {in} {out}", "--losses", "l.parquet"], "give --losses FILE or --loss-command"),
    (["--shell"], "--shell applies to --loss-command"),
    (["--loss-batch", "5"], "--loss-batch applies to --loss-command"),
    (["--data", "d.csv"], "--data applies to --loss-command"),
    (["--loss-command", "python s.py {in} {out}", "--loss-timeout", "0"], "--loss-timeout must be a positive"),
])
def test_usage_errors_come_before_any_work(world, args, expect):
    r = run("score", world.dir / "clusters.parquet", *args, "-o", world.dir / "s.parquet", code=2)  # no file read
    assert expect in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not world.asked()


def test_sample_and_estimate_refuse_what_they_cannot_ask(world):
    d = world.dir
    r = run("sample", "--k", 4, world.emb, "--estimate", "-o", d / "s.parquet", code=2)
    assert "--estimate asks for the selected rows' losses" in r.stderr
    run("sample", "--k", 4, "--size", 20, world.emb, "-o", d / "sel.parquet", "--keep-intermediate", d / "w")
    r = run("sample", d / "w" / "scores.parquet", "--size", 10, "--loss-command", world.cmd(), "-o", d / "x.parquet",
            code=2)
    assert "add --estimate" in r.stderr
    r = run("estimate", d / "sel.parquet", code=2)
    assert "give --losses FILE or --loss-command CMD" in r.stderr
    r = run("sample", "--k", 4, "--size", 20, world.emb, "--loss-max", 3, "-o", d / "y.parquet", code=2)
    assert "--loss-max bounds the losses of --estimate" in r.stderr
    assert not world.asked()


def test_a_scores_file_with_estimate_asks_only_the_selected_rows(world):
    d = world.dir
    run("sample", "--k", 4, "--size", 20, world.emb, "-o", d / "sel0.parquet", "--keep-intermediate", d / "w")
    r = json.loads(run("sample", d / "w" / "scores.parquet", "--size", 15, "--loss-command", world.cmd(),
                       "--estimate", "-o", d / "sel.parquet", "--json").stdout)
    assert [a["purpose"] for a in world.asked()] == ["selected"]
    assert r["oracle"]["queries"] == r["selected_rows"] and "estimate_mean" in r["estimate"]


# --------------------------------------------------------------------------- real processes: stdout, Ctrl-C


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default, so that Python turns it into KeyboardInterrupt even
    when the tests run in the background (a shell starts background jobs with SIGINT ignored, and a Python started
    with SIGINT ignored keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dataselect_cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint, **kw)


def test_a_chatty_scorer_never_reaches_the_json_on_stdout(world, clusters):
    p = _cli("score", clusters, "--loss-command", world.cmd("chatty"), "-o", world.dir / "s.parquet", "--json")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert json.loads(out)["oracle"]["queries"] == 12  # stdout is exactly one JSON object
    assert "scoring row 199 {not json}" in err  # the scorer's stdout went to our stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_kills_the_childs_process_group(world, clusters, sig, code):
    out = world.dir / "s.parquet"
    p = _cli("score", clusters, "--loss-command", world.cmd("sleep"), "-o", out)
    pid_file = Path(str(world.log) + ".pid")
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert os.getpgid(child) == child  # the scorer leads a process group of its own
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    assert "no output was written" in err and not out.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(child, 0)  # the whole group is gone


# --------------------------------------------------------------------------- the library


def test_command_oracle_in_python(world, tmp_path):
    o = CommandOracle(world.cmd(), batch=2)
    ids = pa.array([105, 100, 117], pa.int64())
    np.testing.assert_array_equal(o.query(ids, "selected"), loss_of([105, 100, 117]))
    assert o.calls == 2 and o.queries == 3
    assert o.params() == {"loss_command": world.cmd(), "shell": False}
    with pytest.raises(InputError, match="has no {in}"):
        CommandOracle("cat {out}")


def test_the_example_scorer_on_the_digits(tmp_path):
    """sample_data/score_rows.py, the demo's scorer, gives sample_data/oracle.py's losses for the rows asked."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("oracle", ROOT / "sample_data" / "oracle.py")
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    o = CommandOracle(f"{sys.executable} {ROOT / 'sample_data' / 'score_rows.py'} {{in}} {{out}}",
                      data=str(ROOT / "sample_data" / "digits.parquet"))
    ids = pa.array([17, 3, 1200], pa.int64())
    digits = pq.read_table(ROOT / "sample_data" / "digits.parquet").take(pa.array([17, 3, 1200]))
    pixels = np.asarray(digits.column("pixels").combine_chunks().flatten()).reshape(-1, 64).astype(np.float64)
    np.testing.assert_allclose(o.query(ids, "centers"), oracle.cross_entropy(pixels, digits.column("label").to_numpy()))
    bare = CommandOracle(f"{sys.executable} {ROOT / 'sample_data' / 'score_rows.py'} {{in}} {{out}}")
    with pytest.raises(InputError, match="run dataselect with --data sample_data/digits.parquet"):
        bare.query(ids, "centers")


# --------------------------------------------------------------------------- the variants that query as they go


def test_adaptive_rounds_ask_the_command_round_by_round_unattended(world):
    d = world.dir
    r = run("sample", world.emb, "--k", 3, "--rounds", 2, "--size", 20, "--seed", 0, "--loss-command", world.cmd(),
            "--centers", d / "order.parquet", "-o", d / "selected.parquet", "--json")
    asked = world.asked()
    order = pq.read_table(d / "order.parquet").column("center_id").to_pylist()
    assert [(a["purpose"], a["ids"]) for a in asked] == [("round 1", order[:3]), ("round 2", order[3:6])]
    meta = io.read_meta(d / "selected.parquet")
    assert meta["params"]["loss_command"] == world.cmd()
    assert json.loads(r.stdout)["rounds"][-1]["queries"] == 6
    # the same rounds from a losses file holding those rows draw the same selection
    pq.write_table(pa.table({"id": pa.array(order, pa.int64()), "loss": loss_of(order)}), d / "l.parquet")
    run("sample", world.emb, "--k", 3, "--rounds", 2, "--size", 20, "--seed", 0, "--losses", d / "l.parquet",
        "-o", d / "by_file.parquet")
    cols = ["id", "count", "weight"]
    assert pq.read_table(d / "by_file.parquet").select(cols).equals(pq.read_table(d / "selected.parquet").select(cols))


def test_the_bandit_asks_the_command_within_its_budget(world, clusters):
    d = world.dir
    r = run("bandit", clusters, "--loss-command", world.cmd(), "--budget-queries", 20, "--size", 10, "--seed", 1,
            "-o", d / "selected.parquet", "--json")
    asked = world.asked()
    ids = [i for a in asked for i in a["ids"]]
    assert 0 < len(ids) <= 20 and len(set(ids)) == len(ids)  # never over the budget, no row asked twice
    assert all(a["purpose"].startswith("bandit round") for a in asked)
    assert json.loads(r.stdout)["queries"] == len(ids)
    assert io.read_meta(d / "selected.parquet")["params"]["oracle"]["loss_command"] == world.cmd()
