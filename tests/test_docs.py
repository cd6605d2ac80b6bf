"""The README and the --help texts are part of the product: every command is documented with an example."""

import json
from pathlib import Path

import pytest
from clirun import run
from typer.testing import CliRunner

from dataselect_cli import io as ds_io
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


def _readme_module(header: str, package: str):
    """The README code block that starts with ``# <header>``, executed as a module of ``package``."""
    import re
    import types

    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if b.startswith(f"# {header}"))
    mod = types.ModuleType(f"{package}._readme_example")
    mod.__package__ = package
    exec(compile(block, f"README.md:{header}", "exec"), mod.__dict__)
    return mod


def test_readme_design_example_works(tmp_path, monkeypatch):
    """The README's 'Adding a sampling design' example, registered as it says, meets the design contract
    and runs through sample and estimate."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataselect_cli import designs
    from test_architecture import test_design_contract

    bernoulli = _readme_module("dataselect_cli/designs/bernoulli.py", "dataselect_cli.designs").Bernoulli
    monkeypatch.setitem(designs.REGISTRY, "bernoulli", bernoulli)
    test_design_contract("bernoulli")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 3)) + 4 * rng.integers(0, 4, size=(400, 1))).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(400), "embedding": ds_io.embedding_array(x)}), tmp_path / "e.parquet")
    run("sample", tmp_path / "e.parquet", "--k", 4, "--size", 60, "--design", "bernoulli", "-o", tmp_path / "s.parquet")
    ids = pq.read_table(tmp_path / "s.parquet").column("id")
    pq.write_table(pa.table({"id": ids, "loss": np.ones(len(ids))}), tmp_path / "l.parquet")
    r = run("estimate", tmp_path / "s.parquet", "--losses", tmp_path / "l.parquet", "--json")
    assert json.loads(r.stdout)["design"] == "bernoulli"


def test_readme_method_example_works(tmp_path, monkeypatch):
    """The README's 'Adding a score method' example, registered as it says, meets the method contract."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataselect_cli import methods
    from test_architecture import test_method_contract

    distance = _readme_module("dataselect_cli/methods/distance.py", "dataselect_cli.methods").Distance
    monkeypatch.setitem(methods.REGISTRY, "distance", distance)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(300), "embedding": ds_io.embedding_array(x)}), tmp_path / "emb.parquet")
    test_method_contract("distance", tmp_path, tmp_path / "emb.parquet")
