"""``forgetting``: forgetting events, the checkpoints t at which an example is classified correctly and at t+1
not (Toneva et al. 2019), counted per run over the ordered checkpoints and averaged over runs
(higher = harder).

Correctness is the table's ``correct``, else argmax(logits) == label. An example never classified
correctly in a run has no event to count; ``--never-learned`` says what it scores in that run:

* ``count`` (the default): K, the number of checkpoints — more than any count of events (at most
  ⌊K/2⌋), so it ranks above every learned example, as cartography's constant 1000 does, yet it stays
  finite and on the scale of the counts, which the score-driven designs (softmax weights, linear maps)
  need;
* ``inf``: +∞, as data_diet does (such rows then always come first in a ranking; a design that maps
  scores to weights cannot take them).

Its resolution depends on how often correctness was logged (Tan et al. 2023: every 50 steps of the
first 2 epochs; sparser logging leaves many examples at 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from . import _math
from .base import ExampleMethod, ExampleState, Route

NEVER_LEARNED = ("count", "inf")


def forgetting_score(events: np.ndarray, ever: np.ndarray, k: int, never_learned: str) -> np.ndarray:
    """Per (id, run): the events, or the never-learned value where the example was never correct.

    >>> forgetting_score(np.array([[1, 0]]), np.array([[True, False]]), 5, "count").tolist()
    [[1.0, 5.0]]
    """
    fill = np.inf if never_learned == "inf" else float(k)
    return np.where(ever, events.astype(np.float64), fill)


class Forgetting(ExampleMethod):
    name = "forgetting"
    summary = ("forgetting events (correct at t, wrong at t+1) over the checkpoints, mean over runs; never learned: "
               "--never-learned count (K, default) or inf")
    direction = "higher=harder"
    routes = (Route("dynamics", ("correct",)), Route("dynamics", ("logits",)))
    stats = {"correct": "bits"}
    columns = ("never_learned",)

    def __init__(self, never_learned: str = "count"):
        if never_learned not in NEVER_LEARNED:
            raise InputError(f"--never-learned must be one of {', '.join(NEVER_LEARNED)}; got {never_learned!r}")
        self.never_learned = never_learned

    def params(self) -> dict[str, Any]:
        return {"never_learned": self.never_learned}

    def needs_label(self, route: Route) -> bool:
        return "correct" not in route.columns

    def describe(self, state: ExampleState) -> dict[str, Any]:
        k = len(state.keys.checkpoints)
        return {"never_learned": self.never_learned, "never_learned_value": "inf" if self.never_learned == "inf"
                else k}

    def row_values(self, cols: dict[str, Any], state: ExampleState) -> dict[str, np.ndarray]:
        return {"correct": _math.correct_of(cols)}

    def finish_ids(self, stats: dict[str, np.ndarray], state: ExampleState) -> dict[str, np.ndarray]:
        k = len(state.keys.checkpoints)
        events, ever = _math.forgetting_events(stats["correct"], k)
        score = forgetting_score(events, ever, k, self.never_learned).mean(axis=1)
        return {"score": score, "never_learned": (~ever).sum(axis=1).astype(np.int32)}
