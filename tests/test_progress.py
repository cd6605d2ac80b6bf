"""Progress you can see (issue 16): a stage per pass, plain lines in a log, a bar on a terminal, silence on
request, and never a different result."""

from __future__ import annotations

import io as stdio
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from clirun import run
from dataselect_cli import api
from dataselect_cli.cli import Out, RateColumn
from dataselect_cli.cli.output import Bars
from dataselect_cli.engine import LocalEngine, map_pass
from dataselect_cli.io import embedding_array
from dataselect_cli.progress import Lines, clock_text, silent

N, K, BLOCK = 300, 3, 64  # 5 blocks


@pytest.fixture
def emb(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(N, 4)) + 5 * rng.integers(0, 3, size=(N, 1))).astype(np.float32)
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"id": np.arange(N, dtype=np.int64), "embedding": embedding_array(x)}), path)
    return path


class Clock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A reporter that records (description, total, unit, units advanced, ended)."""

    def __init__(self):
        self.stages = []

    @contextmanager
    def __call__(self, description, total=None, unit="blocks"):
        stage = [description, total, unit, 0, False]
        self.stages.append(stage)

        def advance(k):
            stage[3] += k

        yield advance
        stage[4] = True


# --------------------------------------------------------------------------- the plain lines of a log


def test_lines_print_a_start_and_an_end_line_per_stage():
    lines, clock = [], Clock()
    report = Lines(lines.append, clock=clock)
    with report("assign", 4) as advance:
        for _ in range(4):
            clock.now += 0.5
            advance(1)
    with report("Lloyd iterations", None, "iterations") as advance:
        clock.now += 62
        advance(7)
    assert lines == ["assign: started, 4 blocks", "assign: done, 4 blocks in 0:00:02",
                     "Lloyd iterations: started", "Lloyd iterations: 7 iterations, 0:01:02 elapsed",
                     "Lloyd iterations: done, 7 iterations in 0:01:02"]


def test_lines_throttle_to_one_line_every_10_seconds():
    lines, clock = [], Clock()
    with Lines(lines.append, clock=clock)("assign", 40) as advance:
        for _ in range(40):  # one block a second: lines at 10, 20 and 30 s, none at 40 s (the end line says it)
            clock.now += 1
            advance(1)
    assert lines == ["assign: started, 40 blocks",
                     "assign: 10/40 blocks (25%), ETA 0:00:30",
                     "assign: 20/40 blocks (50%), ETA 0:00:20",
                     "assign: 30/40 blocks (75%), ETA 0:00:10",
                     "assign: done, 40 blocks in 0:00:40"]
    lines.clear()
    with Lines(lines.append, clock=clock)("distances", 1000) as advance:
        for _ in range(1000):  # fast blocks: nothing between the start and the end
            clock.now += 0.001
            advance(1)
    assert len(lines) == 2


def test_a_failed_stage_prints_no_end_line():
    lines = []
    with pytest.raises(RuntimeError), Lines(lines.append, clock=Clock())("score", 3) as advance:
        advance(1)
        raise RuntimeError("disk on fire")
    assert lines == ["score: started, 3 blocks"]


def test_lines_held_back_while_the_hold_lasts_are_written_after_it_or_on_flush():
    lines, clock = [], Clock()
    report = Lines(lines.append, clock=clock, hold=10)
    with report("reading embeddings", 100, "rows") as advance:
        clock.now = 4
        advance(100)
    with report("assign", 3) as advance:
        clock.now = 6
        advance(1)
        assert lines == []  # a command failing now prints only its error
        clock.now = 10.5
        advance(1)  # the hold is over: what was held comes out, in order
        # a stage that began and ended while held is one line; one still running keeps its start line
        assert lines == ["reading embeddings: done, 100 rows in 0:00:04", "assign: started, 3 blocks"]
        advance(1)
    assert lines[-1] == "assign: done, 3 blocks in 0:00:06"
    lines.clear()
    report = Lines(lines.append, clock=clock, hold=10)
    with report("score", 2) as advance:
        advance(2)
    assert lines == []
    report.flush()  # the command succeeded
    assert lines == ["score: done, 2 blocks in 0:00:00"]


def test_clock_text():
    assert [clock_text(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00:00", "0:01:00", "0:01:01", "1:01:02"]


# --------------------------------------------------------------------------- the reporter of a command


def test_out_picks_silence_lines_or_bars(capsys):
    assert Out(quiet=True)._progress is silent
    out = Out()  # pytest's stderr is not a terminal
    assert isinstance(out._progress, Lines)
    with out.progress("assign", 2) as advance:
        advance(2)
    assert capsys.readouterr() == ("", "")  # held back until the command succeeds
    out.result({}, ["wrote it"])
    out_, err = capsys.readouterr()
    assert out_ == "wrote it\n" and err.startswith("assign: done, 2 blocks in ") and err.count("\n") == 1
    with Out(quiet=True).progress("assign", 2) as advance:
        advance(2)
    assert capsys.readouterr() == ("", "")


def test_bar_on_a_terminal_shows_percent_count_and_the_stage_unit():
    buf = stdio.StringIO()
    with Bars(Console(file=buf, force_terminal=True, width=120))("k-means++ seeding", 40, "centers") as advance:
        advance(40)
    with Bars(Console(file=buf, force_terminal=True, width=120))("Lloyd iterations", None, "iterations") as advance:
        advance(9)
    text = buf.getvalue()
    assert "k-means++ seeding" in text and "100%" in text and "40/40" in text and "centers/s" in text
    assert "9/9" in text  # a stage without a count ends full


def test_rate_column_speaks_the_unit_of_the_stage():
    class T:
        finished_speed, speed, fields = None, 0.25, {"unit": "blocks"}

    assert str(RateColumn().render(T())) == "0.25 blocks/s"
    T.speed = 12345.0
    assert str(RateColumn().render(T())) == "12,345 blocks/s"


def test_map_pass_counts_every_block_of_a_pass():
    from dataselect_cli.dataset import ArraySource

    rec = Recorder()
    src = ArraySource(np.zeros((N, 2), np.float32))
    got = list(map_pass(LocalEngine(), "assign", lambda b, x: len(x), src, BLOCK, {}, rec))
    assert sum(got) == N and rec.stages == [["assign", 5, "blocks", 5, True]]


# --------------------------------------------------------------------------- the commands


def test_cluster_in_a_log_shows_its_stages_on_stderr_and_only_its_result_on_stdout(emb, tmp_path):
    r = run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", K, "--block-rows", BLOCK)
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("wrote ")
    err = r.stderr.splitlines()
    for stage, total in (("reading embeddings", f"{N} rows"), ("k-means++ seeding", f"{K} centers"),
                         ("assign", "5 blocks"), ("distances", "5 blocks")):
        assert sum(line.startswith(f"{stage}: done, {total} in ") for line in err) == 1, r.stderr
    assert not any(line.endswith("started") or ": started, " in line for line in err)  # fast: one line a stage
    assert any(line.startswith(f"Lloyd iterations on the {N} fit rows, at most 25: done, ") for line in err)


def test_quiet_prints_no_progress(emb, tmp_path):
    r = run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", K, "--block-rows", BLOCK, "-q")
    assert r.stderr == ""
    r = run("sample", emb, "--k", K, "--size", 50, "-o", tmp_path / "s.parquet", "--block-rows", BLOCK, "-q", "--json")
    assert r.stderr == ""


def test_one_step_sample_reports_cluster_score_and_design_passes(emb, tmp_path):
    r = run("sample", emb, "--k", K, "--size", 50, "--design", "iid", "-o", tmp_path / "s.parquet",
            "--block-rows", BLOCK, "--json")
    starts = [line.split(":")[0] for line in r.stderr.splitlines() if line.startswith(tuple(
        ["assign", "distances", "score", "iid"])) and ": done, 5 blocks in " in line]
    assert starts == ["assign", "distances", "score (sensitivity)", "iid design, pass 1/2 (block totals)",
                      "iid design, pass 2/2 (selection)"]
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("{")


def test_outputs_are_byte_identical_with_and_without_progress(emb, tmp_path):
    for name, extra in (("quiet", ["-q"]), ("lines", [])):
        o = tmp_path / name
        o.mkdir()
        run("cluster", emb, "-o", o / "c.parquet", "--k", K, "--refine", 2, "--fit-sample", 100, "--block-rows",
            BLOCK, *extra)
        run("score", o / "c.parquet", "-o", o / "s.parquet", "--block-rows", BLOCK, *extra)
        run("sample", o / "s.parquet", "--size", 40, "-o", o / "sel.parquet", "--block-rows", BLOCK, *extra)
    for f in ("c.parquet", "c.centers.parquet", "sel.parquet"):
        assert (tmp_path / "quiet" / f).read_bytes() == (tmp_path / "lines" / f).read_bytes(), f
    a, b = (pq.read_table(tmp_path / n / "s.parquet").replace_schema_metadata(None) for n in ("quiet", "lines"))
    assert a.equals(b)  # scores name their inputs by path


def test_library_calls_are_silent_and_take_a_reporter(emb, tmp_path, capsys):
    api.cluster_file(str(emb), str(tmp_path / "a.parquet"), k=K, scale=api.Scale(block_rows=BLOCK))
    assert capsys.readouterr() == ("", "")
    rec = Recorder()
    api.cluster_file(str(emb), str(tmp_path / "b.parquet"), k=K, scale=api.Scale(block_rows=BLOCK, progress=rec))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    names = [s[0] for s in rec.stages]
    assert names == ["reading embeddings", "k-means++ seeding", f"Lloyd iterations on the {N} fit rows, at most 25",
                     "assign", "distances"]
    assert all(s[4] for s in rec.stages)  # every stage ended
    seeding, lloyd = rec.stages[1], rec.stages[2]
    assert seeding[1:4] == [K, "centers", K] and lloyd[1] is None and lloyd[3] >= 1
    assert rec.stages[3][1:4] == [5, "blocks", 5]


def test_dask_passes_advance_on_the_client():
    pytest.importorskip("distributed")
    from dataselect_cli.cluster import cluster
    from dataselect_cli.engine import DaskEngine

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(N, 3)) + 4 * rng.integers(0, 3, size=(N, 1))).astype(np.float32)
    rec = Recorder()
    eng = DaskEngine(workers=1, partitions=2)
    try:
        got = cluster(x, K, engine=eng, block_rows=BLOCK, progress=rec)
    finally:
        eng.close()
    ref = cluster(x, K, block_rows=BLOCK)
    assert np.array_equal(got.labels, ref.labels) and np.array_equal(got.distance, ref.distance)
    passes = {s[0]: s[1:] for s in rec.stages if s[2] == "blocks"}
    assert passes == {"assign": [5, "blocks", 5, True], "distances": [5, "blocks", 5, True]}
