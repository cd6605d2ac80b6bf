"""Model-assisted estimation: calibrated weights and the GREG estimator (Särndal, Swensson & Wretman 1992).

The tool knows a proxy loss ℓ̂ for every row (its cluster's center loss) and every cluster's size.
Calibration changes the design weights w as little as possible (linear distance, Deville &
Särndal 1992) so that the selection reproduces known totals t_x = Σ_U x:

    w̃_i = w_i·g_i,   g_i = 1 + (t_x − t̂_x)ᵀ (Σ_S w_j x_j x_jᵀ)⁻¹ x_i,   Σ_S w̃_i x_i = t_x.

Σ_S w̃·ℓ is then the GREG estimate Σ_U xᵀβ̂ + Σ_S w(ℓ − xᵀβ̂): unbiased up to O(1/n), and never
worse than the plain estimate asymptotically (β̂ = 0 is among the fits). Its variance is estimated
by the design's own variance estimator applied to g·e, e = ℓ − xᵀβ̂ (the residuals).

The auxiliaries used: indicators of the clusters when every cluster has a selected row (then
calibration is post-stratification to the cluster sizes, which also fixes the proxy total, since ℓ̂
is constant in a cluster), else x = [1, ℓ̂] (the row count n and the proxy total Σ ℓ̂).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Calibrated weights are kept within [G_MIN, G_MAX] times the design weights (truncated linear calibration).
G_MIN, G_MAX = 0.2, 5.0


@dataclass
class Calibration:
    """g-factors of the selected rows, the fitted coefficients, and which auxiliaries were used."""

    g: np.ndarray
    beta: np.ndarray
    auxiliary: str
    fitted: np.ndarray  # xᵀβ̂ of the selected rows


def auxiliaries(cluster: np.ndarray, proxy_by_cluster: np.ndarray, size: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """(X of the selected rows, population totals t_x, name) for the selection's clusters.

    ``proxy_by_cluster`` and ``size`` are per cluster (k,); ``cluster`` per selected row.
    """
    k = len(size)
    present = np.zeros(k, dtype=bool)
    present[cluster] = True
    if present[size > 0].all():
        x = np.zeros((len(cluster), k))
        x[np.arange(len(cluster)), cluster] = 1.0
        return x, size.astype(np.float64), "cluster sizes (post-stratification)"
    x = np.column_stack([np.ones(len(cluster)), proxy_by_cluster[cluster]])
    return x, np.array([float(size.sum()), float(np.dot(size, proxy_by_cluster))]), "row count and proxy total"


def calibrate(weight: np.ndarray, x: np.ndarray, totals: np.ndarray, iters: int = 20) -> np.ndarray:
    """g-factors with Σ w·g·x = totals, g kept in [G_MIN, G_MAX] (rows that hit a bound are held there
    and the rest re-solved, a few rounds); exact when no bound binds.

    >>> w = np.array([2.0, 2.0, 2.0]); x = np.array([[1.0], [1.0], [1.0]])
    >>> calibrate(w, x, np.array([9.0])).tolist()   # Σ w = 6 → 9: every g = 1.5
    [1.5, 1.5, 1.5]
    """
    g = np.ones(len(weight))
    fixed = np.zeros(len(weight), dtype=bool)
    for _ in range(iters):
        free = ~fixed
        target = totals - (weight[fixed] * g[fixed]) @ x[fixed]
        xf, wf = x[free], weight[free]
        m = (xf * wf[:, None]).T @ xf
        lam = np.linalg.lstsq(m, target - wf @ xf, rcond=None)[0]
        g_new = np.ones(len(weight))
        g_new[fixed] = g[fixed]
        g_new[free] = 1.0 + xf @ lam
        low, high = g_new < G_MIN, g_new > G_MAX
        g = np.clip(g_new, G_MIN, G_MAX)
        if not (low | high)[free].any():
            break
        fixed |= low | high
    return g


def greg(loss: np.ndarray, weight: np.ndarray, x: np.ndarray, totals: np.ndarray, auxiliary: str) -> Calibration:
    """Calibrate, and fit β̂ by weighted least squares of ℓ on x (what the residuals are taken from)."""
    g = calibrate(weight, x, totals)
    m = (x * weight[:, None]).T @ x
    beta = np.linalg.lstsq(m, (x * weight[:, None]).T @ loss, rcond=None)[0]
    return Calibration(g, beta, auxiliary, x @ beta)


def model_assisted(design, loss: np.ndarray, sel: dict[str, np.ndarray], proxy_by_cluster: np.ndarray,
                   size: np.ndarray, n: int) -> tuple[float, Any, Calibration]:
    """The GREG estimate of Σ ℓ from a selection of ``design``: (total, the design's estimate on the
    calibrated residuals g·e, whose ``var`` and ``df`` are the GREG's, the calibration).

    ``sel`` holds the selection's ``count``, ``prob``, ``weight`` (the design's) and ``cluster``.
    """
    x, totals, name = auxiliaries(np.asarray(sel["cluster"]).astype(np.int64), np.asarray(proxy_by_cluster, float),
                                  np.asarray(size, dtype=np.float64))
    cal = greg(loss, sel["weight"], x, totals, name)
    return float(np.sum(sel["weight"] * cal.g * loss)), design.estimate(cal.g * (loss - cal.fitted), sel, n), cal
