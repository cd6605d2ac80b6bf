"""``sample --rounds r``: the paper's adaptive variant (Algorithm 3, Axiotis et al. 2024, Appendix B.3).

The rows are put in the D^z sampling order (:mod:`dataselect_cli.prefix`); round i asks the loss
oracle (:mod:`dataselect_cli.oracle`) for the losses of rows (i−1)·k+1 … i·k of that order and
samples with the first i·k rows as centers: each row's proxy is its nearest queried row's loss and
its distance term the distance^z to that row, scored by the ``sensitivity`` method and drawn by the
design, exactly as a one-round run scores and draws a clustering (Theorem 7: every round satisfies
Theorem 2 for the clustering of its prefix). The selection written is the last round's; the report
lists every round's clustering cost, Σ Λ·Φ, bound and queries spent.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa

from .. import io, prefix
from ..errors import InputError
from ..methods import Clusters, Inputs, ScoreMethod
from ..oracle import Oracle
from . import score as score_step
from .common import Note, Scale, quiet


def check_rounds(rounds: int | None, k: int | None, n: int | None = None, path: str | None = None) -> None:
    """Refuse ``--rounds`` below 1, without ``--k``, or asking for more rows than the data has (r·k > n)."""
    if rounds is None:
        return
    if rounds < 1:
        raise InputError(f"--rounds must be >= 1 (rounds of --k queried rows each); got {rounds}")
    if k is None:
        raise InputError("--rounds runs on an embeddings file: give --k, the rows whose losses each round queries")
    if n is not None and rounds * k > n:
        raise InputError(f"--rounds {rounds} × --k {k} = {rounds * k} queried rows, more than the {n} rows; "
                         "lower --rounds or --k", path)


def prefix_clusters(ids: pa.Array, order_ids: pa.Array, p: prefix.Prefix, z: int, d: int | None) -> Clusters:
    """The :class:`~dataselect_cli.methods.Clusters` whose centers are the rows ``order_ids`` (a prefix of the order).
    """
    m = len(order_ids)
    labels = p.labels.astype(np.int64)
    size = np.bincount(labels, minlength=m).astype(np.int64)
    cost = np.bincount(labels, weights=p.distance.astype(np.float64) ** z, minlength=m)
    return Clusters(ids, p.labels, p.distance, order_ids, size, cost, z, d)


def _check_oracle_has(oracle: Oracle | None, order_ids: pa.Array, k: int) -> None:
    """Before any round: refuse an oracle that can tell it lacks some of the r·k rows (a losses table)."""
    has = getattr(oracle, "has", None)
    if has is None:
        return
    missing = order_ids.filter(pa.array(~has(order_ids)))
    if len(missing):
        shown = ", ".join(str(v) for v in missing.to_pylist()[:10]) + (", …" if len(missing) > 10 else "")
        raise InputError(f"{len(missing)} of the {len(order_ids)} rows the rounds query ({len(order_ids) // k} × "
                         f"--k {k}, in D^z order) have no loss here: {shown}; add their losses (run once without "
                         "--losses and with --centers FILE to list the rows), or let --loss-command compute them",
                         oracle.path if hasattr(oracle, "path") else None)


#: Draws one round's selection: (scores table, score summary, the round's seed) → (selection, report).
Draw = Callable[[pa.Table, dict, int], tuple[pa.Table, dict]]


def run_rounds(ids: pa.Array, x, k: int, rounds: int, *, oracle: Oracle | None, method: ScoreMethod, draw: Draw,
               seed: int, z: int, d: int | None, scale: Scale, note: Note = quiet, centers: bool = False
               ) -> tuple[pa.Table, dict[str, Any], pa.Table | None]:
    """Algorithm 3 on embeddings ``x`` (an array or a block source): (last round's selection, its report, centers).

    Parameters
    ----------
    ids : pyarrow.Array of length n
    x : ndarray of shape (n, d), float32; or a block source
    k, rounds : int
        Rows queried per round, and rounds r (r·k <= n, checked by :func:`check_rounds`).
    oracle : Oracle or None
        Asked, in round i, for the losses of the i-th k rows of the order (purpose ``"round i"``);
        None: no losses, every round scores with the unit proxy (and queries nothing).
    method : ScoreMethod
        ``sensitivity`` (its ``--lambda``; by default Λ is balanced again in every round).
    draw : callable
        Draws each round's selection from its scores (``sample``'s :func:`~.sample.run_sample` with its
        design and size), with the seed :func:`~dataselect_cli.prefix.round_seed` (seed, i).
    centers : bool
        Also return the centers table (:func:`order_table`), what ``--centers FILE`` writes.

    Returns
    -------
    selected : pyarrow.Table
        The last round's selection.
    report : dict
        The last round's report, with ``rounds`` (one entry per round) and ``loss_queries``.
    centers : pyarrow.Table or None
    """
    m = rounds * k
    order = prefix.dz_order(x, m, z=z, seed=seed, keep=tuple(i * k for i in range(1, rounds + 1)),
                            block_rows=scale.block_rows, progress=scale.progress)
    order_ids = ids.take(pa.array(order.index))
    _check_oracle_has(oracle, order_ids, k)
    losses: list[np.ndarray] = []
    rows = []
    for i in range(1, rounds + 1):
        queried = order_ids.slice(0, i * k)
        if oracle is not None:
            losses.append(oracle.query(order_ids.slice((i - 1) * k, k), f"round {i}"))
        c = prefix_clusters(ids, queried, order.prefixes.pop(i * k), z, d)
        inputs = Inputs(c, (queried, np.concatenate(losses)), oracle.label) if oracle is not None else Inputs(c)
        scores, ssum = score_step.run_score(method, inputs, note=note, scale=scale)
        table, rep = draw(scores, ssum, prefix.round_seed(seed, i))
        rep["seed"], rep["draw_seed"] = seed, prefix.round_seed(seed, i)  # --seed; the round's own stream of it
        rows.append(round_row(i, k, oracle, rep))
    rep["rounds"] = rows
    rep["loss_queries"] = oracle.summary() if oracle is not None else {"queries": 0, "by_purpose": []}
    rep["order"] = {"rows": m, "z": z, "seed": seed, "method": "D^z sampling (k-means++ seeding run to r·k rows)",
                    "passes": m}
    return table, rep, order_table(ids, x, order, k, c, scale.block_rows) if centers else None


def round_row(i: int, k: int, oracle: Oracle | None, rep: dict[str, Any]) -> dict[str, Any]:
    """One round of the report: centers, queries spent so far, Φ_z, Λ, Σ Λ·Φ, ε and Theorem 2's additive term
    (the bound holds only for the paper's ``iid`` draws; None for another design)."""
    iid = rep["design"] == "iid"
    return {"round": i, "centers": i * k, "queries": oracle.queries if oracle is not None else 0,
            "phi_z": rep["phi_z"], "lambda": rep["lambda"] if not isinstance(rep["lambda"], list) else None,
            "lambda_phi": rep["lambda_phi"], "eps": rep["eps"] if iid else None,
            "additive_per_example": rep["additive_per_example"] if iid else None,
            "selected_rows": rep["selected_rows"], "effective_sample_size": rep["effective_sample_size"]}


def order_table(ids: pa.Array, x, order: prefix.DzOrder, k: int, final: Clusters, block_rows: int) -> pa.Table:
    """The ``--centers`` file of a run with rounds: the r·k rows of the order as the last round's centers
    (``cluster`` = position in the order, ``size`` and ``cost`` of the last round's clusters, ``centroid`` = the
    row itself) and the ``round`` that queried each."""
    from ..cluster import _source

    m, src = len(order.index), _source(x)
    sort = np.argsort(order.index, kind="stable")
    vec = np.empty((m, src.d), dtype=np.float32)
    vec[sort] = src.take(order.index[sort], block_rows)
    return pa.table({
        "cluster": pa.array(np.arange(m, dtype=np.int32)),
        "center_id": ids.take(pa.array(order.index)),
        "size": pa.array(final.size, pa.int64()),
        "cost": pa.array(final.cost, pa.float64()),
        "centroid": io.embedding_array(vec),
        "round": pa.array(np.arange(m) // k + 1, pa.int32()),
    })
