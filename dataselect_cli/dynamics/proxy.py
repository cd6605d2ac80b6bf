"""The numpy proxy of ``dataselect dynamics``: multinomial logistic regression trained by mini-batch Adam, and the
per-example quantities every proxy records at a checkpoint. Arrays in, arrays out; deterministic.

A proxy model trained on the embeddings stands in for the real model (Coleman et al., *Selection via Proxy:
Efficient Data Selection for Deep Learning*, ICLR 2020): its training dynamics rank the examples, not the real
model's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..models import log_softmax
from .plan import Plan

#: Standard deviation of the initial weights of the linear proxy (the intercepts start at 0).
INIT_STD = 0.01


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x − μ)/σ per dimension (σ = 1 where a dimension is constant), float32; returns (xs, μ, σ).

    The proxies are trained on xs; their input gradients are with respect to x (divided by σ).
    """
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=0)
    sd = x64.std(axis=0)
    sd[sd == 0] = 1.0
    return ((x64 - mu) / sd).astype(np.float32), mu, sd


def softmax_stats(logits: np.ndarray, y: np.ndarray, feat_sqnorm: np.ndarray) -> dict[str, np.ndarray]:
    """Loss, correctness and the per-example squared gradient norm of a softmax layer.

    Parameters
    ----------
    logits : ndarray of shape (m, C)
    y : ndarray of shape (m,), int in [0, C)
    feat_sqnorm : ndarray of shape (m,)
        ‖h‖² of the features h the softmax layer z = W·h + b reads.

    Returns
    -------
    dict with ``loss`` (cross-entropy, float64), ``correct`` (argmax of the float32 logits == y; ties go to the
    first class) and ``grad_sqnorm`` (float64).

    Notes
    -----
    ∂CE/∂z = p − e_y, so ∂CE/∂W = (p − e_y)·hᵀ and ∂CE/∂b = p − e_y, and the squared norm of the gradient with
    respect to (W, b) is exactly ‖p − e_y‖²·(‖h‖² + 1) (Paul et al. 2021's GraNd on that block; ‖p − e_y‖ is EL2N).
    """
    rows = np.arange(len(y))
    logp = log_softmax(logits.astype(np.float64))
    resid = np.exp(logp)
    resid[rows, y] -= 1.0
    return {"loss": -logp[rows, y], "correct": np.argmax(logits.astype(np.float32), axis=1) == y,
            "grad_sqnorm": np.einsum("ij,ij->i", resid, resid) * (feat_sqnorm + 1.0)}


class Adam:
    """Adam (Kingma & Ba 2015) on float64 arrays, updated in place: the same update as ``torch.optim.Adam``."""

    def __init__(self, params: list[np.ndarray], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)


class LinearProxy:
    """Softmax regression z = xs·W + b on the standardised embeddings xs, trained by mini-batch Adam on the mean
    cross-entropy (no penalty). A snapshot is (W, b)."""

    name = "linear"
    grad_block = "all parameters (W, b)"

    def __init__(self, d: int, classes: int, lr: float, seed: np.random.SeedSequence):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0.0, INIT_STD, (d, classes))
        self.b = np.zeros(classes)
        self.opt = Adam([self.w, self.b], lr)

    def step(self, xb: np.ndarray, yb: np.ndarray) -> None:
        """One Adam step on a batch."""
        resid = np.exp(log_softmax(xb @ self.w + self.b))
        resid[np.arange(len(yb)), yb] -= 1.0
        resid /= len(yb)
        self.opt.step([xb.T @ resid, resid.sum(axis=0)])

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.w.copy(), self.b.copy()

    @staticmethod
    def evaluate(snap: tuple[np.ndarray, np.ndarray], xs: np.ndarray, y: np.ndarray, sd: np.ndarray,
                 input_grad: bool = True) -> dict[str, np.ndarray]:
        """Logits, loss, correct, grad_sqnorm and (if asked) input_grad of rows ``xs`` (standardised) at a snapshot.

        The gradient of the gold logit z_y = (x − μ)/σ·W[:, y] + b_y with respect to the embedding x is W[:, y]/σ:
        the same vector for every row of a class, so the variance of gradients (VoG) over checkpoints is constant
        within a class under this proxy (use the MLP for VoG).
        """
        w, b = snap
        x64 = xs.astype(np.float64)
        logits = x64 @ w + b
        out = {"logits": logits.astype(np.float32),
               **softmax_stats(logits, y, np.einsum("ij,ij->i", x64, x64))}
        if input_grad:
            out["input_grad"] = (w.T / sd)[y]
        return out


class NullLinear:
    """The null model of the linear proxy (PVI's p_null, Ethayarajh et al. 2022): the same softmax regression on an
    empty input. With xs = 0 the logits are z = 0·W + b = b and W gets no gradient (Adam leaves it where it
    started), so the model is a bias-only softmax: b starts at 0, as the proxy's intercepts do, and takes the same
    Adam steps on the same batches' labels. Its optimum is b = log(class frequency) + a constant."""

    def __init__(self, classes: int, lr: float):
        self.b = np.zeros(classes)
        self.opt = Adam([self.b], lr)

    def step(self, yb: np.ndarray) -> None:
        """One Adam step on a batch's labels: ∂ mean CE/∂b = softmax(b) − (class counts)/m."""
        p = np.exp(log_softmax(self.b[None, :]))[0]
        self.opt.step([p - np.bincount(yb, minlength=len(self.b)) / len(yb)])

    def snapshot(self) -> np.ndarray:
        return self.b.copy()

    @staticmethod
    def logits(snap: np.ndarray) -> np.ndarray:
        """The null logits (C,), float32: the same for every row."""
        return snap.astype(np.float32)


class WithNull:
    """A proxy and its null model trained side by side on the same batches (the null model reads their labels
    only); a snapshot is the pair. ``evaluate`` is the proxy's, ``null_logits`` the null model's."""

    def __init__(self, model, null):
        self.model, self.null = model, null
        self.name, self.grad_block = model.name, model.grad_block

    def step(self, xb: np.ndarray, yb: np.ndarray) -> None:
        self.model.step(xb, yb)
        self.null.step(yb)

    def snapshot(self) -> tuple:
        return self.model.snapshot(), self.null.snapshot()

    def evaluate(self, snap: tuple, xs: np.ndarray, y: np.ndarray, sd: np.ndarray,
                 input_grad: bool = True) -> dict[str, np.ndarray]:
        return self.model.evaluate(snap[0], xs, y, sd, input_grad=input_grad)

    def null_logits(self, snap: tuple) -> np.ndarray:
        return self.null.logits(snap[1])


def train(model, xs: np.ndarray, y: np.ndarray, plan: Plan, batch_size: int, rng: np.random.Generator,
          advance: Callable[[int], None] = lambda _k: None) -> list:
    """Train ``model`` (any proxy with ``step`` and ``snapshot``) for the plan's epochs and return a snapshot at each
    of ``plan.steps``; every epoch visits the rows in a new order drawn from ``rng``. Stops at the last checkpoint."""
    wanted = set(plan.steps)
    last = plan.steps[-1]
    snaps = [model.snapshot()] if 0 in wanted else []
    step = 0
    n = len(y)
    while step < last:
        order = rng.permutation(n)
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            model.step(xs[idx], y[idx])
            step += 1
            advance(1)
            if step in wanted:
                snaps.append(model.snapshot())
            if step == last:
                break
    return snaps
