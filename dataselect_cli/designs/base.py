"""What every sampling design is: its parameters, its draw on the block grid, its weights, its estimator.

A design is drawn in two passes over the block grid (:mod:`dataselect_cli.grid`), on any engine:

1. ``check_block(b, cols, size, n)`` on every block gives per-block statistics (its Σ mass, …);
2. ``plan(stats, size, seed)`` is the one global step, on those statistics alone;
3. ``select_block(b, cols, plan)`` on every block gives the block's selected rows.

:func:`draw` runs the passes on an engine; :meth:`Design.draw_arrays` runs the very same passes on
arrays held in memory (what ``evaluate`` and the statistical tests use), so there is one draw.

Estimation dispatches on the design too, as in R's ``survey`` package: ``estimate`` gives the
total and its design-based variance estimate, ``intervals`` the intervals it can justify, each
saying how sure it is and what it assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, ClassVar

import numpy as np
import pyarrow as pa

from .. import grid
from ..engine import into_first, map_pass
from ..errors import InputError
from ..progress import Progress, silent


@dataclass
class Drawn:
    """The rows a design selected, in increasing row order.

    Attributes
    ----------
    index : ndarray of shape (m,), int64
        Distinct selected rows (global positions 0..n−1).
    count : ndarray of shape (m,), int32
        Times each row was drawn (1 for designs without replacement).
    prob : ndarray of shape (m,), float64
        The row's selection probability as the design defines it (p for i.i.d. draws).
    weight : ndarray of shape (m,), float64
        Σ weight·ℓ over the selection estimates Σ ℓ over all rows.
    columns : dict
        Other columns of the selected rows gathered in the same pass (``id``, ``cluster``).
    stats : dict
        What the plan knew of the whole population (``min_prob``, …), for the report.
    """

    index: np.ndarray
    count: np.ndarray
    prob: np.ndarray
    weight: np.ndarray
    columns: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def draws(self) -> int:
        return int(self.count.sum())


@dataclass
class Estimate:
    """A design-based estimate of the total loss Σ ℓ over n rows, and its variance estimate.

    ``var`` is None when the sample cannot estimate it (one draw); ``df`` are the degrees of
    freedom of a t interval built on it.
    """

    total: float
    var: float | None
    n: int
    df: int

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def std_error_mean(self) -> float | None:
        return None if self.var is None else math.sqrt(max(self.var, 0.0)) / self.n


@dataclass
class Interval:
    """An interval for the mean loss: ``key`` names it in reports (``clt_interval``, …), ``kind`` in words.

    ``confidence`` is the probability it states (None: none can be stated); ``extra`` holds the
    assumptions and numbers behind it.
    """

    key: str
    kind: str
    low: float
    high: float
    confidence: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high, "confidence": self.confidence, **self.extra}


#: What the t interval assumes, in words (its coverage over seeds is measured in docs/designs/README.md).
T_CAVEAT = "asymptotic: it cannot see a large loss that no selected row has (coverage over seeds: docs/designs)"


#: Why the bootstrap-t interval states no probability (docs/intervals.md).
BOOTSTRAP_CAVEAT = ("not guaranteed, it covered as little as 89 % of runs at a nominal 95 % on docs/designs' "
                    "heavy-tailed set (90.5 % on digits); the CLT line is the interval that keeps its level there")


class Plan:
    """What a design's global step decided: attributes for ``select_block``, and ``stats`` of the whole
    population for the report (``min_prob``: the smallest positive selection probability)."""

    def __init__(self, stats: dict[str, Any] | None = None, **fields: Any):
        self.stats = stats or {}
        self.__dict__.update(fields)


#: Columns a design reads but a selection does not carry (the selection has its own ``prob``).
NOT_CARRIED = ("mass", "prob")


def gather(cols: dict, rows: np.ndarray, **extra: np.ndarray) -> dict[str, Any]:
    """The columns a selection carries of a block's rows ``rows`` (``id`` and every column read but
    ``mass`` and ``prob``: ``cluster``, ``score``, a stratum column), plus ``extra``."""
    out = {c: (v.take(pa.array(rows)) if isinstance(v, pa.Array) else np.asarray(v)[rows])
           for c, v in cols.items() if c not in NOT_CARRIED}
    return {**out, **extra}


def keep_smallest(index: np.ndarray, key: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` smallest keys (ties by row), in row order: the ``finish`` of order sampling."""
    return np.sort(np.lexsort((index, key))[:size])


class Design:
    """Base class of the sampling designs; a subclass is one module of :mod:`dataselect_cli.designs`.

    Class attributes
    ----------------
    name : str
        The ``--design`` choice.
    summary : str
        One line for ``--help``.
    needs : tuple of str
        Columns of a scores table the design reads (``id`` is always read).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ("cluster", "mass", "prob")
    #: Columns read when the scores file has them (``uniform`` carries ``cluster`` when there is one).
    optional: ClassVar[tuple[str, ...]] = ()
    #: A row can be drawn more than once (``--rows`` then draws until it has that many distinct rows).
    with_replacement: ClassVar[bool] = False
    #: The number of rows is random (``poisson``): ``--rows`` is then its expected number.
    random_size: ClassVar[bool] = False
    #: Σ weight·ℓ estimates Σ ℓ (without bias, or nearly so for order sampling, measured in the tests).
    #: False for the selections made by score alone (``top``, …): ``estimate`` refuses them.
    unbiased: ClassVar[bool] = True
    #: The design draws from a per-row ``score`` (a scores file of an influence method, :mod:`._scored`).
    scored: ClassVar[bool] = False
    #: ``--stratify COL`` may wrap the design (:mod:`._stratify`): it is then drawn within each stratum.
    stratifiable: ClassVar[bool] = False
    #: The data set the size (``threshold``): ``--size``, ``--fraction`` and ``--rows`` do not apply.
    size_from_data: ClassVar[bool] = False
    #: Without a size the design keeps every row (``reweight``: every row weighted); a size is optional.
    size_optional: ClassVar[bool] = False
    #: The variance estimator centres the loss within each cluster (``stratified``): a GREG fit on the clusters
    #: then uses no degree of freedom of its own (:func:`dataselect_cli.calibration.model_assisted`).
    strata_are_clusters: ClassVar[bool] = False
    #: Why Σ weight·ℓ is no estimate of the full loss, for the refusal of ``estimate`` (designs not ``unbiased``).
    biased_because: ClassVar[str] = "its rows were chosen by score"

    def for_rows(self) -> "Design":
        """The design to draw when the size counts distinct rows (``--rows``): this one; ``auto`` leaves
        out the candidates that repeat rows or have a random size, so it compares designs at equal rows."""
        return self

    def params(self) -> dict[str, Any]:
        """The design's parameters, as recorded in the selection's metadata."""
        return {}

    def bind(self, score_summary: dict[str, Any]) -> None:
        """Learn what the scores' summary says before the draw (``auto`` reads the queried losses)."""

    def resolved(self) -> "Design":
        """The design that actually drew the rows (``auto`` delegates to the one it chose)."""
        return self

    # ---- drawing (pure functions of blocks; any engine)
    def check_block(self, b: int, cols: dict, size: int, n: int) -> Any:
        """Pass 1: what the global step needs of block ``b`` (its Σ mass, …); ``size`` is s, ``n`` all rows."""
        raise NotImplementedError

    def compact(self, stats: list, size: int) -> list:
        """Pass 1's statistics of consecutive blocks (the first may be an earlier compaction's result) as a
        list of the same length that :meth:`plan` turns into the same plan, for any s up to ``size``, with
        what a plan cannot use dropped or folded into the last entry.

        :func:`draw` applies it as the blocks arrive, so that statistics of O(s) or O(k) numbers a block
        (the s largest probabilities, per-cluster sums) are held once, not once a block. The default:
        unchanged (statistics of a few numbers a block).
        """
        return stats

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        raise NotImplementedError

    def select_block(self, b: int, cols: dict, plan: Any, block_rows: int) -> tuple | None:
        """(global rows, counts, probs, {column: values}) of block ``b``'s selected rows, or None."""
        raise NotImplementedError

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray | None:
        """Positions of the rows offered so far (by ``select_block``, of any blocks) that :meth:`finish` could
        still keep whatever the other blocks offer, or None for all (the default: no cut).

        A cut leaves :meth:`finish`'s result unchanged, so :func:`draw` applies it as the blocks' offers
        arrive and holds O(s) offered rows, not O(s) per block. It reads ``columns`` without changing them.
        """
        return None

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray | None:
        """Which of the rows ``select_block`` offered to keep (positions into them), or None for all.

        Fixed-size designs without replacement offer each block's best candidates and keep the
        best overall here (the one step after pass 2 that sees every block's offer).
        """
        return None

    def final_prob(self, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        """The ``prob`` of the kept rows once :meth:`finish` has seen every block's offer (priority sampling's
        threshold τ is the (s+1)-th key overall); by default the one ``select_block`` offered."""
        return prob

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        raise NotImplementedError

    def final_weights(self, count: np.ndarray, prob: np.ndarray, size: int, columns: dict[str, Any]) -> np.ndarray:
        """The selected rows' weights: :meth:`weights` of their counts and probabilities, unless a design
        carries a per-row weight of its own in ``columns`` (``reweight``: its w, popped here)."""
        return self.weights(count, prob, size)

    def draw_arrays(self, mass: np.ndarray, size: int, seed: int, block_rows: int = grid.BLOCK_ROWS,
                    cluster: np.ndarray | None = None, columns: dict[str, Any] | None = None) -> Drawn:
        """Draw from a mass held in memory through the same passes as :func:`draw` (on this process).

        Parameters
        ----------
        mass : ndarray of shape (n,), float64, >= 0, with a positive sum
        size : int
        seed : int
        block_rows : int
            The block grid; the draw depends on it, not on how rows are stored.
        cluster : ndarray of shape (n,), int, or None
            Each row's cluster (the strata of a stratified design); default: one cluster.
        columns : dict or None
            More columns (``score``, a stratum column); ``score`` defaults to ``mass``.
        """
        from ..dataset import MemorySource
        from ..engine import LocalEngine

        total = grid.total(grid.block_sums(mass, block_rows))
        cluster = np.zeros(len(mass), dtype=np.int32) if cluster is None else np.asarray(cluster, dtype=np.int32)
        cols = {"mass": mass, "prob": mass / total, "cluster": cluster,
                "id": pa.array(np.arange(len(mass), dtype=np.int64)), "score": mass, **(columns or {})}
        return draw(self, MemorySource(cols), size, seed, LocalEngine(), block_rows)

    # ---- estimation
    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        """Σ ℓ over all n rows and its variance estimate, from the selected rows' losses.

        ``sel`` holds the selection's columns ``count``, ``prob`` and ``weight``.
        """
        raise NotImplementedError

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray] | None:
        """The estimate as Σ_g mean(y_g): each group's unit values, for the bootstrap (None: no bootstrap)."""
        return None

    def intervals(self, est: Estimate, loss: np.ndarray, sel: dict[str, np.ndarray], report: dict[str, Any],
                  delta: float, loss_max: float | None) -> list[Interval]:
        """The intervals this design states for the mean loss, each with its probability; by default the
        skew-corrected t interval on the design's variance estimate (asymptotic, and said so). The bootstrap-t,
        which states none, is :meth:`bootstrap`, computed only when asked for."""
        if est.var is None:
            return []
        return [self.t_interval(est, self.units(loss, sel), delta)]

    def t_interval(self, est: Estimate, groups: list[np.ndarray] | None, delta: float, key: str = "clt_interval",
                   of: str = "") -> Interval:
        """The t interval on the design's variance estimate, corrected to second order for the skew of the
        ``groups`` of units (:mod:`dataselect_cli.skewt`: Hall's transformation, Satterthwaite's df); the
        plain t interval where the design has no units. ``of`` names what the units are of (the residuals)."""
        from .. import skewt

        se = math.sqrt(max(est.var or 0.0, 0.0))
        shape = skewt.unit_shape(groups, est.df) if groups else skewt.Shape(0.0, float(est.df))
        lo, hi = skewt.corrected_t(est.total, se, shape, delta)
        how = (f"skew-corrected t: γ = {shape.skewness:.3g} (Hall 1992), {shape.df:.1f} df (Satterthwaite; the "
               f"design's {est.df})") if groups else f"Student t with {est.df} df"
        return Interval(key, f"CLT on the {self.name} design's variance estimate{of}, {how}; {T_CAVEAT}",
                        max(0.0, lo) / est.n, hi / est.n, 1 - delta,
                        {"nominal": True, "skewness": shape.skewness, "df": shape.df})

    def bootstrap(self, est: Estimate, loss: np.ndarray, sel: dict[str, np.ndarray], report: dict[str, Any],
                  delta: float) -> list[Interval]:
        """The bootstrap-t interval (:mod:`dataselect_cli.bootstrap`), where the design has units and a variance."""
        from .. import bootstrap

        groups = self.units(loss, sel)
        if groups is None or est.var is None:
            return []
        iv = bootstrap.interval_for_mean(bootstrap.bootstrap_t(groups, est.total, math.sqrt(max(est.var, 0.0)),
                                                               delta, seed=int(report.get("seed") or 0)), est.n)
        if iv is None:
            return []
        return [Interval("bootstrap_interval", f"bootstrap-t ({bootstrap.REPS} resamples of the {self.name} design's "
                         f"units), nominal {100 * (1 - delta):.1f}%: {BOOTSTRAP_CAVEAT}", iv[0], iv[1], None,
                         {"nominal": 1 - delta, "not_guaranteed": True})]

    def guarantee(self, report: dict[str, Any]) -> str:
        """What the selection guarantees, in words, with its numbers; by default only unbiasedness."""
        return (f"Σ weight·loss over the {report['selected_rows']} selected rows estimates the loss of all "
                f"{report['n']} rows without bias ({self.name}: {self.summary}); this design states no bound "
                "beyond the intervals of 'dataselect estimate'.")


def until_distinct(draw_size: Callable[[int], Drawn], rows: int, path: str | None = None) -> tuple[Drawn, int]:
    """Draw with replacement until ``rows`` distinct rows: (the draw, its number of draws s).

    ``draw_size(s)`` must take its uniforms in order from one seeded stream, so that a larger s
    only adds draws; each added draw adds at most one distinct row, so adding (rows − distinct)
    draws never overshoots. The loop stops when the rows with a positive probability run out.
    """
    s, d = rows, draw_size(rows)
    while len(d.index) < rows:
        if s > 64 * rows:
            raise InputError(f"only {len(d.index)} distinct rows after {s} draws: too few rows have a positive "
                             f"probability for --rows {rows}; lower --rows or use a design without replacement",
                             path)
        s += rows - len(d.index)
        d = draw_size(s)
    return d, s


#: Offered rows held beyond twice what the last cut kept before :func:`draw` cuts them again (:meth:`Design.prune`).
CUT_SLACK = grid.BLOCK_ROWS

#: Blocks' pass-1 statistics taken between two compactions (:meth:`Design.compact`) in :func:`draw`.
COMPACT_BLOCKS = 32


def draw(design: Design, source, size: int, seed: int, engine, block_rows: int, path: str | None = None,
         progress: Progress = silent) -> Drawn:
    """Run a design's passes over a scores source (columns ``id`` and ``design.needs``) on ``engine``,
    each reported as a stage of ``progress`` (:mod:`dataselect_cli.progress`; default silent)."""
    stats: list = []
    start = 0  # the statistics before start are compacted into stats[start] (the last compaction's carrier)
    for st in map_pass(engine, f"{design.name} design, pass 1/2 (block totals)", design.check_block, source,
                       block_rows, {"size": size, "n": source.n}, progress, partial(design.compact, size=size)):
        stats.append(st)
        if len(stats) - start > COMPACT_BLOCKS:  # O(s + k) numbers held, not O(s + k) a block
            stats[start:] = design.compact(stats[start:], size)
            start = len(stats) - 1
    plan = design.plan(stats, size, seed, path)
    parts, held, cut_at = [], 0, 2 * size + CUT_SLACK
    for p in map_pass(engine, f"{design.name} design, pass 2/2 (selection)", design.select_block, source, block_rows,
                      {"plan": plan, "block_rows": block_rows}, progress,
                      partial(into_first, reduce=partial(_cut, design, plan))):
        if p is None:
            continue
        parts.append(p)
        held += len(p[0])
        if held > cut_at:  # the offers so far, cut to what finish could still keep: O(s) held, not O(s) a block
            parts = [_cut(design, plan, parts)]
            held = len(parts[0][0])
            cut_at = 2 * held + CUT_SLACK  # amortised: a design that cannot cut much is not re-sorted often
    if not parts:
        raise InputError("the design selected no row; raise --size (or lower --eps)", path)
    index, count, prob, columns = _joined(parts)
    keep = design.finish(index, prob, columns, plan)
    if keep is not None:
        index, count, prob, columns = _taken((index, count, prob, columns), keep)
    prob = design.final_prob(prob, columns, plan)
    weight = design.final_weights(count, prob, size, columns)
    return Drawn(index, count, prob, weight, columns, plan.stats)


def _cut(design: Design, plan: Plan, parts: list[tuple]) -> tuple:
    """Offers (``select_block`` results) joined in block order and cut to what the design's ``finish`` could
    still keep (:meth:`Design.prune`)."""
    whole = _joined(parts)
    keep = design.prune(whole[0], whole[3], plan)
    return whole if keep is None else _taken(whole, keep)


def _joined(parts: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(index, count, prob, columns) of ``select_block`` offers, concatenated in block order."""
    columns = {c: (pa.concat_arrays([p[3][c] for p in parts]) if isinstance(parts[0][3][c], pa.Array)
                   else np.concatenate([p[3][c] for p in parts])) for c in parts[0][3]}
    return (np.concatenate([p[0] for p in parts]).astype(np.int64), np.concatenate([p[1] for p in parts]).astype(np.int32),
            np.concatenate([p[2] for p in parts]).astype(np.float64), columns)


def _taken(part: tuple, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The rows ``keep`` (positions) of an offer (index, count, prob, columns)."""
    index, count, prob, columns = part
    return index[keep], count[keep], prob[keep], {c: (v.take(pa.array(keep)) if isinstance(v, pa.Array) else v[keep])
                                                  for c, v in columns.items()}
