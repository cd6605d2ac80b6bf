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

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import pyarrow as pa

from ..errors import InputError

#: The kinds of input a method may declare (the ones a run can provide today come first).
INPUT_KINDS = ("clusters", "losses", "embeddings", "examples", "dynamics", "text")


@dataclass
class Clusters:
    """What scoring needs of a clustering, however it was obtained (a clusters file or a one-step run).

    ``labels`` (int) and ``distance`` (float32) are per row; ``center_id``, ``size`` and ``cost``
    per cluster; ``z`` is the distance exponent.
    """

    ids: pa.Array
    labels: np.ndarray
    distance: np.ndarray
    center_id: pa.Array
    size: np.ndarray
    cost: np.ndarray
    z: int
    d: int | None


@dataclass
class Inputs:
    """The inputs a score run has; a method reads those it declares. ``losses`` is (ids, values)."""

    clusters: Clusters | None = None
    losses: tuple[pa.Array, np.ndarray] | None = None
    losses_path: str | None = None

    def available(self) -> set[str]:
        return {kind for kind in ("clusters", "losses") if getattr(self, kind) is not None}


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
