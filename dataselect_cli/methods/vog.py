"""``vog``: variance of gradients (Agarwal et al. 2022; Tan et al. 2023, App. B.1 Alg. 1), from ``input_grad``:
the gradient of the gold-class pre-softmax output with respect to the input (embedding), or a random
projection of it, at every checkpoint of a run.

Per (id, run), for each element e of the gradient, its spread across the K checkpoints is taken with the
population formula (1/K)·Σ_t (g_t,e − μ_e)², computed by Welford's streaming update as the checkpoints' rows
are read (in row order: checkpoint order in a sorted table), so that an (id, run) whose rows are not all read
yet holds 2·D numbers, not K·D; then

* ``--vog-agg std`` (the default, the original VoG code): the mean over elements of the per-element
  standard deviation;
* ``--vog-agg var``: the mean over elements of the per-element variance (a literal reading of Tan et
  al.'s Eq. 3 and some ports). The two rank examples differently; only ``var`` is preserved in
  expectation by a random projection of the gradient.

The raw value (``vog_raw``) is averaged over runs, then normalised (``--normalize``):
``class`` (the default, the original paper's: z-score within each label; Tan et al.'s best on balanced
SNLI), ``dataset`` (z-score over all examples; Tan et al.'s best on class-imbalanced production data) or
``none``. Higher = harder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from . import _math
from .base import ExampleMethod, ExampleState, Route

AGGS = ("std", "var")
NORMALIZE = ("class", "dataset", "none")


def vog_from_variance(var: np.ndarray, agg: str = "std") -> np.ndarray:
    """The raw VoG from the per-element population variances across checkpoints (…, D) → (…,): the mean over
    elements of their standard deviation (``std``) or of their variance (``var``).

    >>> var = np.array([[4.0, 0.0]])
    >>> vog_from_variance(var, "std").tolist(), vog_from_variance(var, "var").tolist()
    ([1.0], [2.0])
    """
    return np.sqrt(var).mean(axis=-1) if agg == "std" else var.mean(axis=-1)


def vog_raw(grads: np.ndarray, agg: str = "std") -> float:
    """The raw VoG of one (id, run) from its gradients at the K checkpoints, (K, D) in checkpoint order: the
    per-element variances by Welford's streaming update (as the scores are computed, O(D) memory per (id, run)),
    then :func:`vog_from_variance`.

    >>> g = np.array([[0.0, 1.0], [2.0, 1.0]])   # element 0 spreads (std 1), element 1 does not
    >>> vog_raw(g, "std"), vog_raw(g, "var")
    (0.5, 0.5)
    """
    g = np.asarray(grads, dtype=np.float64)
    count, mean, m2 = np.zeros(1), np.zeros((1, g.shape[1])), np.zeros((1, g.shape[1]))
    for x in g:
        count, mean, m2 = _math.welford_step(count, mean, m2, x[None])
    return float(vog_from_variance(m2 / count[:, None], agg)[0])


class VoG(ExampleMethod):
    name = "vog"
    summary = ("variance of input gradients across checkpoints: mean of per-element std (--vog-agg std, default) "
               "or var, z-scored per class (--normalize class, default), dataset or none")
    direction = "higher=harder"
    routes = (Route("dynamics", ("input_grad",)),)
    stats = {"input_grad": "spread"}
    columns = ("vog_raw",)

    def __init__(self, vog_agg: str = "std", normalize: str = "class"):
        if vog_agg not in AGGS:
            raise InputError(f"--vog-agg must be one of {', '.join(AGGS)}; got {vog_agg!r}")
        if normalize not in NORMALIZE:
            raise InputError(f"--normalize must be one of {', '.join(NORMALIZE)}; got {normalize!r}")
        self.vog_agg, self.normalization = vog_agg, normalize

    def params(self) -> dict[str, Any]:
        return {"vog_agg": self.vog_agg, "normalize": self.normalization}

    def needs_label(self, route: Route) -> bool:
        return self.normalization == "class"

    def describe(self, state: ExampleState) -> dict[str, Any]:
        return {"vog_agg": self.vog_agg}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"input_grad": cols["input_grad"]}

    def spread(self, var: np.ndarray) -> np.ndarray:
        """The raw VoG of G (id, run) pairs from their per-element variances (G, D)."""
        return vog_from_variance(var, self.vog_agg)

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        raw = stats["input_grad"].mean(axis=1)
        return {"score": _math.normalize(raw, self.normalization, stats.get("label")), "vog_raw": raw}
