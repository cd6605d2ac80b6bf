"""``leverage``: the row leverage scores of the embeddings matrix X (n × d): h_i = x_iᵀ(XᵀX)⁺x_i = ‖U_i‖² for the
thin SVD X = UΣVᵀ; 0 <= h_i <= 1 and Σ h_i = rank(X). A high leverage marks a row in a direction few
other rows share (higher = harder: rarer). Computed on the raw embeddings (no centring, no bias column).

Two passes over the embedding blocks (any engine):

* exact (the default): a streaming thin QR of X (each block's R factor, stacked onto the running R and
  factored again, in block order), then the SVD R = U_R S Vᵀ; h_i = ‖x_i V S⁻¹‖² over the singular
  values above max(n, d)·ε·s_max (so a rank-deficient X gives Σ h = its rank). O(n·d²) time, O(d²) memory.
* ``--sketch`` (Drineas, Magdon-Ismail, Mahoney & Woodruff 2012, "Fast approximation of matrix coherence
  and statistical leverage"): a CountSketch Π₁ of r₁ = ``SKETCH_ROWS_PER_D``·d rows (each row of X added
  with a random sign to one random row of Π₁X; Clarkson & Woodruff 2013 in place of the paper's SRHT, so
  that it streams), the R of Π₁X's QR, then a Gaussian JL matrix Π₂ of ``JL_DIMS`` columns:
  h̃_i = c·‖x_i R⁻¹ Π₂‖², with c = (r₁ − d − 1)/r₁ the inverse-Wishart factor that removes the upward bias
  of inverting a sketched Gram matrix (about d/r₁ otherwise). O(n·d·JL_DIMS + r₁·d²) time and
  O(r₁·d) memory instead of O(n·d²): worth it when d is large (thousands). Its error, measured in
  tests/test_influence_scores.py (n = 20000, d = 32, heavy-tailed row norms): the relative error
  |h̃ − h| / h has a median of about 6 % and stays below about 26 % for 99 % of the rows; the mean over
  rows of h̃ / h is within 2 % of 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .base import ExampleMethod, Route

#: CountSketch rows per dimension of the sketched path (Π₁ has this many times d rows).
SKETCH_ROWS_PER_D = 16
#: Columns of the Gaussian JL matrix Π₂ (its share of the relative error of h̃ is about sqrt(2 / JL_DIMS)).
JL_DIMS = 512


def r_factor(x: np.ndarray) -> np.ndarray:
    """The R of a thin QR of ``x`` (m, d), float64 (min(m, d), d)."""
    return np.linalg.qr(np.asarray(x, dtype=np.float64), mode="r")


def stack_r(r: np.ndarray | None, rb: np.ndarray) -> np.ndarray:
    """The R of [A; B] from the R of A and the R of B (TSQR)."""
    return rb if r is None else np.linalg.qr(np.vstack([r, rb]), mode="r")


def inverse_map(r: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """(T, rank): T = V S⁻¹ (d, rank) over the singular values of R above max(n, d)·ε·s_max, so that
    h_i = ‖x_i T‖² (the pseudo-inverse on a rank-deficient X)."""
    _, s, vt = np.linalg.svd(r, full_matrices=False)
    d = r.shape[1]
    if not len(s) or s[0] == 0:
        return np.zeros((d, 0)), 0
    keep = s > max(n, d) * np.finfo(np.float64).eps * s[0]
    return vt[keep].T / s[keep], int(keep.sum())


def row_leverage(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """‖x_i T‖² per row, float64."""
    y = np.asarray(x, dtype=np.float64) @ t
    return (y * y).sum(axis=1)


def leverage_exact(x: np.ndarray, block_rows: int = 65536) -> np.ndarray:
    """Exact leverage scores of a matrix in memory, by the same block passes as the command.

    >>> leverage_exact(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])).round(6).tolist()
    [1.0, 0.5, 0.5]
    """
    return leverage_of_blocks(lambda: (x[lo : lo + block_rows] for lo in range(0, len(x), block_rows)), len(x))


def leverage_of_blocks(blocks: Callable[[], Iterable[np.ndarray]], n: int) -> np.ndarray:
    """Exact leverage scores of the n rows that ``blocks()`` yields block by block (called twice: the
    streaming thin QR, then h of every block), float64 (n,)."""
    r = None
    for xb in blocks():
        r = stack_r(r, r_factor(xb))
    t, _ = inverse_map(r, n)
    return np.concatenate([row_leverage(xb, t) for xb in blocks()])


def countsketch_block(x: np.ndarray, b: int, rows: int, seed: int) -> np.ndarray:
    """Π₁ applied to block b's rows: each row goes, with a random sign, to one of ``rows`` rows; keyed by (seed, b)."""
    from scipy import sparse

    rng = np.random.default_rng([seed, 13, b])
    m = len(x)
    bucket = rng.integers(0, rows, m)
    sign = rng.choice(np.array([-1.0, 1.0]), m)
    s = sparse.csr_matrix((sign, (bucket, np.arange(m))), shape=(rows, m))
    return np.asarray(s @ np.asarray(x, dtype=np.float64))


def sketch_map(sketched: np.ndarray, n: int, dims: int, seed: int) -> tuple[np.ndarray, int]:
    """(T, rank) of the sketched path: T = sqrt(c)·R⁻¹ Π₂ from the R of Π₁X (r₁ rows), with Π₂ Gaussian
    (rank, dims) / sqrt(dims) and c = (r₁ − d − 1)/r₁ (see the module docstring)."""
    t, rank = inverse_map(r_factor(sketched), n)
    g = np.random.default_rng([seed, 14]).standard_normal((rank, dims)) / np.sqrt(dims)
    r1, d = sketched.shape
    c = max(r1 - d - 1, 1) / r1
    return np.sqrt(c) * (t @ g), rank


@dataclass
class LeverageState:
    d: int
    n: int
    transform: np.ndarray | None = None
    rank: int = 0


class Leverage(ExampleMethod):
    name = "leverage"
    summary = "row leverage of the --embeddings matrix, x_iᵀ(XᵀX)⁺x_i: exact (thin QR), or --sketch (Drineas et al. 2012)"
    direction = "higher=harder"
    routes = (Route("embeddings", ("embedding",)),)

    def __init__(self, sketch: bool = False, seed: int | None = None):
        self.sketch = sketch
        self.seed = 0 if seed is None else seed

    def params(self) -> dict[str, Any]:
        return {"sketch": self.sketch, **({"seed": self.seed} if self.sketch else {})}

    def needs_label(self, route: Route) -> bool:
        return False

    def sketch_rows(self, d: int) -> int:
        return SKETCH_ROWS_PER_D * d

    def first_block(self, b: int, x: np.ndarray, state: LeverageState) -> np.ndarray:
        """Pass 1 on a block: its R factor (exact) or its CountSketch (sketched)."""
        if self.sketch:
            return countsketch_block(x, b, self.sketch_rows(state.d), self.seed)
        return r_factor(x)

    def combine(self, acc: np.ndarray | None, part: np.ndarray) -> np.ndarray:
        """Pass 1 on the client, in block order."""
        if self.sketch:
            return part if acc is None else acc + part
        return stack_r(acc, part)

    def between(self, acc: np.ndarray, state: LeverageState) -> dict[str, Any]:
        """The global step: the map T with h_i = ‖x_i T‖²; returns the summary."""
        if self.sketch:
            state.transform, state.rank = sketch_map(acc, state.n, JL_DIMS, self.seed)
            mode = {"mode": "sketch", "sketch_rows": self.sketch_rows(state.d), "jl_dims": JL_DIMS}
        else:
            state.transform, state.rank = inverse_map(acc, state.n)
            mode = {"mode": "exact"}
        return {**mode, "d": state.d, "rank": state.rank}

    def second_block(self, b: int, x: np.ndarray, state: LeverageState) -> np.ndarray:
        """Pass 2 on a block: h of its rows."""
        return row_leverage(x, state.transform)
