"""``el2n``: the error L2 norm ‖softmax(z) − onehot(y)‖₂ at one early checkpoint, averaged over runs
(Paul et al. 2021; higher = harder).

The checkpoint is ``--checkpoint N``, else the earliest at or after epoch 1 (the table's ``epoch``),
else checkpoint 1: EL2N must be taken early, since late in training it is about 0 for every easy
example (Tan et al. 2023, App. B.1: epoch 2 was best for BERT-small on SNLI).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math
from .base import CheckpointMethod, ExampleState, Route


class EL2N(CheckpointMethod):
    name = "el2n"
    summary = "‖softmax − onehot‖₂ at an early checkpoint (--checkpoint; default the first at epoch >= 1), mean over runs"
    direction = "higher=harder"
    routes = (Route("dynamics", ("logits",)), Route("examples", ("logits",)), Route("examples", ("probs",)))
    stats = {"el2n": "mean"}
    at = "early"

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"el2n": _math.error_norm(_math.probs_of(cols), cols["label"], overwrite=True)}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        return {"score": stats["el2n"].mean(axis=1)}
