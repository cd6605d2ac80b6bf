"""The proxy models of ``dataselect evaluate``: weighted multinomial logistic regression (SciPy's L-BFGS-B)
and weighted least squares (numpy). Arrays in, arrays out; deterministic.
"""

from __future__ import annotations

import functools

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


@functools.cache
def _blas_threads():
    """A threadpoolctl controller of the BLAS libraries loaded with numpy and scipy (built once)."""
    import scipy.optimize  # noqa: F401  (load SciPy's own OpenBLAS before the controller looks)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


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
    Minimises Σ w_i·CE_i / Σ w + (l2/2)·‖W‖² from zero by :func:`scipy.optimize.minimize` (L-BFGS-B,
    ``iters`` = maxiter, ftol 1e-12, gtol 1e-8), with BLAS on one thread: SciPy ≥ 1.15's L-BFGS-B
    calls its own OpenBLAS between our numpy BLAS calls, and the two thread pools then fight
    (scipy/scipy#22438).
    Measured (sklearn digits 1797×64, 10 classes, standardised, l2 = 1e-2, 2 cores): 64 ms, objective
    f* + 4.5e-12, against 39 ms and f* + 2.5e-9 for the former hand-written L-BFGS (1.6× slower, 550× closer);
    without the one-thread limit SciPy took 700 ms.
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

    from scipy.optimize import minimize  # imported here: `import scipy.optimize` costs ~0.5 s

    with _blas_threads().limit(limits=1, user_api="blas"):
        res = minimize(fun, np.zeros(a.shape[1] * classes), jac=True, method="L-BFGS-B",
                       options={"maxiter": iters, "maxcor": 10, "ftol": 1e-12, "gtol": 1e-8})
    return res.x.reshape(shape)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-softmax of logits ``z`` of shape (m, classes) along the classes (max-shifted, so no overflow)."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def log_proba(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Log class probabilities of the logistic model, shape (m, classes)."""
    return log_softmax(_design(x) @ theta)


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


def squared_residuals(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(⟨[x, 1], θ⟩ − y)² per row, float64: the loss of a linear model."""
    return (_design(x) @ theta - y.astype(np.float64)) ** 2


def center_residuals(x_centers: np.ndarray, y_centers: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2's proxy (Axiotis et al. 2024, §2.5): x0 and each center row's squared residual under it.

    Parameters
    ----------
    x_centers : ndarray of shape (k, d)
        The k center rows â.
    y_centers : ndarray of shape (k,)
        Their targets b̂ (the only labels Algorithm 2 queries).
    size : ndarray of shape (k,)
        The clusters' sizes: x0 is the least-squares fit on the centers, each weighted by its cluster's size.

    Returns
    -------
    x0 : ndarray of shape (d + 1,), the intercept last
    residual : ndarray of shape (k,), float64
        v(â, x0) = (⟨â, x0⟩ − b̂)²: the proxy loss of every row of the center's cluster.
    """
    x0 = fit_least_squares(x_centers, y_centers, np.asarray(size, dtype=np.float64))
    return x0, squared_residuals(x0, x_centers, y_centers)
