"""``gumbel-topk``: DSIR's importance resampling: keys z + Gumbel noise, z = score/T, keep the s largest.

The Gumbel-top-k trick (Kool et al. 2019): the s rows of largest z_i + G_i, G_i i.i.d. Gumbel(0, 1),
are s draws without replacement, each next row drawn with probability ∝ q = exp(z) among the rows
not yet drawn (successive sampling). DSIR's scores are log importance weights, so T = 1 is DSIR's
``resample``; ``--prefer low`` uses z = −score/T. The ``prob`` column holds q = exp(z)/Σ exp(z),
the chance of being drawn first (successive sampling has no closed-form inclusion probability).
Unweighted, as DSIR: weight 1, and Σ weight·ℓ does NOT estimate the full loss (``estimate`` refuses).
On a ``dsir`` scores file (``score`` = log importance weight, −inf for a document under ``--min-length``:
weight 0, never drawn) it is DSIR's ``resample``, with a seeded RNG instead of numpy's global one.
"""

from __future__ import annotations

import numpy as np

from ._scored import RankDesign, Tempered, bad_scores, exp_block, exp_total, scores_of, side, signed
from .base import Plan


class GumbelTopk(Tempered, RankDesign):
    """s rows without replacement, successively ∝ exp(score/T): the s largest score/T + Gumbel noise; weight 1."""

    name = "gumbel-topk"
    summary = ("s rows drawn without replacement ∝ exp(score/T) (DSIR's Gumbel top-k, --temperature, --prefer); "
               "weight 1, Σ w·ℓ NOT an estimate")

    def __init__(self, temperature: float = 1.0, prefer: str = "high"):
        super().__init__(temperature, prefer)
        # a score of −inf is weight 0 (a DSIR document under --min-length) when drawn ∝ exp(score/T)
        self.log_weights = self.prefer == "high"

    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple:
        x = scores_of(cols)
        return (len(x), *bad_scores(x, self.log_weights), exp_block(signed(x, self.prefer, self.temperature)))

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        plan = super().plan([st[:3] for st in stats], size, seed, path)
        plan.big_m, plan.norm = exp_total([st[3] for st in stats])
        plan.stats["min_prob"] = None
        return plan

    def key(self, x: np.ndarray, b: int, plan: Plan) -> np.ndarray:
        g = -np.log(-np.log(np.random.default_rng([plan.seed, 31, b]).random(len(x))))
        return -(signed(x, self.prefer, self.temperature) + g)

    def prob(self, x: np.ndarray, plan: Plan) -> np.ndarray:
        return np.exp(signed(x, self.prefer, self.temperature) - plan.big_m) / plan.norm

    def keeps(self, s: int, direction: str | None) -> str:
        return (f"{s} rows drawn without replacement ∝ exp({'' if self.prefer == 'high' else '−'}score/"
                f"{self.temperature:g}) (Gumbel top-k), favouring {self.prefer} scores"
                f"{side(direction, self.prefer == 'high')}")
