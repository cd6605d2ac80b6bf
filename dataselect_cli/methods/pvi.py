"""``pvi``: pointwise V-information (Ethayarajh et al. 2022; Tan et al. 2023, Eq. 7):
PVI(x → y) = −log₂ p_null(y) + log₂ p_model(y | x), from ``logits`` and ``null_logits`` (a model trained on
empty inputs) at one checkpoint (default the last), averaged over runs (higher = easier; negative PVI
flags a possible mislabel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math
from ..errors import InputError
from .base import CheckpointMethod, ExampleState, Inputs, Route


def pvi(logits: np.ndarray, null_logits: np.ndarray, label: np.ndarray) -> np.ndarray:
    """log₂ softmax(logits)_y − log₂ softmax(null_logits)_y per row.

    >>> pvi(np.array([[np.log(3.0), 0.0]]), np.array([[0.0, 0.0]]), np.array([0])).round(6).tolist()
    [0.584963]
    """
    lp = _math.gold(_math.log_softmax(logits), label)
    ln = _math.gold(_math.log_softmax(null_logits), label)
    return (lp - ln) / np.log(2.0)


class PVI(CheckpointMethod):
    name = "pvi"
    summary = "log2 p_model(y|x) − log2 p_null(y) from logits and null_logits at the last checkpoint, mean over runs"
    direction = "higher=easier"
    routes = (Route("dynamics", ("logits", "null_logits")),)
    stats = {"pvi": "mean"}
    at = "last"

    def route(self, inputs: Inputs) -> Route:
        try:
            return super().route(inputs)
        except InputError as e:
            raise InputError(f"{e.message}; `dataselect dynamics` writes null_logits unless --no-null is given "
                             "(your own loop: log the logits of the same model trained on empty inputs)") from None

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"pvi": pvi(cols["logits"], cols["null_logits"], cols["label"])}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        return {"score": stats["pvi"].mean(axis=1)}
