"""The numerics taken from SciPy: Student-t quantiles (bounds.t_quantile) and the L-BFGS-B logistic fit
(models.fit_logistic), checked against tables and against an objective written out again here."""

from __future__ import annotations

import numpy as np
import pytest

from dataselect_cli.bounds import t_quantile
from dataselect_cli.models import fit_logistic

# --------------------------------------------------------------------------- t_quantile

# Table values to 9 significant figures (they agree with the former hand-written series to < 1e-12);
# df 1 and 2 are also checked in closed form below: tan(π(q − ½)) and (2q − 1)/√(2q(1 − q)).
T_TABLE = [
    (0.975, 1, 12.7062047), (0.975, 2, 4.30265273), (0.975, 5, 2.57058184), (0.975, 30, 2.04227246),
    (0.975, 1000, 1.96233908),
    (0.995, 1, 63.6567412), (0.995, 2, 9.92484320), (0.995, 5, 4.03214298), (0.995, 30, 2.74999565),
    (0.995, 1000, 2.58075470),
]


@pytest.mark.parametrize("q, df, expected", T_TABLE)
def test_t_quantile_table(q, df, expected):
    got = t_quantile(q, df)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("q", [0.975, 0.995])
def test_t_quantile_closed_forms(q):
    np.testing.assert_allclose(t_quantile(q, 1), np.tan(np.pi * (q - 0.5)), rtol=1e-12)
    np.testing.assert_allclose(t_quantile(q, 2), (2 * q - 1) / np.sqrt(2 * q * (1 - q)), rtol=1e-12)


@pytest.mark.parametrize("df", [1, 2, 5, 30, 1000])
@pytest.mark.parametrize("q", [0.6, 0.9, 0.975, 0.995, 0.9999])
def test_t_quantile_symmetric(q, df):
    np.testing.assert_allclose(t_quantile(1 - q, df), -t_quantile(q, df), rtol=1e-12)


@pytest.mark.parametrize("df", [1, 2, 5, 30, 1000])
def test_t_quantile_median_is_zero(df):
    assert t_quantile(0.5, df) == 0.0


# --------------------------------------------------------------------------- fit_logistic

L2 = 1e-2


def problem(m=150, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, d))
    y = np.argmax(x @ rng.normal(size=(d, classes)) + rng.gumbel(size=(m, classes)), axis=1)
    return (x - x.mean(0)) / x.std(0), y, classes


def objective(theta, x, y, classes, weight=None, l2=L2):
    """Σ w_i·CE_i / Σ w + (l2/2)·‖W‖² and its gradient, written out independently of models.py."""
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    w = w / w.sum()
    a = np.column_stack([x, np.ones(len(x))])
    z = a @ theta
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y1 = np.zeros_like(p)
    y1[np.arange(len(y)), y] = 1.0
    coef = theta.copy()
    coef[-1] = 0.0  # the intercepts are not penalised
    f = -np.sum(w * np.log(p[np.arange(len(y)), y])) + 0.5 * l2 * np.sum(coef**2)
    grad = a.T @ (w[:, None] * (p - y1)) + l2 * coef
    return f, grad


def test_objective_gradient_matches_finite_differences():
    """The test's own gradient is right (so the stationarity test below means something)."""
    x, y, c = problem(m=40)
    theta = np.random.default_rng(1).normal(size=(x.shape[1] + 1, c))
    _, grad = objective(theta, x, y, c)
    h = 1e-6
    for i, j in np.ndindex(theta.shape):
        e = np.zeros_like(theta)
        e[i, j] = h
        fd = (objective(theta + e, x, y, c)[0] - objective(theta - e, x, y, c)[0]) / (2 * h)
        np.testing.assert_allclose(grad[i, j], fd, atol=1e-8)


@pytest.mark.parametrize("weighted", [False, True])
def test_fit_is_stationary(weighted):
    x, y, c = problem()
    w = np.random.default_rng(2).exponential(size=len(y)) if weighted else None
    theta = fit_logistic(x, y, c, w, l2=L2)
    assert theta.shape == (x.shape[1] + 1, c)
    f, grad = objective(theta, x, y, c, w)
    assert np.linalg.norm(grad) < 1e-4
    # and it is the minimum: no nearby point is lower
    rng = np.random.default_rng(3)
    for _ in range(5):
        assert f <= objective(theta + 1e-3 * rng.normal(size=theta.shape), x, y, c, w)[0]


@pytest.mark.parametrize("const", [1.0, 0.25, 3.7])
def test_constant_weights_equal_unweighted(const):
    x, y, c = problem()
    np.testing.assert_allclose(fit_logistic(x, y, c, np.full(len(y), const)), fit_logistic(x, y, c),
                               rtol=0, atol=1e-8)


def test_fit_is_deterministic():
    x, y, c = problem(m=300, d=8, classes=4)
    w = np.random.default_rng(4).exponential(size=len(y))
    a, b = fit_logistic(x, y, c, w), fit_logistic(x, y, c, w)
    assert np.array_equal(a, b)
