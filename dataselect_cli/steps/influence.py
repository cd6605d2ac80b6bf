"""``dataselect score`` for the per-example methods: scores from the dynamics table, the per-example table or
the embeddings, one row per id.

Rows: with ``--examples``, one per row of the examples table, in its order (it is the list of the
training examples); otherwise one per id of the dynamics table in first-seen order, or of the
embeddings file in its order (``leverage``). Both orders are properties of the files, so the output is
the same whatever the block size or engine.

A dynamics table sorted by (id, run, checkpoint), with every id at the same runs and checkpoints, is read
once (:func:`one_pass`, without ``--examples``): each block's keys are checked as the key pass checks them
and against the layout the first id's rows show while its values are reduced. Any other table (or one
that turns out not to follow its layout, found at the first block that breaks it) is read in two passes
of blocks (:mod:`dataselect_cli.dyntable`): the key pass checks its structure before any value is decoded;
the values pass computes each method's per-row values on the engine. Either way the values are reduced per
(id, run) here, in row order (``np.add.at`` adds one row after the other), so a block size of 1 and one
block of every row, and one pass or two, give the same bytes; and the errors are the same: the key checks
of a block come before its values' (a value error found in the one pass is raised only once every key has
been checked, as the two passes would find a key error first). Memory: a few numbers per (id, run), one
bit per (id, run, checkpoint) and one label per id; VoG also holds a running mean and variance (2·D numbers)
for each (id, run) whose rows have not all been read yet — one or a few for a table sorted by (id, run,
checkpoint), every one for a table in another order (refused when that exceeds half of ``--memory-limit``:
sort the table).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import dyntable, grid, io, outputs
from ..dataset import read_embeddings
from ..fingerprints import PendingFingerprints
from ..dyntable import BlockTables, Examples, KeyIndex, Keys
from ..engine import map_pass
from ..errors import InputError
from ..methods import _math
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


def _at_one(cols: dict[str, Any], method: ExampleMethod, state: ExampleState, checkpoints: np.ndarray) -> dict:
    """A one-checkpoint score's rows: only that checkpoint's are computed (their values are row-wise, so the same
    as when every row is computed and the others dropped, as the Reducer does)."""
    if state.checkpoint is None or not set(method.stats.values()) <= AT_ONE:
        return cols
    sel = np.flatnonzero(cols["checkpoint"] == checkpoints[state.checkpoint])
    return {name: (v[sel] if v is not None else None) for name, v in cols.items()}


def _values_block(b: int, t: pa.Table, table, keys: Keys, perm: np.ndarray, labels, method: ExampleMethod,
                  state: ExampleState, columns: tuple[str, ...], block_rows: int):
    cols = dyntable.value_block(t, table, columns, b * block_rows)  # every row is checked
    cols = _at_one(cols, method, state, keys.checkpoints)
    i, r, k = keys.index(cols["id"], cols["run"], cols["checkpoint"])
    o = perm[i]
    cols["label"] = labels[o] if labels is not None else None
    return o, r, k, method.row_values(cols, state)


def _sorted_block(b: int, t: pa.Table, table, layout: dyntable.Layout, method: ExampleMethod, state: ExampleState,
                  columns: tuple[str, ...], block_rows: int):
    """One block of the one pass: (its :func:`~dataselect_cli.dyntable.sorted_block`, the Reducer's arguments);
    None when the block breaks the layout; the block's first value error in place of the Reducer's arguments
    (raised once every key is checked)."""
    row0 = b * block_rows
    blk = dyntable.sorted_block(t, table, layout, row0)
    if blk is None:
        return None
    keys = blk["keys"]
    try:
        cols = dyntable.value_block(t, table, columns, row0, keys)  # every row is checked
    except InputError as exc:
        return blk, exc
    cols["label"] = keys["label"]
    k = len(layout.checkpoints)
    rows = np.arange(len(keys["id"]))
    if state.checkpoint is not None and set(method.stats.values()) <= AT_ONE:
        # as _at_one: that checkpoint's rows are every K-th, a strided view
        take = slice((state.checkpoint - row0) % k, None, k)
        cols = {name: (v[take] if v is not None else None) for name, v in cols.items()}
        rows = rows[take]
    o, pos = np.divmod(row0 + rows, layout.period)  # the id's number, its (run, checkpoint) number
    r, ck = np.divmod(pos, k)
    return blk, (o, r, ck, method.row_values(cols, state))


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
        ``spread(var (G, D))`` → (G,), for the ``spread`` reduction: a value of G (id, run) pairs from the
        per-element population variances of their K vectors. The variances are kept by Welford's update
        (:func:`~dataselect_cli.methods._math.welford_step`) as the rows come, in row order: an (id, run) whose
        rows are not all read yet holds its count, mean and sum of squared deviations (2·D + 1 numbers).
    """

    def __init__(self, stats: dict[str, str], n: int, runs: int, k: int, at: int | None = None, spread=None):
        self.stats, self.n, self.runs, self.k, self.at, self.spread = stats, n, runs, k, at, spread
        self.acc: dict[str, np.ndarray] = {}
        self.open: dict[str, tuple[np.ndarray, ...]] = {}
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
                self._welford(name, slot, v)
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

    def _welford(self, name: str, slot: np.ndarray, x: np.ndarray) -> None:
        """Take a block's vectors into the running (count, mean, m2) of their (id, run) pairs: the pairs still open
        from earlier blocks are picked up, each pair's rows are taken in row order (its j-th rows of the block
        together, j = 0, 1, …), the pairs that reach K rows get their value and the others stay open."""
        order = np.argsort(slot, kind="stable")
        uniq, starts, counts = np.unique(slot[order], return_index=True, return_counts=True)
        d = x.shape[1]
        count, mean, m2 = np.zeros(len(uniq)), np.zeros((len(uniq), d)), np.zeros((len(uniq), d))
        held = self.open.get(name)
        if held is not None and len(held[0]):
            at = np.searchsorted(held[0], uniq)
            at = np.minimum(at, len(held[0]) - 1)
            was = held[0][at] == uniq
            count[was], mean[was], m2[was] = held[1][at[was]], held[2][at[was]], held[3][at[was]]
            left = np.ones(len(held[0]), bool)
            left[at[was]] = False
            held = tuple(a[left] for a in held)
        for j in range(int(counts.max(initial=0))):
            g = np.flatnonzero(counts > j)
            c, mu, s2 = _math.welford_step(count[g], mean[g], m2[g], x[order[starts[g] + j]])
            count[g], mean[g], m2[g] = c, mu, s2
        done = count == self.k
        if done.any():
            self.acc[name].reshape(-1)[uniq[done]] = self.spread(m2[done] / count[done, None])
        rest = (uniq[~done], count[~done], mean[~done], m2[~done])
        if held is not None and len(held[0]):  # the pairs still open from earlier blocks, not in this one
            both = tuple(np.concatenate([a, b]) for a, b in zip(held, rest))
            keep = np.argsort(both[0], kind="stable")
            rest = tuple(a[keep] for a in both)
        self.open[name] = rest

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


def one_pass(method: ExampleMethod, inputs: Inputs, note: Note, scale: Scale):
    """Score from a dynamics table sorted by (id, run, checkpoint) in one pass: (state, summary, per-(id, run)
    stats), with ``inputs.keys`` set; or None (and nothing set) when the table is not read that way: with
    ``--examples``, without the labels the method needs, when the table has no
    :class:`~dataselect_cli.dyntable.Layout` or a block breaks it (the two passes then read it, and give the same
    results and errors).

    The checkpoint a one-checkpoint score takes is known before the pass: ``--checkpoint`` (when it is one of the
    layout's), or the layout's last or second; when the table has ``epoch`` (the rule "early" reads it, the
    summary gives the checkpoint's), from a first read of the ``epoch`` column alone
    (:func:`~dataselect_cli.dyntable.layout_epochs`, a small part of the table's bytes).
    """
    table = inputs.dynamics
    route = method.route(inputs)
    if inputs.examples is not None or (method.needs_label(route) and "label" not in table.names):
        return None
    layout = dyntable.sorted_layout(table)
    if layout is None:
        return None
    epoch = None
    if method.at is not None:
        if method.requested_checkpoint is not None and method.requested_checkpoint not in layout.checkpoints:
            return None  # refused after the key pass, as the two passes refuse it
        if "epoch" in table.names:  # the rule "early" reads it, and the summary gives the checkpoint's epoch
            epoch = dyntable.layout_epochs(table, layout, scale.block_rows)
    inputs.keys = Keys(None, layout.runs, layout.checkpoints, epoch, None, True, layout.rows)
    state, summary = method.prepare(inputs, note)
    columns = _value_columns(method, state.route, table)
    red = Reducer(method.stats, layout.n, len(layout.runs), len(layout.checkpoints), state.checkpoint,
                  getattr(method, "spread", None))
    index = dyntable.SortedIndex(table, layout)
    key_cols = dyntable.key_columns(table)
    src = BlockTables(table.ds, [*(c for c in key_cols if c != "epoch"), *columns])
    shared = {"table": table, "layout": layout, "method": method, "state": state, "columns": columns,
              "block_rows": scale.block_rows}
    error = None
    for b, part in enumerate(map_pass(scale.engine, f"score ({method.name})", _sorted_block, src, scale.block_rows,
                                      shared, scale.progress)):
        if part is None or not index.add(part[0], b * scale.block_rows):
            inputs.keys = None
            return None
        if isinstance(part[1], InputError):
            error = error or part[1]
        elif error is None:
            red.add(*part[1])
    if error is not None:
        raise error
    inputs.keys = state.keys = index.finish(epoch)
    return state, summary, red.result()


def _value_columns(method: ExampleMethod, route: Route, table) -> tuple[str, ...]:
    """The dynamics columns a method's values read: its route's and the optional ones the table has."""
    return tuple(dict.fromkeys([*route.columns, *(c for c in method.optional_columns if c in table.names)]))


def run_example_score(method: ExampleMethod, inputs: Inputs, *, note: Note = quiet,
                      scale: Scale | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Score every example with a per-example method; return (scores table, summary).

    A dynamics table whose structure is not known yet (``inputs.keys`` is None) is read in one pass when it can be
    (:func:`one_pass`), else its key pass comes first.
    """
    scale = scale or Scale()
    stats = None
    if inputs.keys is None and inputs.dynamics is not None and method.route(inputs).kind == "dynamics":
        done = one_pass(method, inputs, note, scale)
        if done is None:
            inputs.keys = key_pass(inputs.dynamics, scale)
        else:
            state, summary, stats = done
    if stats is None:
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
        if stats is None:
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
    columns = _value_columns(method, route, table)
    if "spread" in method.stats.values() and not keys.grouped:
        need = keys.n * len(keys.runs) * (2 * (table.grad_dim or 0) + 2) * 8
        if need > scale.memory_limit // 2:
            raise InputError(f"the rows of an id are not together, so --method {method.name} would hold up to "
                             f"{gb(need)} of running means and variances of input gradients (more than half of "
                             "--memory-limit); sort the table by id, run, checkpoint (e.g. with pyarrow or DuckDB) "
                             "and run again", table.path)
    red = Reducer(method.stats, len(perm), len(keys.runs), len(keys.checkpoints), state.checkpoint,
                  getattr(method, "spread", None))
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
    outputs.check_output_path(out, [p for p in given.values() if p])
    # the dynamics table, the big file, is hashed while it is read; the others now
    fingerprints = PendingFingerprints(given, later=("dynamics",))
    if (done := skip([out], "score", prm, fingerprints, None, note)) is not None:
        return done
    inputs = Inputs(examples=dyntable.read_examples(examples) if examples else None,
                    dynamics=dyntable.open_dynamics(dynamics) if dynamics else None, embeddings=embeddings)
    route = method.route(inputs)
    for kind, p in given.items():
        used = kind == route.kind or kind in route.also or (kind == "examples" and route.kind != "examples")
        if p and not used:
            note(f"note: --{kind} is not used by --method {method.name} here (it reads --{route.kind})")
    table, summary = run_example_score(method, inputs, note=note, scale=scale)
    io.write_table(table, out, io.make_meta("score", prm, fingerprints, summary))
    return summary
