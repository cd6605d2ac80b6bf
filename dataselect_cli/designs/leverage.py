"""``leverage``: s draws with replacement ∝ the leverage of the rows of [a, 1] (``sample --regression``).

Leverage-score sampling (Drineas, Mahoney & Muthukrishnan 2006) is the paper's comparison for its
regression variant (Axiotis et al. 2024, §5.3): p_i = h_i / Σ h, h_i the leverage of row i of the
design matrix [a, 1] (so Σ h = its rank), weight count/(s·p). The draw, the weights and the
Hansen–Hurwitz estimator are ``iid``'s; only the mass differs (the scores' ``mass`` column holds h),
and no Theorem 2 bound is stated: the sensitivity bound needs a clustering, leverage sampling has none.
"""

from __future__ import annotations

from typing import Any

from .iid import IID


class Leverage(IID):
    """i.i.d. draws ∝ leverage; weight count/(s·p); Hansen–Hurwitz."""

    name = "leverage"
    needs = ("mass", "prob")
    summary = ("s draws with replacement ∝ the leverage of the rows [embedding, 1] (with --regression; Drineas et "
               "al. 2006); weight count/(s·p)")

    def guarantee(self, rep: dict[str, Any]) -> str:
        return (f"Σ weight·f over the {rep['selected_rows']} selected rows is unbiased for Σ f over all {rep['n']} "
                "rows, for any per-row f (every leverage is positive with the intercept column): for the squared "
                "error of any fixed linear model, and for the loss. Leverage sampling's subspace-embedding guarantee "
                "(O(d log d / ε²) draws for a (1 + ε) least-squares fit, Drineas et al. 2006) has constants this tool "
                "does not state; rely on the intervals of 'dataselect estimate'.")
