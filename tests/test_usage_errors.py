"""Usage errors (missing argument, bad option value, unknown option or command) read like the tool's own errors:
one line on stderr, ``error: <message> (see '<command> -h')``, exit 2, and no Click "Usage:/Try/Error:" block."""

import subprocess
import sys

import pytest
from clirun import run

CASES = [
    (["sample"], "Missing argument 'INPUT'", "sample -h"),
    (["apply", "selected.parquet"], "Missing argument 'DATA'", "apply -h"),
    (["sample", "emb.parquet", "--k", "abc"], "Invalid value for '--k'", "sample -h"),
    (["cluster", "emb.parquet", "-o", "c.parquet", "--k", "ten"], "Invalid value for '--k'", "cluster -h"),
    (["sample", "emb.parquet", "--bogus"], "No such option: --bogus", "sample -h"),
    (["bogus"], "No such command 'bogus'", " -h"),
    (["--bogus"], "No such option: --bogus", " -h"),
]


@pytest.mark.parametrize("args,message,hint", CASES)
def test_usage_error_is_one_line_exit_2(args, message, hint):
    r = run(*args, code=2)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {message}")
    assert lines[0].endswith(f"{hint}')")
    assert "Usage:" not in r.stderr and "Try '" not in r.stderr and "Error:" not in r.stderr
    assert r.stdout == ""


def test_usage_error_through_the_console_entry_point():
    """main() (what the `dataselect` command runs) gives the same line, naming the program."""
    p = subprocess.run([sys.executable, "-m", "dataselect_cli", "sample", "x", "--k", "abc"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("error: Invalid value for '--k': Input should be a valid integer, unable to parse string as "
                        "an integer (see 'dataselect sample -h')\n")


def test_no_arguments_still_prints_the_help():
    p = subprocess.run([sys.executable, "-m", "dataselect_cli"], capture_output=True, text=True)
    assert "Commands:" in p.stdout + p.stderr and "error:" not in p.stderr


def test_usage_lines_name_the_arguments_in_capitals_without_braces():
    for cmd, usage in [("sample", "INPUT"), ("cluster", "EMB"), ("score", "[CLUSTERS]"), ("estimate", "SELECTED"),
                       ("apply", "SELECTED DATA"), ("evaluate", "EMB"), ("embed", "INPUT"), ("report", "SELECTED"),
                       ("show", "FILE")]:
        first = run(cmd, "--help").stdout.splitlines()[0]
        assert first.endswith(f" {cmd} [OPTIONS] {usage}") and "{" not in first, first  # prog is "root" in CliRunner


def test_missing_column_message_reads_an_embeddings_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "e.parquet")
    r = run("cluster", tmp_path / "e.parquet", "-o", tmp_path / "c.parquet", "--k", 1, code=2)
    assert "(an embeddings file needs id, embedding; found id)" in r.stderr and "a embeddings" not in r.stderr
