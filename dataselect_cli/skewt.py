"""The t interval corrected to second order for the skew of the losses: Hall's transformation and Satterthwaite's df.

Every design here estimates Σ ℓ as T̂ = Σ_g mean(y_g) over groups of units (draws y = ℓ/p, rows
y = s·ℓ/π or N_h·ℓ, :meth:`~dataselect_cli.designs.Design.units`). The plain interval
T̂ ± t_{df}·SE assumes that t = (T̂ − T)/SE is Student's t. With losses skewed to the right (a few
rows with a large loss) it is not, for two reasons, each of order 1/√s, and both make the plain
interval cover too rarely — the runs whose sample missed the large losses have both a small T̂ and a
small SE (measured: 85–91 % at a nominal 95 % on docs/designs' data sets):

* t is skewed (to the left, when ℓ is skewed to the right). Hall's (1992) monotone cubic transformation
  g(t) = t + a + 2a·t² + (4/3)·a²·t³, a = γ/6, γ the estimated skewness of T̂, removes the first
  term of its Edgeworth expansion, so that g(t) is standard normal to second order (Hall 1992,
  *On the removal of skewness by transformation*, JRSS B 54; Zhou & Dinh 2005). Inverting it gives
  an interval longer on the side of the large losses.
* SE is itself uncertain, far more than s − 1 degrees of freedom say when the units are heavy-tailed
  (Var(s²) grows with the fourth moment). Satterthwaite's (1946) effective degrees of freedom
  ν = 2·v̂² / Var̂(v̂), with Var̂(v̂) from the units' fourth moments, replace s − 1 in the quantile.

Both are estimated from the selection alone; the interval is still asymptotic (it cannot see a large
loss that no selected row has), and ``evaluate`` measures its coverage over seeds (docs/designs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .bounds import t_quantile


@dataclass
class Shape:
    """What the units say about the distribution of T̂: its skewness γ and the effective df of its variance."""

    skewness: float
    df: float


def unit_shape(groups: list[np.ndarray], df: int) -> Shape:
    """The skewness of T̂ = Σ_g mean(y_g) and the effective degrees of freedom of v̂ = Σ_g s_g²/m_g.

    γ = Σ_g k3_g/m_g² / v̂^{3/2} (k3_g the unbiased third cumulant of group g, groups of 3 or more
    units); ν = 2·v̂²/Σ_g Var̂(s_g²)/m_g², Var̂(s_g²) = (m4_g − s_g⁴(m_g − 3)/(m_g − 1))/m_g, capped at
    the design's ``df`` (and at least 1). Groups of one unit carry no variance and are left out.

    Examples
    --------
    >>> sh = unit_shape([np.array([1.0] * 19 + [20.0])], 19)
    >>> round(sh.skewness, 3), round(sh.df, 2)      # one large unit: skewed, and the variance rests on it
    (1.0, 2.6)
    """
    v = var_v = k3 = 0.0
    for y in groups:
        m = len(y)
        if m < 2:
            continue
        d = y - y.mean()
        s2 = float(d @ d) / (m - 1)
        v += s2 / m
        var_v += max(float(np.mean(d**4)) - s2 * s2 * (m - 3) / (m - 1), 0.0) / m / m**2
        if m > 2:
            k3 += m * float(np.sum(d**3)) / ((m - 1) * (m - 2)) / m**2
    gamma = k3 / v**1.5 if v > 0 else 0.0
    nu = float(df) if var_v <= 0 else min(float(df), 2.0 * v * v / var_v)
    return Shape(gamma, max(1.0, nu))


def _hall_inverse(u: float, a: float) -> float:
    """g⁻¹(u) for g(t) = t + a + 2a·t² + (4/3)a²·t³ = a + ((1 + 2at)³ − 1)/(6a), monotone in t."""
    if abs(a) < 1e-12:
        return u - a
    return (float(np.cbrt(1.0 + 6.0 * a * (u - a))) - 1.0) / (2.0 * a)


def corrected_t(total: float, se: float, shape: Shape, delta: float) -> tuple[float, float]:
    """The (1 − δ) interval for T from T̂ = ``total``, its standard error and the units' :class:`Shape`.

    [T̂ − SE·g⁻¹(q), T̂ − SE·g⁻¹(−q)], q = t_{ν, 1−δ/2}, g Hall's transformation with a = γ/6.
    With γ = 0 and ν = s − 1 this is the plain t interval.

    Examples
    --------
    >>> [round(v, 4) for v in corrected_t(10.0, 1.0, Shape(0.0, 1e9), 0.05)]   # no skew, known variance
    [8.04, 11.96]
    >>> lo, hi = corrected_t(10.0, 1.0, Shape(0.3, 30.0), 0.05)
    >>> bool(hi - 10 > 10 - lo)                          # skewed to the right: longer upwards
    True
    """
    q = t_quantile(1 - delta / 2, max(1.0, shape.df))
    a = shape.skewness / 6.0
    lo, hi = total - se * _hall_inverse(q, a), total - se * _hall_inverse(-q, a)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else (-math.inf, math.inf)
