"""Samplers: draw rows from a distribution and give each drawn row its unbiased weight.

The paper's design (Algorithm 1) draws s rows i.i.d. with replacement from p. Rows drawn more
than once become one row with ``count``; ``weight = count / (s·p)``, so Σ weight·ℓ over the
selection is the Hansen–Hurwitz estimator of Σ ℓ over all rows, unbiased for any p that is
positive wherever ℓ is.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import grid


def uniforms(s: int, seed: int) -> np.ndarray:
    """The s uniforms in [0, 1) behind a draw, from ``seed`` alone (not from how rows are split)."""
    return np.random.default_rng([seed, 3]).random(s)


def route(sums: np.ndarray, s: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Send each of the s draws to a block: (block of each draw, its offset into that block's mass).

    Parameters
    ----------
    sums : ndarray of shape (n_blocks,), float64
        Mass of each block of the grid (:func:`~dataselect_cli.grid.block_sums`).
    s : int
    seed : int

    Returns
    -------
    block : ndarray of shape (s,), int64, sorted
    offset : ndarray of shape (s,), float64
        Where in [0, sums[block]) the draw falls; :func:`resolve` turns it into a row.

    Notes
    -----
    This is the only step that sees every block, and it needs only their s sums; the blocks are
    then resolved independently, wherever they are (see :mod:`dataselect_cli.grid`).
    """
    prefix = np.cumsum(sums, dtype=np.float64)
    u = np.sort(uniforms(s, seed)) * prefix[-1]
    # rounding can put u at or past the last prefix sum; the last block with mass takes it
    block = np.minimum(np.searchsorted(prefix, u, side="right"), np.flatnonzero(sums > 0)[-1])
    start = np.concatenate([[0.0], prefix[:-1]])
    return block.astype(np.int64), np.maximum(u - start[block], 0.0)


def resolve(mass: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Rows of one block hit by draws at ``offset`` into its mass (inverse CDF): local indices, int64.

    Row i takes the offsets in [cdf[i−1], cdf[i]); a row of zero mass is never drawn.
    """
    cdf = np.cumsum(mass, dtype=np.float64)
    return np.minimum(np.searchsorted(cdf, offset, side="right"), np.flatnonzero(mass > 0)[-1]).astype(np.int64)


def draw_iid(mass: np.ndarray, s: int, seed: int, block_rows: int = grid.BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``s`` rows i.i.d. with probability proportional to ``mass``.

    Parameters
    ----------
    mass : ndarray of shape (n,), float64, >= 0, with a positive sum
    s : int
        Number of draws.
    seed : int
    block_rows : int
        The block grid (:mod:`dataselect_cli.grid`); the draw depends on it, not on how the rows
        are stored or split between machines.

    Returns
    -------
    index : ndarray of shape (m,), int64
        Distinct drawn rows in increasing order (m <= s).
    count : ndarray of shape (m,), int32
        Times each was drawn; sums to s.

    Notes
    -----
    Two-level inverse-CDF sampling: the s uniforms (from the seed alone) are routed to blocks by
    the blocks' mass (:func:`route`), then to rows within each block (:func:`resolve`). A
    partitioned engine runs exactly these steps, so it draws exactly these rows.

    >>> index, count = draw_iid(np.array([0.0, 1.0, 0.0, 3.0]), 8, seed=1, block_rows=2)
    >>> index.tolist(), count.tolist()  # rows of zero mass are never drawn
    ([1, 3], [3, 5])
    """
    sums = grid.block_sums(mass, block_rows)
    block, offset = route(sums, s, seed)
    drawn = [b * block_rows + resolve(mass[b * block_rows : (b + 1) * block_rows], offset[block == b])
             for b in np.unique(block)]
    index, count = np.unique(np.concatenate(drawn), return_counts=True)
    return index.astype(np.int64), count.astype(np.int32)


def weights(count: np.ndarray, prob: np.ndarray, s: int) -> np.ndarray:
    """weight = count / (s·p), float64."""
    return count / (s * prob)


def check_block(b: int, cols: dict) -> tuple[float, float, float, int]:
    """Pass 1 of a draw from a scores table: (Σ mass, Σ prob, smallest positive prob, bad rows) of a block.

    A bad row has a mass that is negative or not finite, or a prob that is not finite.
    """
    mass, prob = np.asarray(cols["mass"], dtype=np.float64), np.asarray(cols["prob"], dtype=np.float64)
    bad = ~np.isfinite(mass) | (mass < 0) | ~np.isfinite(prob)
    pos = prob[prob > 0]
    return (grid.block_sum(np.where(bad, 0.0, mass)), grid.block_sum(np.where(bad, 0.0, prob)),
            float(pos.min()) if len(pos) else np.inf, int(bad.sum()))


def draw_block(b: int, cols: dict, *, offsets: dict, block_rows: int) -> tuple | None:
    """Pass 2: the rows of block b hit by the draws routed to it: (rows, counts, prob, cluster, ids), or None."""
    off = offsets.get(b)
    if off is None:
        return None
    local, count = np.unique(resolve(np.asarray(cols["mass"], dtype=np.float64), off), return_counts=True)
    return (b * block_rows + local, count.astype(np.int32), np.asarray(cols["prob"])[local],
            np.asarray(cols["cluster"])[local], cols["id"].take(pa.array(local)))
