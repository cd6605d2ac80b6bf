"""The proxy models of ``dataselect evaluate``: weighted multinomial logistic regression (L-BFGS) and
weighted least squares, in numpy alone. Arrays in, arrays out; deterministic.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: L2 penalty of the proxy models (on standardised features; the intercept is not penalised).
L2_LOGISTIC = 1e-2
L2_LSQ = 1e-6


def _design(x: np.ndarray) -> np.ndarray:
    """[x, 1]: the features with an intercept column, float64."""
    return np.hstack([x.astype(np.float64), np.ones((len(x), 1))])


def _norm_weight(weight: np.ndarray | None, m: int) -> np.ndarray:
    """Weights rescaled to mean 1 (so constant weights give the unweighted model)."""
    if weight is None:
        return np.ones(m)
    return weight * (m / weight.sum())


def _lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], theta: np.ndarray, iters: int = 200,
           memory: int = 10, tol: float = 1e-9) -> np.ndarray:
    """Minimise a smooth convex ``fun`` (returning value and gradient) by L-BFGS with backtracking.

    Deterministic: a fixed iteration budget, no randomness, no threads of its own.
    """
    f, g = fun(theta)
    hist: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(iters):
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(hist):
            a = rho * (s @ q)
            q -= a * y
            alphas.append(a)
        if hist:
            s, y, _ = hist[-1]
            q *= (s @ y) / (y @ y)
        else:
            q /= max(1.0, float(np.abs(g).max()))
        for (s, y, rho), a in zip(hist, reversed(alphas)):
            q += s * (a - rho * (y @ q))
        d = -q
        slope = g @ d
        if slope >= 0:  # not a descent direction (numerical noise): fall back to the gradient
            d, slope = -g, -(g @ g)
        t = 1.0
        for _ in range(40):
            f_new, g_new = fun(theta + t * d)
            if f_new <= f + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            return theta
        s, y = t * d, g_new - g
        theta = theta + s
        if s @ y > 1e-12:
            hist = (hist + [(s, y, 1.0 / (s @ y))])[-memory:]
        done = f - f_new <= tol * max(1.0, abs(f)) or np.abs(g_new).max() <= 1e-7
        f, g = f_new, g_new
        if done:
            break
    return theta


def fit_logistic(x: np.ndarray, y: np.ndarray, classes: int, weight: np.ndarray | None = None, *,
                 l2: float = L2_LOGISTIC, iters: int = 200) -> np.ndarray:
    """Weighted, L2-regularised multinomial logistic regression.

    Parameters
    ----------
    x : ndarray of shape (m, d)
        Standardised features.
    y : ndarray of shape (m,), int in [0, classes)
    classes : int
    weight : ndarray of shape (m,) or None
        Per-row loss weights (rescaled to mean 1); None = unweighted.
    l2 : float
        Penalty (l2/2)·‖W‖² on the coefficients, not on the intercepts.

    Returns
    -------
    theta : ndarray of shape (d + 1, classes)
        Coefficients, last row the intercepts.

    Notes
    -----
    Minimises Σ w_i·CE_i / Σ w + (l2/2)·‖W‖² by L-BFGS (:func:`_lbfgs`), from zero.
    """
    a = _design(x)
    w = _norm_weight(weight, len(y))[:, None] / len(y)
    onehot = np.eye(classes)[y]
    pen = np.ones((a.shape[1], 1))
    pen[-1] = 0.0
    shape = (a.shape[1], classes)

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        theta = flat.reshape(shape)
        z = a @ theta
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        logp = z - lse
        f = -float(np.sum(w * onehot * logp)) + 0.5 * l2 * float(np.sum(pen * theta**2))
        grad = a.T @ (w * (np.exp(logp) - onehot)) + l2 * pen * theta
        return f, grad.ravel()

    return _lbfgs(fun, np.zeros(a.shape[1] * classes), iters=iters).reshape(shape)


def log_proba(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Log class probabilities of the logistic model, shape (m, classes)."""
    z = _design(x) @ theta
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_least_squares(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, *,
                      l2: float = L2_LSQ) -> np.ndarray:
    """Weighted least squares with an intercept and a tiny ridge (so m < d still has one solution).

    Solves (AᵀWA/Σw + l2·I′)·θ = AᵀWy/Σw, A = [x, 1], I′ the identity without the intercept.
    Returns θ of shape (d + 1,), the intercept last.
    """
    a = _design(x)
    w = _norm_weight(weight, len(y))
    gram = (a.T * w) @ a / len(y)
    pen = np.eye(a.shape[1]) * l2
    pen[-1, -1] = 0.0
    rhs = (a.T * w) @ y.astype(np.float64) / len(y)
    try:
        return np.linalg.solve(gram + pen, rhs)
    except np.linalg.LinAlgError:  # e.g. one row: the intercept's column alone is singular with others
        return np.linalg.lstsq(gram + pen, rhs, rcond=None)[0]
