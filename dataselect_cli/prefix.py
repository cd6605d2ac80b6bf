"""The D^z sampling order: an order of the rows whose every prefix is a good clustering (Algorithm 3).

Axiotis et al. (2024, Appendix B.3) run sensitivity sampling in r rounds: round i queries the losses
of the next k rows of an order of the data set and samples with the first i·k rows as centers. The
order must be a *prefix clustering*: every prefix A of it, used as centers, has a (k, z)-clustering
cost Φ_z(D, A) close to the best one with |A| centers. D^z sampling (k-means++ seeding, Arthur &
Vassilvitskii 2007, run on to r·k rows) is what the paper suggests in practice: the first row is
drawn uniformly, each next row with probability ∝ its distance^z to the nearest row chosen so far.
For z = 2, Arthur & Vassilvitskii's Theorem 3.1 gives E[Φ_2(D, A_m)] ≤ 8(ln m + 2)·Φ_{m,2}(D) for
*every* prefix length m (each prefix is itself a k-means++ seeding of m centers).

The order is computed over all n rows block by block (:mod:`dataselect_cli.grid`), never as an
n × m matrix: each row keeps its squared distance to the nearest chosen row and that row's position
in the order; each new row costs one pass over the blocks (n·d multiply-adds), so the order of m
rows costs m passes, O(n·d·m) time, and 13 bytes per row (plus 8 per row per kept prefix). On a
file streamed from disk each pass reads the file again: m passes of I/O. The draws route one
uniform per step through the block sums as ``iid`` does, so the order depends on the seed and
``block_rows`` alone, and the first m rows of a longer order are the order of m rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import grid
from .cluster import _source
from .designs.iid import resolve, route_uniforms
from .progress import Progress, silent
from .sqdist import sqdist_rows

#: The stream of the seed the order is drawn from (the other streams: 1 fit rows, 2 probes/init, 3 draws, 4 seeding).
ORDER_STREAM = 21


@dataclass
class Prefix:
    """A clustering whose centers are the first m rows of the order: what scoring needs of it.

    Attributes
    ----------
    labels : ndarray of shape (n,), int32
        Position in the order (0..m−1) of each row's nearest center row; on a tie, the earlier one.
    distance : ndarray of shape (n,), float32
        L2 distance of each row to that center row (exactly 0 for the center rows).
    """

    labels: np.ndarray
    distance: np.ndarray


@dataclass
class DzOrder:
    """The result of :func:`dz_order`: ``index`` (m,) int64, the rows in order; ``prefixes`` the
    clusterings kept, by prefix length."""

    index: np.ndarray
    prefixes: dict[int, Prefix] = field(default_factory=dict)


def _power(sq: np.ndarray, z: int) -> np.ndarray:
    """distance^z from squared distances, float64."""
    return sq if z == 2 else np.sqrt(sq)


def dz_order(x, m: int, *, z: int = 2, seed: int = 0, keep: tuple[int, ...] = (),
             block_rows: int = grid.BLOCK_ROWS, progress: Progress = silent) -> DzOrder:
    """The first ``m`` rows of the D^z sampling order of ``x``, and the clusterings of its prefixes ``keep``.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, finite; or a block source (:mod:`dataselect_cli.dataset`)
    m : int
        Rows of the order, 1 <= m <= n (checked by the caller).
    z : {1, 2}
        Each next row is drawn with probability ∝ distance^z to the nearest row chosen so far.
    seed : int
    keep : tuple of int
        Prefix lengths whose clustering (nearest center row and distance of every row) is returned.
    block_rows : int
        The block grid of the passes and of the draws.
    progress : callable
        Reports the rows chosen (:mod:`dataselect_cli.progress`).

    Returns
    -------
    DzOrder

    Notes
    -----
    When every row not yet chosen is at distance 0 from a chosen one (fewer distinct rows than m),
    D^z sampling is undefined; the next row is then drawn uniformly among the rows not yet chosen.

    Examples
    --------
    >>> x = np.array([[0.0], [0.1], [10.0], [10.1]], dtype=np.float32)
    >>> o = dz_order(x, 2, seed=0, keep=(2,))
    >>> sorted((x[o.index, 0] > 5).tolist())  # one row of each group: the far group carries ~all the mass
    [False, True]
    >>> o.prefixes[2].labels.tolist() == [0, 0, 1, 1] or o.prefixes[2].labels.tolist() == [1, 1, 0, 0]
    True
    """
    src = _source(x)
    n = src.n
    nb = grid.n_blocks(n, block_rows)
    rng = np.random.default_rng([seed, ORDER_STREAM])
    sq = np.full(n, np.inf)
    label = np.zeros(n, dtype=np.int32)
    chosen = np.zeros(n, dtype=bool)
    sums = np.zeros(nb)
    index = np.empty(m, dtype=np.int64)
    out = DzOrder(index)
    row = min(int(rng.random() * n), n - 1)
    with progress("D^z order (one pass over the rows per row chosen)", m, "rows") as advance:
        for j in range(m):
            index[j], chosen[row] = row, True
            b = row // block_rows
            for _, xb in src.iter_blocks(b, b + 1, block_rows):  # reads that one block
                c = xb[row - b * block_rows][None, :].copy()
            for b, xb in src.iter_blocks(0, nb, block_rows):
                lo = b * block_rows
                d2 = sqdist_rows(xb, c, np.zeros(len(xb), dtype=np.int64))
                cur, lab = sq[lo : lo + len(xb)], label[lo : lo + len(xb)]
                closer = d2 < cur  # strictly: on a tie the earlier row of the order stays the center
                cur[closer], lab[closer] = d2[closer], j
                sums[b] = grid.block_sum(_power(cur, z))
            if j + 1 in keep:
                out.prefixes[j + 1] = Prefix(label.copy(), np.sqrt(sq).astype(np.float32))
            advance(1)
            if j + 1 < m:
                row = _next_row(rng.random(), sums, sq, chosen, z, block_rows)
    return out


def _next_row(u: float, sums: np.ndarray, sq: np.ndarray, chosen: np.ndarray, z: int, block_rows: int) -> int:
    """The row a uniform ``u`` picks ∝ distance^z (block by the block sums, then row by the block's CDF)."""
    if not grid.total(sums) > 0:  # every row left coincides with a chosen one: uniform among the rest
        free = np.flatnonzero(~chosen)
        return int(free[min(int(u * len(free)), len(free) - 1)])
    block, offset = route_uniforms(sums, np.array([u]))
    lo = int(block[0]) * block_rows
    w = _power(sq[lo : lo + block_rows], z)
    return lo + int(resolve(w, offset)[0])


def prefix_cost(prefix: Prefix, z: int) -> float:
    """Φ_z(D, A) = Σ distance^z of a prefix clustering."""
    return grid.total(grid.block_sums(prefix.distance.astype(np.float64) ** z))


def round_seed(seed: int, i: int) -> int:
    """The seed of round ``i``'s draw: its own stream of ``seed``, < 2³¹ (the designs take an int)."""
    return int(np.random.SeedSequence([seed, ORDER_STREAM, i]).generate_state(1)[0] >> 1)
