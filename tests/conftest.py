"""Shared fixtures: a CLI runner and small Parquet inputs built with pyarrow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dataselect_cli.io import embedding_array


@pytest.fixture
def runner() -> CliRunner:
    """A CLI runner; with typer >= 0.26 ``result.stdout`` and ``result.stderr`` are separate."""
    return CliRunner()


@pytest.fixture
def write_embeddings():
    """``write_embeddings(path, x, ids=None)``: an embeddings file (id int64, embedding fixed_size_list<float32>[d]).

    ``ids`` defaults to 100, 101, …, so that row numbers and ids differ in messages.
    """

    def write(path, x, ids=None):
        x = np.asarray(x, dtype=np.float32)
        if ids is None:
            ids = pa.array(np.arange(100, 100 + len(x), dtype=np.int64))
        elif not isinstance(ids, pa.Array):
            ids = pa.array(ids, pa.int64())
        pq.write_table(pa.table({"id": ids, "embedding": embedding_array(x)}), path)
        return path

    return write
