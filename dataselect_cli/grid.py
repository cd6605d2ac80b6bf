"""The block grid: why every engine and every partitioning gives the same bytes.

Rows are numbered 0..n−1 in input order (files of a directory in name order, then row order) and
cut into blocks of ``block_rows`` rows: block b holds rows [b·B, (b+1)·B). Every computation is
either row-wise or a reduction that is computed **per block** and then combined **in block order**
on one machine. A file's row groups, a directory's files, a Dask partition or a batch in memory
only decide where a block is read and computed, never what it contains, so the results do not
depend on them. ``block_rows`` itself is a parameter (recorded in every output's metadata).

Sums of floats use :func:`math.fsum` per block (correctly rounded, so independent of how the block
was laid out in memory) and ``fsum`` again over the block sums.
"""

from __future__ import annotations

import math

import numpy as np

#: Rows per block; also the row-group size of every file the tool writes.
BLOCK_ROWS = 65536


def n_blocks(n: int, block_rows: int = BLOCK_ROWS) -> int:
    """Number of blocks of ``n`` rows (the last one may be shorter)."""
    return -(-n // block_rows)


def block_bounds(b: int, n: int, block_rows: int = BLOCK_ROWS) -> tuple[int, int]:
    """Rows [start, stop) of block ``b``."""
    return b * block_rows, min(n, (b + 1) * block_rows)


def block_sum(values: np.ndarray) -> float:
    """The sum of one block's values, correctly rounded (:func:`math.fsum`)."""
    return math.fsum(values.tolist())


def block_sums(values: np.ndarray, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """:func:`block_sum` of every block of an array held in memory, float64 (n_blocks,)."""
    n = len(values)
    return np.array([block_sum(values[s : s + block_rows]) for s in range(0, n, block_rows)], dtype=np.float64)


def total(sums: np.ndarray) -> float:
    """The grand total from the per-block sums (the one every engine uses).

    >>> total(block_sums(np.full(8, 0.125), block_rows=3))  # blocks of 3, 3 and 2 rows
    1.0
    """
    return math.fsum(np.asarray(sums, dtype=np.float64).tolist())
