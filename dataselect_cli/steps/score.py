"""``dataselect score``: clusters (+ centers, + losses) → scores, by a registered score method."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import dataset, grid, io, kinds, methods, outputs, parts
from ..dataset import MemorySource, TableSource
from ..fingerprints import input_fingerprints
from ..pqdataset import ParquetDataset
from ..engine import map_pass
from ..errors import InputError
from ..methods import Clusters, Inputs, ScoreMethod
from ..methods.base import ExampleMethod, RowStats
from ..methods.sensitivity import distance_term
from ..uniqueids import check_unique_ids_spilled
from ..oracle import Oracle
from . import dsir as dsir_step, influence
from .common import Note, Scale, check_losses_format, default_centers_path, quiet, skip

if TYPE_CHECKING:  # k-means (and faiss) are loaded by the steps that cluster, not by every score
    from ..cluster import Clustering


def params(method: ScoreMethod, scale: Scale, losses_format: str | None = None) -> dict[str, Any]:
    """The parameters a scores file records (and ``--resume`` compares); ``--losses-format`` only when given,
    so that files written before it existed stay up to date."""
    out = {**method.params(), "block_rows": scale.block_rows, "method": method.name}
    if losses_format is not None:
        out["losses_format"] = losses_format
    return out


def _open_clusters(clusters_path: str, centers_path: str) -> tuple[ParquetDataset, pa.Table, dict]:
    """A clusters file (or directory) and its centers file, checked against each other: (clusters dataset,
    centers table in cluster order, metadata)."""
    ds = ParquetDataset(clusters_path, "clusters")
    ds.require(["id", "cluster", "distance"], "clusters")
    meta = ds.metadata
    ct, cmeta = dataset.read_table(centers_path, ["cluster", "center_id", "size", "cost"], "centers")
    if meta and cmeta and meta != cmeta:  # 'cluster' writes both files with the same metadata
        raise InputError(f"was not written by the same 'dataselect cluster' run as {clusters_path}; pass the "
                         "centers file written with it (--centers), or re-run cluster", centers_path)
    k = ct.num_rows
    ct = ct.take(pa.array(np.argsort(ct.column("cluster").to_numpy())))
    if not np.array_equal(ct.column("cluster").to_numpy(), np.arange(k)):
        raise InputError(f"column 'cluster' must hold 0..{k - 1} once each", centers_path)
    return ds, ct, meta


def _check_rows(labels: np.ndarray, distance: np.ndarray, k: int, path: str) -> None:
    """Refuse labels outside 0..k−1 and distances that are not finite and >= 0 (all rows or a block of them)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"column 'cluster' has values outside 0..{k - 1} (the centers file has {k} clusters); "
                         "pass the centers file written with it (--centers)", path)
    if not np.isfinite(distance).all() or (distance < 0).any():
        raise InputError("column 'distance' must be finite and >= 0", path)


def _clusters(ct: pa.Table, meta: dict, ids, labels, distance, stats: RowStats | None = None) -> Clusters:
    summary = meta.get("summary", {})
    return Clusters(ids, labels, distance, ct.column("center_id").combine_chunks(), ct.column("size").to_numpy(),
                    ct.column("cost").to_numpy(), int(summary.get("z", 2)), summary.get("d"), stats)


def read_clusters(clusters_path: str, centers_path: str) -> tuple[Clusters, dict]:
    """A clusters file (or directory) and its centers file, checked against each other; return (clusters, metadata)."""
    ds, ct, meta = _open_clusters(clusters_path, centers_path)
    ids = io.read_ids(ds, clusters_path)
    t = ds.read(columns=["cluster", "distance"])
    labels = t.column("cluster").to_numpy()  # int32 and float32 as written (8 bytes a row; math widens per block)
    distance = t.column("distance").to_numpy()
    _check_rows(labels, distance, ct.num_rows, clusters_path)
    return _clusters(ct, meta, ids, labels, distance), meta


def scan_clusters(clusters_path: str, centers_path: str, want: pa.Array | None, spill: str
                  ) -> tuple[Clusters, dict, pa.Array | None]:
    """:func:`read_clusters` without holding the rows: one pass checks them block by block and gathers the
    :class:`~dataselect_cli.methods.base.RowStats` (Σ distance^z and rows per cluster, and the rows of the
    center ids and of the ids ``want``), after a pass checking the ids through files under ``spill``
    (:mod:`dataselect_cli.uniqueids`). Returns (clusters, metadata, ids of the rows marked ``probe`` or None)."""
    ds, ct, meta = _open_clusters(clusters_path, centers_path)
    c, probe = scan(ds, ct, meta, want, spill)
    return c, meta, probe


def scan(ds: ParquetDataset, ct: pa.Table, meta: dict, want: pa.Array | None, spill: str | None
         ) -> tuple[Clusters, pa.Array | None]:
    """The pass of :func:`scan_clusters` over a clusters dataset ``ds`` whose centers table (in cluster order)
    is ``ct``; ``spill`` None skips the id check (ids this run wrote, already checked)."""
    import pyarrow.compute as pc

    clusters_path = ds.path
    if spill is not None:
        blocks = (t.column(0).combine_chunks() for t in ds.iter_tables(["id"], 0, ds.n, grid.BLOCK_ROWS))
        check_unique_ids_spilled(blocks, ds.n, spill, clusters_path)
    c = _clusters(ct, meta, None, None, None)
    k = ct.num_rows
    # a losses table of another id type is refused by the method, naming both types
    want = pa.concat_arrays([c.center_id, want]) if want is not None and want.type == c.center_id.type else c.center_id
    probe = "probe" in ds.schema.names
    cost, counts = np.zeros(k), np.zeros(k, dtype=np.int64)
    found: list[tuple] = []
    probes: list[pa.Array] = []
    for t in ds.iter_tables(["id", "cluster", "distance", *(["probe"] if probe else [])], 0, ds.n, grid.BLOCK_ROWS):
        labels, distance = t.column("cluster").to_numpy(), t.column("distance").to_numpy()
        _check_rows(labels, distance, k, clusters_path)
        np.add.at(cost, labels, distance_term(distance, c.z))  # in row order: the floats of a bincount over all rows
        counts += np.bincount(labels, minlength=k)
        ids = io.id_type(t.column("id").combine_chunks(), clusters_path)
        if probe:
            probes.append(ids.filter(t.column("probe").combine_chunks().fill_null(False)))
        if ids.type == want.type:
            hit = pc.is_in(ids, value_set=want).to_numpy(zero_copy_only=False)
            if hit.any():
                found.append((ids.filter(pa.array(hit)), labels[hit], distance[hit]))
    empty = (pa.array([], c.center_id.type), np.empty(0, np.int32), np.empty(0, np.float32))
    f_ids, f_lab, f_dist = zip(*found) if found else ([empty[0]], [empty[1]], [empty[2]])
    c.stats = RowStats(ds.n, cost, counts, pa.concat_arrays(list(f_ids)), np.concatenate(f_lab),
                       np.concatenate(f_dist))
    return c, pa.concat_arrays(probes) if probe else None


def from_clustering(ids: pa.Array, c: Clustering, z: int, d: int) -> Clusters:
    """The :class:`~dataselect_cli.methods.Clusters` of a clustering made in this run."""
    return Clusters(ids, c.labels, c.distance, ids.take(pa.array(c.center_index)), c.size, c.cost, z, d)


def query_losses(oracle: Oracle, c: Clusters, probe: np.ndarray | pa.Array | None = None
                 ) -> tuple[pa.Array, np.ndarray]:
    """Ask ``oracle`` for the losses a sensitivity score needs, in this order: the k center rows (by cluster),
    then the probe rows (``probe``: a boolean mask over the rows, or their ids, in row order); return (ids,
    losses) as a ``--losses`` table holding exactly those rows would give them."""
    center_loss = oracle.query(c.center_id, "centers")
    probe_ids = probe if isinstance(probe, pa.Array) else c.ids.filter(pa.array(probe)) if probe is not None \
        else c.center_id.slice(0, 0)
    probe_loss = oracle.query(probe_ids, "probes")
    return pa.concat_arrays([c.center_id, probe_ids]), np.concatenate([center_loss, probe_loss])


def sums_block(b: int, cols: dict, *, method: ScoreMethod, state: Any) -> tuple:
    """One block's sums of ``method`` (the first pass of a run writing a directory output)."""
    return method.score_block(b, cols, state)[1]


def write_block(b: int, cols: dict, *, method: ScoreMethod, state: Any, sums: list, n: int, block_rows: int,
                sink: parts.Sink) -> dict[str, Any]:
    """Score one block, complete it with the totals (``finish`` is row-wise given ``sums``) and write it to
    ``sink`` with the passthrough columns, in the task that computed it."""
    part = method.finish(method.score_block(b, cols, state)[0], sums, n)
    through = {"cluster": pa.array(np.asarray(cols["cluster"]), pa.int32())} if "cluster" in method.passthrough else {}
    return sink(b, block_rows, {**through, **{name: part[name] for name in method.columns}})


def run_score(method: ScoreMethod, inputs: Inputs, *, note: Note = quiet, scale: Scale | None = None,
              source=None, sink: parts.Sink | None = None) -> tuple[pa.Table | None, dict[str, Any]]:
    """Score every row with ``method``; return (scores table, summary).

    The rows are scored block by block on ``scale.engine``, from ``source`` (a block source of the
    clusters file) when given, else from the arrays of ``inputs.clusters``. With ``sink`` (a directory
    output: :mod:`dataselect_cli.parts`) each task writes its blocks' rows and the table returned is None;
    a method with totals (``finish``) then takes two passes, one for the sums and one to write.
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
    if sink is not None:
        shared = {"method": method, "state": state}
        sums = [] if type(method).finish is ScoreMethod.finish else \
            list(map_pass(scale.engine, f"score ({method.name}): totals", sums_block, source, scale.block_rows,
                          shared, scale.progress))
        entries = list(map_pass(scale.engine, f"score ({method.name})", write_block, source, scale.block_rows,
                                {**shared, "sums": sums, "n": n, "block_rows": scale.block_rows, "sink": sink},
                                scale.progress))
        return None, {"n": n, **summary, "method": method.name, "direction": method.direction, "parts": entries}
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
    if parts.is_dir_output(out) and ("text" in method.inputs or isinstance(method, ExampleMethod)):
        raise InputError(f"a directory output (-o ending in '/') is written by the methods that score the rows of "
                         f"CLUSTERS; --method {method.name} writes one file: drop the trailing '/'", out)
    if parts.is_dir_output(out) and method.params().get("proxy") == "knn":
        raise InputError("--proxy knn keeps a proxy loss for every row, which a directory output (-o ending in '/') "
                         "does not hold; use --proxy mean or auto there, or drop the trailing '/'", out)
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
    to_dir = parts.is_dir_output(out)
    outs_in = [clusters, centers, losses, target, embeddings, *oracle_inputs.values()]
    parts.check_output(out, outs_in) if to_dir else outputs.check_output_path(out, outs_in)
    inputs = input_fingerprints({"clusters": clusters, "centers": centers, "losses": losses, "target": target,
                                 **({"embeddings": embeddings} if embeddings else {}), **oracle_inputs})
    if (done := skip([out], "score", prm, inputs, None, note)) is not None:
        return done
    loss_table = dataset.read_losses(losses, losses_format) if losses else None
    folder = sink = None
    if to_dir:  # nothing per row here: a pass gathers what the method needs, the tasks write the rows
        folder = parts.begin(out)
        c, cmeta, probe = scan_clusters(clusters, centers, loss_table[0] if loss_table else None,
                                        os.path.join(folder, ".ids"))
        sink = parts.Sink(folder, io.make_meta("score", prm, inputs, None), ParquetDataset(clusters, "clusters"))
    else:
        c, cmeta = read_clusters(clusters, centers)
        probe = _probe_mask(clusters) if oracle is not None else None
    src = TableSource(ParquetDataset(clusters, "clusters"), list(method.source_columns), arrow=())
    if oracle is not None:
        loss_table = query_losses(oracle, c, probe)
    losses_path = oracle.label if oracle is not None else losses
    table, summary = run_score(method, Inputs(c, loss_table, losses_path, target=target, centers=centers,
                                              embeddings=embeddings), note=note, scale=scale, source=src, sink=sink)
    entries = summary.pop("parts", None)
    if oracle is not None:
        summary["oracle"] = oracle.summary()
    from .cluster import CLUSTERING_KEYS

    csum = cmeta.get("summary", {})
    summary["clustering"] = {key: csum[key] for key in CLUSTERING_KEYS if key in csum}
    meta = io.make_meta("score", prm, inputs, summary)
    if to_dir:
        parts.finish(folder, out, meta, entries)
    else:
        io.write_table(table, out, meta)
    return summary


def _probe_mask(clusters_path: str) -> np.ndarray | None:
    """The clusters file's column ``probe`` (``cluster --probes T``), or None when it has none."""
    ds = ParquetDataset(clusters_path, "clusters")
    if "probe" not in ds.schema.names:
        return None
    return ds.read_column("probe").to_numpy().astype(bool)
