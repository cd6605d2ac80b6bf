"""``sample --regression --target COL``: the paper's regression variant (Algorithm 2, Axiotis et al. 2024, §2.5).

Rows are (a, b): a the embedding, b the target column. The rows are clustered (z = 1 by default: the
unsquared distance of Algorithm 2); the targets of the k center rows are the only labels used;
x0 is the least-squares fit on the centers weighted by their clusters' sizes; the proxy loss of a
row is its center's squared residual (⟨â, x0⟩ − b̂)², and the ``sensitivity`` method turns it into
the mass (ℓ̂ + Λ·‖a − â‖^z; with ``--lambda inf`` the distance alone, as in the paper's experiments).
``--design leverage`` draws i.i.d. ∝ the leverage of the rows of [a, 1] instead (the comparison).

What the weights estimate: for every fixed model x, Σ_S w·(⟨a, x⟩ − b)² is unbiased for the sum of
(⟨a, x⟩ − b)² over the rows with p > 0 (Theorem 11 bounds its error uniformly over x for finite Λ),
so a weighted least-squares fit on the selection estimates the fit on those rows. With Λ = ∞ the
rows at distance 0 from their center (the k centers, and exact duplicates of them) have p = 0: the
report counts them, and their targets are the ones already read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .. import grid
from ..cluster import Clustering
from ..errors import InputError
from ..methods.leverage import leverage_of_blocks
from ..models import _design, center_residuals



@dataclass
class Target:
    """The regression target of a run: its column, where it was read (``path``) and its values in row order."""

    column: str
    path: str
    y: np.ndarray

    @property
    def label(self) -> str:
        """How messages and the report name where the center losses come from."""
        return f"--target {self.column} (squared residuals of x0 at the center rows)"


def check_options(regression: bool, target: str | None, data: str | None, k: int | None, design_name: str) -> None:
    """Refuse, before any work, --target without --regression, --regression without --target or --k, and
    --design leverage without --regression (--data without either --regression or --loss-command is refused
    with the loss command's options)."""
    if not regression:
        if target is not None:
            raise InputError("--target applies with --regression (Algorithm 2: rows are (embedding, target))")
        if design_name == "leverage":
            raise InputError("--design leverage draws ∝ the leverage of the rows [embedding, 1] of a regression; "
                             "it applies with --regression --target COL")
        return
    if target is None:
        raise InputError("--regression needs --target COL, the numeric column to regress on (in INPUT, or in "
                         "--data TABLE joined on id)")
    if k is None and design_name != "leverage":
        raise InputError("--regression clusters the rows: give --k (the center rows whose targets are used)")


def read_target(input_path: str, column: str, ids: pa.Array, data: str | None) -> Target:
    """The ``--target`` column in row order (from INPUT, or joined on id from ``--data``), numeric and finite."""
    from .evaluate import encode_target, read_column  # here: the evaluate step's imports are heavy

    path = data or input_path
    col = read_column(path, column, ids, "--target", data is not None)
    return Target(column, path, encode_target(col, path, column))


def center_losses(ids: pa.Array, x, cl: Clustering, target: Target, block_rows: int
                  ) -> tuple[tuple[pa.Array, np.ndarray], dict[str, Any]]:
    """Algorithm 2's center losses: ((center ids, (⟨â, x0⟩ − b̂)²), the regression's part of the summary)."""
    from ..cluster import _source

    order = np.argsort(cl.center_index, kind="stable")
    xc = np.empty((len(order), _source(x).d), dtype=np.float32)
    xc[order] = _source(x).take(cl.center_index[order], block_rows)
    x0, residual = center_residuals(xc, target.y[cl.center_index], cl.size)
    summary = {"target": target.column, "target_file": target.path, "x0": x0.tolist(),
               "x0_fit": "least squares on the k center rows weighted by cluster size (intercept last)"}
    return (ids.take(pa.array(cl.center_index)), residual), summary


def leverage_scores(ids: pa.Array, x, block_rows: int) -> tuple[pa.Table, dict[str, Any]]:
    """``--design leverage``: mass = the leverage of each row of [a, 1], prob = mass / Σ mass (= mass / rank)."""
    from ..cluster import _source

    src = _source(x)
    nb = grid.n_blocks(src.n, block_rows)
    h = leverage_of_blocks(lambda: (_design(xb) for _, xb in src.iter_blocks(0, nb, block_rows)), src.n)
    total = grid.total(grid.block_sums(h, block_rows))
    table = pa.table({"id": ids, "mass": h, "prob": h / total})
    summary = {"n": src.n, "d": src.d, "k": None, "method": "leverage", "direction": "mass",
               "normalization": "leverage of [embedding, 1]", "rank": round(total)}
    return table, summary


def report_part(scores: pa.Table, target: Target, fit: dict[str, Any] | None) -> dict[str, Any]:
    """The report's ``regression`` entry: the target, x0, the rows with p = 0, and what Σ w·f estimates."""
    prob = scores.column("prob").to_numpy()
    zero = int(np.count_nonzero(prob == 0))
    covers = "every row" if zero == 0 else f"the {len(prob) - zero} rows with p > 0 ({zero} rows have p = 0: " \
        "rows at distance 0 from their center under Λ = ∞ or with a zero mass; add their own terms for all rows)"
    return {**(fit or {"target": target.column, "target_file": target.path}), "zero_prob_rows": zero,
            "estimates": f"for every fixed linear model x, Σ weight·(⟨[a, 1], x⟩ − b)² over the selection is "
                         f"unbiased for Σ (⟨[a, 1], x⟩ − b)² over {covers}; a weighted least-squares fit on the "
                         "selection therefore estimates the fit on those rows"}
