"""Per-example sensitivity scores of clustering-based sensitivity sampling. Arrays in, arrays out.

For a row e in cluster i with center row c_i (Axiotis et al. 2024, Algorithm 1):

* proxy loss      ℓ̂(e) = ℓ(c_i)                  (the k center losses are the only queries)
* distance term   v(e) = ‖e − c_i‖^z
* mass            m(e) = ℓ̂(e) + Λ_i · v(e)
* prob            p(e) = m(e) / Σ_x m(x)

Without any losses the proxy is ℓ̂ ≡ 1 and Λ = n / Φ_z, so p(e) = ½·(1/n) + ½·v(e)/Φ_z: the
"lightweight coreset" distribution of Bachem, Lucic & Krause (2018) with cluster centers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import grid


@dataclass
class Scores:
    """Per-row columns of the scores file (all float64, shape (n,))."""

    proxy_loss: np.ndarray
    distance_term: np.ndarray
    mass: np.ndarray
    prob: np.ndarray


def distance_term(distance: np.ndarray, z: int) -> np.ndarray:
    """v(e) = distance^z, float64."""
    return distance.astype(np.float64) ** z


def balanced_lambda(proxy_total: float, phi_z: float, n: int) -> float:
    """The default global Λ: the value that gives the loss term and the distance term equal mass.

    Λ = Σ ℓ̂ / Φ_z, so Σ ℓ̂ = Λ·Φ_z. With the unit proxy (no losses) this is the design's
    Λ = n / Φ_z. When every proxy loss is 0 it falls back to n / Φ_z (p ∝ v then anyway), and
    when Φ_z = 0 (every row equals its center) to 0.
    """
    if phi_z <= 0:
        return 0.0
    return (proxy_total if proxy_total > 0 else n) / phi_z


def sensitivity(labels: np.ndarray, dterm: np.ndarray, center_loss: np.ndarray, lam: np.ndarray,
                block_rows: int = grid.BLOCK_ROWS) -> Scores:
    """Sensitivity sampling distribution of Algorithm 1.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
        Cluster of each row, in [0, k).
    dterm : ndarray of shape (n,), float64
        v(e) = ‖e − c‖^z, see :func:`distance_term`.
    center_loss : ndarray of shape (k,), float64, >= 0
        Loss of each cluster's center row (1.0 everywhere in the no-loss mode).
    lam : ndarray of shape (k,), float64, >= 0
        Λ_i of each cluster.
    block_rows : int
        The block grid behind Σ mass (:mod:`dataselect_cli.grid`), so that a partitioned engine
        computes the same total.

    Returns
    -------
    Scores
        ``prob`` sums to 1. If every mass is 0 (every row equals its center and every center
        loss is 0) ``prob`` is uniform, which is then as good as any design.

    Examples
    --------
    >>> s = sensitivity(np.array([0, 0, 1]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    >>> s.mass.tolist(), s.prob.tolist()
    ([1.0, 3.0, 2.0], [0.16666666666666666, 0.5, 0.3333333333333333])
    """
    proxy, mass = row_mass(labels, dterm, center_loss, lam)
    return Scores(proxy, dterm, mass, prob_from_mass(mass, grid.total(grid.block_sums(mass, block_rows)), len(mass)))


def row_mass(labels: np.ndarray, dterm: np.ndarray, center_loss: np.ndarray, lam: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(proxy loss, mass) of each row: ℓ̂(e) = ℓ(c_i) and m(e) = ℓ̂(e) + Λ_i·v(e); row by row."""
    proxy = center_loss[labels].astype(np.float64)
    return proxy, proxy + lam[labels] * dterm


def prob_from_mass(mass: np.ndarray, total: float, n: int) -> np.ndarray:
    """p(e) = m(e) / Σ m; uniform 1/n when every mass is 0."""
    return mass / total if total > 0 else np.full(len(mass), 1.0 / n)


def score_block(b: int, cols: dict, *, center_loss: np.ndarray, lam: np.ndarray, z: int) -> tuple:
    """One block of the scoring pass over columns ``cluster`` and ``distance``:
    (proxy loss, distance term, mass, the block's Σ mass)."""
    labels = np.asarray(cols["cluster"]).astype(np.int64)
    dterm = distance_term(np.asarray(cols["distance"]), z)
    proxy, mass = row_mass(labels, dterm, center_loss, lam)
    return proxy, dterm, mass, grid.block_sum(mass)
