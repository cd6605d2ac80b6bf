"""The architecture's promises: registries that --help lists, one design and method path for every
caller, no import circles, and the review's bugs (issue 11) fixed for good."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import api, designs, methods
from dataselect_cli.errors import InputError
from dataselect_cli.io import embedding_array

PKG = Path(__file__).resolve().parent.parent / "dataselect_cli"


@pytest.fixture
def emb(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 4)) + 5 * rng.integers(0, 3, size=(300, 1))).astype(np.float32)
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"id": np.arange(300, dtype=np.int64), "embedding": embedding_array(x)}), path)
    return path


# --------------------------------------------------------------------------- registries


def test_help_lists_every_registered_method_and_design():
    # the help wraps lines at hyphens too ("dsir-" / "clusters:"): join such breaks back
    score_help = " ".join(run("score", "--help").stdout.split()).replace("- ", "-")
    sample_help = " ".join(run("sample", "--help").stdout.split()).replace("- ", "-")
    for name, cls in methods.REGISTRY.items():
        assert f"{name}:" in score_help and f"{name}:" in sample_help
        assert cls.summary and cls.name == name
    for name, cls in designs.REGISTRY.items():
        assert f"{name}:" in sample_help and cls.summary and cls.name == name


@pytest.mark.parametrize("args, frag", [(["--design", "nosuch"], "--design must be one of iid"),
                                        (["--method", "nosuch"], "--method must be one of sensitivity")])
def test_unknown_names_are_refused(emb, tmp_path, args, frag):
    r = run("sample", emb, "--k", 3, "-o", tmp_path / "s.parquet", *args, code=2)
    assert frag in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "s.parquet").exists()


#: The parameters a design needs to be made at all (the others have defaults).
REQUIRED = {"threshold": {"threshold": 2.0}}


@pytest.mark.parametrize("name", list(designs.REGISTRY))
def test_design_contract(name):
    """Every design: distinct sorted rows, positive finite weights, deterministic, and Σ w·ℓ unbiased
    over 300 seeds (within 4 standard errors of the spread observed over the seeds) when the design
    says so; a design that does not (``top``, …) refuses to estimate, with one line."""
    design = designs.get(name, **REQUIRED.get(name, {}))
    rng = np.random.default_rng(1)
    mass = rng.gamma(2.0, 1.0, 500)
    loss = mass * rng.uniform(0.5, 1.5, 500)
    strata = np.arange(500) % 5
    a = design.draw_arrays(mass, 40, seed=3, block_rows=64, cluster=strata)
    b = design.draw_arrays(mass, 40, seed=3, block_rows=64, cluster=strata)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.weight, b.weight)
    assert np.all(np.diff(a.index) > 0) and np.all(np.isfinite(a.weight)) and np.all(a.weight > 0)
    if not design.unbiased:
        with pytest.raises(InputError, match="does not estimate the full loss"):
            design.estimate(loss[a.index], {"count": a.count, "prob": a.prob, "weight": a.weight}, len(mass))
        return
    est = []
    for seed in range(300):
        d = design.draw_arrays(mass, 40, seed=seed, block_rows=64, cluster=strata)
        e = design.estimate(loss[d.index], {"count": d.count, "prob": d.prob, "weight": d.weight,
                                            "cluster": d.columns["cluster"]}, len(mass))
        assert math.isclose(e.total, float(np.sum(d.weight * loss[d.index])), rel_tol=1e-12)
        est.append(e.total)
    est = np.array(est)
    z = (est.mean() - loss.sum()) / (est.std(ddof=1) / math.sqrt(len(est)))
    assert abs(z) < 4, f"z = {z:.2f}"


def _example_method_contract(name, tmp_path, emb):
    """A per-example method: id, score (float64), label (int32), its declared columns, all finite; no cluster,
    mass or prob; the summary names n, method, direction and normalization."""
    from test_influence_scores import _big_dyn

    dyn, _ = _big_dyn(tmp_path, shuffle=False)
    extra = ["--embeddings", emb] if name == "leverage" else ["--dynamics", dyn]
    run("score", "--method", name, *extra, "-o", tmp_path / "s.parquet")
    cls = methods.REGISTRY[name]
    t = pq.read_table(tmp_path / "s.parquet")
    label = [] if name == "leverage" else ["label"]
    assert t.column_names == ["id", "score", *label, *cls.columns]
    assert t.schema.field("score").type == pa.float64() and (not label or t.schema.field("label").type == pa.int32())
    for c in ["score", *cls.columns]:
        assert np.isfinite(t.column(c).to_numpy()).all()
    meta = __import__("json").loads(t.schema.metadata[b"dataselect"])
    assert meta["params"]["method"] == name and meta["summary"]["method"] == name
    assert meta["summary"]["direction"] in ("higher=harder", "higher=easier")
    assert {"n", "normalization"} <= set(meta["summary"])


@pytest.mark.parametrize("name", list(methods.REGISTRY))
def test_method_contract(name, tmp_path, emb):
    """Every method writes id, its passthrough columns and its declared columns, finite, and records its name."""
    if issubclass(methods.REGISTRY[name], methods.ExampleMethod):
        return _example_method_contract(name, tmp_path, emb)
    cls = methods.REGISTRY[name]
    if "text" in cls.inputs:  # dsir: a text corpus toward a target corpus
        for f, words in (("raw", "a b c d e f"), ("t", "a b c")):
            (tmp_path / f"{f}.txt").write_text("\n".join(" ".join(words.split()[i:] + words.split()[:i])
                                                           for i in range(5)) + "\n")
        run("score", "--method", name, "--text", tmp_path / "raw.txt", "--target", tmp_path / "t.txt",
            "--min-length", 0, "-o", tmp_path / "s.parquet")
        t = pq.read_table(tmp_path / "s.parquet")
        assert t.column_names == ["id", "score", "log_importance_weight", "length"]
        assert np.isfinite(t.column("score").to_numpy()).all()
        return
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 3)
    target = ["--target", emb] if "target" in cls.inputs else []
    run("score", tmp_path / "c.parquet", "--method", name, *target, "-o", tmp_path / "s.parquet")
    t = pq.read_table(tmp_path / "s.parquet")
    assert t.column_names == ["id", *cls.passthrough, *cls.columns]
    for c in cls.columns:
        assert np.isfinite(t.column(c).to_numpy()).all()
    summary = __import__("json").loads(t.schema.metadata[b"dataselect"])
    assert summary["params"]["method"] == name and summary["summary"]["method"] == name


def test_selection_names_its_design_and_estimate_dispatches_on_it(emb, tmp_path):
    run("sample", emb, "--k", 3, "--size", 50, "--design", "iid", "-o", tmp_path / "s.parquet", "--report",
        tmp_path / "r.json")
    meta = __import__("json").loads(pq.read_schema(tmp_path / "s.parquet").metadata[b"dataselect"])
    assert meta["params"]["design"] == "iid" and meta["summary"]["design"] == "iid"
    ids = pq.read_table(tmp_path / "s.parquet").column("id")
    pq.write_table(pa.table({"id": ids, "loss": np.ones(len(ids))}), tmp_path / "l.parquet")
    r = api.estimate_file(str(tmp_path / "s.parquet"), str(tmp_path / "l.parquet"))
    assert r["design"] == "iid" and "clt_interval" in r


# --------------------------------------------------------------------------- layers


def _imports(path: Path, package: str) -> set[str]:
    """Modules of the package that the file at ``path`` imports, at module level or inside a function."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    here = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            mod = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            out.update({f"{mod}.{a.name}" for a in node.names} if node.module is None else {mod})
    return {m for m in out if m.startswith(package)}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def test_no_import_circles():
    """Imports inside the package form no cycle, counting those made inside functions (a lazy import hides
    a circle, it does not remove it); a package importing its own submodules is not a circle."""
    files = list(PKG.rglob("*.py"))
    names = {_module_name(f) for f in files}
    graph = {}
    for f in files:
        deps = set()
        for m in _imports(f, "dataselect_cli"):
            while m not in names and "." in m:  # 'from . import io' names a module; 'from .x import f' a module
                m = m.rsplit(".", 1)[0]
            if m in names and m != _module_name(f):
                deps.add(m)
        graph[_module_name(f)] = deps
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                # a package importing its own submodules is not a circle of concepts
                if not (m.startswith(d + ".") or d.startswith(m + ".")):
                    raise AssertionError("import circle: " + " → ".join(path + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


# --------------------------------------------------------------------------- the review's bugs


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_score_refuses_a_lambda_that_is_not_finite_and_non_negative(emb, tmp_path, value):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 3)
    r = run("score", tmp_path / "c.parquet", "--lambda", value, "-o", tmp_path / "s.parquet", code=2)
    assert "--lambda must be a finite number >= 0" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "s.parquet").exists()


def test_one_step_sample_blames_lambda_not_the_embeddings(emb, tmp_path):
    r = run("sample", emb, "--k", 3, "--lambda", "nan", "-o", tmp_path / "s.parquet", code=2)
    assert r.stderr.startswith("error: --lambda must be a finite number") and str(emb) not in r.stderr


def test_library_refuses_lambda_with_estimate_lambda(emb, tmp_path):
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 3)
    with pytest.raises(InputError, match="--lambda or --estimate-lambda, not both"):
        api.score_file(str(tmp_path / "c.parquet"), str(tmp_path / "s.parquet"), lam=1.0, estimate_lambda=True)
    assert not (tmp_path / "s.parquet").exists()


def test_embed_refuses_uint64_ids_beyond_int64(tmp_path):
    ids = pa.array([2**63 + 5, 1, 2], pa.uint64())
    vec = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": ids, "embedding": vec}), tmp_path / "v.parquet")
    r = run("embed", tmp_path / "v.parquet", "-o", tmp_path / "e.parquet", code=2)
    assert "above 2^63 − 1" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [["--seed", "0"], ["--batch-size", "8192"]])
def test_embed_text_options_given_at_their_defaults_are_still_refused_for_vectors(tmp_path, args):
    np.save(tmp_path / "v.npy", np.ones((4, 3), np.float32))
    r = run("embed", tmp_path / "v.npy", "-o", tmp_path / "e.parquet", *args, code=2)
    assert f"{args[0]} applies to text" in r.stderr


def test_one_step_sample_scores_on_the_chosen_engine(emb, tmp_path, monkeypatch):
    """The one-step run passes its scoring and its draw to the run's engine (not a local one of its own)."""
    from dataselect_cli.engine import LocalEngine

    calls = []

    class Counting(LocalEngine):
        def map_blocks(self, fn, source, block_rows, shared, fold=None):
            calls.append(getattr(fn, "__name__", str(fn)))
            return super().map_blocks(fn, source, block_rows, shared, fold)

    api.sample_file(str(emb), str(tmp_path / "s.parquet"), k=3, size=20, scale=api.Scale(engine=Counting()))
    assert {"score_block", "check_block", "select_block"} <= set(calls)


def test_text_corpus_ids_go_through_the_same_id_function(tmp_path):
    """A text corpus with uint64 ids beyond int64 gets the same one-line exit 2 as every other reader."""
    pq.write_table(pa.table({"id": pa.array([2**63 + 1, 3], pa.uint64()), "text": ["a b", "c d"]}),
                   tmp_path / "t.parquet")
    r = run("embed", tmp_path / "t.parquet", "--text-column", "text", "-o", tmp_path / "e.parquet", code=2)
    assert "above 2^63 − 1" in r.stderr and r.stderr.count("\n") == 1
