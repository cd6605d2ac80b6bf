"""Each row's distance to the nearest of a growing set of chosen rows: the state of k-center greedy.

k-center greedy (Sener & Savarese 2018: repeatedly add the row farthest from the chosen ones) and
D^z sampling (k-means++ seeding: add a row with probability ∝ its distance^z to the chosen ones) are
both one loop over this state: choose a row from the current distances, then lower every row's
distance by the distance to the new row. :class:`Traversal` keeps the state in float32 and updates
it with one BLAS matrix-vector product per chosen row (O(n·d) time, O(n) memory beside the matrix),
and it can be extended later: a longer traversal from the same start has the shorter one as its
prefix, so several budgets cost the largest one.
"""

from __future__ import annotations

import numpy as np


class Traversal:
    """Rows chosen one at a time and every row's squared Euclidean distance to the nearest chosen row.

    Parameters
    ----------
    x : ndarray of shape (n, d)
        The rows (copied to float32 when they are not float32 and C-contiguous already).

    Attributes
    ----------
    order : list of int
        The chosen rows, in the order chosen.
    sqdist : ndarray of shape (n,), float32
        Squared distance of each row to its nearest chosen row (inf before the first); a chosen row
        holds -inf, so that :meth:`farthest` never returns it again.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.sq = np.einsum("ij,ij->i", self.x, self.x)
        self.sqdist = np.full(len(self.x), np.inf, dtype=np.float32)
        self.order: list[int] = []
        self._buf = np.empty(len(self.x), dtype=np.float32)

    def add(self, row: int) -> None:
        """Choose ``row``: every distance becomes min(itself, ‖x_i − x_row‖²)."""
        buf = self._buf
        np.dot(self.x, self.x[row], out=buf)
        buf *= -2.0
        buf += self.sq
        buf += self.sq[row]
        np.minimum(self.sqdist, buf, out=self.sqdist)
        self.sqdist[row] = -np.inf
        self.order.append(int(row))

    def farthest(self) -> int:
        """The row farthest from the chosen ones (the first such row on a tie)."""
        return int(np.argmax(self.sqdist))

    def extend_farthest(self, size: int) -> list[int]:
        """Add the farthest row until ``size`` rows are chosen (k-center greedy); return the order.

        Examples
        --------
        >>> t = Traversal(np.array([[0.0], [1.0], [10.0], [4.0], [6.0]]))
        >>> t.add(0)
        >>> t.extend_farthest(3)
        [0, 2, 3]
        """
        size = min(size, len(self.x))
        while len(self.order) < size:
            self.add(self.farthest())
        return self.order[:size]
