"""``grand``: the gradient norm ‖∇_θ ℓ(x, y)‖₂ at one early checkpoint, averaged over runs (Paul et al. 2021;
higher = harder).

Two sources:

* the dynamics table's ``grad_sqnorm`` (the squared norm for the parameter block the trainer chose):
  GraNd = E_runs sqrt(grad_sqnorm);
* without it, a linear last layer (weights and bias) on fixed features h: its gradient is
  (p − y) ⊗ [h, 1], so ‖∇‖² = ‖p − y‖²·(‖h‖² + 1) and GraNd = EL2N·sqrt(1 + ‖h‖²), with h the row of
  ``--embeddings`` (exact for a linear head trained on those embeddings; the last-layer GraNd of DeepCore
  otherwise needs the network's own penultimate features, which we do not read).

The checkpoint is chosen as for ``el2n``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math
from .base import CheckpointMethod, ExampleState, Route


def last_layer_grand(el2n: np.ndarray, feature_sqnorm: np.ndarray) -> np.ndarray:
    """EL2N·sqrt(1 + ‖h‖²): the gradient norm of a linear layer with bias on features h.

    >>> last_layer_grand(np.array([0.5]), np.array([3.0])).tolist()
    [1.0]
    """
    return el2n * np.sqrt(1.0 + feature_sqnorm)


class GraNd(CheckpointMethod):
    name = "grand"
    summary = ("E_runs sqrt(grad_sqnorm) at an early checkpoint; without grad_sqnorm, EL2N·sqrt(1 + ‖h‖²) of a "
               "linear head on --embeddings")
    direction = "higher=harder"
    routes = (Route("dynamics", ("grad_sqnorm",)), Route("dynamics", ("logits",), ("embeddings",)))
    stats = {"grad_norm": "mean"}
    at = "early"

    def needs_label(self, route: Route) -> bool:
        return "grad_sqnorm" not in route.columns

    def needs_features(self, route: Route) -> bool:
        return "embeddings" in route.also

    def describe(self, state: ExampleState) -> dict[str, Any]:
        if self.needs_features(state.route):
            return {"grand_from": "last-layer identity EL2N·sqrt(1 + ‖h‖²), h = the --embeddings row"}
        return {"grand_from": "grad_sqnorm"}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        if "grad_sqnorm" in state.route.columns:
            return {"grad_norm": np.sqrt(cols["grad_sqnorm"])}
        return {"grad_norm": _math.error_norm(_math.probs_of(cols), cols["label"], overwrite=True)}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        per_run = stats["grad_norm"]
        if self.needs_features(state.route):
            per_run = last_layer_grand(per_run, stats["feature_sqnorm"][:, None])
        return {"score": per_run.mean(axis=1)}
