"""The README and the --help texts are part of the product: every command is documented with an example."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataselect_cli.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = ["embed", "cluster", "score", "sample", "estimate", "apply", "evaluate"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_a_readme_section_and_example(cmd):
    assert f"### `dataselect {cmd}`" in README
    assert f"\ndataselect {cmd} " in README


def test_readme_starts_with_the_two_commands():
    assert "make demo" in README and "make test" in README
    assert "dataselect sample --k 100 --eps 0.1 emb.parquet" in README


def test_registered_commands_are_the_documented_ones():
    r = CliRunner().invoke(app, ["--help"])
    listed = [line.split()[0] for line in r.stdout.split("Commands:")[1].strip().splitlines() if line.strip()]
    assert sorted(listed) == sorted(COMMANDS)


def test_readme_has_no_unfilled_marker():
    assert "BENCH_FIGURES" not in README, "fill the measured figures into the README"
