"""``dataselect sample``: scores → a weighted selection by a registered design; or embeddings → selection in one step."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from .. import bounds, calibration, dataset, designs, io, methods, options, outputs, parts, report as report_mod
from .._checks import check_delta, check_eps, check_fraction, check_size
from ..cluster import KMeansOptions
from ..dataset import ArraySource, MemorySource, RowsSource, TableSource
from ..fingerprints import PendingFingerprints, input_fingerprints
from ..pqdataset import ParquetDataset
from ..designs import Design
from ..designs.base import until_distinct
from ..errors import InputError
from ..methods import Inputs, ScoreMethod
from ..oracle import Oracle, TableOracle
from . import adaptive, cluster as cluster_step, dedup as dedup_step, dsir as dsir_step, estimate as estimate_step
from . import regression as regression_step, score as score_step
from .common import Note, Scale, check_losses_format, embeddings_source, quiet, skip, unskipped


def sample_size(eps: float | None, size: int | None, delta: float | None,
                rows: int | None = None, fraction: float | None = None, n: int | None = None) -> tuple[int, float]:
    """(s, the ε it guarantees) from ``--eps``, ``--size``, ``--rows`` or ``--fraction`` (s = round(F·n))
    and ``--delta``, checked; ``fraction`` needs ``n``, the rows of the input."""
    if delta is not None:
        check_delta(delta)
    if sum(v is not None for v in (eps, size, rows, fraction)) > 1:
        raise InputError("give one of --eps, --size, --rows or --fraction")
    if fraction is not None:
        check_fraction(fraction)
        if n is None:
            return 1, bounds.eps_for_size(1, delta)  # checked only; sample_file sizes it once n is known
        s = round(fraction * n)
        if s < 1:
            raise InputError(f"--fraction {fraction} of the {n} rows is 0 rows; raise it or give --size")
        return s, bounds.eps_for_size(s, delta)
    if rows is not None:
        if rows <= 0:
            raise InputError(f"--rows must be a positive number of distinct rows; got {rows}")
        return rows, bounds.eps_for_size(rows, delta)
    if size is not None:
        check_size(size)
        return size, bounds.eps_for_size(size, delta)
    eps = options.EPS if eps is None else eps
    check_eps(eps)
    return bounds.sample_size(eps, delta), eps


def read_columns(design: Design, names: list[str]) -> list[str]:
    """The columns ``design`` reads of a scores table with columns ``names``: id, its needs, its optional ones there."""
    return list(dict.fromkeys(["id", *design.needs, *(c for c in design.optional if c in names)]))


def run_sample(scores, score_summary: dict, *, s: int, eps: float, delta: float | None, seed: int,
               design: Design | None = None, scale: Scale | None = None, path: str | None = None,
               calibrate: bool = False, rows: bool = False) -> tuple[pa.Table, dict[str, Any]]:
    """Select with ``design`` (default ``iid``) from a scores table in memory or a block source of a
    scores file, on ``scale.engine``; return (selected table, report). Both give the same rows.

    With ``rows``, ``s`` counts distinct rows: ``auto`` chooses among the designs without
    replacement of fixed size, and a design with replacement draws until it has ``s`` distinct rows
    (the report's ``s`` is then the number of draws that took, ``rows_requested`` the rows asked for).

    With ``calibrate`` the ``weight`` column holds the calibrated weights (:mod:`dataselect_cli.calibration`:
    they reproduce the cluster sizes, or n and the proxy total), so that Σ weight·ℓ is the model-assisted
    estimate and a trainer uses them as they are; the design's own weights go to ``design_weight``.
    """
    scale = scale or Scale()
    design = design or designs.get(None)
    if isinstance(scores, pa.Table):
        scores = MemorySource({c: scores.column(c).combine_chunks() if c == "id" else scores.column(c).to_numpy()
                               for c in read_columns(design, scores.column_names)})
    wanted = s
    if rows:
        design = design.for_rows()
    design.bind(score_summary)
    if rows and s > scores.n:
        raise InputError(f"--rows {s} is more than the {scores.n} rows; lower it", path)
    if rows and design.with_replacement:
        d, s = until_distinct(lambda m: designs.draw(design, scores, m, seed, scale.engine, scale.block_rows, path,
                                                     scale.progress), s, path)
        eps = bounds.eps_for_size(s, delta)
    else:
        d = designs.draw(design, scores, s, seed, scale.engine, scale.block_rows, path, scale.progress)
    design = design.resolved()
    weight, cal = d.weight, None
    if calibrate:
        cal = calibrated(d.weight, np.asarray(d.columns["cluster"]).astype(np.int64), score_summary)
        weight = d.weight * cal["g"]
    cols = {"id": d.columns["id"], "count": pa.array(d.count, pa.int32()), "prob": pa.array(d.prob, pa.float64()),
            "weight": pa.array(weight)}
    for c, v in d.columns.items():  # cluster, and what a score design read (score, the stratum column)
        if c != "id":
            cols[c] = pa.array(v, pa.int32()) if c == "cluster" else (v if isinstance(v, pa.Array) else pa.array(v))
    if cal is not None:
        cols["design_weight"] = pa.array(d.weight)
    if design.scored or score_summary.get("k") is None:
        report = report_mod.build_scored(score_summary, s=s, seed=seed, weight=weight, count=d.count,
                                         columns=d.columns, stats=d.stats, design=design)
    else:
        report = report_mod.build(score_summary, s=s, eps=eps, delta=delta, seed=seed, weight=weight, count=d.count,
                                  drawn_labels=d.columns["cluster"], min_prob=d.stats["min_prob"], design=design)
    if "auto" in d.stats:
        report["design_choice"] = d.stats["auto"]
    if rows:
        report["rows_requested"] = wanted
    if cal is not None:
        report["calibration"] = {"auxiliary": cal["auxiliary"], "g_range": [float(cal["g"].min()), float(cal["g"].max())]}
    return pa.table(cols), report


def calibrated(weight: np.ndarray, cluster: np.ndarray, score_summary: dict) -> dict[str, Any]:
    """g-factors that calibrate the selection to the clusters' sizes (or to n and the proxy total)."""
    clusters = score_summary.get("clusters") or {}
    size, proxy = clusters.get("size"), clusters.get("center_loss")
    if not size:
        raise InputError("--calibrate needs the clusters' sizes: a scores file written by 'dataselect score'")
    size = np.asarray(size, dtype=np.float64)
    proxy = np.asarray(proxy if proxy else np.ones(len(size)), dtype=np.float64)
    x, totals, name = calibration.auxiliaries(cluster, proxy, size)
    return {"g": calibration.calibrate(weight, x, totals), "auxiliary": name}


def input_kind(ds: ParquetDataset, k: int | None) -> str:
    """'embeddings' or 'scores', from the columns of INPUT."""
    names = ds.schema.names
    if "prob" in names:
        return "scores"
    if "score" in names and "embedding" not in names:
        return "scored"
    if k is not None or "embedding" in names:
        if "embedding" not in names:
            raise InputError("missing column 'embedding' (a one-step run with --k needs an embeddings file with "
                             "id, embedding)", ds.path)
        return "embeddings"
    raise InputError("is neither a scores file (id, cluster, mass, prob, or id, score) nor an embeddings file "
                     "(id, embedding)", ds.path)


#: The score designs, for messages.
SCORE_DESIGNS = "top, bottom, middle, threshold, softmax, linear, gumbel-topk, priority, reweight"


def check_design_input(design: Design, kind: str, ds: ParquetDataset, sizes: dict[str, Any]) -> None:
    """Refuse, before any work, a design that cannot draw from this kind of input, or sizes it does not take.

    ``kind`` is :func:`input_kind`'s; ``sizes`` maps --eps, --size, --rows, --fraction to their values.
    """
    names = ds.schema.names
    scored = design.scored or kind == "scored"
    method = (ds.metadata.get("summary") or {}).get("method") or ds.metadata.get("params", {}).get("method")
    if design.scored and kind != "scored" and "score" not in names:
        what = "an embeddings file (a one-step run scores by sensitivity)" if kind == "embeddings" else \
            "a sensitivity scores file (mass, prob)"
        raise InputError(f"--design {design.name} draws by a per-row score: INPUT is {what}, without a column "
                         "'score'; give the scores file of an influence method ('dataselect score --method …')",
                         ds.path)
    if kind == "scored" and "prob" in design.needs:
        raise InputError(f"--design {design.name} draws from a sensitivity scores file (column prob); INPUT holds "
                         f"scores of method {method or 'unknown'} (column score): use one of {SCORE_DESIGNS}, "
                         "or uniform", ds.path)
    column = design.params().get("stratify")
    if column is not None and column not in names:
        raise InputError(f"--stratify {column}: INPUT has no column {column!r} (its columns: {', '.join(names)})",
                         ds.path)
    given = [f"--{k}" for k, v in sizes.items() if v is not None]
    if design.size_from_data and given:
        raise InputError(f"--design {design.name} keeps every row beyond its cut-off, so the data set its size: "
                         f"drop {given[0]}", ds.path)
    if scored and sizes["eps"] is not None:
        raise InputError("--eps sets s from the sensitivity bound, which a selection by score does not have; give "
                         "--size N or --fraction F", ds.path)
    if scored and not design.size_from_data and not design.size_optional and not given:
        raise InputError(f"--design {design.name} on scores needs a size: --size N or --fraction F "
                         "(e.g. --fraction 0.5 keeps half the rows)", ds.path)


@dataclass
class Request:
    """What a ``sample`` run was asked: the options of :func:`sample_file`, with ``z``, ``design`` and
    ``method`` resolved; checked in three steps, all before any long work: :meth:`check` (the options
    alone), :meth:`check_input` (against the opened input) and :meth:`check_outputs` (every output
    location)."""

    input_path: str
    out: str
    eps: float | None
    size: int | None
    delta: float | None
    seed: int
    k: int | None
    losses: str | None
    losses_format: str | None
    z: int
    kmeans: KMeansOptions
    design: Design
    method: ScoreMethod
    keep_intermediate: str | None
    report_json: str | None
    report_md: str | None
    calibrate: bool
    probes: int
    centers_out: str | None
    rows: int | None
    fraction: float | None
    rounds: int | None
    oracle: Oracle | None
    regression: bool
    target: str | None
    data: str | None
    estimate: bool
    loss_max: float | None
    dedup: str | None
    intermediate_parts: bool = False

    @property
    def variant(self) -> str | None:
        """The option naming the paper's variant run (``--rounds``, ``--regression``), or None."""
        return "--rounds" if self.rounds is not None else "--regression" if self.regression else None

    def check(self) -> None:
        """Refuse options that do not go together, before the input is opened."""
        sample_size(self.eps, self.size, self.delta, self.rows, self.fraction)  # sized once n is known
        cluster_step.check(self.k, self.z, self.kmeans)
        _check_variants(self)
        if self.dedup is not None and self.variant:
            raise InputError(f"--dedup does not apply with {self.variant}; deduplicate first ('dataselect apply "
                             "DEDUP EMB -o kept.parquet') and sample the kept rows")
        if self.k is not None:
            self.method.check({"clusters", "embeddings"} | ({"losses"} if self.losses or self.oracle else set())
                              | ({"response"} if self.regression else set()))
        if self.loss_max is not None and not self.estimate:
            raise InputError("--loss-max bounds the losses of --estimate; add --estimate (or drop --loss-max)")
        if self.estimate:
            if self.rounds is not None:
                raise InputError("--estimate does not apply with --rounds yet; run 'dataselect estimate' on the "
                                 "selection")
            if self.oracle is None and self.losses is None:
                raise InputError("--estimate asks for the selected rows' losses: add --loss-command CMD (or --losses "
                                 "FILE holding them)")
            estimate_step.refuse_biased(self.design)
        check_losses_format(self.losses, self.losses_format)
        for option, given in (("--keep-intermediate", self.keep_intermediate), ("--centers", self.centers_out),
                              ("--probes", self.probes), ("--intermediate-parts", self.intermediate_parts)):
            if given and self.k is None:
                raise InputError(f"{option} applies to a one-step run (an embeddings file with --k)")
        if self.intermediate_parts:
            for option, given in (("--probes", self.probes), ("--dedup", self.dedup), (self.variant, self.variant),
                                  ("--proxy knn", self.method.params().get("proxy") == "knn")):
                if given:
                    raise InputError(f"{option} does not apply with --intermediate-parts (rows are drawn over all "
                                     "rows at once there); drop one of them")
        if self.probes < 0:
            raise InputError(f"--probes must be >= 0; got {self.probes}")
        if self.probes and not self.keep_intermediate and self.oracle is None:
            raise InputError("--probes marks probe rows in the kept clusters file; add --keep-intermediate DIR (or "
                             "--loss-command CMD, which is asked for their losses)")

    def params(self, scale: Scale) -> dict[str, Any]:
        """The parameters the selection records (and ``--resume`` compares). An option added after selections
        were first written is recorded only when given, so that those selections stay up to date."""
        prm = {"eps": self.eps, "size": self.size, "delta": self.delta, "seed": self.seed, "k": self.k,
               **self.method.params(), "block_rows": scale.block_rows, "design": self.design.name,
               **self.design.params()}
        later = (("calibrate", self.calibrate or None), ("rows", self.rows), ("fraction", self.fraction),
                 ("rounds", self.rounds), ("regression", self.regression or None), ("target", self.target),
                 ("data", self.data))
        prm.update({key: value for key, value in later if value is not None})
        if self.oracle is not None:
            prm.update(self.oracle.params())
        if self.estimate:
            prm.update({"estimate": True, "loss_max": self.loss_max})
        if self.dedup is not None:
            prm["dedup"] = True
        if self.losses_format is not None:
            prm["losses_format"] = self.losses_format
        if self.k is not None:
            prm.update({"z": self.z, **cluster_step.params(self.k, self.z, self.probes, self.kmeans, scale),
                        "method": self.method.name})
            if not self.probes:
                del prm["probes"]
        return prm

    def check_input(self, ds: ParquetDataset, kind: str) -> tuple[np.ndarray | None, int, float | None]:
        """Refuse what the opened input cannot take; return (the rows --dedup kept or None, s, the ε it
        guarantees or None)."""
        if self.oracle is not None and kind != "embeddings" and not self.estimate:
            raise InputError("--loss-command on a scores file can only be asked for the selected rows' losses; add "
                             "--estimate (or give an embeddings file with --k)", ds.path)
        check_design_input(self.design, kind, ds, {"eps": self.eps, "size": self.size, "rows": self.rows,
                                                   "fraction": self.fraction})
        if kind == "scored" and self.calibrate:
            raise InputError("--calibrate calibrates to the clusters' sizes; a scores file of an influence method "
                             "has no clusters", ds.path)
        if kind != "embeddings" and self.variant:
            raise InputError(f"{self.variant} runs in one step on an embeddings file (id, embedding) with --k; INPUT "
                             "is a scores file", ds.path)
        if kind == "embeddings" and self.k is None and not (self.regression and self.design.name == "leverage"):
            raise InputError("is an embeddings file; pass --k to cluster, score and sample in one step "
                             "(or give a scores file)", self.input_path)
        kept = _kept(self.dedup, ds, kind)
        s, eps_b = sample_size(self.eps, self.size, self.delta, self.rows, self.fraction,
                               ds.n if kept is None else len(kept))
        if self.design.size_from_data:
            s, eps_b = 0, None
        elif self.design.size_optional and self.size is None and self.rows is None and self.fraction is None:
            s, eps_b = ds.n, None  # every row (reweight: every row weighted)
        adaptive.check_rounds(self.rounds, self.k, ds.n, ds.path)
        return kept, s, eps_b

    def check_outputs(self, ds: ParquetDataset) -> PendingFingerprints:
        """Refuse an output location that cannot be written or is an input; return the inputs' fingerprints
        (the input's being hashed in the background)."""
        oracle_inputs = self.oracle.inputs() if self.oracle else {}
        read = [*ds.files, self.losses, self.data, self.dedup, *oracle_inputs.values()]
        for o, option in ((self.out, "-o"), (self.report_json, "--report"), (self.report_md, "--report-md"),
                          (self.centers_out, "--centers")):
            if o:
                outputs.check_output_path(o, read, option)
        if self.keep_intermediate:
            outputs.check_output_dir(self.keep_intermediate, read, "--keep-intermediate")
            if os.path.isdir(self.keep_intermediate):
                cpath, kpath, spath = _kept_paths(self.keep_intermediate, self.intermediate_parts)
                outputs.check_output_path(kpath, read, "--keep-intermediate")
                for path in (cpath, spath):
                    (parts.check_output if self.intermediate_parts else outputs.check_output_path)(path, read,
                                                                                              "--keep-intermediate")
        # the input, the big file, is hashed while the run reads its rows; the others now
        return PendingFingerprints({"input": ds, "losses": self.losses, "data": self.data,
                                    "dedup": self.dedup, **oracle_inputs}, later=("input",))


def sample_file(input_path: str, out: str, *, eps: float | None = None, size: int | None = None,
                delta: float | None = None, seed: int = options.SEED, k: int | None = None,
                losses: str | None = None, losses_format: str | None = None, lam: float | None = None,
                estimate_lambda: bool = False,
                z: int | None = None, kmeans: KMeansOptions = KMeansOptions(), design: Design | None = None,
                method: ScoreMethod | None = None, keep_intermediate: str | None = None,
                report_json: str | None = None, report_md: str | None = None, note: Note = quiet,
                scale: Scale | None = None, calibrate: bool = False, probes: int = 0,
                centers_out: str | None = None, rows: int | None = None,
                fraction: float | None = None, rounds: int | None = None, oracle: Oracle | None = None,
                regression: bool = False, target: str | None = None, data: str | None = None,
                estimate: bool = False, loss_max: float | None = None,
                dedup: str | None = None, intermediate_parts: bool = False) -> dict[str, Any]:
    """``dataselect sample``: from a scores file, or in one step from embeddings with ``k``.

    The size is ``eps``, ``size``, ``rows`` or ``fraction`` (s = round(F·n)). A scores file of an
    influence method (``id``, ``score``) is drawn by a score design (``top``, ``softmax``, …, or
    ``uniform``), which needs ``size``, ``rows`` or ``fraction`` (``threshold``: none).

    ``design`` (default ``iid``) draws the selection; in one step, ``method`` (default
    ``sensitivity`` with ``lam`` and ``estimate_lambda``) scores the rows, ``centers_out`` receives
    the centers file that ``cluster`` would write (whose ``center_id`` rows need losses) and
    ``probes`` marks that many probe rows per cluster in the kept clusters file
    (``keep_intermediate``), as ``cluster --probes`` does. Returns the report (also embedded in
    SELECTED's metadata and written to the report files).

    ``rounds`` runs the adaptive variant (:mod:`.adaptive`): ``k`` rows of the D^z order queried per
    round from ``oracle`` (default: a :class:`~dataselect_cli.oracle.TableOracle` over ``losses``).
    ``regression`` runs Algorithm 2 (:mod:`.regression`) on the ``target`` column of INPUT or of
    ``data``. Both draw with ``iid`` unless ``design`` is given; ``z`` defaults to 1 with
    ``regression`` (Algorithm 2's unsquared distance), else to 2.

    ``oracle`` (e.g. a :class:`~dataselect_cli.losscmd.CommandOracle`, ``--loss-command``) replaces
    ``losses`` in one step: it is asked for the k center rows, then for the ``probes`` chosen in the
    run. With ``estimate`` the oracle (or ``losses``, which must then hold them) is asked for the
    selected rows' losses, and the report gains the estimate of ``dataselect estimate``
    (``estimate``, with ``loss_max`` as there); the oracle's queries are the report's ``oracle``.

    ``dedup`` (a table written by ``dataselect dedup`` from INPUT's rows) restricts the population to
    the rows it kept: the selection is drawn from them alone, so its weights estimate the kept rows'
    total loss, not the full data's (a one-step run clusters the kept rows; a scores file of an
    influence method is drawn from its kept rows; a sensitivity scores file, whose ``prob`` is
    normalised over all rows, is refused).

    ``intermediate_parts`` keeps nothing per row here in a one-step run: the clusters and scores go to part
    files written by the tasks that compute them (:mod:`dataselect_cli.parts`; ``keep_intermediate``/clusters/
    and /scores/, or a scratch folder beside ``out`` removed after the run) and the design reads the scores
    from there. The selection is the same.
    """
    scale = replace(scale or Scale(), output=out)  # a streamed one-step run spills beside out (common.spill)
    design = design or designs.get(default_design(rounds, regression))
    req = Request(input_path, out, eps=eps, size=size, delta=delta, seed=seed, k=k, losses=losses,
                  losses_format=losses_format, z=z if z is not None else (1 if regression else options.Z),
                  kmeans=kmeans, design=design,
                  method=method or methods.get(None, lam=lam, estimate_lambda=estimate_lambda),
                  keep_intermediate=keep_intermediate, report_json=report_json, report_md=report_md,
                  calibrate=calibrate, probes=probes, centers_out=centers_out, rows=rows, fraction=fraction,
                  rounds=rounds, oracle=oracle, regression=regression, target=target, data=data, estimate=estimate,
                  loss_max=loss_max, dedup=dedup, intermediate_parts=intermediate_parts)
    req.check()
    prm = req.params(scale)
    ds = dataset.open_input(input_path, "input")  # opened once: the kind of input, its fingerprints, its rows
    kind = input_kind(ds, k)
    kept, s, eps_b = req.check_input(ds, kind)
    inputs = req.check_outputs(ds)
    asked = oracle
    if estimate and oracle is None:  # --losses must then hold the selected rows: read and checked now
        asked = TableOracle(losses, losses_format)
    if (done := skip([out], "sample", prm, inputs, seed, note)) is not None:
        _write_reports(unskipped(done), report_json, report_md)
        return done
    reg = None
    if kind == "embeddings" and rounds is not None:
        report = _adaptive(req, ds, inputs, prm, s, eps_b, note, scale)
        _write_reports(report, report_json, report_md)
        return report
    with _scratch(out if intermediate_parts and not keep_intermediate else None) as scratch:
        if kind == "embeddings":
            if regression:
                scores, ssum, reg = _regression(req, ds, inputs, note, scale)
            elif intermediate_parts:
                scores, ssum = _one_step_parts(req, ds, inputs, keep_intermediate or scratch, note, scale)
            else:
                scores, ssum = _one_step(ds, inputs, (losses, losses_format), k, req.z, kmeans, req.method, seed,
                                         keep_intermediate, note, scale, probes, centers_out, oracle=oracle,
                                         kept=kept)
        else:
            if k is not None:
                note("note: --k is ignored for a scores file (it is already clustered)")
            scores, ssum = _scores_source(ds, kind, design, kept)
        selected, report = run_sample(scores, ssum, s=s, eps=eps_b, delta=delta, seed=seed, design=design,
                                      scale=scale, path=ds.path, calibrate=calibrate, rows=rows is not None)
    if reg is not None:
        report["regression"] = reg
    if kind == "scored" and ssum.get("method") == "dsir":  # DSIR's data metric, from the corpus the scores name
        kl = dsir_step.kl_for_selection(ds.files[0], ds.metadata.get("params") or {}, selected.column("id"), note,
                                        scale.progress)
        if kl is not None:
            report["kl_reduction"] = kl
    report["params"] = prm
    if estimate:
        loss = asked.query(selected.column("id").combine_chunks(), "selected")
        report["estimate"] = estimate_step.estimate_selection(selected, report, loss, loss_max=loss_max)
    if oracle is not None:
        report["oracle"] = oracle.summary()
    if kept is not None:
        report["dedup"] = {"kept": len(kept), "rows": ds.n, "population": "the rows dedup kept: the weights estimate "
                           "their total loss, not the full data's"}
        note(f"--dedup: drawn from the {len(kept)} of {ds.n} rows dedup kept; the weights estimate the kept rows' loss")
    io.write_table(selected, out, io.make_meta("sample", prm, inputs, report, seed))
    _write_reports(report, report_json, report_md)
    return report


def _scores_source(ds: ParquetDataset, kind: str, design: Design, kept: np.ndarray | None):
    """A scores file as the design reads it: (block source, or the ``kept`` rows in memory; score summary)."""
    ds.require(["id", *design.needs], "scores")
    if kind == "scored":  # a scores file of an influence method: its summary has method, direction, …
        ssum = {"n": ds.n, **(ds.metadata.get("summary") or {})}
    else:
        ssum = ds.metadata.get("summary") or _summary_from_scores(ds.read_column("cluster").to_numpy())
    columns = read_columns(design, ds.schema.names)
    if kept is None:
        return TableSource(ds, columns), ssum
    ssum["n"] = len(kept)  # the kept rows of a per-row scores file, in memory (a few columns)
    return ds.read(columns).take(pa.array(kept)), ssum


def default_design(rounds: int | None, regression: bool) -> str | None:
    """The design drawn when ``--design`` is not given: the paper's ``iid`` for its adaptive and regression
    variants (their bounds are for i.i.d. draws), else the registry's default (None)."""
    return "iid" if rounds is not None or regression else None


def _check_variants(req: Request) -> None:
    """Refuse, before any work, the options --rounds and --regression do not take."""
    regression_step.check_options(req.regression, req.target, req.data, req.k, req.design.name)
    adaptive.check_rounds(req.rounds, req.k)
    if req.rounds is not None and req.regression:
        raise InputError("give --rounds or --regression, not both (the adaptive rounds query losses; the regression "
                         "variant reads --target)")
    if req.losses and req.oracle is not None:
        raise InputError("give --losses FILE or --loss-command CMD, not both")
    variant = req.variant
    if variant is None:
        return
    if req.regression and (req.losses or req.oracle is not None):
        raise InputError("--losses and --loss-command do not apply with --regression: the center losses are the "
                         "squared residuals of --target at the center rows")
    if req.method.name != "sensitivity":
        raise InputError(f"{variant} scores by sensitivity (the paper's Algorithms 2 and 3); drop --method "
                         f"{req.method.name}")
    if getattr(req.method, "estimate_lambda", False):
        raise InputError(f"--estimate-lambda needs probe rows, which {variant} does not query; give --lambda or "
                         "leave the default")
    others = [(req.calibrate, "--calibrate"), (req.rows, "--rows")] if req.rounds is not None else []
    for value, option in ((req.probes, "--probes"), (req.keep_intermediate, "--keep-intermediate"), *others):
        if value:
            raise InputError(f"{option} does not apply with {variant}" +
                             ("; --centers FILE writes the queried rows in order" if req.rounds is not None else ""))


def _adaptive(req: Request, ds: ParquetDataset, inputs: dict, prm: dict, s: int, eps: float | None, note: Note,
              scale: Scale) -> dict[str, Any]:
    """``--rounds``: run the rounds, write the last round's selection (and the order as --centers); the report."""
    pending: list[str] = []  # notes wait until the run has succeeded: a failed run prints one line, the error
    ids, src, ds = embeddings_source(ds, scale, pending.append)
    oracle = req.oracle or (TableOracle(req.losses, req.losses_format) if req.losses else None)

    def draw(scores: pa.Table, ssum: dict[str, Any], round_seed: int) -> tuple[pa.Table, dict[str, Any]]:
        return run_sample(scores, ssum, s=s, eps=eps, delta=req.delta, seed=round_seed, design=req.design,
                          scale=scale, path=ds.path)

    selected, report, centers = adaptive.run_rounds(ids, src, req.k, req.rounds, oracle=oracle, method=req.method,
                                                    draw=draw, seed=req.seed, z=req.z, d=src.d, scale=scale,
                                                    note=pending.append, centers=req.centers_out is not None)
    for msg in pending:
        note(msg)
    report["params"] = prm
    meta = io.make_meta("sample", prm, inputs, report, req.seed)
    if centers is not None:
        io.write_table(centers, req.centers_out, meta)
    io.write_table(selected, req.out, meta)
    return report


def _regression(req: Request, ds: ParquetDataset, inputs: dict, note: Note, scale: Scale
                ) -> tuple[pa.Table, dict[str, Any], dict[str, Any]]:
    """``--regression``: (scores, score summary, the report's regression entry), by Algorithm 2 or leverage."""
    ids = io.read_ids(ds, ds.path)
    target = regression_step.read_target(ds.path, req.target, ids, req.data)
    if req.design.name == "leverage":
        pending: list[str] = []
        _, src, _ = embeddings_source(ds, scale, pending.append)
        scores, ssum = regression_step.leverage_scores(ids, src, scale.block_rows)
        for msg in pending:
            note(msg)
        return scores, ssum, regression_step.report_part(scores, target, None)
    scores, ssum = _one_step(ds, inputs, (None, None), req.k, req.z, req.kmeans, req.method, req.seed, None, note,
                             scale, centers_out=req.centers_out, target=target)
    return scores, ssum, regression_step.report_part(scores, target, ssum.pop("regression"))


def _kept(dedup: str | None, ds: ParquetDataset, kind: str) -> np.ndarray | None:
    """``--dedup``: the rows of INPUT the dedup table kept (None without it), checked before any long work."""
    if dedup is None:
        return None
    if kind == "scores":
        raise InputError("--dedup restricts the population to the rows dedup kept, but this sensitivity scores file's "
                         "prob is normalised over all its rows; sample the embeddings in one step (--k) with --dedup",
                         ds.path)
    fps = input_fingerprints({"embeddings": ds}) if kind == "embeddings" else None
    kept = dedup_step.kept_rows(dedup, io.read_ids(ds, ds.path), fps)
    if not len(kept):
        raise InputError("keeps no row (column 'keep' is false everywhere); nothing to sample from", dedup)
    return kept


def _one_step(ds: ParquetDataset, inputs: dict, losses_in: tuple[str | None, str | None], k: int, z: int,
              kmeans: KMeansOptions, method: ScoreMethod, seed: int, keep_intermediate: str | None, note: Note,
              scale: Scale, probes: int = 0, centers_out: str | None = None,
              target: regression_step.Target | None = None, oracle: Oracle | None = None,
              kept: np.ndarray | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Cluster and score an embeddings file (only its rows ``kept``, when given); return (scores table, score
    summary). ``losses_in`` is (path or None, --losses-format or None); ``oracle``, when given, is asked for
    the centers' and the probes' losses once the clustering is made
    (:func:`dataselect_cli.steps.score.query_losses`); with ``target`` (``--regression``) the center losses
    are the squared residuals of Algorithm 2 instead, and the summary carries them under ``regression``."""
    losses, losses_format = losses_in
    # check everything cheap before the expensive clustering, and hold its warnings back until
    # scoring has succeeded, so that a bad --losses file still gives one line and no output
    loss_table = dataset.read_losses(losses, losses_format) if losses else None
    pending: list[str] = []
    ids, src, ds = embeddings_source(ds, scale, pending.append)
    if kept is not None:
        ids = ids.take(pa.array(kept))
        src = ArraySource(src.x[kept]) if isinstance(src, ArraySource) else RowsSource(src, kept)
    cl, clusters_t, centers_t, csum = cluster_step.run_cluster(ids, src, k, z=z, seed=seed, kmeans=kmeans,
                                                               probes=probes, note=pending.append, path=ds.path,
                                                               scale=scale)
    fit = None
    if target is not None:
        loss_table, fit = regression_step.center_losses(ids, src, cl, target, scale.block_rows)
        losses = target.label
    del src
    pending.append(report_mod.training_line(csum, csum["n"]))
    c = score_step.from_clustering(ids, cl, z, csum["d"])
    losses_path = losses
    if oracle is not None:
        probe = clusters_t.column("probe").to_numpy(zero_copy_only=False) if probes else None
        loss_table, losses_path = score_step.query_losses(oracle, c, probe), oracle.label
    vectors = ds.path if getattr(method, "proxy", None) in ("knn", "auto") else None  # read only for these proxies
    scores, ssum = score_step.run_score(method, Inputs(c, loss_table, losses_path, embeddings=vectors,
                                                       response=target and target.column),
                                        note=pending.append, scale=scale)
    if fit is not None:
        ssum["regression"] = fit
    for msg in pending:
        note(msg)
    ssum["clustering"] = {key: csum[key] for key in cluster_step.CLUSTERING_KEYS}
    cparams = cluster_step.params(k, z, probes, kmeans, scale)
    if keep_intermediate:
        sparams = {**score_step.params(method, scale, losses_format), **(oracle.params() if oracle else {})}
        kept = {"losses": losses, **(oracle.inputs() if oracle else {})}
        _keep(keep_intermediate, ds, inputs, kept, clusters_t, centers_t, scores, csum,
              {**ssum, "oracle": oracle.summary()} if oracle else ssum, seed, cparams, sparams)
    if centers_out:
        io.write_table(centers_t, centers_out, _cluster_meta(inputs, cparams, csum, seed))
    return scores, ssum


@contextmanager
def _scratch(near: str | None) -> Iterator[str | None]:
    """A scratch folder beside ``near`` for a run's part files, removed when the block ends (None: no folder).
    Named as ``near``'s temp files, so the sweep of a later run removes the folder of a killed one."""
    if near is None:
        yield None
        return
    real = os.path.realpath(near)
    outputs.sweep_stale_temps(real)
    folder = tempfile.mkdtemp(prefix=f".{os.path.basename(real)}.{os.getpid()}.", suffix=".tmp",
                              dir=os.path.dirname(real))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _one_step_parts(req: Request, ds: ParquetDataset, inputs: dict, folder: str, note: Note, scale: Scale
                    ) -> tuple[TableSource, dict[str, Any]]:
    """The one-step run of ``--intermediate-parts``: cluster and score as those steps do with a directory
    output, the tasks writing the rows into ``folder`` (``--keep-intermediate`` DIR: kept as DIR/clusters/,
    DIR/clusters.centers.parquet and DIR/scores/; else a scratch folder), nothing per row held here; return
    (a block source of the scores for the design, the score summary)."""
    keep = folder == req.keep_intermediate
    loss_table = dataset.read_losses(req.losses, req.losses_format) if req.losses else None
    pending: list[str] = []
    if keep:
        outputs.make_dir(folder)
    cpath, kpath, spath = _kept_paths(folder, True)
    cfolder = parts.begin(cpath) if keep else _mkdir(cpath)
    _, src, ds = embeddings_source(ds, scale, pending.append, spill=os.path.join(cfolder, ".ids"))
    cparams = cluster_step.params(req.k, req.z, 0, req.kmeans, scale)
    sink = parts.Sink(cfolder, _cluster_meta(inputs, cparams, None, req.seed), ds)
    cl, _, centers_t, csum = cluster_step.run_cluster(None, src, req.k, z=req.z, seed=req.seed, kmeans=req.kmeans,
                                                      note=pending.append, path=ds.path, scale=scale, sink=sink, ds=ds)
    del src
    pending.append(report_mod.training_line(csum, csum["n"]))
    cmeta = _cluster_meta(inputs, cparams, csum, req.seed)
    parts.finish(cfolder, cpath if keep else None, cmeta, cl.parts)
    cds = ParquetDataset(cfolder, "clusters")
    c, probe = score_step.scan(cds, centers_t, cmeta, loss_table[0] if loss_table else None, None)
    oracle, losses_path = req.oracle, req.losses
    if oracle is not None:
        loss_table, losses_path = score_step.query_losses(oracle, c, probe), oracle.label
    sparams = {**score_step.params(req.method, scale, req.losses_format), **(oracle.params() if oracle else {})}
    sinputs: dict = {}
    if keep:
        io.write_table(centers_t, kpath, cmeta)
        sinputs = input_fingerprints({"clusters": cpath, "centers": kpath, "losses": req.losses,
                                      **(oracle.inputs() if oracle else {})})
    sfolder = parts.begin(spath) if keep else _mkdir(spath)
    _, ssum = score_step.run_score(req.method, Inputs(c, loss_table, losses_path), note=pending.append, scale=scale,
                                   source=TableSource(cds, list(req.method.source_columns), arrow=()),
                                   sink=parts.Sink(sfolder, io.make_meta("score", sparams, sinputs, None), cds))
    entries = ssum.pop("parts")
    for msg in pending:
        note(msg)
    ssum["clustering"] = {key: csum[key] for key in cluster_step.CLUSTERING_KEYS}
    parts.finish(sfolder, spath if keep else None,
                 io.make_meta("score", sparams, sinputs, {**ssum, "oracle": oracle.summary()} if oracle else ssum),
                 entries)
    if req.centers_out:
        io.write_table(centers_t, req.centers_out, cmeta)
    sds = ParquetDataset(sfolder, "scores")
    return TableSource(sds, read_columns(req.design, sds.schema.names)), ssum


def _mkdir(path: str) -> str:
    os.mkdir(path)
    return path


def _write_reports(report: dict[str, Any], report_json: str | None, report_md: str | None) -> None:
    if report_json:
        io.write_text(report_mod.to_json(report), report_json)
    if report_md:
        io.write_text(report_mod.to_markdown(report), report_md)


def _summary_from_scores(labels: np.ndarray) -> dict[str, Any]:
    """A minimal summary for a scores file this tool did not write (from its cluster column)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    return {"n": len(labels), "k": k, "z": None, "d": None, "phi_z": None, "lambda_phi": None,
            "lambda_mode": "unknown (scores file has no dataselect metadata)", "lambda": None,
            "loss_mode": "unknown", "holder": {"probes": 0, "violated": False},
            "clusters": {"size": np.bincount(labels, minlength=k).tolist()}}


def _cluster_meta(sample_inputs: dict[str, dict], cparams: dict, csum: dict, seed: int) -> dict[str, Any]:
    """The metadata 'dataselect cluster' would have written: the sample's input, under cluster's role."""
    emb_fps = {"embeddings" + role[len("input"):]: fp for role, fp in sample_inputs.items() if role.startswith("input")}
    return io.make_meta("cluster", cparams, emb_fps, csum, seed)


def _kept_paths(folder: str, in_parts: bool = False) -> tuple[str, str, str]:
    """The clusters, centers and scores files that ``--keep-intermediate`` writes into ``folder`` (with
    ``in_parts``, the clusters and scores directories of ``--intermediate-parts``)."""
    names = ("clusters", "clusters.centers.parquet", "scores") if in_parts else \
        ("clusters.parquet", "clusters.centers.parquet", "scores.parquet")
    return tuple(os.path.join(folder, f) for f in names)


def _keep(folder: str, emb: ParquetDataset, sample_inputs: dict[str, dict], losses: dict[str, str | None],
          clusters_t, centers_t, scores, csum, ssum, seed, cparams, sparams) -> None:
    """``--keep-intermediate``: the clusters, centers and scores files of a one-step run; ``losses`` are the
    scores' inputs besides the clusters (``--losses``, or the files of ``--loss-command``), by role."""
    outputs.make_dir(folder)
    cpath, kpath, spath = _kept_paths(folder)
    cmeta = _cluster_meta(sample_inputs, cparams, csum, seed)
    io.write_table(centers_t, kpath, cmeta)
    io.write_table(clusters_t, cpath, cmeta)
    inputs = input_fingerprints({"clusters": cpath, "centers": kpath, **losses})
    io.write_table(scores, spath, io.make_meta("score", sparams, inputs, ssum))
