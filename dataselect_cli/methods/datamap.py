"""``data-map``: dataset cartography (Swayamdipta et al. 2020), per run over the checkpoints, then averaged over runs.

* confidence  = mean_t p_t, with p_t = softmax(z_t)[y] the gold probability at checkpoint t;
* variability = the population standard deviation of p_t (``np.std``, as cartography);
* correctness = how many checkpoints classify the example correctly (a count, as cartography;
  a mean over runs when there are several).

``--data-map-score variability`` (the default: high variability marks the *ambiguous* region, the one
cartography found most useful to train on; higher = harder) or ``confidence`` (higher = easier).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from . import _math
from .base import ExampleMethod, ExampleState, Route

SCORES = ("variability", "confidence")


class DataMap(ExampleMethod):
    name = "data-map"
    summary = ("cartography: confidence = mean gold probability, variability = its std over checkpoints, correctness; "
               "score = --data-map-score variability (default) or confidence")
    routes = (Route("dynamics", ("logits",)),)
    optional_columns = ("correct",)
    stats = {"p_gold": "var", "correct": "bits"}
    columns = ("confidence", "variability", "correctness")

    def __init__(self, data_map_score: str = "variability"):
        if data_map_score not in SCORES:
            raise InputError(f"--data-map-score must be one of {', '.join(SCORES)}; got {data_map_score!r}")
        self.data_map_score = data_map_score
        self.direction = "higher=harder" if data_map_score == "variability" else "higher=easier"

    def params(self) -> dict[str, Any]:
        return {"data_map_score": self.data_map_score}

    def describe(self, state: ExampleState) -> dict[str, Any]:
        return {"data_map_score": self.data_map_score}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"p_gold": _math.gold_softmax(cols["logits"], cols["label"]), "correct": _math.correct_of(cols)}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        confidence = stats["p_gold"].mean(axis=1)
        variability = np.sqrt(stats["p_gold_var"]).mean(axis=1)
        correctness = _math.count_bits(stats["correct"], len(state.keys.checkpoints)).mean(axis=1)
        return {"score": variability if self.data_map_score == "variability" else confidence,
                "confidence": confidence, "variability": variability, "correctness": correctness}
