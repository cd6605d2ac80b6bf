"""The one-pass read of a dynamics table sorted by (id, run, checkpoint) (issue 13's speed aim): the same bytes, the
same errors and the same behaviour for every block size as the two passes, a fallback to them for a table that
breaks its layout, and VoG's O(D) running state."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import dyntable
from dataselect_cli.methods import get as get_method
from dataselect_cli.methods import vog as vog_mod
from dataselect_cli.methods.base import Inputs
from dataselect_cli.steps import influence
from dataselect_cli.steps.common import Scale

METHODS = ["loss", "el2n", "grand", "margin", "entropy", "least-confidence", "forgetting", "aum", "data-map",
           "tracin-self", "pvi", "vog"]
VEC = {"logits": 3, "null_logits": 3, "input_grad": 4}


def rows_of(n=30, runs=2, k=4, seed=5, sid=False):
    rng = np.random.default_rng(seed)
    return [{"id": f"e{i:03d}" if sid else 3 * i + 1, "run": r, "checkpoint": c, "epoch": 0.5 * c,
             "label": i % 3, "loss": float(rng.random()), "grad_sqnorm": float(rng.random()), "lr": 0.1 * (c + 1),
             **{name: rng.normal(size=w).tolist() for name, w in VEC.items()}}
            for i in range(n) for r in range(runs) for c in range(k)]


def write(path, rows, row_group=None):
    types = {"id": pa.string() if isinstance(rows[0]["id"], str) else pa.int64(), "run": pa.int32(),
             "checkpoint": pa.int32(), "epoch": pa.float64(), "label": pa.int32(), "loss": pa.float32(),
             "grad_sqnorm": pa.float32(), "lr": pa.float32(), **{n: pa.list_(pa.float32(), w) for n, w in VEC.items()}}
    schema = pa.schema([(name, types[name]) for name in rows[0]])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group)
    return str(path)


def score(path, method, block_rows, two_passes, **params):
    """(table, summary) of ``method`` on a dynamics table, in one pass when it can be or in two."""
    m = get_method(method, **params)
    inputs = Inputs(dynamics=dyntable.open_dynamics(path))
    scale = Scale(block_rows=block_rows)
    if two_passes:
        inputs.keys = influence.key_pass(inputs.dynamics, scale)
    return influence.run_example_score(m, inputs, scale=scale)


@pytest.fixture
def counted(monkeypatch):
    """How many times the key pass (the first of the two passes) runs."""
    calls = []
    real = influence.key_pass

    def key_pass(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(influence, "key_pass", key_pass)
    return calls


@pytest.mark.parametrize("method", METHODS)
def test_one_pass_gives_the_bytes_of_the_two_passes(tmp_path, method, counted):
    path = write(tmp_path / "d.parquet", rows_of(), row_group=50)
    want, want_summary = score(path, method, 65536, True)
    for b in (1, 7, 65536):
        got, summary = score(path, method, b, False)
        assert got.equals(want) and summary == want_summary, (method, b)
    assert len(counted) == 1  # the reference's: the one-pass runs never needed it


def test_string_ids_and_a_single_run_without_a_run_column(tmp_path, counted):
    for rows in (rows_of(sid=True), [{k: v for k, v in r.items() if k != "run"} for r in rows_of(runs=1)]):
        path = write(tmp_path / "d.parquet", rows)
        for method in ("el2n", "data-map", "vog"):
            assert score(path, method, 5, False)[0].equals(score(path, method, 5, True)[0])
    assert len(counted) == 6


@pytest.mark.parametrize("cut", [0.0, 0.6, 0.98])
def test_a_table_that_breaks_its_layout_is_read_in_two_passes(tmp_path, cut, counted):
    """Sorted up to ``cut`` of the rows, then reversed: the one pass stops at the first block that breaks the layout
    and the two passes give the scores (the same as when they are asked for)."""
    rows = rows_of()
    at = int(len(rows) * cut)
    path = write(tmp_path / "d.parquet", rows[:at] + rows[at:][::-1])
    for method in ("aum", "vog"):
        for b in (7, 65536):
            got, _ = score(path, method, b, False)
            assert got.equals(score(path, method, b, True)[0])
    assert len(counted) == 8


def test_no_layout_for_a_table_whose_ids_come_back(tmp_path):
    rows = rows_of(n=6, runs=1, k=3)
    path = write(tmp_path / "ck.parquet", sorted(rows, key=lambda r: (r["checkpoint"], r["id"])), row_group=6)
    assert dyntable.sorted_layout(dyntable.open_dynamics(path)) is None  # from the row groups' statistics
    path = write(tmp_path / "s.parquet", rows)
    layout = dyntable.sorted_layout(dyntable.open_dynamics(path))
    assert layout.runs.tolist() == [0] and layout.checkpoints.tolist() == [0, 1, 2] and layout.n == 6


def _mod(rows, j, **kw):
    rows = [dict(r) for r in rows]
    rows[j] = {**rows[j], **kw}
    return rows


BAD = {
    "nan early, duplicate late": lambda r: _mod(r, 5, logits=[math.nan, 0, 0])[:41] + [dict(r[40])] + r[42:],
    "nan early, duplicate at the end": lambda r: _mod(r, 5, logits=[math.nan, 0, 0]) + [dict(r[40])],
    "nan late": lambda r: _mod(r, 50, logits=[0, math.inf, 0]),
    "nan at another checkpoint": lambda r: _mod(r, 2, logits=[math.nan, 0, 0]),
    "nan early, checkpoint missing late": lambda r: _mod(_mod(r, 2, logits=[math.nan, 0, 0]), -1, checkpoint=9),
    "nan early, last row missing": lambda r: _mod(r, 2, logits=[math.nan, 0, 0])[:-1],
    "nan early, rows unsorted late": lambda r: _mod(r[:48] + r[56:64] + r[48:56] + r[64:], 1, logits=[math.nan, 0, 0]),
    "duplicate adjacent": lambda r: r[:10] + [dict(r[9])] + r[10:],
    "extra checkpoint late": lambda r: r + [{**r[-1], "checkpoint": 7}],
    "extra run late": lambda r: r + [{**x, "run": 5} for x in r[-4:]],
    "checkpoint missing mid": lambda r: r[:20] + r[21:],
    "label conflict": lambda r: _mod(r, 18, label=1),
    "label conflict then nan": lambda r: _mod(_mod(r, 40, label=0), 3, logits=[math.nan, 0, 0]),
    "label out of range": lambda r: _mod(r, 20, label=7),
    "checkpoint out of range": lambda r: _mod(r, 22, checkpoint=-1),
    "null id": lambda r: _mod(r, 24, id=None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_same_errors_in_one_pass_and_in_two(tmp_path, case, monkeypatch):
    """A bad sorted table: exit 2 with the same one line whether it is read in one pass or in two, for every block
    size, and nothing written (a value error found in the one pass waits until every key is checked)."""
    path = write(tmp_path / "bad.parquet", BAD[case](rows_of(n=12, runs=2, k=4)))
    out = tmp_path / "out.parquet"
    for b in (1, 3, 65536):
        args = ("score", "--method", "el2n", "--dynamics", path, "-o", out, "--block-rows", b)
        one = run(*args, code=2).stderr
        with monkeypatch.context() as m:
            m.setattr(influence, "one_pass", lambda *a, **k: None)
            two = run(*args, code=2).stderr
        assert one == two and one.startswith("error: ") and one.count("\n") == 1, (case, b, one, two)
        assert not out.exists()


def test_vog_keeps_a_running_mean_and_variance_per_open_pair():
    """Welford's update in the Reducer: an (id, run) whose rows are not all read holds 2·D float64 numbers (not its
    K gradients); the values match the two-pass formula (1/K)·Σ(g − μ)² to 1e-12, whatever the blocks."""
    rng = np.random.default_rng(0)
    n, runs, k, d = 7, 2, 5, 6
    g = rng.normal(size=(n, runs, k, d)).astype(np.float32)
    o, r, c = (a.reshape(-1) for a in np.meshgrid(np.arange(n), np.arange(runs), np.arange(k), indexing="ij"))
    order = np.lexsort((o, r, c))  # checkpoint-major: every pair open until the last checkpoint
    method = vog_mod.VoG("std", "none")
    want = None
    for block in (1, 4, len(order)):
        red = influence.Reducer(method.stats, n, runs, k, None, method.spread)
        most = 0
        for lo in range(0, len(order), block):
            j = order[lo:lo + block]
            red.add(o[j], r[j], c[j], {"input_grad": g[o[j], r[j], c[j]]})
            held = red.open["input_grad"]
            assert held[2].shape[1:] == (d,) and held[2].dtype == np.float64 and len(held) == 4
            most = max(most, len(held[0]))
        assert most == (n * runs if block < len(order) else 0) and len(red.open["input_grad"][0]) == 0
        got = red.result()["input_grad"]
        if want is None:
            x = g.astype(np.float64)
            want = np.sqrt(((x - x.mean(axis=2, keepdims=True)) ** 2).mean(axis=2)).mean(axis=2)
            np.testing.assert_allclose(got, want, rtol=1e-12)
            first = got
        assert np.array_equal(got, first)  # the same bytes whatever the block size
