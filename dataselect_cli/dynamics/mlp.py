"""The optional torch proxy of ``dataselect dynamics --model mlp``: one hidden ReLU layer on the standardised
embeddings, trained by mini-batch Adam on CPU. torch is imported only here (the ``text`` extra installs it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from ..errors import InputError
from .proxy import softmax_stats

#: What to install when torch is missing.
TORCH_HINT = "pip install 'dataselect[text]' (or torch==2.13.0, the CPU build)"


def import_torch():
    """torch, or an :class:`InputError` saying how to install it."""
    try:
        import torch
    except ImportError:
        raise InputError(f"--model mlp needs torch, which is not installed; {TORCH_HINT}, or use --model linear") \
            from None
    return torch


@contextlib.contextmanager
def deterministic(torch) -> Iterator[None]:
    """One intra-op thread and deterministic algorithms while the block runs (the caller's settings come back after):
    the same seed then gives the same bytes with the same torch build on the same CPU type."""
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(strict)


class MLPProxy:
    """z = W₂·relu(W₁·xs + b₁) + b₂ (torch's default initialisation, seeded), trained by Adam on the mean
    cross-entropy. A snapshot is a copy of the state dict."""

    name = "mlp"
    grad_block = "last layer (W2, b2)"

    def __init__(self, d: int, classes: int, lr: float, seed: np.random.SeedSequence, hidden: int = 256):
        self.torch = torch = import_torch()
        with torch.random.fork_rng(devices=[]):  # the caller's global torch RNG is left as it was
            torch.manual_seed(int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))
            self.net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, classes))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)

    def step(self, xb: np.ndarray, yb: np.ndarray) -> None:
        """One Adam step on a batch."""
        torch = self.torch
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.net(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        self.opt.step()

    def snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def evaluate(self, snap: dict, xs: np.ndarray, y: np.ndarray, sd: np.ndarray,
                 input_grad: bool = True) -> dict[str, np.ndarray]:
        """Logits, loss, correct, grad_sqnorm (last layer: ‖p − e_y‖²·(‖h‖² + 1), h the hidden layer) and (if asked)
        input_grad, the autograd gradient of the gold logit with respect to the embedding x (= ∂z_y/∂xs / σ)."""
        torch = self.torch
        self.net.load_state_dict(snap)
        xt = torch.from_numpy(np.ascontiguousarray(xs)).requires_grad_(input_grad)
        h = self.net[1](self.net[0](xt))
        z = self.net[2](h)
        out: dict[str, np.ndarray] = {}
        if input_grad:  # each row's gold logit depends on its own input only: one backward of their sum
            z.gather(1, torch.from_numpy(y)[:, None]).sum().backward()
            out["input_grad"] = xt.grad.numpy().astype(np.float64) / sd
        h64 = h.detach().numpy().astype(np.float64)
        logits = z.detach().numpy()
        out.update(logits=logits, **softmax_stats(logits, y, np.einsum("ij,ij->i", h64, h64)))
        return out


class MLPNull:
    """The null model of the MLP proxy (PVI's p_null): the same network, with the run's initial weights, trained by
    the same Adam on an all-zero standardised input (the mean embedding), the empty input of a vector model.

    Its output z = W₂·relu(b₁) + b₂ is one vector for every row (W₁ gets no gradient), so it can learn the class
    prior only. Every row of a batch being the same, a step evaluates one row and weighs its cross-entropy by the
    batch's class frequencies: the batch's mean cross-entropy, at the cost of one row.
    """

    def __init__(self, d: int, classes: int, lr: float, seed: np.random.SeedSequence, hidden: int = 256):
        self.proxy = MLPProxy(d, classes, lr, seed, hidden)
        self.torch, self.classes = self.proxy.torch, classes
        self.zero = self.torch.zeros((1, d))

    def step(self, yb: np.ndarray) -> None:
        """One Adam step on a batch's labels."""
        torch, proxy = self.torch, self.proxy
        freq = torch.from_numpy(np.bincount(yb, minlength=self.classes) / len(yb)).float()
        proxy.opt.zero_grad()
        loss = -(freq * torch.log_softmax(proxy.net(self.zero)[0], dim=0)).sum()
        loss.backward()
        proxy.opt.step()

    def snapshot(self) -> dict:
        return self.proxy.snapshot()

    def logits(self, snap: dict) -> np.ndarray:
        """The null logits (C,), float32: the same for every row."""
        self.proxy.net.load_state_dict(snap)
        with self.torch.no_grad():
            return self.proxy.net(self.zero)[0].numpy().astype(np.float32)
