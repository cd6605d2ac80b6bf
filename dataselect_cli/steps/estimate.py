"""``dataselect estimate``: a selection + its rows' losses → the mean loss with the intervals its design states."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa

from .. import bounds, calibration, dataset, designs, io, kinds, options, outputs, report as report_mod
from ..fingerprints import input_fingerprints
from .._checks import check_delta
from ..designs._scored import not_an_estimate
from ..errors import InputError
from ..oracle import Oracle
from .common import Note, check_losses_format, quiet, skip


def estimate_file(selected: str, losses: str | None = None, *, delta: float | None = None,
                  loss_max: float | None = None, report_json: str | None = None, losses_format: str | None = None,
                  note: Note = quiet, oracle: Oracle | None = None, bootstrap: bool = False) -> dict[str, Any]:
    """``dataselect estimate``: the mean loss, its standard error and the intervals of the selection's design.

    The selected rows' losses come from ``losses`` (Parquet, CSV, TSV or JSON lines, by its extension
    or ``losses_format``) or from ``oracle`` (``--loss-command``), asked once for every selected row,
    in the selection's order; its queries go into the result (``oracle``).

    The design is the one named in SELECTED's metadata (``iid`` for files written before designs
    were named); its estimator and variance estimator are the ones that match its weights. The
    ``report_json`` file carries the run's metadata under the key ``dataselect`` (as the Parquet
    outputs do in their schema), so ``--resume`` can skip an estimate whose report is up to date.
    ``bootstrap`` adds the bootstrap-t interval, which states no probability (:func:`estimate_selection`).
    """
    if (losses is None) == (oracle is None):
        raise InputError("give --losses FILE or --loss-command CMD (the selected rows' losses)" if losses is None
                         else "give --losses FILE or --loss-command CMD, not both")
    kinds.check_not_swapped((selected, "selection", "SELECTED"), (losses, "losses", "--losses"))
    oracle_inputs = oracle.inputs() if oracle else {}
    if report_json:
        outputs.check_output_path(report_json, [selected, losses, *oracle_inputs.values()], "--report")
    if delta is not None:
        check_delta(delta)
    prm: dict[str, Any] = {"delta": delta, "loss_max": loss_max, **(oracle.params() if oracle else {}),
                           **({"bootstrap": True} if bootstrap else {})}
    if losses_format is not None:
        check_losses_format(losses, losses_format)
        prm["losses_format"] = losses_format
    inputs = input_fingerprints({"selected": selected, "losses": losses, **oracle_inputs}) \
        if report_json else {}
    if report_json and (done := skip([report_json], "estimate", prm, inputs, None, note)) is not None:
        return done
    table, meta = dataset.read_table(selected, ["id", "count", "prob", "weight"], "selected")
    rep = meta.get("summary", {})
    if rep.get("n") is None:
        raise InputError("has no dataselect metadata (n, ε, Λ·Φ unknown); use a file written by 'dataselect sample'",
                         selected)
    if rep.get("report_kind") == "bandit":
        from ..bandit import NOT_AN_ESTIMATE

        raise InputError(NOT_AN_ESTIMATE, selected)
    design = check_estimable(rep, selected)
    ids = table.column("id").combine_chunks()
    if oracle is not None:
        loss = oracle.query(ids, "selected")
    else:
        lids, lvals = dataset.read_losses(losses, losses_format)
        loss = lvals[io.lookup(lids, ids, losses, "selected")]
    out = estimate_selection(table, rep, loss, design=design, delta=delta, loss_max=loss_max, bootstrap=bootstrap)
    if oracle is not None:
        out["oracle"] = oracle.summary()
    if report_json:
        meta = io.make_meta("estimate", prm, inputs, out)
        io.write_text(report_mod.to_json({**out, io.META_KEY.decode(): meta}), report_json)
    return out


def check_estimable(rep: dict[str, Any], path: str | None = None):
    """The design a selection's report names (``iid`` when none), refused by :func:`refuse_biased`."""
    return refuse_biased(designs.get(rep.get("design"), **rep.get("design_params", {})), path)


def refuse_biased(design, path: str | None = None):
    """``design``, or an :class:`InputError` when its weights estimate nothing (a selection by score): refused
    before any loss is read or asked for, as there is nothing true to print."""
    if not design.unbiased:
        raise InputError(not_an_estimate(design.name, design.biased_because), path)
    return design


def estimate_selection(table: pa.Table, rep: dict[str, Any], loss: np.ndarray, *, design=None,
                       delta: float | None = None, loss_max: float | None = None,
                       bootstrap: bool = False) -> dict[str, Any]:
    """The estimate of a selection (``id, count, prob, weight`` and the design's columns) from its rows' losses.

    Parameters
    ----------
    table : pyarrow.Table
        The selection, as ``sample`` writes it.
    rep : dict
        Its report (the ``summary`` of its metadata): n, the design and its parameters, δ, the clusters.
    loss : ndarray of shape (rows,), float64
        The loss of each row of ``table``, in its order (checked finite and >= 0 by the caller).
    design : Design or None
        The design of ``rep`` when already made (:func:`check_estimable`).
    delta, loss_max : float or None
        δ of the empirical intervals (default: the selection's, else 0.05); a bound on every loss
        (adds the empirical Bernstein interval).
    bootstrap : bool, default=False
        Also the bootstrap-t interval (``bootstrap_interval``). It states no probability: it fell below its
        nominal level on docs/designs' evidence (docs/intervals.md), so it is given only when asked for, and
        every interval given by default states a probability it kept there.

    Returns
    -------
    dict
        n, s, rows, design, the total and mean estimates, the standard error of the mean, the
        effective sample size, every interval the design states (each labelled with its kind and
        assumptions) and the model-assisted (GREG) estimate when the clusters are known.
    """
    n = rep["n"]
    design = design or check_estimable(rep)
    sel = {c: table.column(c).to_numpy() for c in ("count", "prob", "weight", "cluster", *design.needs)
           if c in table.column_names}  # the needs: a --stratify column
    if "design_weight" in table.column_names:  # --calibrate: the design's estimator takes the design's weights
        sel["weight"] = table.column("design_weight").to_numpy()
    est = design.estimate(loss, sel, n)
    d_emp = delta if delta is not None else (rep.get("delta") or options.DELTA_EMPIRICAL)
    out: dict[str, Any] = {
        "n": n, "s": int(sel["count"].sum()), "rows": table.num_rows, "design": design.name,
        "estimate_total": est.total, "estimate_mean": est.mean, "std_error_mean": est.std_error_mean,
        "effective_sample_size": bounds.effective_sample_size(sel["weight"], sel["count"].astype(np.int64)),
    }
    stated = design.intervals(est, loss, sel, rep, d_emp, loss_max)
    for iv in stated + (design.resolved().bootstrap(est, loss, sel, rep, d_emp) if bootstrap else []):
        out[iv.key] = iv.as_dict()
    assisted = model_assisted(design, loss, sel, rep, n, d_emp)
    if assisted is not None:
        out["model_assisted"] = assisted
    return out


def model_assisted(design, loss: np.ndarray, sel: dict[str, np.ndarray], rep: dict[str, Any], n: int,
                   delta: float) -> dict[str, Any] | None:
    """The GREG estimate beside the plain one (:mod:`dataselect_cli.calibration`), with the design's
    variance estimator applied to the leverage-adjusted calibrated residuals and the skew-corrected t
    interval on them; None without the clusters' sizes and proxies.

    ``r2`` is how well the auxiliaries predict the loss where that can be checked without the rows being
    estimated: over the probes, each predicted without its own loss (:func:`dataselect_cli.proxy.loo_r2`, in the
    selection's report when its scores had probe losses) — by the mean of its cluster's other queried losses
    when the auxiliaries are the clusters, by its center's loss otherwise; None without probes.
    """
    clusters = rep.get("clusters") or []
    if "cluster" not in sel or not clusters or any(c.get("size") is None for c in clusters):
        return None
    size = np.array([c["size"] for c in clusters], dtype=np.float64)
    proxy = np.array([c.get("center_loss") if c.get("center_loss") is not None else 1.0 for c in clusters])
    ga = calibration.model_assisted(design, loss, sel, proxy, size, n)
    out: dict[str, Any] = {
        "kind": "GREG / calibrated weights (Särndal et al. 1992), auxiliaries: " + ga.cal.auxiliary,
        "estimate_total": ga.total, "estimate_mean": ga.total / n, "std_error_mean": ga.resid.std_error_mean,
        "r2": (rep.get("proxy") or {}).get("r2_loo", {}).get(
            "mean" if ga.cal.auxiliary.startswith("cluster sizes") else "center"),
        "r2_over": "the probes, each left out of its own prediction",
        "g_range": [float(ga.cal.g.min()), float(ga.cal.g.max())],
    }
    if ga.resid.var is not None:  # centred on the GREG total, spread by the residuals
        out["clt_interval"] = design.t_interval(dataclasses.replace(ga.resid, total=ga.total),
                                                design.units(ga.residuals, sel), delta,
                                                of=" of the leverage-adjusted residuals").as_dict()
    return out
