"""A synthetic embeddings input for scale tests: rows generated per block from (seed, block), no disk.

``synthetic:N,D,SEED[,CLUSTERS]`` (e.g. ``synthetic:100000000,64,0``) stands wherever an embeddings
file is read (``cluster``, one-step ``sample``). Row ``i`` lies in generation block ``i // GEN_ROWS``,
whose rows come from ``numpy.random.default_rng([SEED, block])``: a mixture of ``CLUSTERS`` Gaussian
blobs (default 16) in ``D`` dimensions, float32, ids ``0..N−1``. So any slice of rows is the same
whatever the block grid, engine or process that asks for it, a run over 10⁸ rows needs no file, and
the same spec always gives the same rows (the metadata records the spec as the input's fingerprint).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from .errors import InputError

PREFIX = "synthetic:"
#: Rows per generation block (the unit of randomness; independent of --block-rows).
GEN_ROWS = 65_536
#: Gaussian blobs of the mixture, unless the spec names another number.
CLUSTERS = 16
#: Spread of each blob around its center (the centers are standard normal).
NOISE = 0.5


def is_synthetic(path: Any) -> bool:
    """Whether ``path`` is a ``synthetic:`` spec rather than a file."""
    return isinstance(path, str) and path.startswith(PREFIX)


def parse(spec: str) -> tuple[int, int, int, int]:
    """(N, D, SEED, CLUSTERS) of a ``synthetic:N,D,SEED[,CLUSTERS]`` spec; an :class:`InputError` otherwise."""
    parts = spec[len(PREFIX):].split(",")
    try:
        values = [int(p.replace("_", "")) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (3, 4) or values[0] < 1 or values[1] < 1 or values[2] < 0 or \
            (len(values) == 4 and values[3] < 1):
        raise InputError("a synthetic input reads synthetic:N,D,SEED[,CLUSTERS] with N, D, CLUSTERS ≥ 1 and "
                         "SEED ≥ 0, e.g. synthetic:1000000,64,0", spec)
    n, d, seed = values[:3]
    return n, d, seed, values[3] if len(values) == 4 else CLUSTERS


def centers(d: int, seed: int, clusters: int) -> np.ndarray:
    """The blobs' centers (clusters, d), float32, from the seed alone."""
    return np.random.default_rng([seed, 2**32 - 1]).standard_normal((clusters, d)).astype(np.float32)


def gen_block(g: int, n: int, d: int, seed: int, clusters: int, mu: np.ndarray | None = None) -> np.ndarray:
    """Rows of generation block ``g`` as a float32 (rows, d) matrix: a pure function of its arguments."""
    rows = min(GEN_ROWS, n - g * GEN_ROWS)
    rng = np.random.default_rng([seed, g])
    mu = centers(d, seed, clusters) if mu is None else mu
    x = rng.standard_normal((rows, d), dtype=np.float32)
    x *= np.float32(NOISE)
    x += mu[rng.integers(0, clusters, size=rows)]
    return x


def rows(start: int, stop: int, n: int, d: int, seed: int, clusters: int) -> np.ndarray:
    """Rows [start, stop) as one float32 matrix, from the generation blocks that hold them."""
    mu = centers(d, seed, clusters)
    parts = []
    for g in range(start // GEN_ROWS, (stop - 1) // GEN_ROWS + 1):
        x = gen_block(g, n, d, seed, clusters, mu)
        lo, hi = max(start - g * GEN_ROWS, 0), min(stop - g * GEN_ROWS, len(x))
        parts.append(x[lo:hi])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class SyntheticDataset:
    """The ``synthetic:`` input, read through the interface of :class:`~dataselect_cli.pqdataset.ParquetDataset`
    that the embeddings path uses (``n``, ``schema``, ``iter_tables``, ``read_column``, ``fingerprints``, …)."""

    def __init__(self, spec: str):
        self.path = spec
        self.n, self.d, self.seed, self.clusters = parse(spec)
        self.files: list[str] = []  # no file: nothing to compare an output path with, nothing to hash
        self.schema = pa.schema([("id", pa.int64()), ("embedding", pa.list_(pa.float32(), self.d))])
        self.metadata: dict[str, Any] = {}

    def require(self, columns: list[str], what: str) -> None:
        for c in columns:
            if c not in self.schema.names:
                raise InputError(f"a synthetic input has columns id and embedding, not {c!r}", self.path)

    def locate(self, row: int) -> tuple[str, int]:
        return self.path, row

    def id_of(self, row: int) -> str:
        return f" (id {row})"

    def fingerprints(self, role: str) -> dict[str, dict]:
        """The spec stands for the content (the rows are a function of it and of this module's version)."""
        return {role: {"name": self.path, "synthetic": {"n": self.n, "d": self.d, "seed": self.seed,
                                                          "clusters": self.clusters, "gen_rows": GEN_ROWS}}}

    def read_column(self, column: str) -> pa.ChunkedArray:
        self.require([column], "embeddings")
        if column != "id":
            raise InputError("read the synthetic vectors block by block", self.path)
        return pa.chunked_array([pa.array(np.arange(self.n, dtype=np.int64))])

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Rows [start, stop) cut at the generation blocks' boundaries (the pieces generated independently)."""
        return [(max(lo, start), min(lo + GEN_ROWS, stop)) for lo in range(start - start % GEN_ROWS, stop, GEN_ROWS)]

    def reopened(self) -> "SyntheticDataset":
        """Itself: nothing is opened (the interface of :meth:`~dataselect_cli.pqdataset.ParquetDataset.reopened`)."""
        return self

    def iter_batches(self, columns: list[str], start: int, stop: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Rows [start, stop) of ``columns`` as record batches of at most ``batch_rows`` rows, each generation block
        generated once."""
        for lo, hi in self.ranges(start, stop):
            for t in self.iter_tables(columns, lo, hi, hi - lo):
                yield from t.to_batches(max_chunksize=batch_rows)

    def iter_tables(self, columns: list[str], start: int, stop: int, block_rows: int) -> Iterator[pa.Table]:
        """Rows [start, stop) of ``columns`` in tables of ``block_rows`` rows (the last may be shorter)."""
        self.require(columns, "embeddings")
        for lo in range(start, stop, block_rows):
            hi = min(stop, lo + block_rows)
            cols = {}
            if "id" in columns:
                cols["id"] = pa.array(np.arange(lo, hi, dtype=np.int64))
            if "embedding" in columns:
                x = rows(lo, hi, self.n, self.d, self.seed, self.clusters)
                cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), self.d)
            yield pa.table({c: cols[c] for c in columns})
