"""The README and the --help texts are part of the product: every command is documented with an example."""

import json
from pathlib import Path

import pytest
from clirun import run
from typer.testing import CliRunner

from dataselect_cli import io as ds_io
from dataselect_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEVELOPMENT = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
COMMANDS = ["embed", "cluster", "score", "sample", "bandit", "estimate", "apply", "evaluate", "report", "show",
            "dynamics", "dedup"]


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


def _python_block(text: str, header: str) -> str:
    """The ```python block of ``text`` that starts with ``# <header>``."""
    import re

    return next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith(f"# {header}"))


def _readme_module(header: str, package: str):
    """The docs/development.md code block that starts with ``# <header>``, executed as a module of ``package``."""
    import types

    block = _python_block(DEVELOPMENT, header)
    mod = types.ModuleType(f"{package}._readme_example")
    mod.__package__ = package
    exec(compile(block, f"README.md:{header}", "exec"), mod.__dict__)
    return mod


def test_readme_design_example_works(tmp_path, monkeypatch):
    """docs/development.md's 'Adding a sampling design' example, registered as it says, meets the design contract
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
    """docs/development.md's 'Adding a score method' example, registered as it says, meets the method contract."""
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


def test_readme_links_point_at_files_that_exist():
    """Every relative link of the README and the docs/ pages names a file (or folder) of the repository."""
    import re

    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "designs" / "README.md",
                 ROOT / "docs" / "pruning" / "README.md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


class _Column:
    """What the README's pandas snippet uses of a pandas Series: ``to_numpy()``."""

    def __init__(self, values):
        self.values = values

    def to_numpy(self):
        return self.values


def test_quick_start_snippets_write_files_the_commands_accept(tmp_path, monkeypatch):
    """The quick start's Python snippets, run as printed: the numpy and pandas recipes write an embeddings file
    that cluster and sample accept, and the losses recipe a losses file that score accepts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)) + 5 * rng.integers(0, 6, size=(600, 1))      # float64, as users often have
    np.save("vectors.npy", x)
    exec(_python_block(README, "emb.parquet from a numpy array"), {})
    t = pq.read_table("emb.parquet")
    etype = t.schema.field("embedding").type
    assert pa.types.is_fixed_size_list(etype) and etype.list_size == 8 and etype.value_type == pa.float32()
    assert t.column("id").to_pylist() == list(range(600))
    run("cluster", "emb.parquet", "-o", "clusters.parquet", "--k", 6, "--probes", 3)

    try:
        import pandas as pd

        df = pd.DataFrame({"id": [f"doc{i}" for i in range(600)], "embedding": list(x)})
    except ImportError:  # pandas is not a dependency: a stand-in with the two calls the snippet makes
        vectors = np.empty(600, dtype=object)
        vectors[:] = [list(v) for v in x]
        df = {"id": _Column(np.array([f"doc{i}" for i in range(600)], dtype=object)), "embedding": _Column(vectors)}
    exec(_python_block(README, "emb.parquet from a pandas DataFrame"), {"df": df})
    t2 = pq.read_table("emb.parquet")
    assert t2.schema.field("embedding").type == t.schema.field("embedding").type
    assert t2.column("id").to_pylist()[:2] == ["doc0", "doc1"]
    run("sample", "--k", 6, "--size", 50, "emb.parquet", "-o", "selected_pd.parquet")

    centers = pq.read_table("clusters.centers.parquet").column("center_id").to_numpy()
    exec(_python_block(README, "losses of the center and probe rows"), {"my_loss": lambda ids: np.ones(len(ids))})
    losses = pq.read_table("center_losses.parquet")
    assert set(centers) <= set(losses.column("id").to_pylist()) and losses.num_rows == 6 + 6 * 3
    run("score", "clusters.parquet", "--losses", "center_losses.parquet", "-o", "scores.parquet")
    run("sample", "scores.parquet", "--eps", 0.1, "-o", "selected.parquet")

