"""``run(*args, code=0)``: invoke the ``dataselect`` app in process and check its exit code (shared by the CLI tests);
``clustered_with_probes``: the embeddings, clusters and queried losses several tests start from."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from dataselect_cli.cli import app
from dataselect_cli.io import embedding_array

runner = CliRunner()


def run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def clustered_with_probes(folder, x, loss, k: int, probes: int = 3) -> np.ndarray:
    """Write ``folder``/e.parquet (ids 0..n−1, embeddings ``x``), cluster it into c.parquet with ``probes`` probes a
    cluster, and write l.parquet: the losses ``loss`` of the centers and probes. Returns those queried ids."""
    pq.write_table(pa.table({"id": np.arange(len(x)), "embedding": embedding_array(x)}), folder / "e.parquet")
    run("cluster", folder / "e.parquet", "-o", folder / "c.parquet", "--k", k, "--probes", probes)
    c = pq.read_table(folder / "c.parquet")
    ids = np.union1d(pq.read_table(folder / "c.centers.parquet").column("center_id").to_numpy(),
                     c.filter(c.column("probe")).column("id").to_numpy())
    pq.write_table(pa.table({"id": ids, "loss": loss[ids]}), folder / "l.parquet")
    return ids
