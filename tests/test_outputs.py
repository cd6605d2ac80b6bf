"""Outputs: every location is checked before any work (exit 2, one line), a command writes all its outputs or
none of them, an OS error while writing is exit 2 with one line, and the summary names every file written."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import io, outputs
from dataselect_cli.errors import InputError


@pytest.fixture
def emb(tmp_path) -> Path:
    x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    path = tmp_path / "in" / "emb.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"id": np.arange(200), "embedding": io.embedding_array(x),
                             "label": (x[:, 0] > 0).astype(np.int64)}), path)
    return path


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == ""
    return lines[0]


def unwritable_dirs(tmp_path: Path) -> list[Path]:
    """Directories this process cannot create files in: /sys (read-only even for root) where that holds, and a
    chmod 555 directory when not root (root ignores permission bits)."""
    out = []
    if os.path.isdir("/sys"):
        try:
            (Path("/sys") / "dataselect-probe").touch()
            os.unlink("/sys/dataselect-probe")
        except OSError:
            out.append(Path("/sys"))
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        out.append(ro)
    return out


# the output options of every command, each aimed at an unwritable place in turn
def cases(emb: Path, bad: Path, tmp: Path) -> list[tuple[list, str]]:
    sel, clusters = tmp / "ok" / "sel.parquet", tmp / "ok" / "c.parquet"
    return [
        (["embed", emb, "-o", bad / "e.parquet"], "-o"),
        (["cluster", emb, "--k", 3, "-o", bad / "c.parquet"], "-o"),
        (["cluster", emb, "--k", 3, "-o", tmp / "ok" / "c.parquet", "--centers", bad / "k.parquet"], "--centers"),
        (["sample", emb, "--k", 3, "-o", bad / "sel.parquet"], "-o"),
        (["sample", emb, "--k", 3, "-o", sel, "--report", bad / "r.json"], "--report"),
        (["sample", emb, "--k", 3, "-o", sel, "--report-md", bad / "r.md"], "--report-md"),
        (["sample", emb, "--k", 3, "-o", sel, "--report-html", bad / "r.html"], "--report-html"),
        (["sample", emb, "--k", 3, "-o", sel, "--keep-intermediate", bad / "kept"], "--keep-intermediate"),
        (["evaluate", emb, "--label", "label", "-o", bad / "ev"], "-o"),
        (["score", clusters, "-o", bad / "s2.parquet"], "-o"),
        (["apply", sel, emb, "-o", bad / "sub.parquet"], "-o"),
    ]


def _prepare(emb: Path, tmp: Path) -> None:
    ok = tmp / "ok"
    ok.mkdir()
    run("cluster", emb, "--k", 3, "-o", ok / "c.parquet", "-q")
    run("score", ok / "c.parquet", "-o", ok / "s.parquet", "-q")
    run("sample", ok / "s.parquet", "--size", 20, "-o", ok / "sel.parquet", "-q")


def test_every_output_under_a_regular_file_is_refused_first(emb, tmp_path):
    _prepare(emb, tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    before = files_under(tmp_path)
    for args, option in cases(emb, blocker, tmp_path):
        line = one_error_line(run(*args, code=2))
        assert "is a file, not a directory" in line and option in line, (args, line)
    assert files_under(tmp_path) == before  # nothing written, nothing left behind


def test_every_output_in_an_unwritable_directory_is_refused_first(emb, tmp_path):
    dirs = unwritable_dirs(tmp_path)
    if not dirs:
        pytest.skip("no unwritable directory here (root, and /sys is writable)")
    _prepare(emb, tmp_path)
    before = files_under(tmp_path)
    for bad in dirs:
        for args, option in cases(emb, bad, tmp_path):
            line = one_error_line(run(*args, code=2))
            assert f"cannot write in {bad}" in line and option in line, (args, line)
    assert files_under(tmp_path) == before


def test_an_output_that_is_a_directory_and_a_file_for_a_directory_are_refused(emb, tmp_path):
    (tmp_path / "d.parquet").mkdir()
    assert "is a directory" in one_error_line(run("cluster", emb, "--k", 3, "-o", tmp_path / "d.parquet", code=2))
    (tmp_path / "ev").write_text("x")
    line = one_error_line(run("evaluate", emb, "--label", "label", "-o", tmp_path / "ev", code=2))
    assert "is a file, not a directory" in line


def test_a_failed_command_leaves_none_of_its_outputs(emb, tmp_path):
    # the report is written after the selection; the selection must not survive the report's failure
    out = tmp_path / "o"
    out.mkdir()
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "fsync", fsync)
    try:
        r = run("sample", emb, "--k", 3, "-q", "-o", out / "s.parquet", "--report", out / "r.json", code=2)
    finally:
        mp.undo()
    line = one_error_line(r)
    assert "cannot write: No space left on device" in line and "r.json" in line
    assert files_under(out) == set()


def test_evaluate_with_a_bad_label_leaves_no_directory(emb, tmp_path):
    one_error_line(run("evaluate", emb, "--label", "nosuch", "-o", tmp_path / "eval3", code=2))
    assert not (tmp_path / "eval3").exists()
    one_error_line(run("evaluate", emb, "--label", "nosuch", "-o", tmp_path / "a" / "b", code=2))


def test_outputs_block_commits_together_and_rolls_back(tmp_path):
    t = pa.table({"id": [1, 2]})
    with pytest.raises(RuntimeError):
        with outputs.outputs():
            outputs.make_dir(tmp_path / "new" / "deeper")
            io.write_table(t, tmp_path / "new" / "deeper" / "a.parquet", {})
            io.write_text("x", tmp_path / "b.txt")
            assert not (tmp_path / "b.txt").exists()  # staged, not yet in place
            assert io.read_meta(tmp_path / "new" / "deeper" / "a.parquet") == {}  # but readable by the command
            raise RuntimeError
    assert files_under(tmp_path) == set()
    with outputs.outputs():
        io.write_text("x", tmp_path / "b.txt")
        io.write_text("y", tmp_path / "b.txt")  # written twice: the last one counts, no temp left
    assert (tmp_path / "b.txt").read_text() == "y" and files_under(tmp_path) == {"b.txt"}


def test_an_os_error_while_writing_is_one_line_exit_2(emb, tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    line = one_error_line(run("embed", emb, "-o", tmp_path / "e.parquet", code=2))
    assert "e.parquet: cannot write: No space left on device" in line
    assert files_under(tmp_path) == {"in", "in/emb.parquet"}
    with pytest.raises(InputError):
        io.write_text("x", tmp_path / "t.txt")


def test_every_output_is_announced(emb, tmp_path):
    args = ["sample", emb, "--k", 3, "--size", 20, "-o", tmp_path / "s.parquet", "--report", tmp_path / "r.json",
            "--report-md", tmp_path / "r.md", "--keep-intermediate", tmp_path / "kept"]
    r = run(*args)
    kept = [str(tmp_path / "kept" / f) for f in ("clusters.centers.parquet", "clusters.parquet", "scores.parquet")]
    assert "also wrote " in r.stdout
    for f in [tmp_path / "r.json", tmp_path / "r.md", *kept]:
        assert str(f) in r.stdout
    js = json.loads(run(*args, "--json").stdout)
    assert sorted(js["outputs"]) == sorted([str(tmp_path / "s.parquet"), str(tmp_path / "r.json"),
                                            str(tmp_path / "r.md"), *kept])
    assert js["skipped"] is False


def test_a_signal_during_the_commit_waits_until_every_output_is_in_place(tmp_path, monkeypatch):
    # SIGTERM sent while the first of two outputs is renamed: its handler runs only once both are in place
    import signal

    seen = []

    def handler(signum, frame):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    old = signal.signal(signal.SIGTERM, handler)
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        if not calls:
            os.kill(os.getpid(), signal.SIGTERM)
        calls.append(dst)
        real_replace(src, dst)

    try:
        with outputs.outputs() as tx:
            for name in ("a.txt", "b.txt"):
                io.write_text(name, tmp_path / name)
            monkeypatch.setattr(os, "replace", replace)
        assert tx.committed and len(calls) == 2
    finally:
        signal.signal(signal.SIGTERM, old)
    assert seen == [["a.txt", "b.txt"]]
