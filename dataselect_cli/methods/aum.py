"""``aum``: the area under the margin (Pleiss et al. 2020): the mean over checkpoints of the logit margin
z_y − max_{j≠y} z_j, averaged over runs (higher = easier; low or negative suggests a mislabelled example).

The paper's threshold (a fake class given to some examples during training) needs a change to training
and is not done here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math
from .base import ExampleMethod, ExampleState, Route


class AUM(ExampleMethod):
    name = "aum"
    summary = "mean over checkpoints of the logit margin z_y − max_{j≠y} z_j, mean over runs (higher = easier)"
    direction = "higher=easier"
    routes = (Route("dynamics", ("logits",)),)
    stats = {"margin": "mean"}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"margin": _math.gold_margin(cols["logits"], cols["label"])}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        return {"score": stats["margin"].mean(axis=1)}
