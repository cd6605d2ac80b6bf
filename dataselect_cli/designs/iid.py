"""``iid``: s draws with replacement with probability p (the paper's design, Algorithm 1). The default.

Rows drawn more than once become one row with ``count``; ``weight = count / (s·p)``, so
Σ weight·ℓ over the selection is the Hansen–Hurwitz estimator of Σ ℓ, unbiased for any p that is
positive wherever ℓ is. Its variance estimate is v̂ = Σ count·(ℓ/p − T̂)² / (s(s − 1)).

The draw is two-level inverse-CDF sampling on the block grid: the s uniforms (from the seed alone)
are routed to blocks by the blocks' mass (:func:`route`), then to rows within each block
(:func:`resolve`). Every engine runs exactly these steps, so it draws exactly these rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import bounds, grid
from ..errors import InputError
from .base import Design, Drawn, Estimate, Interval, Plan, gather


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
    """
    return route_uniforms(sums, np.sort(uniforms(s, seed)))


def route_uniforms(sums: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`route` for given uniforms ``u`` in [0, 1): (block of each, its offset into that block's mass)."""
    prefix = np.cumsum(sums, dtype=np.float64)
    u = u * prefix[-1]
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


def weights(count: np.ndarray, prob: np.ndarray, s: int) -> np.ndarray:
    """weight = count / (s·p), float64."""
    return count / (s * prob)


def hansen_hurwitz(loss: np.ndarray, prob: np.ndarray, count: np.ndarray, s: int) -> tuple[float, float]:
    """T̂ = Σ count·ℓ/(s·p) and its unbiased variance estimate v̂ = Σ count·(ℓ/p − T̂)² / (s(s − 1)).

    Examples
    --------
    >>> hansen_hurwitz(np.array([1.0, 3.0]), np.array([0.25, 0.75]), np.array([1, 1]), 2)
    (4.0, 0.0)
    """
    y = loss / prob
    total = float(np.sum(count * y) / s)
    var = float(np.sum(count * (y - total) ** 2) / (s * (s - 1))) if s > 1 else float("nan")
    return total, var


class IID(Design):
    """s i.i.d. draws with replacement from p; weight count/(s·p); Hansen–Hurwitz."""

    name = "iid"
    with_replacement = True
    summary = "s draws with replacement ∝ p (the paper's Algorithm 1); weight count/(s·p); Theorem 2 bound"

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple[float, float, float, int]:
        """(Σ mass, Σ prob, smallest positive prob, bad rows) of a block; a bad row has a mass that is
        negative or not finite, or a prob that is not finite."""
        mass, prob = np.asarray(cols["mass"], dtype=np.float64), np.asarray(cols["prob"], dtype=np.float64)
        bad = ~np.isfinite(mass) | (mass < 0) | ~np.isfinite(prob)
        pos = prob[prob > 0]
        return (grid.block_sum(np.where(bad, 0.0, mass)), grid.block_sum(np.where(bad, 0.0, prob)),
                float(pos.min()) if len(pos) else np.inf, int(bad.sum()))

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        sums = np.array([st[0] for st in stats], dtype=np.float64)
        if sum(st[3] for st in stats) or not grid.total(sums) > 0:
            raise InputError("column 'mass' must be finite, >= 0, and not all 0, and 'prob' finite", path)
        if abs(grid.total(np.array([st[1] for st in stats])) - 1.0) > 1e-6:
            raise InputError("column 'prob' must sum to 1; re-run 'dataselect score'", path)
        block, offset = route(sums, size, seed)
        # offsets[b]: the draws routed to block b, as offsets into its mass
        return Plan({"min_prob": float(min(st[2] for st in stats))},
                    offsets={int(b): offset[block == b] for b in np.unique(block)})

    def draw_mass(self, cols: dict, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        """(the mass the draws of a block resolve against, each row's selection probability)."""
        return np.asarray(cols["mass"], dtype=np.float64), np.asarray(cols["prob"])

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        off = plan.offsets.get(b)
        if off is None:
            return None
        mass, prob = self.draw_mass(cols, plan)
        local, count = np.unique(resolve(mass, off), return_counts=True)
        return b * block_rows + local, count, prob[local], gather(cols, local)

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return weights(count, prob, size)

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The draws' y = ℓ/p (each row ``count`` times): T̂ is their mean."""
        return [np.repeat(loss / sel["prob"], sel["count"].astype(np.int64))]

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        count = sel["count"].astype(np.int64)
        s = int(count.sum())
        total, var = hansen_hurwitz(loss, sel["prob"], count, s)
        return Estimate(total, var if s > 1 else None, n, max(1, s - 1))

    def intervals(self, est: Estimate, loss: np.ndarray, sel: dict[str, np.ndarray], report: dict[str, Any],
                  delta: float, loss_max: float | None) -> list[Interval]:
        """Theorem 2 (when the selection knows ε and Λ·Φ), the CLT interval, and with ``loss_max`` the
        empirical Bernstein interval (rigorous given the bound)."""
        out = []
        n, s = est.n, est.df + 1
        eps, lam_phi = report.get("eps"), report.get("lambda_phi")
        if eps is not None and lam_phi is not None:
            lo, hi = bounds.theorem2_interval(est.total, eps, lam_phi, n)
            checked = str(report.get("lambda_mode") or "").startswith("estimated per cluster from probes")
            kind = "Theorem 2 (Axiotis et al. 2024)" + ("" if checked else ", conditional on the Hölder assumption "
                                                         "with a Λ no probe checked")
            out.append(Interval("paper_interval", kind, lo, hi, report.get("confidence"), {
                "eps": eps, "additive_per_example": 2 * eps * lam_phi / n,
                "holds_if": "|ℓ(e) − ℓ(c)| ≤ Λ·‖e − c‖^z in every cluster (Λ: " + str(report.get("lambda_mode")) + ")",
                "conditional": not checked,
                "holder_violated": bool(report.get("holder", {}).get("violated", False))}))
        if est.var is not None:
            out.append(self.t_interval(est, self.units(loss, sel), delta))
        if loss_max is not None:
            if loss_max <= 0 or float(loss.max()) > loss_max:
                raise InputError(f"--loss-max {loss_max} is below a selected loss ({float(loss.max())}); "
                                 "give an upper bound on every loss")
            bound = loss_max / report["min_prob"]
            lo, hi = bounds.bernstein_interval(est.total, est.var if est.var is not None else math.nan, s, delta,
                                               bound, n)
            out.append(Interval("bernstein_interval",
                                "empirical Bernstein (Maurer & Pontil 2009), rigorous given --loss-max", lo, hi,
                                1 - delta))
        return out

    def guarantee(self, rep: dict[str, Any]) -> str:
        """The guarantee of Theorem 2 in words, with the numbers of this selection."""
        conf = f"{100 * rep['confidence']:.1f}%"
        prob_src = f"1 − δ, δ = {rep['delta']}" if rep["delta"] is not None else "1 − 1/e"
        if rep.get("lambda_infinite"):
            return (f"Λ = ∞ (--lambda inf): Theorem 2's additive term 2ε·Σ Λ·Φ_z is infinite, so no (1 ± ε) bound is "
                    f"stated. Σ weight·loss over the {rep['s']} draws is unbiased for the total loss over the rows "
                    "with p > 0 (rows at distance 0 from their center have p = 0); rely on the intervals of "
                    "'dataselect estimate'.")
        if rep["additive_per_example"] is None:
            return (f"With probability at least {conf} ({prob_src}) the weighted mean loss of the {rep['s']} draws is "
                    f"within a factor (1 ± {rep['eps']:.4g}) of the full mean loss, up to an additive term that is "
                    "unknown because this scores file carries no Λ·Φ_z.")
        text = (
            f"With probability at least {conf} ({prob_src}), the weighted mean loss of the {rep['s']} draws is within "
            f"±{rep['eps']:.4g} × (the full data set's mean loss) + {rep['additive_per_example']:.6g} of the full data "
            f"set's mean loss over all {rep['n']} rows (Theorem 2, Axiotis et al. 2024), provided that inside every "
            f"cluster |ℓ(e) − ℓ(center)| ≤ Λ·‖e − center‖^{rep['z']}, with Λ set by: {rep['lambda_mode']}."
        )
        if rep["holder"].get("violated"):
            h = rep["holder"]
            text += (f" WARNING: {h['violations']} of {h['probes']} probe rows break that assumption, so the bound is "
                     "NOT guaranteed for this data; rely on the empirical interval of 'dataselect estimate' instead.")
        elif rep["loss_mode"] and rep["loss_mode"].startswith("none"):
            text += (" No losses were given: the design uses a unit proxy loss, so the additive term is only as true "
                     "as the assumption that the loss varies by at most Λ·distance^z around each center.")
        return text


def draw_iid(mass: np.ndarray, s: int, seed: int, block_rows: int = grid.BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``s`` rows i.i.d. with probability proportional to ``mass``: (distinct rows, counts).

    The same passes as ``dataselect sample`` (:meth:`IID.draw_arrays`), on arrays in memory.

    >>> index, count = draw_iid(np.array([0.0, 1.0, 0.0, 3.0]), 8, seed=1, block_rows=2)
    >>> index.tolist(), count.tolist()  # rows of zero mass are never drawn
    ([1, 3], [3, 5])
    """
    d: Drawn = IID().draw_arrays(mass, s, seed, block_rows)
    return d.index, d.count
