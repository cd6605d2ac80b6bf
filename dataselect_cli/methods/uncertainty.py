"""``margin``, ``entropy``, ``least-confidence``: the model's uncertainty about an example, from its class
probabilities p (sorted p_(1) >= p_(2) >= …), at one checkpoint (default the last) and averaged over runs,
or from the per-example table's ``logits`` / ``probs``. The gold label is not used.

| method | score | direction |
|---|---|---|
| least-confidence | 1 − p_(1) (the softmax probability, not DeepCore's raw max logit) | higher = harder |
| margin | p_(1) − p_(2) | higher = easier |
| entropy | −Σ_c p_c ln p_c, in nats (not DeepCore's stored Σ p ln p) | higher = harder |
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math
from .base import CheckpointMethod, ExampleState, Route

ROUTES = (Route("dynamics", ("logits",)), Route("examples", ("logits",)), Route("examples", ("probs",)))


class _Uncertainty(CheckpointMethod):
    routes = ROUTES
    stats = {"value": "mean"}
    at = "last"

    def needs_label(self, route: Route) -> bool:
        return False

    def value(self, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"value": self.value(_math.probs_of(cols))}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        return {"score": stats["value"].mean(axis=1)}


class Margin(_Uncertainty):
    name = "margin"
    summary = "p_(1) − p_(2), the gap between the two most probable classes, at the last checkpoint (higher = easier)"
    direction = "higher=easier"

    def value(self, p: np.ndarray) -> np.ndarray:
        first, second = _math.top2(p)
        return first - second


class Entropy(_Uncertainty):
    name = "entropy"
    summary = "−Σ p ln p of the class probabilities at the last checkpoint (higher = harder)"
    direction = "higher=harder"

    def value(self, p: np.ndarray) -> np.ndarray:
        return _math.entropy(p)


class LeastConfidence(_Uncertainty):
    name = "least-confidence"
    summary = "1 − the largest class probability at the last checkpoint (higher = harder)"
    direction = "higher=harder"

    def value(self, p: np.ndarray) -> np.ndarray:
        return 1.0 - _math.top2(p)[0]
