"""``threshold``: every row whose score is beyond a cut-off (``--threshold T``, ``--keep above|below``).

``above`` keeps score >= T and ``below`` keeps score < T, so the two are complements. The size is
set by the data, not by ``--size`` (which is refused): the report gives the number kept. A
deterministic selection, weight 1: Σ weight·ℓ does NOT estimate the full loss (``estimate``
refuses). Not stratifiable: each row is decided by its own score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ._scored import ScoreDesign, check_finite, not_an_estimate, scores_of, side
from .base import Estimate, Plan, gather

KEEP = ("above", "below")


class Threshold(ScoreDesign):
    """The rows with score >= T (above) or < T (below); weight 1."""

    name = "threshold"
    summary = ("every row with score >= T (--threshold T, --keep above) or < T (--keep below); its size is set by "
               "the data; weight 1, Σ w·ℓ NOT an estimate")
    unbiased = False
    stratifiable = False
    size_from_data = True

    def __init__(self, threshold: float | None = None, keep: str = "above"):
        if threshold is None or not np.isfinite(threshold):
            raise InputError("--design threshold needs --threshold T, a finite score cut-off")
        if keep not in KEEP:
            raise InputError(f"--keep must be one of {', '.join(KEEP)}; got {keep!r}")
        self.threshold, self.keep = float(threshold), keep

    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "keep": self.keep}

    def _kept(self, x: np.ndarray) -> np.ndarray:
        return x >= self.threshold if self.keep == "above" else x < self.threshold

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple[int, int, int]:
        x = scores_of(cols)
        return len(x), int((~np.isfinite(x)).sum()), int(self._kept(x).sum())

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        check_finite(sum(st[1] for st in stats), path)
        kept = sum(st[2] for st in stats)
        if not kept:
            op = ">=" if self.keep == "above" else "<"
            raise InputError(f"no row has a score {op} {self.threshold:g}: nothing to keep; move --threshold", path)
        return Plan({"min_prob": 1.0, "kept": kept})

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        keep = np.flatnonzero(self._kept(scores_of(cols)))
        if not len(keep):
            return None
        return b * block_rows + keep, np.ones(len(keep), np.int32), np.ones(len(keep)), gather(cols, keep)

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return np.ones(len(count))

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        raise InputError(not_an_estimate(self.name))

    def keeps(self, s: int, direction: str | None) -> str:
        op = ">=" if self.keep == "above" else "<"
        return f"the {s} rows with score {op} {self.threshold:g}{side(direction, self.keep == 'above')}"
