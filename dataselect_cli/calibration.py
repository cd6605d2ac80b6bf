"""Model-assisted estimation: calibrated weights and the GREG estimator (Särndal, Swensson & Wretman 1992).

The tool knows a proxy loss ℓ̂ for every row (its cluster's center loss) and every cluster's size.
Calibration changes the design weights w as little as possible (linear distance, Deville &
Särndal 1992) so that the selection reproduces known totals t_x = Σ_U x:

    w̃_i = w_i·g_i,   g_i = 1 + (t_x − t̂_x)ᵀ (Σ_S w_j x_j x_jᵀ)⁻¹ x_i,   Σ_S w̃_i x_i = t_x.

Σ_S w̃·ℓ is then the GREG estimate Σ_U xᵀβ̂ + Σ_S w(ℓ − xᵀβ̂): unbiased up to O(1/n), and never
worse than the plain estimate asymptotically (β̂ = 0 is among the fits). Its variance is estimated
by the design's own variance estimator applied to g·e/(1 − h), e = ℓ − xᵀβ̂ (the residuals) and
h = w·xᵀ(Σ_S w x xᵀ)⁻¹x each row's leverage in the fit: a residual is smaller than the error it stands
for by about (1 − h), since the row helped fit β̂, and with a handful of rows per cluster the plain g·e
understate the variance (measured: 84.5–94.5 % coverage at a nominal 95 %). The leverage-adjusted
(jackknife-type) residuals are Valliant's (2002) remedy (*Variance estimation for the general regression
estimator*, Survey Methodology 28); the t interval's df are the design's less the p − 1 extra
coefficients fitted.

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


def leverage(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """h_i = w_i·x_iᵀ(Σ_S w x xᵀ)⁻¹x_i, each selected row's leverage in the weighted fit (Σ h = rank of x).

    >>> leverage(np.array([1.0, 1.0, 2.0]), np.ones((3, 1))).tolist()   # one mean: h = w / Σ w
    [0.25, 0.25, 0.5]
    """
    m = (x * weight[:, None]).T @ x
    return weight * np.einsum("ij,jk,ik->i", x, np.linalg.pinv(m), x)


@dataclass
class Assisted:
    """A GREG estimate: its total, the design's estimate on the adjusted residuals (whose ``var`` and ``df`` are
    the GREG's), those residuals (the units of its t interval) and the calibration."""

    total: float
    resid: Any
    residuals: np.ndarray
    cal: Calibration


def model_assisted(design, loss: np.ndarray, sel: dict[str, np.ndarray], proxy_by_cluster: np.ndarray,
                   size: np.ndarray, n: int) -> Assisted:
    """The GREG estimate of Σ ℓ from a selection of ``design``, with the design's variance estimator applied
    to the leverage-adjusted calibrated residuals g·e/(1 − h) and df less the extra coefficients.

    ``sel`` holds the selection's ``count``, ``prob``, ``weight`` (the design's) and ``cluster``. A row of
    leverage 1 (alone in its cluster) has a residual of 0 and adds nothing.
    """
    x, totals, name = auxiliaries(np.asarray(sel["cluster"]).astype(np.int64), np.asarray(proxy_by_cluster, float),
                                  np.asarray(size, dtype=np.float64))
    w = sel["weight"]
    cal = greg(loss, w, x, totals, name)
    # a design stratified by the clusters already centres each cluster in its variance estimator: with the
    # clusters as auxiliaries the fit takes no degree of freedom of its own (GREG is then the plain estimate)
    own = getattr(design, "strata_are_clusters", False) and name.startswith("cluster sizes")
    h = np.zeros(len(w)) if own else leverage(w, x)
    e = cal.g * (loss - cal.fitted)
    adj = np.divide(e, 1.0 - h, out=np.zeros_like(e), where=h < 1 - 1e-9)
    est = design.estimate(adj, sel, n)
    if not own:
        est.df = max(1, est.df - (x.shape[1] - 1))
    return Assisted(float(np.sum(w * cal.g * loss)), est, adj, cal)

