"""Where losses come from during a run: the loss oracle (issue 15).

Every step that needs losses of some rows (the k centers, the probes, the selected rows, the next
rows of an adaptive round, a bandit's pulls) asks an :class:`Oracle` for exactly those ids, in the
order the method needs them, and never for more. Two oracles exist:

* :class:`TableOracle`: a losses table the user computed (``--losses``), looked up by id;
* ``CommandOracle`` (:mod:`dataselect_cli.losscmd`): the user's scorer, run as a subprocess
  (``--loss-command``).

An oracle counts its queries per purpose (:attr:`Oracle.log`) so that reports and metadata say
how many losses a run needed and what for; :meth:`Oracle.params` is what the metadata records (and
``--resume`` compares).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from . import io
from .errors import InputError


class Oracle:
    """The losses of rows, asked for by id.

    Subclasses implement :meth:`_losses`; :meth:`query` validates, counts and returns.

    Attributes
    ----------
    log : list of (str, int)
        One entry per query: its purpose ("centers", "probes", "selected", "round 2", …) and the
        number of ids asked for.
    """

    #: How the oracle is named in messages and reports ("--losses FILE", "--loss-command CMD").
    label: str = "losses"

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []

    @property
    def queries(self) -> int:
        """How many losses were asked for so far (every id of every query)."""
        return sum(n for _, n in self.log)

    def query(self, ids: pa.Array, why: str) -> np.ndarray:
        """The losses of ``ids`` (float64, in their order, each finite and >= 0), asked for ``why``.

        An empty ``ids`` asks nothing and is not logged. Raises :class:`InputError` naming the oracle
        when a loss is missing or bad.
        """
        if len(ids) == 0:
            return np.empty(0)
        loss = np.asarray(self._losses(ids, why), dtype=np.float64)
        if loss.shape != (len(ids),):
            raise AssertionError(f"{type(self).__name__} returned {loss.shape} losses for {len(ids)} ids")
        self.log.append((why, len(ids)))
        return loss

    def _losses(self, ids: pa.Array, why: str) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """What the metadata records about the oracle (compared by ``--resume``)."""
        return {}

    def inputs(self) -> dict[str, str]:
        """Files the oracle reads, by role (fingerprinted in the metadata, so that ``--resume`` sees them change)."""
        return {}

    def summary(self) -> dict[str, Any]:
        """The queries made, for reports: the total and per purpose."""
        return {"queries": self.queries, "by_purpose": [{"purpose": w, "ids": n} for w, n in self.log]}


class TableOracle(Oracle):
    """Losses looked up in a table the user computed (``--losses``: Parquet, CSV, TSV or JSON lines).

    The table is read and validated once (:func:`dataselect_cli.dataset.read_losses`). A query for an
    id the table lacks raises an :class:`InputError` naming the file and up to 10 missing ids.
    """

    def __init__(self, path: str, fmt: str | None = None, table: tuple[pa.Array, np.ndarray] | None = None) -> None:
        super().__init__()
        from .dataset import read_losses

        self.path = str(path)
        self.label = f"--losses {path}"
        self.ids, self.values = table if table is not None else read_losses(path, fmt)
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def _losses(self, ids: pa.Array, why: str) -> np.ndarray:
        if ids.type == self.ids.type and not ids.null_count and len(self.ids):
            # many small queries (a bandit's rounds): the table's ids sorted once, each query a binary search
            if self._sorted is None:
                v = self.ids.to_numpy(zero_copy_only=False)
                order = np.argsort(v, kind="stable")
                self._sorted = (v[order], order)
            keys, order = self._sorted
            q = ids.to_numpy(zero_copy_only=False)
            at = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
            if np.all(keys[at] == q):
                return self.values[order[at]]
        pos = io.lookup(self.ids, ids, self.path, f"{why} row",  # and the message naming the missing ids
                        "; add their losses to the file (or pass the ids it was computed for)")
        return self.values[pos]

    def has(self, ids: pa.Array) -> np.ndarray:
        """Whether each of ``ids`` has a loss in the table (bool array); asks nothing."""
        import pyarrow.compute as pc

        if ids.type != self.ids.type:
            raise InputError(f"ids are {ids.type} here but {self.ids.type} in the losses; use the same id type "
                             "in both", self.path)
        return pc.is_in(ids, value_set=self.ids).to_numpy(zero_copy_only=False)
