"""What a new user meets first: hints that lead somewhere, `report` and `show`, `-V`, completion, and `--rows`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import io


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """emb → clusters (with probes) → losses of centers and probes → scores → selection."""
    d = tmp_path_factory.mktemp("newcomer")
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(c, 0.3, size=(100, 4)) for c in range(4)]).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(400), "embedding": io.embedding_array(x),
                             "label": np.repeat(np.arange(4), 100)}), d / "emb.parquet")
    run("cluster", d / "emb.parquet", "-o", d / "clusters.parquet", "--k", 4, "--probes", 3, "-q")
    cl = pq.read_table(d / "clusters.parquet")
    ids = np.union1d(pq.read_table(d / "clusters.centers.parquet").column("center_id").to_numpy(),
                     cl.filter(cl.column("probe")).column("id").to_numpy())
    pq.write_table(pa.table({"id": ids, "loss": 1.0 + (ids % 7) / 7}), d / "losses.parquet")
    run("score", d / "clusters.parquet", "--losses", d / "losses.parquet", "-o", d / "scores.parquet", "-q")
    run("sample", d / "scores.parquet", "--size", 40, "-o", d / "selected.parquet", "-q")
    return d


def error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# --------------------------------------------------------------------------- hints


@pytest.mark.parametrize("args", [
    ["score", "{losses}", "--losses", "{clusters}", "-o", "{out}"],
    ["estimate", "{losses}", "--losses", "{selected}"],
    ["apply", "{emb}", "{selected}", "-o", "{out}"],
])
def test_swapped_arguments_are_recognised(work, tmp_path, args):
    paths = {"losses": work / "losses.parquet", "clusters": work / "clusters.parquet", "out": tmp_path / "o.parquet",
             "selected": work / "selected.parquet", "emb": work / "emb.parquet"}
    line = error_line(run(*[a.format(**paths) for a in args], code=2))
    assert "did you swap" in line
    assert not (tmp_path / "o.parquet").exists()


def test_arguments_in_order_are_not_called_swapped(work, tmp_path):
    run("apply", work / "selected.parquet", work / "emb.parquet", "-o", tmp_path / "sub.parquet", "-q")
    # a wrong file that is no swap gets the ordinary message
    line = error_line(run("score", work / "emb.parquet", "--losses", work / "losses.parquet", "-o", tmp_path / "x",
                          code=2))
    assert "did you swap" not in line and "cluster" in line


def test_a_missing_center_loss_names_center_id_and_the_command_that_lists_them(work, tmp_path):
    center = pq.read_table(work / "clusters.centers.parquet").column("center_id")[0]
    t = pq.read_table(work / "losses.parquet")
    pq.write_table(t.filter(pc.not_equal(t["id"], center)), tmp_path / "l.parquet")
    line = error_line(run("score", work / "clusters.parquet", "--losses", tmp_path / "l.parquet",
                          "-o", tmp_path / "s.parquet", code=2))
    assert f"1 center id has no row here: {center.as_py()}" in line
    assert "center_id" in line and "dataselect show CENTERS --column center_id" in line
    # the command it names works and lists exactly the center ids
    shown = run("show", work / "clusters.centers.parquet", "--column", "center_id").stdout.split()
    assert shown == [str(v) for v in pq.read_table(work / "clusters.centers.parquet").column("center_id").to_pylist()]


def test_the_holder_warning_gives_a_lambda_that_holds(work, tmp_path):
    r = run("score", work / "clusters.parquet", "--losses", work / "losses.parquet", "--lambda", 1e-9,
            "-o", tmp_path / "s.parquet")
    warning = next(line for line in r.stderr.splitlines() if "Hölder" in line)
    assert "--estimate-lambda" in warning
    lam = float(warning.split("--lambda ")[1].split()[0])
    r = run("score", work / "clusters.parquet", "--losses", work / "losses.parquet", "--lambda", lam * 1.0001,
            "-o", tmp_path / "s2.parquet")
    assert "Hölder" not in r.stderr  # the value it suggested does hold


def test_one_step_sample_takes_probes_and_centers_like_cluster(work, tmp_path):
    r = run("sample", "--k", 4, work / "emb.parquet", "--size", 40, "--centers", tmp_path / "c.parquet",
            "--probes", 3, "--keep-intermediate", tmp_path / "kept", "-o", tmp_path / "sel.parquet")
    assert "k-means: k-means++ seeding on" in r.stderr  # the stages line 'cluster' prints
    assert str(tmp_path / "c.parquet") in r.stdout  # announced
    # the same centers and probes as 'cluster' with the same options
    ref = pq.read_table(work / "clusters.centers.parquet")
    assert pq.read_table(tmp_path / "c.parquet").column("center_id").equals(ref.column("center_id"))
    assert pq.read_table(tmp_path / "kept" / "clusters.parquet").column("probe").equals(
        pq.read_table(work / "clusters.parquet").column("probe"))
    assert "--keep-intermediate" in error_line(run("sample", "--k", 4, work / "emb.parquet", "--probes", 3,
                                                   "-o", tmp_path / "x.parquet", code=2))
    assert "one-step" in error_line(run("sample", work / "scores.parquet", "--centers", tmp_path / "c2.parquet",
                                        "-o", tmp_path / "x.parquet", code=2))


# --------------------------------------------------------------------------- report, show, -V


def test_report_re_renders_the_stored_report(work, tmp_path):
    first = run("sample", work / "scores.parquet", "--size", 40, "-o", tmp_path / "s.parquet",
                "--report", tmp_path / "r.json", "--report-md", tmp_path / "r.md")
    again = run("report", tmp_path / "s.parquet").stdout
    assert again.splitlines() == first.stdout.splitlines()[1:-1]  # the summary without 'wrote' and 'also wrote'
    assert run("report", tmp_path / "s.parquet", "--md").stdout == (tmp_path / "r.md").read_text()
    js = json.loads(run("report", tmp_path / "s.parquet", "--json").stdout)
    assert js == json.loads((tmp_path / "r.json").read_text()) | {"skipped": False}
    r = run("report", tmp_path / "s.parquet", "--html", tmp_path / "p.html", "--embeddings", work / "emb.parquet")
    assert "<html" in (tmp_path / "p.html").read_text() and f"wrote {tmp_path / 'p.html'}" in r.stdout
    assert "not a selection" in error_line(run("report", work / "clusters.parquet", code=2))
    assert "--md or --json" in error_line(run("report", tmp_path / "s.parquet", "--md", "--json", code=2))


def test_show_says_what_every_file_is(work, tmp_path):
    kinds = {"emb.parquet": "embeddings", "clusters.parquet": "clusters", "clusters.centers.parquet": "centers",
             "scores.parquet": "scores", "selected.parquet": "selection", "losses.parquet": "losses"}
    for name, kind in kinds.items():
        info = json.loads(run("show", work / name, "--json").stdout)
        assert info["kind"] == kind, name
        text = run("show", work / name).stdout
        assert text.startswith(f"{work / name}: {kind} file")
    info = json.loads(run("show", work / "scores.parquet", "--json").stdout)
    assert info["dataselect"]["command"] == "score" and info["rows"] == 400 and "prob" in info["columns"]
    assert "written by: dataselect" in run("show", work / "clusters.parquet").stdout
    assert "no dataselect metadata" in run("show", work / "losses.parquet").stdout
    assert "no such file" in error_line(run("show", tmp_path / "nope.parquet", code=2))
    assert "holds vectors" in error_line(run("show", work / "emb.parquet", "--column", "embedding", code=2))


def test_version_short_flag_and_completion():
    from dataselect_cli import __version__

    assert run("-V").stdout.strip() == f"dataselect {__version__}"
    assert "--install-completion" in run("--help").stdout


# --------------------------------------------------------------------------- --rows


@pytest.mark.parametrize("design", ["auto", "iid", "mixture", "pareto", "stratified", "uniform"])
def test_rows_gives_exactly_that_many_distinct_rows(work, tmp_path, design):
    r = json.loads(run("sample", work / "scores.parquet", "--rows", 120, "--design", design, "--json",
                       "-o", tmp_path / "s.parquet").stdout)
    t = pq.read_table(tmp_path / "s.parquet")
    assert t.num_rows == 120 == r["selected_rows"] and len(set(t.column("id").to_pylist())) == 120
    if design in ("iid", "mixture"):
        assert r["s"] == int(t.column("count").to_numpy().sum()) > 120  # the draws it took, said
    if design == "auto":
        assert r["design"] in ("uniform", "pareto", "stratified")  # never a design that repeats rows


def test_rows_draws_extend_the_same_stream(work, tmp_path):
    """With replacement, --rows N is the shortest prefix of the seeded draws with N distinct rows: the same rows
    and counts as --size s for the s it reports."""
    r = json.loads(run("sample", work / "scores.parquet", "--rows", 150, "--design", "iid", "--json",
                       "-o", tmp_path / "a.parquet").stdout)
    run("sample", work / "scores.parquet", "--size", r["s"], "--design", "iid", "-o", tmp_path / "b.parquet")
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.column("id").equals(b.column("id")) and a.column("count").equals(b.column("count"))
    run("sample", work / "scores.parquet", "--size", r["s"] - 1, "--design", "iid", "-o", tmp_path / "c.parquet")
    assert pq.read_table(tmp_path / "c.parquet").num_rows < 150


def test_rows_is_checked(work, tmp_path):
    assert "one of --eps, --size, --rows or --fraction" in error_line(run("sample", work / "scores.parquet", "--rows", 5,
                                                              "--size", 5, "-o", tmp_path / "x.parquet", code=2))
    assert "more than the 400 rows" in error_line(run("sample", work / "scores.parquet", "--rows", 401,
                                                      "-o", tmp_path / "x.parquet", code=2))
    assert "positive" in error_line(run("sample", work / "scores.parquet", "--rows", 0, "-o", tmp_path / "x.parquet",
                                        code=2))
