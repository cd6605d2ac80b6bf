"""``dataselect score``: clusters (+ centers, + losses) → scores, by a registered score method."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, grid, io, kinds, methods
from ..cluster import Clustering
from ..dataset import MemorySource, ParquetDataset, TableSource
from ..engine import map_pass
from ..errors import InputError
from ..methods import Clusters, Inputs, ScoreMethod
from ..methods.base import ExampleMethod
from ..oracle import Oracle
from . import dsir as dsir_step, influence
from .cluster import CLUSTERING_KEYS
from .common import Note, Scale, check_losses_format, default_centers_path, quiet, skip


def params(method: ScoreMethod, scale: Scale, losses_format: str | None = None) -> dict[str, Any]:
    """The parameters a scores file records (and ``--resume`` compares); ``--losses-format`` only when given,
    so that files written before it existed stay up to date."""
    out = {**method.params(), "block_rows": scale.block_rows, "method": method.name}
    if losses_format is not None:
        out["losses_format"] = losses_format
    return out


def read_clusters(clusters_path: str, centers_path: str) -> tuple[Clusters, dict]:
    """A clusters file and its centers file, checked against each other; return (clusters, metadata)."""
    pf = io.open_parquet(clusters_path, "clusters")
    io.require_columns(pf, ["id", "cluster", "distance"], clusters_path, "clusters")
    ids = io.read_ids(pf, clusters_path)
    t = pf.read(columns=["cluster", "distance"])
    labels = t.column("cluster").to_numpy()  # int32 and float32 as written (8 bytes a row; math widens per block)
    distance = t.column("distance").to_numpy()
    meta = io.read_meta(clusters_path, "clusters")
    ct, cmeta = dataset.read_table(centers_path, ["cluster", "center_id", "size", "cost"], "centers")
    if meta and cmeta and meta != cmeta:  # 'cluster' writes both files with the same metadata
        raise InputError(f"was not written by the same 'dataselect cluster' run as {clusters_path}; pass the "
                         "centers file written with it (--centers), or re-run cluster", centers_path)
    k = ct.num_rows
    ct = ct.take(pa.array(np.argsort(ct.column("cluster").to_numpy())))
    if not np.array_equal(ct.column("cluster").to_numpy(), np.arange(k)):
        raise InputError(f"column 'cluster' must hold 0..{k - 1} once each", centers_path)
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"column 'cluster' has values outside 0..{k - 1} (the centers file has {k} clusters); "
                         "pass the centers file written with it (--centers)", clusters_path)
    if not np.isfinite(distance).all() or (distance < 0).any():
        raise InputError("column 'distance' must be finite and >= 0", clusters_path)
    summary = meta.get("summary", {})
    c = Clusters(ids, labels, distance, ct.column("center_id").combine_chunks(), ct.column("size").to_numpy(),
                 ct.column("cost").to_numpy(), int(summary.get("z", 2)), summary.get("d"))
    return c, meta


def from_clustering(ids: pa.Array, c: Clustering, z: int, d: int) -> Clusters:
    """The :class:`~dataselect_cli.methods.Clusters` of a clustering made in this run."""
    return Clusters(ids, c.labels, c.distance, ids.take(pa.array(c.center_index)), c.size, c.cost, z, d)


def query_losses(oracle: Oracle, c: Clusters, probe: np.ndarray | None = None) -> tuple[pa.Array, np.ndarray]:
    """Ask ``oracle`` for the losses a sensitivity score needs, in this order: the k center rows (by cluster),
    then the probe rows (``probe``: a boolean mask over the rows, in row order); return (ids, losses) as a
    ``--losses`` table holding exactly those rows would give them."""
    center_loss = oracle.query(c.center_id, "centers")
    probe_ids = c.ids.filter(pa.array(probe)) if probe is not None else c.ids.slice(0, 0)
    probe_loss = oracle.query(probe_ids, "probes")
    return pa.concat_arrays([c.center_id, probe_ids]), np.concatenate([center_loss, probe_loss])


def run_score(method: ScoreMethod, inputs: Inputs, *, note: Note = quiet, scale: Scale | None = None,
              source=None) -> tuple[pa.Table, dict[str, Any]]:
    """Score every row with ``method``; return (scores table, summary).

    The rows are scored block by block on ``scale.engine``, from ``source`` (a block source of the
    clusters file) when given, else from the arrays of ``inputs.clusters``.
    """
    scale = scale or Scale()
    method.check(inputs.available())
    inputs.block_rows = scale.block_rows
    state, summary = method.prepare(inputs, note)
    c = inputs.clusters
    if source is None:
        source = MemorySource({col: getattr(c, "labels" if col == "cluster" else col)
                               for col in method.source_columns})
    n = source.n
    cols = {name: np.empty(n) for name in method.columns}
    sums = []
    for b, (part, block_sums) in enumerate(map_pass(scale.engine, f"score ({method.name})", method.score_block,
                                                    source, scale.block_rows, {"state": state}, scale.progress)):
        lo, hi = grid.block_bounds(b, n, scale.block_rows)
        for name, values in part.items():
            cols[name][lo:hi] = values
        sums.append(block_sums)
    cols = method.finish(cols, sums, n)
    passthrough = {"cluster": pa.array(c.labels, pa.int32())} if "cluster" in method.passthrough else {}
    table = pa.table({"id": c.ids, **passthrough, **{name: cols[name] for name in method.columns}})
    return table, {"n": n, **summary, "method": method.name, "direction": method.direction}


def score_file(clusters: str | None, out: str, *, centers: str | None = None, losses: str | None = None,
               losses_format: str | None = None, method: ScoreMethod | None = None, note: Note = quiet,
               scale: Scale | None = None, dynamics: str | None = None, examples: str | None = None,
               embeddings: str | None = None, text: str | None = None, targets: list[str] | None = None,
               oracle: Oracle | None = None, **method_params) -> dict[str, Any]:
    """``dataselect score``: write SCORES; return the summary.

    ``method`` is a :class:`~dataselect_cli.methods.ScoreMethod` (default: ``sensitivity`` made
    with ``method_params``, e.g. ``lam=0.5`` or ``estimate_lambda=True``). ``losses`` is Parquet,
    CSV, TSV or JSON lines, by its extension or ``losses_format`` (:func:`dataselect_cli.dataset.read_losses`).
    The per-example methods (``loss``, ``el2n``, …) read ``dynamics``, ``examples`` or ``embeddings``
    instead of ``clusters`` (:func:`dataselect_cli.steps.influence.score_examples_file`); ``dsir`` reads the
    text corpus ``text`` and the target corpora ``targets`` (:func:`dataselect_cli.steps.dsir.score_text_file`),
    ``dsir-clusters`` CLUSTERS and one target embeddings file.

    ``oracle`` (e.g. a :class:`~dataselect_cli.losscmd.CommandOracle`, ``--loss-command``) replaces
    ``losses``: it is asked for the k center rows, then for the rows the clusters file marks ``probe``
    (:func:`query_losses`); its queries go into the summary (``oracle``) and its parameters into the
    metadata.
    """
    scale = scale or Scale()
    method = method or methods.get(None, **method_params)
    if "text" in method.inputs:
        for value, name in ((clusters, "CLUSTERS"), (centers, "--centers"), (losses, "--losses"),
                            (losses_format, "--losses-format"), (dynamics, "--dynamics"), (examples, "--examples"),
                            (embeddings, "--embeddings")):
            if value is not None:
                raise InputError(f"{name} does not apply to --method {method.name}, which scores the documents of "
                                 "--text toward --target")
        return dsir_step.score_text_file(method, out, text=text, targets=targets, prm=params(method, scale),
                                         note=note, scale=scale)
    if text is not None:
        raise InputError(f"--text does not apply to --method {method.name}; it is the corpus of --method dsir")
    target = None
    if "target" in method.inputs:
        if not targets or len(targets) != 1:
            raise InputError(f"--method {method.name} needs one --target, an embeddings file of the target data "
                             "(embedded like the clustered rows)")
        target = targets[0]
    elif targets:
        raise InputError(f"--target does not apply to --method {method.name}")
    if isinstance(method, ExampleMethod):
        for value, name in ((clusters, "CLUSTERS"), (centers, "--centers"), (losses, "--losses"),
                            (losses_format, "--losses-format"), (oracle, "--loss-command")):
            if value is not None:
                raise InputError(f"{name} does not apply to --method {method.name}, which scores each example from "
                                 "--dynamics, --examples or --embeddings (put losses in the examples table's 'loss')")
        return influence.score_examples_file(method, out, dynamics=dynamics, examples=examples, embeddings=embeddings,
                                             prm=params(method, scale), note=note, scale=scale)
    reads_vectors = getattr(method, "proxy", None) in ("knn", "auto")  # sensitivity: the embeddings of CLUSTERS
    for value, name in ((dynamics, "--dynamics"), (examples, "--examples"),
                        (None if reads_vectors else embeddings, "--embeddings")):
        if value is not None:
            raise InputError(f"{name} does not apply to --method {method.name}, which scores the rows of CLUSTERS")
    if clusters is None:
        raise InputError(f"--method {method.name} needs CLUSTERS, the clusters file written by 'dataselect cluster'")
    if losses is not None and oracle is not None:
        raise InputError("give --losses FILE or --loss-command CMD, not both")
    method.check({"clusters"} | ({"losses"} if losses or oracle else set()) | ({"target"} if target else set())
                 | ({"embeddings"} if embeddings else set()))
    centers = centers or default_centers_path(clusters)
    prm = {**params(method, scale, losses_format), **(oracle.params() if oracle else {})}
    check_losses_format(losses, losses_format)
    kinds.check_not_swapped((clusters, "clusters", "CLUSTERS"), (losses, "losses", "--losses"))
    oracle_inputs = oracle.inputs() if oracle else {}
    io.check_output_path(out, [clusters, centers, losses, target, embeddings, *oracle_inputs.values()])
    inputs = dataset.input_fingerprints({"clusters": clusters, "centers": centers, "losses": losses, "target": target,
                                         **({"embeddings": embeddings} if embeddings else {}), **oracle_inputs})
    if (done := skip([out], "score", prm, inputs, None, note)) is not None:
        return done
    c, cmeta = read_clusters(clusters, centers)
    src = TableSource(ParquetDataset(clusters, "clusters"), list(method.source_columns), arrow=())
    loss_table = dataset.read_losses(losses, losses_format) if losses else None
    if oracle is not None:
        loss_table = query_losses(oracle, c, _probe_mask(clusters))
    losses_path = oracle.label if oracle is not None else losses
    table, summary = run_score(method, Inputs(c, loss_table, losses_path, target=target, centers=centers,
                                              embeddings=embeddings), note=note, scale=scale, source=src)
    if oracle is not None:
        summary["oracle"] = oracle.summary()
    csum = cmeta.get("summary", {})
    summary["clustering"] = {key: csum[key] for key in CLUSTERING_KEYS if key in csum}
    io.write_table(table, out, io.make_meta("score", prm, inputs, summary))
    return summary


def _probe_mask(clusters_path: str) -> np.ndarray | None:
    """The clusters file's column ``probe`` (``cluster --probes T``), or None when it has none."""
    pf = io.open_parquet(clusters_path, "clusters")
    if "probe" not in pf.schema_arrow.names:
        return None
    return pf.read(columns=["probe"]).column("probe").to_numpy(zero_copy_only=False).astype(bool)
