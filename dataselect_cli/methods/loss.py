"""``loss``: the example's loss, averaged over checkpoints and runs (higher = harder).

From the dynamics table: the mean over checkpoints of ``loss`` (or of the cross-entropy
−ln softmax(logits)_y when the table has no ``loss``), then the mean over runs. From the per-example
table: its ``loss`` (or the cross-entropy of its ``logits`` / ``probs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math
from .base import ExampleMethod, ExampleState, Route


def cross_entropy(cols: dict[str, Any]) -> np.ndarray:
    """−ln p_y per row, from ``logits`` (log-softmax) or ``probs``."""
    if cols.get("logits") is not None:
        return -_math.gold(_math.log_softmax(cols["logits"]), cols["label"])
    with np.errstate(divide="ignore"):
        return -np.log(_math.gold(np.asarray(cols["probs"], np.float64), cols["label"]))


class Loss(ExampleMethod):
    name = "loss"
    summary = "mean loss over checkpoints and runs (--dynamics loss or logits; or --examples loss, logits or probs)"
    direction = "higher=harder"
    routes = (Route("dynamics", ("loss",)), Route("dynamics", ("logits",)), Route("examples", ("loss",)),
              Route("examples", ("logits",)), Route("examples", ("probs",)))
    stats = {"loss": "mean"}

    def needs_label(self, route: Route) -> bool:
        return "loss" not in route.columns

    def describe(self, state: ExampleState) -> dict[str, Any]:
        return {"loss_from": "the loss column" if "loss" in state.route.columns else "cross-entropy of " +
                state.route.columns[0]}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        loss = cols["loss"] if "loss" in state.route.columns else cross_entropy(cols)
        return {"loss": np.asarray(loss, dtype=np.float64)}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        return {"score": stats["loss"].mean(axis=1)}
