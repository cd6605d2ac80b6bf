"""``dataselect score`` for the per-example methods: scores from the dynamics table, the per-example table or
the embeddings, one row per id.

Rows: with ``--examples``, one per row of the examples table, in its order (it is the list of the
training examples); otherwise one per id of the dynamics table in first-seen order, or of the
embeddings file in its order (``leverage``). Both orders are properties of the files, so the output is
the same whatever the block size or engine.

The dynamics table is read in two passes of blocks (:mod:`dataselect_cli.dyntable`): the key pass
checks its structure before any value is decoded; the values pass computes each method's per-row values
on the engine and reduces them per (id, run) here, in row order (``np.add.at`` adds one row after the
other), so a block size of 1 and one block of every row give the same bytes. Memory: a few numbers per
(id, run), one bit per (id, run, checkpoint) and one label per id; VoG also holds the K gradients of each
(id, run) whose rows have not all been read yet — one or a few for a table sorted by (id, run,
checkpoint), every row's for a table in another order (refused when that exceeds half of
``--memory-limit``: sort the table).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, dyntable, grid, io
from ..dataset import read_embeddings
from ..dyntable import BlockTables, Examples, KeyIndex, Keys
from ..engine import map_pass
from ..errors import InputError
from ..methods.base import ExampleMethod, ExampleState, Inputs, Route
from .common import Note, Scale, embeddings_source, gb, quiet, skip

# --------------------------------------------------------------------------- passes


def _key_block(b: int, t: pa.Table, table, block_rows: int) -> dict[str, Any]:
    return dyntable.key_block(t, table, b * block_rows)


def key_pass(table: dyntable.DynamicsTable, scale: Scale) -> Keys:
    """The key pass over a dynamics table (:class:`~dataselect_cli.dyntable.KeyIndex`)."""
    index = KeyIndex(table)
    src = BlockTables(table.ds, dyntable.key_columns(table))
    for b, block in enumerate(map_pass(scale.engine, "dynamics: ids, runs, checkpoints", _key_block, src,
                                       scale.block_rows, {"table": table, "block_rows": scale.block_rows},
                                       scale.progress)):
        index.add(block, b * scale.block_rows)
    return index.finish()


#: The reductions a one-checkpoint score takes at its checkpoint only (``bits`` and ``spread`` read every one).
AT_ONE = {"mean", "sum", "var"}


def _values_block(b: int, t: pa.Table, table, keys: Keys, perm: np.ndarray, labels, method: ExampleMethod,
                  state: ExampleState, columns: tuple[str, ...], block_rows: int):
    cols = dyntable.value_block(t, table, columns, b * block_rows)  # every row is checked
    if state.checkpoint is not None and set(method.stats.values()) <= AT_ONE:
        # a one-checkpoint score: only that checkpoint's rows are computed (their values are row-wise, so the
        # same as when every row is computed and the others dropped, as the Reducer does)
        sel = np.flatnonzero(cols["checkpoint"] == keys.checkpoints[state.checkpoint])
        cols = {name: (v[sel] if v is not None else None) for name, v in cols.items()}
    i, r, k = keys.index(cols["id"], cols["run"], cols["checkpoint"])
    o = perm[i]
    cols["label"] = labels[o] if labels is not None else None
    return o, r, k, method.row_values(cols, state)


class Reducer:
    """Per-(id, run) reductions of per-row values, added in row order (see :data:`~dataselect_cli.methods.base.REDUCTIONS`).

    Parameters
    ----------
    stats : dict
        Value name → reduction.
    n, runs, k : int
        Ids, runs and checkpoints.
    at : int or None
        The checkpoint index the ``mean``, ``sum`` and ``var`` values are taken at (None: all of them).
    spread : callable or None
        ``spread(grads (K, D))`` → float, for the ``spread`` reduction.
    spread_many : callable or None
        ``spread_many(grads (G, K, D))`` → (G,), the same as G calls of ``spread``: used for the (id, run) pairs
        whose K rows all lie in one block (every pair of a table sorted by id).
    """

    def __init__(self, stats: dict[str, str], n: int, runs: int, k: int, at: int | None = None, spread=None,
                 spread_many=None):
        self.stats, self.n, self.runs, self.k, self.at, self.spread = stats, n, runs, k, at, spread
        self.spread_many = spread_many
        self.acc: dict[str, np.ndarray] = {}
        self.open: dict[int, list] = {}
        for name, kind in stats.items():
            if kind == "bits":
                self.acc[name] = np.zeros((n, runs, (k + 7) // 8), np.uint8)
            else:
                self.acc[name] = np.zeros((n, runs))
            if kind == "var":
                self.acc[name + "_sq"] = np.zeros((n, runs))
                self.acc[name + "_shift"] = np.zeros((n, runs))
                self.acc[name + "_has"] = np.zeros((n, runs), bool)

    def add(self, o: np.ndarray, r: np.ndarray, k: np.ndarray, values: dict[str, np.ndarray]) -> None:
        # ufunc.at on a flat view with one index array: the same additions in the same order as on (o, r) of the
        # (n, runs) array, many times faster
        slot = o * self.runs + r
        taken = slice(None) if self.at is None else k == self.at
        for name, kind in self.stats.items():
            v = values[name]
            if kind == "bits":
                on = np.asarray(v, bool)
                w = self.acc[name].shape[2]
                np.bitwise_or.at(self.acc[name].reshape(-1), slot[on] * w + (k[on] >> 3),
                                 (1 << (k[on] & 7)).astype(np.uint8))
            elif kind == "spread":
                self._buffer(name, o, r, k, v)
            else:
                ss, vv = slot[taken], v[taken]
                if kind == "var":
                    vv = self._shifted(name, ss, vv)
                    np.add.at(self.acc[name + "_sq"].reshape(-1), ss, vv * vv)
                np.add.at(self.acc[name].reshape(-1), ss, vv)

    def _shifted(self, name: str, slot: np.ndarray, v: np.ndarray) -> np.ndarray:
        """v minus the first value of its (id, run) in row order (the shift that keeps the variance accurate)."""
        shift, has = self.acc[name + "_shift"].reshape(-1), self.acc[name + "_has"].reshape(-1)
        need = ~has[slot]
        if need.any():
            _, first = np.unique(slot[need], return_index=True)
            rows = np.flatnonzero(need)[first]
            shift[slot[rows]] = v[rows]
            has[slot[rows]] = True
        return v - shift[slot]

    def _buffer(self, name: str, o, r, k, x) -> None:
        slot = o * self.runs + r
        order = np.argsort(slot, kind="stable")
        uniq, starts, counts = np.unique(slot[order], return_index=True, return_counts=True)
        # pairs with all K rows in this block (the key pass ruled out duplicates, so none of them is open)
        whole = counts == self.k
        if self.spread_many is not None and whole.any():
            rows = order[np.repeat(whole, counts)]  # grouped by pair, in row order within a pair
            g = np.empty((int(whole.sum()), self.k, x.shape[1]), np.float32)
            g[np.repeat(np.arange(len(g)), self.k), k[rows]] = x[rows]
            self.acc[name].reshape(-1)[uniq[whole]] = self.spread_many(g)
            keep = ~whole
            order, uniq, counts = order[np.repeat(keep, counts)], uniq[keep], counts[keep]
            starts = np.cumsum(counts) - counts
        for s, rows in zip(uniq.tolist(), np.split(order, starts[1:])):
            buf = self.open.get(s)
            if buf is None:
                buf = self.open[s] = [np.empty((self.k, x.shape[1]), np.float32), 0]
            buf[0][k[rows]] = x[rows]
            buf[1] += len(rows)
            if buf[1] == self.k:
                self.acc[name][s // self.runs, s % self.runs] = self.spread(buf[0])
                del self.open[s]

    def result(self) -> dict[str, np.ndarray]:
        """Per (id, run): ``mean`` the mean over the checkpoints taken, ``sum`` the sum, ``var`` the mean (name)
        and the population variance (name_var), ``bits`` the packed bits, ``spread`` the spread."""
        out = {}
        taken = self.k if self.at is None else 1
        for name, kind in self.stats.items():
            a = self.acc[name]
            if kind == "mean":
                out[name] = a / taken
            elif kind == "var":
                m1 = a / taken
                out[name] = self.acc[name + "_shift"] + m1
                out[name + "_var"] = np.maximum(self.acc[name + "_sq"] / taken - m1 * m1, 0.0)
            else:
                out[name] = a
        return out


def _first_block(b: int, x: np.ndarray, method, state):
    return method.first_block(b, x, state)


def _second_block(b: int, x: np.ndarray, method, state):
    return method.second_block(b, x, state)


# --------------------------------------------------------------------------- rows and labels


def _labels(inputs: Inputs, route: Route, out_ids: pa.Array, perm: np.ndarray | None) -> np.ndarray | None:
    """One label per output row (−1 where none), from the dynamics table (via ``perm``) and the examples table."""
    labels = None
    ex = inputs.examples
    if ex is not None and ex.label is not None:
        labels = ex.label if route.kind != "embeddings" else ex.label[io.lookup(ex.ids, out_ids, ex.path,
                                                                                "embeddings")]
    keys = inputs.keys
    if route.kind == "dynamics" and keys is not None and keys.label is not None:
        dyn = np.full(len(out_ids), -1, np.int64)
        dyn[perm] = keys.label
        if labels is not None:
            bad = (dyn >= 0) & (dyn != labels)
            if bad.any():
                shown = dyntable._show(out_ids.filter(pa.array(bad)).to_pylist())
                raise InputError(f"the dynamics table's labels differ from the examples table's for ids {shown}; "
                                 "an example has one label", ex.path)
            labels = np.where(labels >= 0, labels, dyn)
        else:
            labels = dyn
    return labels


def rows_of(inputs: Inputs, route: Route) -> tuple[pa.Array, np.ndarray | None]:
    """(the output's ids, the output position of each dynamics id) for a route; see the module docstring."""
    ex, keys = inputs.examples, inputs.keys
    if route.kind != "dynamics":
        return (ex.ids if route.kind == "examples" else None), None
    if ex is None:
        return keys.ids, np.arange(keys.n)
    perm = io.lookup(ex.ids, keys.ids, ex.path, "dynamics table", "; every id of the dynamics table needs a row "
                     "in --examples")
    if len(ex.ids) > keys.n:
        lacking = np.ones(len(ex.ids), bool)
        lacking[perm] = False
        shown = dyntable._show(ex.ids.filter(pa.array(lacking)).to_pylist())
        raise InputError(f"{int(lacking.sum())} ids have no rows in the dynamics table: {shown}; score the "
                         "examples the dynamics table holds (drop these rows, or record their dynamics)", ex.path)
    return ex.ids, perm


def check_labels(method: ExampleMethod, route: Route, inputs: Inputs, ids: pa.Array, labels) -> None:
    """An id without a label when the method needs one, or a label beyond the classes of the logits."""
    need = method.needs_label(route)
    c = inputs.dynamics.n_classes if route.kind == "dynamics" else (
        inputs.examples.n_classes if route.kind == "examples" else None)
    if need and labels is None:
        raise InputError(f"--method {method.name} needs labels: give the dynamics table a 'label' column, or pass "
                         "--examples with columns id, label")
    if labels is None:
        return
    if need and (labels < 0).any():
        missing = labels < 0
        raise InputError(f"{int(missing.sum())} ids have no label: {dyntable._show(ids.filter(pa.array(missing)).to_pylist())}; "
                         "every example needs a label (the dynamics table's 'label' or --examples)")
    if c is not None and (labels >= c).any():
        bad = labels >= c
        raise InputError(f"labels must lie in 0..{c - 1} (C = {c}, the width of the logits); ids "
                         f"{dyntable._show(ids.filter(pa.array(bad)).to_pylist())} have larger labels")


# --------------------------------------------------------------------------- the run


def run_example_score(method: ExampleMethod, inputs: Inputs, *, note: Note = quiet,
                      scale: Scale | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Score every example with a per-example method; return (scores table, summary)."""
    scale = scale or Scale()
    state, summary = method.prepare(inputs, note)
    route = state.route
    if route.kind == "embeddings":
        ids, score, lev = _leverage(method, inputs, scale, note)
        labels = _labels(inputs, route, ids, None) if inputs.examples is not None else None
        columns = {"score": score}
        summary.update(lev)
    else:
        ids, perm = rows_of(inputs, route)
        labels = _labels(inputs, route, ids, perm)
        check_labels(method, route, inputs, ids, labels)
        stats = _dynamics_stats(method, state, inputs, perm, labels, scale) if route.kind == "dynamics" \
            else _examples_stats(method, state, inputs.examples, labels)
        if labels is not None:
            stats["label"] = labels
        if getattr(method, "needs_features", lambda r: False)(route):
            stats["feature_sqnorm"] = _feature_sqnorm(inputs.embeddings, ids, note)
        columns = method.finish_ids(stats, state)
    table = {"id": ids, "score": np.asarray(columns["score"], np.float64)}
    if labels is not None and (labels >= 0).all():
        table["label"] = pa.array(labels.astype(np.int32), pa.int32())
    for name in method.columns:
        table[name] = columns[name]
    summary = {"n": len(ids), **summary, "method": method.name, "direction": method.direction,
               "normalization": method.normalization}
    if route.kind == "dynamics" and len(inputs.keys.runs) > 1:
        summary["run_average"] = "each run's score, then the mean over runs"
    return pa.table(table), summary


def _dynamics_stats(method: ExampleMethod, state: ExampleState, inputs: Inputs, perm, labels, scale: Scale):
    table, keys = inputs.dynamics, inputs.keys
    route = state.route
    columns = tuple(dict.fromkeys([*route.columns, *(c for c in method.optional_columns if c in table.names)]))
    if "spread" in method.stats.values() and not keys.grouped:
        need = keys.rows * (table.grad_dim or 0) * 4
        if need > scale.memory_limit // 2:
            raise InputError(f"the rows of an id are not together, so --method {method.name} would hold up to "
                             f"{gb(need)} of input gradients (more than half of --memory-limit); sort the table by "
                             "id, run, checkpoint (e.g. with pyarrow or DuckDB) and run again", table.path)
    red = Reducer(method.stats, len(perm), len(keys.runs), len(keys.checkpoints), state.checkpoint,
                  getattr(method, "spread", None), getattr(method, "spread_many", None))
    src = BlockTables(table.ds, ["id", *(["run"] if "run" in table.names else []), "checkpoint", *columns])
    shared = {"table": table, "keys": keys, "perm": perm, "labels": labels, "method": method, "state": state,
              "columns": columns, "block_rows": scale.block_rows}
    for o, r, k, values in map_pass(scale.engine, f"score ({method.name})", _values_block, src, scale.block_rows,
                                    shared, scale.progress):
        red.add(o, r, k, values)
    return red.result()


def _examples_stats(method: ExampleMethod, state: ExampleState, ex: Examples, labels) -> dict[str, np.ndarray]:
    n = len(ex.ids)
    cols = {"label": labels, **{name: ex.columns.get(name) for name in ("logits", "probs", "loss")}}
    if "probs" in state.route.columns:
        cols["logits"] = None
    red = Reducer(method.stats, n, 1, 1, None, getattr(method, "spread", None))
    zero = np.zeros(n, np.int64)
    red.add(np.arange(n), zero, zero, method.row_values(cols, state))
    return red.result()


def _feature_sqnorm(path: str, ids: pa.Array, note: Note) -> np.ndarray:
    """‖h‖² of each output id's row of the embeddings file (GraNd's last-layer features)."""
    eids, x = read_embeddings(path, warn=note)
    pos = io.lookup(eids, ids, path, "scored", "; --embeddings must hold every scored id")
    v = x[pos].astype(np.float64)
    return (v * v).sum(axis=1)


def _leverage(method, inputs: Inputs, scale: Scale, note: Note) -> tuple[pa.Array, np.ndarray, dict[str, Any]]:
    from ..methods.leverage import LeverageState

    ids, source, _ = embeddings_source(inputs.embeddings, scale, note)
    state = LeverageState(d=source.d, n=source.n)
    acc = None
    for part in map_pass(scale.engine, "leverage: pass 1", _first_block, source, scale.block_rows,
                         {"method": method, "state": state}, scale.progress):
        acc = method.combine(acc, part)
    info = method.between(acc, state)
    score = np.empty(source.n)
    for b, h in enumerate(map_pass(scale.engine, "leverage: pass 2", _second_block, source, scale.block_rows,
                                   {"method": method, "state": state}, scale.progress)):
        lo, hi = grid.block_bounds(b, source.n, scale.block_rows)
        score[lo:hi] = h
    info["sum"] = grid.total(grid.block_sums(score, scale.block_rows))
    return ids, score, info


# --------------------------------------------------------------------------- the file-level step


def score_examples_file(method: ExampleMethod, out: str, *, dynamics: str | None = None, examples: str | None = None,
                        embeddings: str | None = None, prm: dict[str, Any], note: Note = quiet,
                        scale: Scale | None = None) -> dict[str, Any]:
    """Write the scores file of a per-example method; return its summary."""
    scale = scale or Scale()
    given = {"dynamics": dynamics, "examples": examples, "embeddings": embeddings}
    method.check({kind for kind, p in given.items() if p})
    io.check_output_path(out, [p for p in given.values() if p])
    fps = dataset.input_fingerprints(given)
    if (done := skip([out], "score", prm, fps, None, note)) is not None:
        return done
    inputs = Inputs(examples=dyntable.read_examples(examples) if examples else None,
                    dynamics=dyntable.open_dynamics(dynamics) if dynamics else None, embeddings=embeddings)
    route = method.route(inputs)
    for kind, p in given.items():
        used = kind == route.kind or kind in route.also or (kind == "examples" and route.kind != "examples")
        if p and not used:
            note(f"note: --{kind} is not used by --method {method.name} here (it reads --{route.kind})")
    if route.kind == "dynamics":
        inputs.keys = key_pass(inputs.dynamics, scale)
    table, summary = run_example_score(method, inputs, note=note, scale=scale)
    io.write_table(table, out, io.make_meta("score", prm, fps, summary))
    return summary
