"""``dataselect estimate``: a selection + its rows' losses → the mean loss with the intervals its design states."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import bounds, dataset, designs, io, options, report as report_mod
from .._checks import check_delta
from ..errors import InputError


def estimate_file(selected: str, losses: str, *, delta: float | None = None, loss_max: float | None = None,
                  report_json: str | None = None) -> dict[str, Any]:
    """``dataselect estimate``: the mean loss, its standard error and the intervals of the selection's design.

    The design is the one named in SELECTED's metadata (``iid`` for files written before designs
    were named); its estimator and variance estimator are the ones that match its weights.
    """
    if report_json:
        io.check_output_path(report_json, [selected, losses])
    if delta is not None:
        check_delta(delta)
    table, meta = dataset.read_table(selected, ["id", "count", "prob", "weight"], "selected")
    rep = meta.get("summary", {})
    n = rep.get("n")
    if n is None:
        raise InputError("has no dataselect metadata (n, ε, Λ·Φ unknown); use a file written by 'dataselect sample'",
                         selected)
    design = designs.get(rep.get("design"), **rep.get("design_params", {}))
    lids, lvals = dataset.read_losses(losses)
    loss = lvals[io.lookup(lids, table.column("id").combine_chunks(), losses, "selected")]
    sel = {c: table.column(c).to_numpy() for c in ("count", "prob", "weight", "cluster") if c in table.column_names}
    est = design.estimate(loss, sel, n)
    d_emp = delta if delta is not None else (rep.get("delta") or options.DELTA_EMPIRICAL)
    out: dict[str, Any] = {
        "n": n, "s": int(sel["count"].sum()), "rows": table.num_rows, "design": design.name,
        "estimate_total": est.total, "estimate_mean": est.mean, "std_error_mean": est.std_error_mean,
        "effective_sample_size": bounds.effective_sample_size(sel["weight"], sel["count"].astype(np.int64)),
    }
    for iv in design.intervals(est, loss, sel, rep, d_emp, loss_max):
        out[iv.key] = iv.as_dict()
    if report_json:
        io.write_text(report_mod.to_json(out), report_json)
    return out
