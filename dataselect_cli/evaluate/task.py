"""The data of an ``evaluate`` run: the split, the standardised features, the reference model and its losses."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models import _design, fit_least_squares, fit_logistic, log_proba, squared_residuals


@dataclass
class Task:
    """The data of a run, split and standardised. ``kind`` is "label" or "target"."""

    kind: str
    emb: np.ndarray        # (n, d) float32: the training part's embeddings (clustering, k-center)
    x: np.ndarray          # (n, d) float64: the training part standardised (the proxy model's features)
    y: np.ndarray          # (n,) int class or float target
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 0
    loss: np.ndarray = field(default=None)  # (n,) the reference model's loss on every training row
    metric_full: float = float("nan")
    _cache: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def metric(self) -> str:
        return "accuracy" if self.kind == "label" else "1-R2"

    def fit(self, index: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """Train the proxy model on the training rows ``index``."""
        if self.kind == "label":
            return fit_logistic(self.x[index], self.y[index], self.classes, weight)
        return fit_least_squares(self.x[index], self.y[index], weight)

    def losses(self, theta: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-row loss of a model on training rows: cross-entropy, or the squared residual."""
        x = self.x if rows is None else self.x[rows]
        y = self.y if rows is None else self.y[rows]
        if self.kind == "label":
            return -log_proba(theta, x)[np.arange(len(y)), y]
        return squared_residuals(theta, x, y)

    def test_metric(self, theta: np.ndarray) -> float:
        """Held-out accuracy, or 1 − R² = Σ(y − ŷ)² / Σ(y − ȳ)²."""
        if self.kind == "label":
            return float(np.mean(np.argmax(log_proba(theta, self.x_test), axis=1) == self.y_test))
        resid = _design(self.x_test) @ theta - self.y_test
        sst = float(np.sum((self.y_test - self.y_test.mean()) ** 2))
        return float(np.sum(resid**2) / sst) if sst > 0 else float("nan")


def make_task(emb: np.ndarray, y: np.ndarray, kind: str, holdout: float, seed: int) -> Task:
    """Split the rows (seeded), standardise with the training part's statistics, fit the reference model.

    ``y`` is already encoded: class indices for "label", floats for "target".
    """
    n = len(y)
    perm = np.random.default_rng([seed, 0]).permutation(n)
    n_test = max(1, int(round(holdout * n)))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    x = emb.astype(np.float64)
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
    sd[sd == 0] = 1.0
    xs = (x - mu) / sd
    t = Task(kind, np.ascontiguousarray(emb[train]), xs[train], y[train], xs[test], y[test],
             classes=int(y.max()) + 1 if kind == "label" else 0)
    theta = t.fit(np.arange(t.n))
    t.loss = t.losses(theta)
    t.metric_full = t.test_metric(theta)
    return t
