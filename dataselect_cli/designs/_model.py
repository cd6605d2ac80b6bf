"""The loss model behind ``auto`` and Neyman allocation: each cluster's mean and variance of the loss,
from the losses the user computed (the centers' and the probes'), shrunk so that a handful of them
does not pass for structure."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Prior degrees of freedom of the pooled variance when a cluster's own is shrunk towards it.
PRIOR_DF = 4

def loss_model(clusters: dict[str, Any], k: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(μ_h, σ_h², how) from the scores summary's queried losses, or None without any.

    Both are shrunk (empirical Bayes) so that a handful of queried losses per cluster does not pass
    for structure: σ_h² towards the pooled within-cluster variance σ̄² (with PRIOR_DF prior degrees of
    freedom), and μ_h towards the overall mean by B/(B + σ̄²/m_h), where B = max(0, Var(μ̂_h) − mean(σ̄²/m_h))
    is the between-cluster variance left after the noise of the cluster means. When the clusters do
    not explain the loss, B ≈ 0, every μ_h is the same and no design can predict a gain over uniform.
    """
    mean, var, count = clusters.get("queried_mean"), clusters.get("queried_var"), clusters.get("queried")
    if not mean or len(mean) != k:
        return None
    mu = np.asarray(mean, dtype=np.float64)
    m = np.asarray(count if count else [1] * k, dtype=np.float64)
    have = np.array([v is not None for v in var])
    if have.any():
        v = np.array([x if x is not None else 0.0 for x in var])
        df = np.maximum(m - 1, 0) * have
        pooled = float(np.sum(df * v) / df.sum()) if df.sum() > 0 else 0.0
        sig = (df * v + PRIOR_DF * pooled) / (df + PRIOR_DF)
        how = "queried losses per cluster, shrunk to the pooled variance and the overall mean"
    else:
        pooled = float(mu.var(ddof=1)) if k > 1 else 0.0
        sig = np.full(k, pooled)
        how = "centers only: between-cluster variance taken as within (pessimistic)"
    between = max(0.0, float(mu.var(ddof=1)) - float(np.mean(pooled / m))) if k > 1 else 0.0
    grand = float(np.average(mu, weights=m))
    shrink = between / (between + pooled / m) if between > 0 else np.zeros(k)
    return grand + shrink * (mu - grand), sig, how

