"""``dataselect bandit``: clusters + a loss oracle → an unweighted selection by the Quad-style cluster bandit.

The bandit (:mod:`dataselect_cli.bandit`) asks an :class:`~dataselect_cli.oracle.Oracle` for losses while
it selects: ``--losses FILE`` (a :class:`~dataselect_cli.oracle.TableOracle`, holding at least the rows
queried) or any other oracle a caller passes to :func:`bandit_file`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import bandit, dataset, io, options, outputs
from .. import report as report_mod
from ..fingerprints import input_fingerprints
from ..cluster import KMeansOptions
from ..errors import InputError
from ..oracle import Oracle, TableOracle
from . import cluster as cluster_step
from .common import Note, Scale, embeddings_source, quiet, skip, unskipped
from .sample import _write_reports, sample_size


def bandit_size(size: int | None, fraction: float | None, n: int) -> int:
    """s from ``--size`` or ``--fraction`` (s = round(F·n)), exactly one of them, checked against the n rows."""
    if (size is None) == (fraction is None):
        raise InputError("give the selection's size: one of --size N or --fraction F")
    s, _ = sample_size(None, size, None, None, fraction, n)
    if s > n:
        raise InputError(f"--size {s} is more than the {n} rows; lower it")
    return s


def _labels(ds, path: str) -> tuple[pa.Array, np.ndarray]:
    """(ids, cluster labels) of a clusters file: ``cluster`` integer, not null, >= 0."""
    ds.require(["id", "cluster"], "clusters")
    ids = io.read_ids(ds, path)
    col = ds.read_column("cluster").combine_chunks()
    if not pa.types.is_integer(col.type):
        raise InputError(f"column 'cluster' has type {col.type}; cluster labels must be integers (a clusters file "
                         "of 'dataselect cluster')", path)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column 'cluster' is null at row {row}; every row needs a cluster", path)
    labels = col.to_numpy().astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise InputError(f"column 'cluster' is negative at row {int(np.argmax(labels < 0))}; labels are 0, 1, …",
                         path)
    return ids, labels


def bandit_file(input_path: str, out: str, *, oracle: Oracle, budget: int, size: int | None = None,
                fraction: float | None = None, k: int | None = None, seed: int = options.SEED,
                ucb_c: float = bandit.UCB_C, arms_per_round: int = bandit.ARMS_PER_ROUND,
                pulls_per_round: int = bandit.PULLS_PER_ROUND, prefer: str = "high", z: int = options.Z,
                kmeans: KMeansOptions = KMeansOptions(), report_json: str | None = None,
                report_md: str | None = None, note: Note = quiet, scale: Scale | None = None) -> dict[str, Any]:
    """``dataselect bandit``: select ``size`` (or ``fraction`` of the) rows of a clusters file (or of an
    embeddings file clustered here with ``k``) by the cluster bandit, asking ``oracle`` for at most
    ``budget`` losses. Writes SELECTED (id, count, prob, weight = 1, cluster, queried, loss) and the
    report files; returns the report (also embedded in SELECTED's metadata)."""
    scale = scale or Scale()
    bandit.check_params(budget, ucb_c, arms_per_round, pulls_per_round, prefer)  # the size once n is known
    cluster_step.check(k, z, kmeans)
    ds = dataset.open_input(input_path, "input")
    names = ds.schema.names
    if k is None and "embedding" in names and "cluster" not in names:
        raise InputError("is an embeddings file; pass --k to cluster it in this run (or give a clusters file of "
                         "'dataselect cluster')", ds.path)
    if k is not None and "embedding" not in names:
        raise InputError("missing column 'embedding' (--k clusters an embeddings file with id, embedding; a clusters "
                         "file needs no --k)", ds.path)
    s = bandit_size(size, fraction, ds.n)
    losses_path = oracle.path if isinstance(oracle, TableOracle) else None
    oracle_inputs = oracle.inputs()  # --loss-command: --data and the files the command names
    for o, option in ((out, "-o"), (report_json, "--report"), (report_md, "--report-md")):
        if o:
            outputs.check_output_path(o, [*ds.files, losses_path, *oracle_inputs.values()], option)
    prm: dict[str, Any] = {"budget_queries": budget, "size": size, "fraction": fraction, "k": k, "seed": seed,
                           "ucb_c": ucb_c, "arms_per_round": arms_per_round, "pulls_per_round": pulls_per_round,
                           "prefer": prefer, "oracle": oracle.params()}
    if k is not None:
        prm.update({"z": z, **cluster_step.params(k, z, 0, kmeans, scale)})
    inputs = input_fingerprints({"input": ds, "losses": losses_path, **oracle_inputs})
    if (done := skip([out], "bandit", prm, inputs, seed, note)) is not None:
        _write_reports(unskipped(done), report_json, report_md)
        return done
    clustering = None
    if k is None:
        ids, labels = _labels(ds, ds.path)
    else:
        pending: list[str] = []
        ids, src, ds = embeddings_source(ds, scale, pending.append)
        cl, _, _, csum = cluster_step.run_cluster(ids, src, k, z=z, seed=seed, kmeans=kmeans, note=pending.append,
                                                  path=ds.path, scale=scale)
        labels = cl.labels.astype(np.int64)
        clustering = {key: csum[key] for key in cluster_step.CLUSTERING_KEYS}
        for msg in pending + [report_mod.training_line(csum, csum["n"])]:
            note(msg)
    if isinstance(oracle, TableOracle):
        oracle.has(ids.slice(0, 1))  # the id types agree (else one line now, not after the first round)
    res = bandit.run_bandit(labels, ids, oracle, budget=budget, size=s, seed=seed, ucb_c=ucb_c,
                            arms_per_round=arms_per_round, pulls_per_round=pulls_per_round, prefer=prefer)
    table = selection_table(ids, labels, res)
    report = build_report(res, oracle, n=len(labels), s=s, seed=seed, prm=prm, clustering=clustering)
    io.write_table(table, out, io.make_meta("bandit", prm, inputs, report, seed))
    _write_reports(report, report_json, report_md)
    return report


def selection_table(ids: pa.Array, labels: np.ndarray, res: bandit.BanditResult) -> pa.Table:
    """The selection file: id, count 1, prob 1, weight 1 (unweighted), cluster, queried, loss (null if not queried)."""
    rows = res.rows
    m = len(rows)
    at = np.full(len(labels), -1, np.int64)  # each row's position among the queried ones
    at[res.queried] = np.arange(len(res.queried))
    queried = at[rows] >= 0
    loss_by_row = np.zeros(m)
    loss_by_row[queried] = res.loss[at[rows][queried]]
    return pa.table({"id": ids.take(pa.array(rows)), "count": pa.array(np.ones(m, np.int32)),
                     "prob": pa.array(np.ones(m)), "weight": pa.array(np.ones(m)),
                     "cluster": pa.array(labels[rows].astype(np.int32)), "queried": pa.array(queried),
                     "loss": pa.array(loss_by_row, mask=~queried)})


def build_report(res: bandit.BanditResult, oracle: Oracle, *, n: int, s: int, seed: int, prm: dict[str, Any],
                 clustering: dict[str, Any] | None) -> dict[str, Any]:
    """The bandit's report: parameters, rounds, queries spent, every arm's pulls, mean loss, bonus and UCB."""
    arms = bandit.arms_table(res)
    pulled = [a for a in arms if a["pulls"]]
    sel_queried = int(np.isin(res.rows, res.queried).sum())
    rep: dict[str, Any] = {
        "report_kind": "bandit", "design": "bandit", "unbiased": False, "n": n, "k": len(arms), "s": s, "seed": seed,
        "selected_rows": len(res.rows), "fraction": len(res.rows) / n,
        "budget_queries": prm["budget_queries"], "queries": oracle.queries, "oracle": oracle.label,
        "rounds": res.rounds, "prefer": prm["prefer"], "ucb_c": prm["ucb_c"],
        "arms_per_round": prm["arms_per_round"], "pulls_per_round": prm["pulls_per_round"],
        "noise_scale": res.scale, "arms_pulled": len(pulled), "queried_mean_loss": float(res.loss.mean()),
        "selected_queried": sel_queried, "arms": arms,
        "best_arm": max(pulled, key=lambda a: a["pulls"])["cluster"] if pulled else None,
    }
    if clustering:
        rep["clustering"] = clustering
    rep["guarantee"] = (f"Unweighted (weight 1): {len(res.rows)} rows chosen by the cluster bandit from "
                        f"{res.rounds} rounds and {oracle.queries} queried losses ({sel_queried} of the selected rows "
                        "were queried); Σ weight·loss is the selected rows' loss and estimates nothing about the "
                        "full set, and 'dataselect estimate' refuses it. The rows follow the clusters the bandit "
                        "pulled most, which assumes a cluster's queried rows represent its other rows.")
    return rep

