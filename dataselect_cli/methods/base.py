"""What every score method is: the inputs it needs, its parameters, a global step and a block function.

A score method turns per-row inputs into score columns in one pass over the block grid, on any
engine (:mod:`dataselect_cli.grid`):

1. ``check(available)`` refuses a run whose inputs the method cannot use, before any work;
2. ``prepare(inputs, note)`` is the global step (Λ, a target model, …): it returns the state the
   block function needs and the method's part of the summary;
3. ``score_block(b, cols, state)`` scores one block of ``source_columns`` and returns its columns
   and its per-block sums;
4. ``finish(columns, sums, n)`` completes the columns that need a global total (``prob``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np
import pyarrow as pa

from .. import grid
from ..errors import InputError

#: The kinds of input a method may declare (the ones a run can provide today come first).
INPUT_KINDS = ("clusters", "losses", "embeddings", "examples", "dynamics", "target", "text", "response")


@dataclass
class RowStats:
    """What scoring needs of a clustering's per-row columns when they are not held (a run writing a directory
    output): gathered in one streamed pass over the rows (:func:`dataselect_cli.steps.score.scan_clusters`).

    Attributes
    ----------
    n : int
    dterm_cost : ndarray (k,), float64
        Σ distance^z per cluster, added in row order (the same floats as ``np.bincount`` over all rows).
    counts : ndarray (k,), int64
        Rows per cluster.
    ids, labels, distance : the rows whose ids were asked for (centers, rows with a loss), in row order.
    """

    n: int
    dterm_cost: np.ndarray
    counts: np.ndarray
    ids: pa.Array
    labels: np.ndarray
    distance: np.ndarray


@dataclass
class Clusters:
    """What scoring needs of a clustering, however it was obtained (a clusters file or a one-step run).

    ``labels`` (int) and ``distance`` (float32) are per row; ``center_id``, ``size`` and ``cost``
    per cluster; ``z`` is the distance exponent. Without per-row arrays (``ids``, ``labels`` and
    ``distance`` None), ``stats`` holds what the methods need of them (:class:`RowStats`); the methods
    read the rows through :meth:`rows`, :meth:`label_counts`, :meth:`locate` and :meth:`proxy_total`.
    """

    ids: pa.Array | None
    labels: np.ndarray | None
    distance: np.ndarray | None
    center_id: pa.Array
    size: np.ndarray
    cost: np.ndarray
    z: int
    d: int | None
    stats: RowStats | None = None

    def rows(self) -> int:
        """n, the rows of the clustering."""
        return self.stats.n if self.labels is None else len(self.labels)

    def label_counts(self) -> np.ndarray:
        """Rows per cluster, int64 (k,)."""
        if self.labels is None:
            return self.stats.counts
        return np.bincount(np.asarray(self.labels, np.int64), minlength=len(self.size))

    def locate(self, keys: pa.Array, path: str, what: str, hint: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(labels, distances) of the rows with ids ``keys``; an :class:`InputError` listing the keys with no row."""
        from .. import io

        if self.labels is None:
            pos = io.lookup(self.stats.ids, keys, path, what, hint)
            return self.stats.labels[pos], self.stats.distance[pos]
        pos = io.lookup(self.ids, keys, path, what, hint)
        return self.labels[pos], self.distance[pos]

    def proxy_total(self, center_loss: np.ndarray) -> float:
        """Σ over the rows of their center's loss: as numpy sums the rows when they are held, else Σ_h n_h·ℓ_h
        correctly rounded (which may differ from the former in the last bit)."""
        if self.labels is None:
            return math.fsum((self.stats.counts * center_loss).tolist())
        return float(center_loss[self.labels].sum())


@dataclass
class Inputs:
    """The inputs a score run has; a method reads those it declares. ``losses`` is (ids, values).

    ``examples`` is the per-example table (:class:`~dataselect_cli.dyntable.Examples`), ``dynamics``
    the opened training-dynamics table (:class:`~dataselect_cli.dyntable.DynamicsTable`) and ``keys``
    its structure after the key pass (:class:`~dataselect_cli.dyntable.Keys`), ``embeddings`` the path
    of an embeddings file (leverage; GraNd's last-layer features), ``target`` the path of a target
    embeddings file and ``centers`` the clusters' centers file (``dsir-clusters``), ``response`` the
    regression target column whose squared residuals at the centers are the ``losses`` (``sample --regression``).
    """

    clusters: Clusters | None = None
    losses: tuple[pa.Array, np.ndarray] | None = None
    losses_path: str | None = None
    examples: Any = None
    dynamics: Any = None
    keys: Any = None
    embeddings: str | None = None
    target: str | None = None
    centers: str | None = None
    response: str | None = None
    block_rows: int = grid.BLOCK_ROWS  # the block grid the rows are scored on (set by the score step)

    def available(self) -> set[str]:
        kinds = ("clusters", "losses", "examples", "dynamics", "embeddings", "target", "response")
        return {kind for kind in kinds if getattr(self, kind) is not None}

    def columns(self, kind: str) -> set[str]:
        """The columns an input has (the per-example and dynamics tables; 'embedding' for embeddings)."""
        if kind == "dynamics" and self.dynamics is not None:
            return set(self.dynamics.names)
        if kind == "examples" and self.examples is not None:
            return set(self.examples.columns) | ({"label"} if self.examples.label is not None else set())
        if kind == "embeddings" and self.embeddings is not None:
            return {"embedding"}
        return set()


class ScoreMethod:
    """Base class of the score methods; a subclass is one module of :mod:`dataselect_cli.methods`.

    Class attributes
    ----------------
    name : str
        The ``--method`` choice.
    summary : str
        One line for ``--help``.
    inputs : tuple of str
        Required inputs (of :data:`INPUT_KINDS`); ``optional`` are used when given.
    direction : str
        ``"mass"`` (the score is a sampling mass), ``"higher=harder"`` or ``"higher=easier"``.
    source_columns : tuple of str
        Per-row columns the block function reads.
    columns : tuple of str
        Columns it writes, after ``id`` and the ``passthrough`` input columns.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    direction: ClassVar[str]
    source_columns: ClassVar[tuple[str, ...]] = ()
    passthrough: ClassVar[tuple[str, ...]] = ()
    columns: ClassVar[tuple[str, ...]] = ()

    def params(self) -> dict[str, Any]:
        """The method's parameters, as recorded in the scores file's metadata."""
        return {}

    def check(self, available: set[str]) -> None:
        """Refuse a run that lacks a required input (before any work)."""
        for kind in self.inputs:
            if kind not in available:
                raise InputError(f"--method {self.name} needs {kind}")

    def prepare(self, inputs: Inputs, note: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def score_block(self, b: int, cols: dict, state: Any) -> tuple[dict[str, np.ndarray], tuple[float, ...]]:
        raise NotImplementedError

    def finish(self, columns: dict[str, np.ndarray], sums: list[tuple[float, ...]], n: int) -> dict[str, np.ndarray]:
        return columns


class Route(NamedTuple):
    """One way a per-example method can be fed: an input kind, the columns it needs there, and other inputs."""

    kind: str
    columns: tuple[str, ...]
    also: tuple[str, ...] = ()


#: How the per-row values of a dynamics table are reduced per (id, run): the mean over the selected checkpoints,
#: their sum, their mean and population variance, one bit per checkpoint (``correct``), or the per-element
#: spread across checkpoints of a vector (VoG).
REDUCTIONS = ("mean", "sum", "var", "bits", "spread")


class ExampleMethod(ScoreMethod):
    """A score per example from the per-example table, the dynamics table or the embeddings: one row per id.

    The scores file holds ``id``, ``score`` (float64), ``label`` (int32, when every id has one) and the
    method's ``columns``. A method declares its ``routes`` (the first whose input and columns are there
    is taken), the per-row values it computes from a block of the dynamics table (:meth:`row_values`;
    pure numpy, on any engine), how each is reduced per (id, run) (``stats``: see :data:`REDUCTIONS`),
    and turns the per-(id, run) results into its columns (:meth:`finish_ids`). On the examples route the
    table's rows are one run with one checkpoint.
    """

    direction: ClassVar[str] = "higher=harder"
    routes: ClassVar[tuple[Route, ...]] = ()
    stats: ClassVar[dict[str, str]] = {}
    columns: ClassVar[tuple[str, ...]] = ()
    normalization: str = "none"

    def route(self, inputs: Inputs) -> Route:
        """The first route the inputs can feed; an :class:`InputError` saying what the method needs."""
        have = inputs.available()
        for r in self.routes:
            if r.kind in have and set(r.columns) <= inputs.columns(r.kind) and set(r.also) <= have:
                return r
        ways = "; or ".join(f"--{r.kind} with {', '.join(r.columns)}" + "".join(f" and --{a}" for a in r.also)
                            for r in self.routes)
        raise InputError(f"--method {self.name} needs {ways}")

    def check(self, available: set[str]) -> None:
        if not {r.kind for r in self.routes} & available:
            kinds = " or ".join(dict.fromkeys(f"--{r.kind}" for r in self.routes))
            raise InputError(f"--method {self.name} needs {kinds}")

    #: Dynamics columns read when present (beyond the route's): ``lr`` for TracIn, ``correct`` for forgetting.
    optional_columns: ClassVar[tuple[str, ...]] = ()
    #: The checkpoint a one-checkpoint score is taken at by default ("early", "last"), or None: every checkpoint.
    at: ClassVar[str | None] = None
    requested_checkpoint: int | None = None

    def needs_label(self, route: Route) -> bool:
        """Whether the per-row values need the gold label on this route."""
        return True

    def describe(self, state: "ExampleState") -> dict[str, Any]:
        """The method's own part of the summary."""
        return {}

    def prepare(self, inputs: Inputs, note: Callable[[str], None]) -> tuple["ExampleState", dict[str, Any]]:
        """Choose the route and the checkpoint; return the state and the summary's common part."""
        route = self.route(inputs)
        state = ExampleState(route, None, None, None, inputs.columns(route.kind))
        summary: dict[str, Any] = {"source": route.kind, "source_columns": list(route.columns)}
        if route.kind == "dynamics":
            keys = inputs.keys
            state.keys = keys
            summary.update({"runs": len(keys.runs), "checkpoints": len(keys.checkpoints),
                            "dynamics_rows": keys.rows, "classes": inputs.dynamics.n_classes})
            if self.at is not None:
                state.checkpoint, how = pick_checkpoint(keys, self.requested_checkpoint, self.at)
                summary["checkpoint"] = int(keys.checkpoints[state.checkpoint])
                summary["checkpoint_rule"] = how
                if keys.epoch is not None:
                    summary["checkpoint_epoch"] = float(keys.epoch[state.checkpoint])
        elif self.requested_checkpoint is not None:
            raise InputError(f"--checkpoint applies to --dynamics; --method {self.name} reads {route.kind} here")
        state.params = self.params()
        summary.update(self.describe(state))
        return state, summary

    def row_values(self, cols: dict[str, Any], state: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def finish_ids(self, stats: dict[str, np.ndarray], state: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError


class CheckpointMethod(ExampleMethod):
    """A per-example method scored at one checkpoint (``at``), which ``--checkpoint`` may choose."""

    def __init__(self, checkpoint: int | None = None):
        self.requested_checkpoint = checkpoint

    def params(self) -> dict[str, Any]:
        return {"checkpoint": self.requested_checkpoint}


@dataclass
class ExampleState:
    """What a per-example method's row and finish functions need: the route, the checkpoint index (None: all),
    the dynamics table's :class:`~dataselect_cli.dyntable.Keys` (None on the examples route) and the parameters."""

    route: Route
    checkpoint: int | None
    keys: Any
    params: Any
    names: set = frozenset()


def pick_checkpoint(keys: Any, requested: int | None, rule: str) -> tuple[int, str]:
    """The checkpoint a one-checkpoint score is taken at: (index into ``keys.checkpoints``, how it was chosen).

    ``rule`` is ``"last"`` or ``"early"``: the earliest checkpoint at or after epoch 1 when the table has
    ``epoch`` (Paul et al. 2021 score "early in training"; Fayyaz et al. 2022 after at least one epoch;
    late in training EL2N is about 0 for every easy example, Tan et al. 2023 App. B.1), else checkpoint 1
    (the second; the first is often the model before training).
    """
    ckpts = keys.checkpoints
    if requested is not None:
        hit = np.flatnonzero(ckpts == requested)
        if not len(hit):
            raise InputError(f"--checkpoint {requested} is not a checkpoint of the dynamics table (it has "
                             f"{', '.join(map(str, ckpts.tolist()[:10]))}{' …' if len(ckpts) > 10 else ''})")
        return int(hit[0]), "--checkpoint"
    if rule == "last":
        return len(ckpts) - 1, "the last checkpoint"
    if keys.epoch is not None:
        after = np.flatnonzero(keys.epoch >= 1)
        if len(after):
            return int(after[0]), "the earliest checkpoint at or after epoch 1"
        return len(ckpts) - 1, "the last checkpoint (none reaches epoch 1)"
    return min(1, len(ckpts) - 1), "checkpoint index 1 (no epoch column)"
