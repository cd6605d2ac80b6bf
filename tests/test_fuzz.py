"""Property-based fuzzing of the readers and the CLI (hypothesis).

Every generated input must give either a correct result (exit 0, a valid output) or exit 2 with
one clear line and no output; never a traceback, an internal error (exit 1), a hang or a
silently wrong file.
"""

from __future__ import annotations

import io as stdio
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from dataselect_cli.cli import app

runner = CliRunner()
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def invoke(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code in (0, 2), f"exit {r.exit_code}: {r.stderr}"
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if r.exit_code == 2:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return r


def _fresh(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(min_size=0, max_size=400))
def test_random_bytes_are_refused(tmp_path_factory, data):
    d = _fresh(tmp_path_factory)
    (d / "x.parquet").write_bytes(data)
    for cmd in (["cluster", d / "x.parquet", "-o", d / "c.parquet", "--k", 2],
                ["sample", d / "x.parquet", "-o", d / "s.parquet"],
                ["estimate", d / "x.parquet", "--losses", d / "x.parquet"]):
        r = invoke(*cmd)
        assert r.exit_code == 2
    assert not (d / "c.parquet").exists() and not (d / "s.parquet").exists()


def _valid_file(n=40, d=3) -> bytes:
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    buf = stdio.BytesIO()
    pq.write_table(pa.table({"id": np.arange(n), "embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(x.ravel()), d)}), buf, row_group_size=7)
    return buf.getvalue()


VALID = _valid_file()


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(VALID) - 1))
def test_truncated_parquet_is_refused(tmp_path_factory, cut):
    d = _fresh(tmp_path_factory)
    (d / "x.parquet").write_bytes(VALID[:cut])
    r = invoke("cluster", d / "x.parquet", "-o", d / "c.parquet", "--k", 2)
    assert r.exit_code == 2 and not (d / "c.parquet").exists()


FLOATS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32),
    st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1e-38, 3e38, -3e38, 1e20, float("nan"), float("inf")]),
)


@st.composite
def embeddings(draw):
    n = draw(st.integers(1, 25))
    d = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["random", "identical", "zero", "few"]))
    if kind == "random":
        vals = draw(st.lists(FLOATS, min_size=n * d, max_size=n * d))
        x = np.array(vals, dtype=np.float64).reshape(n, d)
    elif kind == "identical":
        x = np.tile(np.array(draw(st.lists(FLOATS, min_size=d, max_size=d)), dtype=np.float64), (n, 1))
    elif kind == "zero":
        x = np.zeros((n, d))
    else:  # two distinct points repeated
        a, b = (np.array(draw(st.lists(FLOATS, min_size=d, max_size=d))) for _ in range(2))
        x = np.where(np.arange(n)[:, None] % 2 == 0, a, b).astype(np.float64)
    vtype = draw(st.sampled_from(["f32", "f16", "f64list", "f64fixed"]))
    id_kind = draw(st.sampled_from(["int", "str", "uint64", "long_unicode"]))
    if id_kind == "int":
        ids = pa.array(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n, unique=True)),
                       pa.int64())
    elif id_kind == "uint64":
        top = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1])  # the edges of int64
        ids = pa.array(draw(st.lists(st.one_of(top, st.integers(0, 2**64 - 1)), min_size=n, max_size=n, unique=True)),
                       pa.uint64())
    elif id_kind == "str":
        ids = pa.array(draw(st.lists(st.text(min_size=0, max_size=8), min_size=n, max_size=n, unique=True)))
    else:
        ids = pa.array([f"{'é' * 300}-{i}-{'🦀' * 50}" for i in range(n)])
    k = draw(st.integers(1, n))
    return x, vtype, ids, k


def _column(x: np.ndarray, vtype: str) -> pa.Array:
    n, d = x.shape
    if vtype == "f32":
        with np.errstate(over="ignore"):
            return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), d)
    if vtype == "f16":
        with np.errstate(over="ignore"):
            return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float16).ravel()), d)
    if vtype == "f64fixed":
        return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), d)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), pa.array(x.ravel()))


@FUZZ
@given(case=embeddings(), seed=st.integers(0, 3))
def test_one_step_sample_is_right_or_refused(tmp_path_factory, case, seed):
    x, vtype, ids, k = case
    d = _fresh(tmp_path_factory)
    pq.write_table(pa.table({"id": ids, "embedding": _column(x, vtype)}), d / "emb.parquet")
    out = d / "sel.parquet"
    r = invoke("sample", d / "emb.parquet", "--k", k, "--size", 7, "--seed", seed, "--design", "iid", "-o", out, "-q",
               "--keep-intermediate", d / "kept")
    if r.exit_code == 2:
        assert not out.exists()
        return
    sel = pq.read_table(out)
    w = sel.column("weight").to_numpy()
    p = sel.column("prob").to_numpy()
    count = sel.column("count").to_numpy()
    assert np.isfinite(w).all() and (w > 0).all() and np.isfinite(p).all() and (p > 0).all()
    assert count.sum() == 7
    assert set(sel.column("id").to_pylist()) <= set(ids.cast(pa.int64() if pa.types.is_integer(ids.type)
                                                                else pa.string()).to_pylist())
    # the selection agrees with the scores it was drawn from: each row's prob is its prob there, that
    # prob sums to 1 over all rows, and its weight is count/(s·p) (what makes Σ w·ℓ unbiased)
    scores = pq.read_table(d / "kept" / "scores.parquet")
    all_prob = scores.column("prob").to_numpy()
    assert math.isclose(math.fsum(all_prob.tolist()), 1.0, rel_tol=1e-9)
    at = dict(zip(scores.column("id").to_pylist(), all_prob.tolist()))
    np.testing.assert_array_equal(p, [at[i] for i in sel.column("id").to_pylist()])
    np.testing.assert_allclose(w, count / (7 * p), rtol=1e-15)


@FUZZ
@given(kind=st.sampled_from(["int32_vs_int64", "str_vs_int"]), n=st.integers(2, 10))
def test_ids_that_collide_only_after_coercion(tmp_path_factory, kind, n):
    """Files of a directory whose id types differ are refused; a losses file with ids of another
    type than the data is refused, never matched by coercion."""
    d = _fresh(tmp_path_factory)
    x = np.random.default_rng(n).normal(size=(2 * n, 2)).astype(np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)
    (d / "dir").mkdir()
    if kind == "int32_vs_int64":
        pq.write_table(pa.table({"id": pa.array(range(n), pa.int32()), "embedding": emb.slice(0, n)}),
                       d / "dir" / "a.parquet")
        pq.write_table(pa.table({"id": pa.array(range(n), pa.int64()), "embedding": emb.slice(n)}),
                       d / "dir" / "b.parquet")
        r = invoke("cluster", d / "dir", "-o", d / "c.parquet", "--k", 1)
        assert r.exit_code == 2 and "a.parquet" in r.stderr and "b.parquet" in r.stderr
    else:
        pq.write_table(pa.table({"id": pa.array(range(2 * n), pa.int64()), "embedding": emb}), d / "emb.parquet")
        invoke("cluster", d / "emb.parquet", "-o", d / "c.parquet", "--k", 1)
        centers = pq.read_table(d / "c.centers.parquet")
        pq.write_table(pa.table({"id": pa.array([str(v) for v in centers.column("center_id").to_pylist()]),
                                 "loss": pa.array([1.0])}), d / "losses.parquet")
        r = invoke("score", d / "c.parquet", "--losses", d / "losses.parquet", "-o", d / "s.parquet")
        assert r.exit_code == 2 and "same id type" in r.stderr
        assert not (d / "s.parquet").exists()


@FUZZ
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)), min_size=1,
                       max_size=6))
def test_losses_values(tmp_path_factory, values):
    d = _fresh(tmp_path_factory)
    n = len(values)
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    pq.write_table(pa.table({"id": np.arange(n), "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()),
                                                                                                 2)}), d / "e.parquet")
    invoke("cluster", d / "e.parquet", "-o", d / "c.parquet", "--k", n)
    pq.write_table(pa.table({"id": np.arange(n), "loss": pa.array([float(v) for v in values])}), d / "l.parquet")
    r = invoke("score", d / "c.parquet", "--losses", d / "l.parquet", "-o", d / "s.parquet")
    ok = all(math.isfinite(v) and v >= 0 for v in values)
    assert (r.exit_code == 0) == ok, r.stderr
    if ok:
        s = pq.read_table(d / "s.parquet")
        assert abs(sum(s.column("prob").to_pylist()) - 1) < 1e-9 or sum(values) == 0
