"""The training-dynamics table and the per-example table: open, check, and decode them block by block.

The dynamics table is long: one row per (id, run, checkpoint) with ``id``, ``checkpoint`` (int),
optionally ``run`` (int, default 0), ``label``, ``epoch``, ``step``, and the value columns
(``logits``, ``correct``, ``loss``, ``grad_sqnorm``, ``lr``, ``input_grad``, ``null_logits``).
Rows may come in any order. A table in any order is read twice, block by block:

1. the key pass (:class:`KeyIndex`) reads ``id``, ``run``, ``checkpoint`` (and ``label``,
   ``epoch``): it numbers the ids in first-seen order, checks that no (id, run, checkpoint) comes
   twice and that every (id, run) has the same checkpoints, and gathers one label per id. It keeps
   one bit per (id, run, checkpoint) and one label per id;
2. the values pass decodes the value columns of each block (:func:`value_block`), checking widths
   and finiteness, and names the first offending row by its file, row, id, run and checkpoint.

A table sorted by (id, run, checkpoint) in which every id has the same runs and checkpoints (the
:class:`Layout` its first id's rows show, :func:`sorted_layout`) is read once: each block's keys are
checked as the key pass checks them and against the layout (:func:`sorted_block`, :class:`SortedIndex`)
while its values are decoded. A block that breaks the layout ends that pass and the two passes run
instead, so that every table gives the same results and the same errors either way.

The per-example table (:func:`read_examples`) is read whole: one row per id.
This module moves and checks data; the scores are computed in :mod:`dataselect_cli.methods`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import compress, repeat
from typing import Any

import numpy as np
import pyarrow as pa

from . import io
from .pqdataset import ParquetDataset, prefetch
from .errors import InputError

#: Value columns that hold a vector per row, and the width they must have ("C": the classes).
VECTOR_COLUMNS = {"logits": "C", "null_logits": "C", "probs": "C", "input_grad": "D"}
#: Value columns that hold a number per row, and whether it must be >= 0.
NUMBER_COLUMNS = {"loss": True, "grad_sqnorm": True, "lr": True}
#: Checkpoints are indices 0, 1, 2, … of a run; larger values are refused (steps go in ``step``).
MAX_CHECKPOINT = 1 << 16
#: How many offending ids a message names.
SHOWN = 5


def _py(v: Any) -> Any:
    """A numpy scalar as a Python value (so that messages show 7, not np.int64(7))."""
    return v.item() if hasattr(v, "item") else v


def _show(values: list) -> str:
    values = [_py(v) for v in values]
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    return ", ".join(repr(v) for v in values[:SHOWN]) + more


@dataclass
class DynamicsTable:
    """An opened dynamics table: its dataset, the columns it has, C (classes) and D (input_grad width)."""

    ds: ParquetDataset
    path: str
    names: set[str]
    n_classes: int | None
    grad_dim: int | None

    def where(self, row: int, ids: Any, run: Any, ck: Any, i: int) -> tuple[str, str]:
        """(file, "row R (id X, run r, checkpoint c)") of row i of a block whose first global row is ``row``."""
        file, r = self.ds.locate(row + i)
        return file, f"row {r} (id {_py(ids[i])!r}, run {int(run[i])}, checkpoint {int(ck[i])})"


def _vector_width(ds: ParquetDataset, column: str) -> int | None:
    """The width of a list column: from a fixed-size type, else from the first row."""
    t = ds.schema.field(column).type
    d, _ = io.embedding_dim(t, ds.path, column)
    if d is None and ds.n:
        import pyarrow.compute as pc

        first = next(ds.iter_tables([column], 0, 1, 1)).column(0).combine_chunks()
        if first.null_count:
            raise InputError(f"column '{column}' is null at row 0; every row needs a vector", ds.files[0])
        d = int(pc.list_value_length(first)[0].as_py())
    return d


def open_dynamics(path: str) -> DynamicsTable:
    """Open a dynamics table (a Parquet file or a directory of them) and check its columns' types."""
    ds = ParquetDataset(path, "table")
    ds.require(["id", "checkpoint"], "dynamics")
    names = set(ds.schema.names)
    for col in ("run", "checkpoint", "label", "step"):
        if col in names and not pa.types.is_integer(ds.schema.field(col).type):
            raise InputError(f"column '{col}' has type {ds.schema.field(col).type}; it must hold integers", path)
    if "correct" in names and not pa.types.is_boolean(ds.schema.field("correct").type):
        raise InputError(f"column 'correct' has type {ds.schema.field('correct').type}; it must be bool", path)
    for col in NUMBER_COLUMNS:
        if col in names and not (pa.types.is_floating(ds.schema.field(col).type)
                                 or pa.types.is_integer(ds.schema.field(col).type)):
            raise InputError(f"column '{col}' has type {ds.schema.field(col).type}; it must hold numbers", path)
    if ds.n == 0:
        raise InputError("the dynamics table has 0 rows", path)
    c = _vector_width(ds, "logits") if "logits" in names else None
    if "null_logits" in names:
        c0 = _vector_width(ds, "null_logits")
        if c is not None and c0 != c:
            raise InputError(f"column 'null_logits' has {c0} values a row but 'logits' has {c}; both need one "
                             "value per class", path)
    g = _vector_width(ds, "input_grad") if "input_grad" in names else None
    return DynamicsTable(ds, path, names, c, g)


# --------------------------------------------------------------------------- the key pass


def key_columns(table: DynamicsTable) -> list[str]:
    """The columns the key pass reads."""
    return [c for c in ("id", "run", "checkpoint", "label", "epoch") if c in table.names]


def _ints(col: pa.ChunkedArray | pa.Array, name: str, path: str, row0: int, ids) -> np.ndarray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column '{name}' is null at row {row0 + i} (id {_py(ids[i])!r}); fill it", path)
    return col.to_numpy().astype(np.int64)


def key_block(t: pa.Table, table: DynamicsTable, row0: int) -> dict[str, Any]:
    """Decode the key columns of one block: ``id`` (numpy: int64 or str objects), ``run``, ``checkpoint``,
    ``label`` (int64 or None), ``epoch`` (float64 or None); an :class:`InputError` for nulls and ranges."""
    path = table.path
    ids_arr = io.id_type(t.column("id").combine_chunks(), path)
    if ids_arr.null_count:
        i = int(np.flatnonzero(ids_arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column 'id' is null at row {row0 + i}; every row needs an id", path)
    ids = ids_arr.to_numpy(zero_copy_only=False)
    n = len(ids)
    run = _ints(t.column("run"), "run", path, row0, ids) if "run" in table.names else np.zeros(n, np.int64)
    ck = _ints(t.column("checkpoint"), "checkpoint", path, row0, ids)
    if len(ck) and (ck.min() < 0 or ck.max() >= MAX_CHECKPOINT):  # (two reductions; the mask only to name the row)
        i = int(np.flatnonzero((ck < 0) | (ck >= MAX_CHECKPOINT))[0])
        file, where = table.where(row0, ids, run, ck, i)
        raise InputError(f"column 'checkpoint' is out of range at {where}; checkpoints are the indices 0, 1, 2, … "
                         f"of a run (below {MAX_CHECKPOINT}; put training steps in 'step')", file)
    label = None
    if "label" in table.names:
        label = _ints(t.column("label"), "label", path, row0, ids)
        c = table.n_classes
        if len(label) and (label.min() < 0 or (c is not None and label.max() >= c)):
            i = int(np.flatnonzero((label < 0) | (label >= c) if c is not None else label < 0)[0])
            file, where = table.where(row0, ids, run, ck, i)
            allowed = f"0..{c - 1} (C = {c}, the width of 'logits')" if c is not None else ">= 0"
            raise InputError(f"column 'label' is {int(label[i])} at {where}; labels must lie in {allowed}", file)
    epoch = None
    if "epoch" in t.column_names:  # the one-pass read leaves it out
        e = t.column("epoch")
        epoch = _float64(e) if not e.null_count else None
    return {"id": ids, "run": run, "checkpoint": ck, "label": label, "epoch": epoch}


def _float64(col: pa.ChunkedArray) -> np.ndarray:
    """A null-free numeric column as float64: a float column by numpy (exact), an integer one by pyarrow's safe cast
    (which refuses an integer that float64 cannot hold)."""
    if pa.types.is_floating(col.type):
        return col.to_numpy().astype(np.float64, copy=False)
    return col.cast(pa.float64()).to_numpy()


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length) of each run of equal consecutive values."""
    m = len(values)
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return starts, np.diff(np.r_[starts, m])


@dataclass
class IdLookup:
    """Positions of ids in the output order, by binary search on a sorted copy (pickles small: two arrays)."""

    sorted_ids: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray) -> IdLookup:
        keys = ids.astype(str) if ids.dtype == object else ids
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], order)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, found) of ``ids``; a position is meaningless where ``found`` is False."""
        keys = ids.astype(str) if ids.dtype == object else ids
        at = np.searchsorted(self.sorted_ids, keys)
        at = np.minimum(at, len(self.sorted_ids) - 1)
        found = self.sorted_ids[at] == keys
        return self.order[at], found


@dataclass
class Keys:
    """The structure of a dynamics table once its key pass is done.

    Attributes
    ----------
    ids : pyarrow.Array
        The ids, in first-seen order (n).
    runs : ndarray of int64
        The run values, sorted (R).
    checkpoints : ndarray of int64
        The checkpoint values, sorted (K); every (id, run) has each of them once.
    epoch : ndarray of float64 or None
        The smallest ``epoch`` seen at each checkpoint (K), when the table has that column.
    label : ndarray of int64 or None
        One label per id (−1: none in the table), when the table has a ``label`` column.
    grouped : bool
        Whether the rows of each id come together (a table sorted by id is).
    rows : int
        The table's rows.
    lookup : IdLookup
        The ids' positions by binary search (made on first use: the one-pass read does not need it).
    """

    ids: pa.Array
    runs: np.ndarray
    checkpoints: np.ndarray
    epoch: np.ndarray | None
    label: np.ndarray | None
    grouped: bool
    rows: int

    @property
    def n(self) -> int:
        return len(self.ids)

    @cached_property
    def lookup(self) -> IdLookup:
        return IdLookup.of(self.ids.to_numpy(zero_copy_only=False))

    def index(self, ids: np.ndarray, run: np.ndarray, ck: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(id position, run index, checkpoint index) of a block's rows (all known from the key pass); an id is
        looked up once per run of equal ids (one per id in a table sorted by id)."""
        starts, length = _runs(ids)
        pos, _ = self.lookup.find(ids[starts])
        return np.repeat(pos, length), np.searchsorted(self.runs, run), np.searchsorted(self.checkpoints, ck)


def _min_epoch(acc: np.ndarray, ck: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """The smallest epoch seen at each checkpoint value (``acc``, +inf where none), updated with a block's rows."""
    if len(acc) <= ck.max():
        acc = np.concatenate([acc, np.full(int(ck.max()) + 1 - len(acc), np.inf)])
    np.minimum.at(acc, ck, epoch)
    return acc


def _epoch_at(acc: np.ndarray, ckpts: np.ndarray) -> np.ndarray | None:
    """The smallest epoch at each of the checkpoints ``ckpts``, or None unless every one has an epoch."""
    if not len(acc) or not len(ckpts) or ckpts.max() >= len(acc) or not np.isfinite(acc[ckpts]).all():
        return None
    return acc[ckpts]


@dataclass
class KeyIndex:
    """The key pass's state: ids in first-seen order, runs, one bit per (id, run, checkpoint), a label per id."""

    table: DynamicsTable
    pos: dict = field(default_factory=dict)
    order: list = field(default_factory=list)
    run_pos: dict = field(default_factory=dict)
    present: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.uint8))
    label: np.ndarray = field(default_factory=lambda: np.full(0, -1, np.int64))
    label_row: list = field(default_factory=list)
    epoch: np.ndarray = field(default_factory=lambda: np.full(0, np.inf))
    grouped: bool = True
    last: int = -1
    rows: int = 0
    #: Whether every id so far is an integer above those before it (a table sorted by id): positions are then
    #: counted without the dictionary ``pos``, which is built the first time a block breaks the pattern.
    increasing: bool = True

    def _grow(self, n: int, r: int, w: int) -> None:
        cn, cr, cw = self.present.shape
        if n <= cn and r <= cr and w <= cw:
            return
        new = np.zeros((max(n, 2 * cn if n > cn else cn), max(r, cr), max(w, cw)), np.uint8)
        new[:cn, :cr, :cw] = self.present
        self.present = new
        if len(self.label) < new.shape[0]:
            self.label = np.concatenate([self.label, np.full(new.shape[0] - len(self.label), -1, np.int64)])

    def _number(self, values: np.ndarray, pos: dict, order: list | None) -> tuple[np.ndarray, np.ndarray]:
        """(positions of a block's values in ``pos``, adding new ones in first-seen order; for each row, the row
        of the block where its value first occurs).

        Runs of equal values (a table grouped by id has one run per id) are collapsed first, and the distinct
        values are looked up and added with C-level loops (``map``, ``dict.update``), not a Python loop per
        value: about 0.1 µs a value.
        """
        starts, length = _runs(values)
        uniq, first, inv = np.unique(values[starts], return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        seen = np.argsort(first, kind="stable")
        keys = uniq[seen].tolist()  # Python ints or strs, in first-seen order
        at = np.fromiter(map(pos.get, keys, repeat(-1)), np.int64, len(keys))
        new = at < 0
        if new.any():
            fresh = list(compress(keys, new.tolist()))
            start = len(pos)
            pos.update(zip(fresh, range(start, start + len(fresh))))
            if order is not None:
                order.extend(fresh)
            at[new] = np.arange(start, start + len(fresh))
        by_uniq = np.empty_like(at)
        by_uniq[seen] = at
        return np.repeat(by_uniq[inv], length), np.repeat(starts[first[inv]], length)

    def _number_ids(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_number` for the ids, without a dictionary while they come in increasing order (the block's
        first id may continue the previous block's last)."""
        if self.increasing and ids.dtype.kind in "iu" and len(ids):
            starts, length = _runs(ids)
            rv = ids[starts]
            cont = bool(self.order) and rv[0] == self.order[-1]
            fresh = rv[1:] if cont else rv
            if not len(fresh) or ((not self.order or fresh[0] > self.order[-1]) and (fresh[1:] > fresh[:-1]).all()):
                at = len(self.order) - cont + np.arange(len(rv))
                self.order.extend(fresh.tolist())
                return np.repeat(at, length), np.repeat(starts, length)
        if self.increasing:
            self.increasing = False
            self.pos.update(zip(self.order, range(len(self.order))))
        return self._number(ids, self.pos, self.order)

    def add(self, block: dict[str, Any], row0: int) -> None:
        """Take one block of the key pass (:func:`key_block`); an :class:`InputError` at the first duplicate row
        or conflicting label."""
        ids, run, ck = block["id"], block["run"], block["checkpoint"]
        before = len(self.order)
        i, first_row = self._number_ids(ids)
        r, _ = self._number(run, self.run_pos, None)
        self._check_grouped(i, before)
        self._grow(len(self.order), len(self.run_pos), int(ck.max()) // 8 + 1)
        key = (i * self.present.shape[1] + r) * MAX_CHECKPOINT + ck
        if len(key) < 2 or (key[1:] > key[:-1]).all():  # increasing (a sorted table): no two rows alike
            dup = np.zeros(len(key), bool)
        else:
            _, first = np.unique(key, return_index=True)
            dup = np.ones(len(key), bool)
            dup[first] = False
        _, cr, cw = self.present.shape
        cell = (i * cr + r) * cw + (ck >> 3)  # flat index into present: ufunc.at is far faster on one axis
        flat = self.present.reshape(-1)
        dup |= ((flat[cell] >> (ck & 7).astype(np.uint8)) & 1).astype(bool)
        if dup.any():
            j = int(np.flatnonzero(dup)[0])
            rows = np.flatnonzero(dup)
            file, where = self.table.where(row0, ids, run, ck, j)
            others = sorted({ids[x] for x in rows[:50]} - {ids[j]}, key=str)
            more = f"; also ids {_show(others)}" if others else ""
            raise InputError(f"duplicate rows: {where} repeats an (id, run, checkpoint) seen before{more}; keep one "
                             "row per id, run and checkpoint", file)
        np.bitwise_or.at(flat, cell, (1 << (ck & 7)).astype(np.uint8))
        if block["label"] is not None:
            self._add_labels(i, first_row, block["label"], ids, run, ck, row0)
        if block["epoch"] is not None:
            self.epoch = _min_epoch(self.epoch, ck, block["epoch"])
        self.rows += len(ids)

    def _check_grouped(self, i: np.ndarray, before: int) -> None:
        if not self.grouped or not len(i):
            return
        starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
        seq = i[starts]
        if seq[0] == self.last:
            seq = seq[1:]
        if not np.array_equal(seq, np.arange(before, before + len(seq))):
            self.grouped = False
        self.last = int(i[-1])

    def _add_labels(self, i, first_row, label, ids, run, ck, row0) -> None:
        ref = label[first_row]  # the id's first label in this block, or the one it had before
        had = self.label[i]
        ref = np.where(had >= 0, had, ref)
        bad = label != ref
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            file, where = self.table.where(row0, ids, run, ck, j)
            raise InputError(f"column 'label' is {int(label[j])} at {where} but an earlier row of id {_py(ids[j])!r} "
                             f"has {int(ref[j])}; an example has one label", file)
        self.label[i] = label

    def finish(self) -> Keys:
        """The :class:`Keys`; an :class:`InputError` naming the first (id, run) pairs that lack a checkpoint."""
        n = len(self.order)
        present = self.present[:n, : len(self.run_pos)]
        run_values = np.array(sorted(self.run_pos), np.int64)
        present = present[:, [self.run_pos[v] for v in run_values]]
        seen = np.bitwise_or.reduce(present.reshape(-1, present.shape[2]), axis=0)
        ckpts = np.flatnonzero(np.unpackbits(seen, bitorder="little")).astype(np.int64)
        incomplete = (present != seen).any(axis=2)
        if incomplete.any():
            self._missing(present, incomplete, run_values, ckpts)
        kind = pa.string() if n and isinstance(self.order[0], str) else pa.int64()
        ids = pa.array(self.order, kind)
        epoch = _epoch_at(self.epoch, ckpts)
        label = self.label[:n].copy() if self.label_seen else None
        return Keys(ids, run_values, ckpts, epoch, label, self.grouped, self.rows)

    @property
    def label_seen(self) -> bool:
        return "label" in self.table.names

    def _missing(self, present, incomplete, run_values, ckpts) -> None:
        ii, rr = np.nonzero(incomplete)
        first_i, first_r = int(ii[0]), int(rr[0])
        have = np.flatnonzero(np.unpackbits(present[first_i, first_r], bitorder="little"))
        lacks = sorted(set(ckpts.tolist()) - set(have.tolist()))
        shown = ", ".join(map(str, lacks[:SHOWN])) + (" …" if len(lacks) > SHOWN else "")
        idx = sorted(set(ii.tolist()))
        raise InputError(f"checkpoints missing: id {self.order[first_i]!r} (run {int(run_values[first_r])}) has no row "
                         f"for checkpoint {shown}; {len(ii)} (id, run) pairs are incomplete (ids "
                         f"{_show([self.order[x] for x in idx])}); every id needs a row for each run "
                         f"({', '.join(map(str, run_values.tolist()))}) and checkpoint "
                         f"({', '.join(map(str, ckpts.tolist()[:10]))}{' …' if len(ckpts) > 10 else ''})",
                         self.table.path)


# --------------------------------------------------------------------------- one pass over a sorted table


@dataclass
class Layout:
    """The rows of a table sorted by (id, run, checkpoint) where every id has each run and checkpoint once: each id
    takes ``period`` = R·K consecutive rows, the (run, checkpoint) pairs in order, so row j belongs to the id
    numbered j // period and is its (run, checkpoint) number j % period."""

    runs: np.ndarray
    checkpoints: np.ndarray
    rows: int
    _pattern: dict = field(default_factory=dict, repr=False)

    @property
    def period(self) -> int:
        return len(self.runs) * len(self.checkpoints)

    @property
    def n(self) -> int:
        return self.rows // self.period

    def pattern(self, row0: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(run, checkpoint, whether an id starts) of rows row0 … row0 + m − 1: views of arrays made once."""
        off, need = row0 % self.period, row0 % self.period + m
        if self._pattern.get("rows", 0) < need:
            reps = -(-max(need, 65536) // self.period)
            k = len(self.checkpoints)
            self._pattern.update(rows=reps * self.period, run=np.tile(np.repeat(self.runs, k), reps),
                                 checkpoint=np.tile(self.checkpoints, reps * len(self.runs)),
                                 start=np.tile(np.r_[True, np.zeros(self.period - 1, bool)], reps))
        return tuple(self._pattern[c][off:need] for c in ("run", "checkpoint", "start"))


def _ids_go_down(ds: ParquetDataset) -> bool:
    """Whether the row groups' statistics of ``id`` show an id below one of an earlier row group (the table is then
    not sorted by id; it costs the files' footers, which are read already)."""
    last = None
    for fi, rg, _first, _rows in ds.row_groups:
        md = ds._pf(fi).metadata
        col = md.schema.to_arrow_schema().get_field_index("id")
        stats = md.row_group(rg).column(col).statistics
        if stats is None or not stats.has_min_max:
            return False
        if last is not None and stats.min < last:
            return True
        last = stats.max
    return False


def sorted_layout(table: DynamicsTable, limit: int = MAX_CHECKPOINT) -> Layout | None:
    """The :class:`Layout` the first id's rows show, or None when the table cannot have one (an id that comes back
    in a later row group, rows that are not a multiple of the first id's, a first id whose (run, checkpoint)
    pairs are not every run at every checkpoint in increasing order, a null or more than ``limit`` rows in it).

    Only a guess: :func:`sorted_block` checks every row against it.
    """
    ds = table.ds
    if _ids_go_down(ds):
        return None
    cols = [c for c in ("id", "run", "checkpoint") if c in table.names]
    parts: list[pa.Table] = []
    first = None
    for t in ds.iter_tables(cols, 0, ds.n, 1024):
        ids = t.column("id").combine_chunks()
        if first is None:
            if ids.null_count:
                return None
            first = ids[0]
        if ids.null_count:  # a null (past the first 1,024 rows) ends the first id's rows; the pass refuses it
            import pyarrow.compute as pc

            same = pc.fill_null(pc.equal(ids, first), False).to_numpy(zero_copy_only=False)
        else:  # int64 or str values, compared exactly in numpy (no pyarrow.compute to import for this)
            same = ids.to_numpy(zero_copy_only=False) == first.as_py()
        end = int(np.argmin(same)) if not same.all() else len(same)
        parts.append(t.slice(0, end))
        if end < len(same) or sum(p.num_rows for p in parts) > limit:
            break
    head = pa.concat_tables(parts)
    if head.num_rows > limit or any(head.column(c).null_count for c in cols):
        return None
    ck = head.column("checkpoint").to_numpy().astype(np.int64)
    run = head.column("run").to_numpy().astype(np.int64) if "run" in table.names else np.zeros(len(ck), np.int64)
    runs, checkpoints = np.unique(run), np.unique(ck)
    layout = Layout(runs, checkpoints, ds.n)
    if ds.n % layout.period or len(ck) != layout.period:
        return None
    if not (np.array_equal(run, np.repeat(runs, len(checkpoints))) and np.array_equal(ck, np.tile(checkpoints,
                                                                                                  len(runs)))):
        return None
    return layout


def layout_epochs(table: DynamicsTable, layout: Layout, block_rows: int) -> np.ndarray | None:
    """The smallest ``epoch`` at each checkpoint of ``layout`` as :class:`KeyIndex` finds it (a block with a null
    epoch is left out, as there; None unless every checkpoint has one), from the ``epoch`` column alone: row j is
    at the layout's checkpoint j mod K (true of every row once the one pass has checked them all)."""
    k = len(layout.checkpoints)
    acc = np.full(k, np.inf)
    batch = max(1, min(block_rows, BATCH_BYTES // 9))
    for b, t in enumerate(table.ds.iter_tables(["epoch"], 0, table.ds.n, block_rows, batch)):
        e = t.column("epoch")
        if not e.null_count:  # every K-th row from row j of the block is at checkpoint (row0 + j) mod K
            v, off = _float64(e), (b * block_rows) % k
            for j in range(min(k, len(v))):
                acc[(off + j) % k] = np.minimum(acc[(off + j) % k], v[j::k].min())
    return _epoch_at(acc, np.arange(k))


def sorted_block(t: pa.Table, table: DynamicsTable, layout: Layout, row0: int) -> dict[str, Any] | None:
    """The key columns of one block of a one-pass read (:func:`key_block`, with its errors), checked against
    ``layout``; None when a row breaks it (the caller then reads the table in two passes).

    Returns the decoded keys (``keys``), whether the block's first row starts an id (``starts``), the ids and
    labels of the ids that start in this block, the block's first and last id and label, and ``bad_label``: the
    first row whose label differs from the row before it of the same id (−1: none).
    """
    keys = key_block(t, table, row0)
    ids, run, ck, label = keys["id"], keys["run"], keys["checkpoint"], keys["label"]
    m = len(ids)
    want_run, want_ck, start = layout.pattern(row0, m)
    if not (np.array_equal(ck, want_ck) and np.array_equal(run, want_run)):
        return None
    inner = ~start[1:]  # row j + 1 continues the id of row j
    same = ids[1:] == ids[:-1]
    if not np.array_equal(same, inner) or not (ids[1:][~inner] > ids[:-1][~inner]).all():
        return None
    bad = -1
    if label is not None and m > 1:
        diff = np.flatnonzero((label[1:] != label[:-1]) & inner)
        bad = int(diff[0]) + 1 if len(diff) else -1
    first = -(row0 % -layout.period)  # the first row that starts an id
    return {"keys": keys, "starts": bool(start[0]), "ids": ids[first::layout.period],
            "label": None if label is None else label[first::layout.period],
            "first": (ids[0], None if label is None else label[0]),
            "last": (ids[-1], None if label is None else label[-1]), "bad_label": bad}


def block_label_error(table: DynamicsTable, row0: int, keys: dict[str, Any], j: int, ref: Any) -> InputError:
    """The message :class:`KeyIndex` gives for row j of a block whose label differs from its id's (``ref``)."""
    ids, run, ck, label = keys["id"], keys["run"], keys["checkpoint"], keys["label"]
    file, where = table.where(row0, ids, run, ck, j)
    return InputError(f"column 'label' is {int(label[j])} at {where} but an earlier row of id {_py(ids[j])!r} "
                      f"has {int(ref)}; an example has one label", file)


@dataclass
class SortedIndex:
    """The client's side of a one-pass read: it takes the blocks' :func:`sorted_block` results in order, checks
    that each block continues the one before (the same id, or a larger one where an id starts) and the labels
    across blocks, and gathers the ids and their labels."""

    table: DynamicsTable
    layout: Layout
    ids: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    last: tuple | None = None

    def add(self, block: dict[str, Any], row0: int) -> bool:
        """Take one block; False when it does not continue the previous one as the layout says (read the table in
        two passes then); an :class:`InputError` for a label that differs from its id's."""
        (first_id, first_label), starts_id = block["first"], block["starts"]
        if self.last is not None:
            last_id, last_label = self.last
            if not (first_id > last_id if starts_id else first_id == last_id):
                return False
            if not starts_id and first_label is not None and first_label != last_label:
                raise block_label_error(self.table, row0, block["keys"], 0, last_label)
        if block["bad_label"] >= 0:
            keys, j = block["keys"], block["bad_label"]
            raise block_label_error(self.table, row0, keys, j, keys["label"][j - 1])
        self.ids.append(block["ids"])
        if block["label"] is not None:
            self.labels.append(block["label"])
        self.last = block["last"]
        return True

    def finish(self, epoch: np.ndarray | None) -> Keys:
        """The :class:`Keys` of the table (``epoch`` from :func:`layout_epochs`, when it was needed)."""
        ids = np.concatenate(self.ids)
        kind = pa.string() if ids.dtype == object else pa.int64()
        label = np.concatenate(self.labels).astype(np.int64) if "label" in self.table.names else None
        return Keys(pa.array(ids, kind), self.layout.runs, self.layout.checkpoints, epoch, label, True,
                    self.layout.rows)


# --------------------------------------------------------------------------- the values pass


def _vectors(col: pa.ChunkedArray, name: str, width: int, table: DynamicsTable, row0: int, ids, run, ck) -> np.ndarray:
    """A list column of one block as a float32 (m, width) matrix; an :class:`InputError` naming the first row of
    another width, with a null, or with a NaN or infinite value."""
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        file, where = table.where(row0, ids, run, ck, i)
        raise InputError(f"column '{name}' is null at {where}; every row needs a vector", file)
    if pa.types.is_fixed_size_list(arr.type):
        lengths = np.full(1 if arr.type.list_size == width else len(arr), arr.type.list_size)
    else:
        import pyarrow.compute as pc

        lengths = pc.list_value_length(arr).to_numpy()
    bad = lengths != width
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        file, where = table.where(row0, ids, run, ck, i)
        unit = "C = the number of classes" if VECTOR_COLUMNS.get(name) == "C" else "D"
        raise InputError(f"column '{name}' has {int(lengths[i])} values at {where} but {width} in its first row; "
                         f"every row needs the same width ({unit})", file)
    if pa.types.is_fixed_size_list(arr.type):  # its values, as flatten() gives them (which loads pyarrow.compute)
        flat = arr.values.slice(arr.offset * arr.type.list_size, len(arr) * arr.type.list_size)
    else:
        flat = arr.flatten()
    if flat.null_count:
        raise InputError(f"column '{name}' holds null values inside a vector; fill or drop them", table.path)
    x = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(arr), width)
    _finite(x.reshape(len(arr), -1), name, table, row0, ids, run, ck)
    return x


def _finite(x: np.ndarray, name: str, table: DynamicsTable, row0: int, ids, run, ck, nonneg: bool = False) -> None:
    # the common case at the cost of one test a value; only then the row-wise pass, which names the first bad row
    if np.isfinite(x).all() and not (nonneg and x.min(initial=0.0) < 0):
        return
    rows = x if x.ndim == 2 else x[:, None]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(rows).all(axis=1)
        neg = (rows < 0).any(axis=1) if nonneg else np.zeros(len(rows), bool)
    if bad.any() or neg.any():
        i = int(np.flatnonzero(bad | neg)[0])
        file, where = table.where(row0, ids, run, ck, i)
        what = "a NaN or infinite value" if bad[i] else "a negative value"
        raise InputError(f"column '{name}' has {what} at {where}; fix or drop that row", file)


def value_block(t: pa.Table, table: DynamicsTable, columns: tuple[str, ...], row0: int,
                keys: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode and check the value ``columns`` of one block, with its ``id``, ``run`` and ``checkpoint`` (decoded
    here, or taken from ``keys``, the block's :func:`key_block`).

    Vectors come as float32 (m, C) or (m, D) matrices (a view of the Arrow buffer when the block is one chunk of
    float32 values), numbers as float64, ``correct`` as bool.
    """
    if keys is None:
        ids = io.id_type(t.column("id").combine_chunks(), table.path).to_numpy(zero_copy_only=False)
        m = len(ids)
        run = t.column("run").to_numpy().astype(np.int64) if "run" in table.names else np.zeros(m, np.int64)
        ck = t.column("checkpoint").to_numpy().astype(np.int64)
    else:
        ids, run, ck = keys["id"], keys["run"], keys["checkpoint"]
    out: dict[str, Any] = {"id": ids, "run": run, "checkpoint": ck}
    for name in columns:
        col = t.column(name)
        if name in VECTOR_COLUMNS:
            width = table.grad_dim if name == "input_grad" else table.n_classes
            out[name] = _vectors(col, name, width, table, row0, ids, run, ck)
            continue
        arr = col.combine_chunks()
        if arr.null_count:
            i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
            file, where = table.where(row0, ids, run, ck, i)
            raise InputError(f"column '{name}' is null at {where}; fill it", file)
        if name == "correct":
            out[name] = arr.to_numpy(zero_copy_only=False).astype(bool)
            continue
        v = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        _finite(v, name, table, row0, ids, run, ck, nonneg=NUMBER_COLUMNS.get(name, False))
        out[name] = v
    return out


#: Bytes of Arrow memory a block of the dynamics table is decoded in at most, in one batch (one chunk: its
#: columns then become numpy arrays without a copy); larger blocks are decoded in several batches.
BATCH_BYTES = 64 << 20


def row_bytes(schema: pa.Schema, columns: list[str]) -> int | None:
    """Bytes a row of ``columns`` takes in Arrow memory, or None when a column's width varies by row."""
    total = 0
    for name in columns:
        t = schema.field(name).type
        width = 1
        if pa.types.is_fixed_size_list(t):
            t, width = t.value_type, t.list_size
        if not pa.types.is_primitive(t):
            return None
        total += width * max(t.bit_width // 8, 1) + 1
    return total


class BlockTables:
    """Blocks of some columns of a dataset as Arrow tables (a block source for the engines; pickles by path).

    A block is decoded in one batch when its rows fit :data:`BATCH_BYTES`, its columns on pyarrow's threads,
    and the next block is decoded in a background thread while this one is worked on
    (:func:`~dataselect_cli.pqdataset.prefetch`).
    """

    def __init__(self, ds: ParquetDataset, columns: list[str]):
        self.ds, self.columns, self.n = ds, columns, ds.n
        self.row_bytes = row_bytes(ds.schema, columns)

    def iter_blocks(self, b0: int, b1: int, block_rows: int) -> Iterator[tuple[int, pa.Table]]:
        batch = None
        if self.row_bytes is not None:
            batch = max(1, min(block_rows, BATCH_BYTES // self.row_bytes))
        yield from enumerate(prefetch(self.ds.iter_tables(self.columns, b0 * block_rows, min(self.n, b1 * block_rows),
                                                          block_rows, batch, threads=True)), start=b0)


# --------------------------------------------------------------------------- the per-example table


@dataclass
class Examples:
    """The per-example table in memory: ``ids`` (n), ``label`` (int64, or None), and any of ``loss`` (float64),
    ``logits`` / ``probs`` (float32 (n, C)), ``group`` (Arrow)."""

    ids: pa.Array
    path: str
    label: np.ndarray | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int | None:
        for name in ("logits", "probs"):
            if name in self.columns:
                return self.columns[name].shape[1]
        return None


def read_examples(path: str) -> Examples:
    """Read and check a per-example table: ``id`` (unique), optional ``label`` (int, 0..C−1), ``logits`` or
    ``probs`` (one vector of C values a row; probabilities >= 0 that sum to 1), ``loss`` (finite, >= 0), ``group``."""
    ds = ParquetDataset(path, "table")
    ds.require(["id"], "examples")
    ids = io.read_ids(ds, path)
    names = set(ds.schema.names)
    ex = Examples(ids, path)
    idv = ids.to_numpy(zero_copy_only=False)

    def first_bad(bad: np.ndarray, what: str) -> None:
        rows = np.flatnonzero(bad)
        raise InputError(f"{what} at row {int(rows[0])} (ids {_show([idv[r] for r in rows.tolist()])})", path)

    for name in ("logits", "probs"):
        if name in names:
            col = ds.read_column(name).combine_chunks()
            if col.null_count:
                first_bad(col.is_null().to_numpy(zero_copy_only=False), f"column '{name}' is null")
            x, _ = io.list_block(col, path, name, 0, None)
            bad = ~np.isfinite(x).all(axis=1)
            if bad.any():
                first_bad(bad, f"column '{name}' has a NaN or infinite value")
            if name == "probs":
                bad = (x < 0).any(axis=1) | (np.abs(x.astype(np.float64).sum(axis=1) - 1) > 1e-3)
                if bad.any():
                    first_bad(bad, "column 'probs' is not a probability vector (values >= 0 summing to 1)")
            ex.columns[name] = x
    if "logits" in ex.columns and "probs" in ex.columns and ex.columns["logits"].shape != ex.columns["probs"].shape:
        raise InputError("columns 'logits' and 'probs' have different widths", path)
    if "label" in names:
        col = ds.read_column("label").combine_chunks()
        if not pa.types.is_integer(col.type):
            raise InputError(f"column 'label' has type {col.type}; labels are class indices 0..C−1", path)
        if col.null_count:
            first_bad(col.is_null().to_numpy(zero_copy_only=False), "column 'label' is null (an id without a label)")
        label = col.to_numpy().astype(np.int64)
        c = ex.n_classes
        bad = (label < 0) | (label >= c) if c is not None else label < 0
        if bad.any():
            allowed = f"0..{c - 1} (C = {c})" if c is not None else ">= 0"
            first_bad(bad, f"column 'label' lies outside {allowed}")
        ex.label = label
    if "loss" in names:
        col = ds.read_column("loss").combine_chunks()
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise InputError(f"column 'loss' has type {col.type}; losses must be numbers", path)
        if col.null_count:
            first_bad(col.is_null().to_numpy(zero_copy_only=False), "column 'loss' is null")
        loss = col.cast(pa.float64()).to_numpy()
        bad = ~np.isfinite(loss) | (loss < 0)
        if bad.any():
            first_bad(bad, "column 'loss' has a NaN, infinite or negative value")
        ex.columns["loss"] = loss
    if "group" in names:
        ex.columns["group"] = ds.read_column("group").combine_chunks()
    return ex
