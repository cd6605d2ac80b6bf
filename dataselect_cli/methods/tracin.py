"""``tracin-self``: TracIn self-influence (Pruthi et al. 2020; Tan et al. 2023, Eq. 5):
Σ_checkpoints lr·‖∇ℓ‖², from ``grad_sqnorm`` and ``lr`` (1 when the table has no ``lr``), averaged over runs
(higher = harder: high self-influence marks rare, hard or mislabelled examples).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ExampleMethod, ExampleState, Route


class TracInSelf(ExampleMethod):
    name = "tracin-self"
    summary = "Σ over checkpoints of lr·grad_sqnorm (lr = 1 without an lr column), mean over runs (higher = harder)"
    direction = "higher=harder"
    routes = (Route("dynamics", ("grad_sqnorm",)),)
    optional_columns = ("lr",)
    stats = {"influence": "sum"}

    def needs_label(self, route: Route) -> bool:
        return False

    def describe(self, state: ExampleState) -> dict[str, Any]:
        return {"lr": "the lr column" if "lr" in state.names else "1 (no lr column)"}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        lr = cols.get("lr")
        g = np.asarray(cols["grad_sqnorm"], dtype=np.float64)
        return {"influence": g if lr is None else lr * g}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        return {"score": stats["influence"].mean(axis=1)}
