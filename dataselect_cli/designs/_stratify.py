"""``--stratify COL``: any stratifiable design drawn within each stratum (class) of a column.

Stratum h (the N_h rows with one value of COL) gets n_h of the s rows, Σ n_h = s:

* ``proportional`` (default): n_h ∝ N_h, which keeps the class distribution (paper A's stratified
  baseline with ``uniform``);
* ``balanced``: n_h equal, capped by N_h, what a capped class leaves redistributed over the others
  (the answer to class imbalance: rare classes are not drowned);

and every stratum gets at least min(``--min-per-stratum``, N_h) rows (default 1: a class is never
dropped; paper A found tiny classes regress, §A.5). Allocation by largest remainders
(:func:`.stratified.allocate`).

The inner design then draws n_h rows of stratum h exactly as it would from a file holding only
those rows: its pass 1 on each stratum's part of every block, its plan per stratum (seeded by the
stratum's rank among the sorted values), its selection and ``finish`` per stratum. So ``top``
keeps the highest scores of each class, and ``softmax``/``linear`` keep their weights 1/π within
each stratum (Σ_h of the stratum's Horvitz–Thompson totals: unbiased for Σ ℓ, each stratum's part
for its own total; the variance is the sum of the strata's Rosén variances).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InputError
from .base import Design, Estimate, Plan
from .stratified import allocate

ALLOCATIONS = ("proportional", "balanced")


def _values(col: Any) -> np.ndarray:
    if isinstance(col, (pa.Array, pa.ChunkedArray)):
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col)


def _missing(v: np.ndarray) -> int:
    if v.dtype.kind == "f":
        return int(np.isnan(v).sum())
    if v.dtype.kind == "O":
        return int(sum(x is None for x in v))
    return 0


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _subset(cols: dict, rows: np.ndarray) -> dict:
    return {c: (v.take(pa.array(rows)) if isinstance(v, pa.Array) else np.asarray(v)[rows]) for c, v in cols.items()}


def _concat(parts: list) -> Any:
    return pa.concat_arrays(parts) if isinstance(parts[0], pa.Array) else np.concatenate(parts)


class Stratify(Design):
    """``inner`` drawn within each stratum of ``column``, with n_h from ``allocation`` and a floor per stratum."""

    def __init__(self, inner: Design, stratify: str, allocation: str | None = None, min_per_stratum: int | None = None):
        column = stratify
        allocation = allocation or "proportional"
        if allocation not in ALLOCATIONS:
            raise InputError(f"--allocation must be one of {', '.join(ALLOCATIONS)} with --stratify; got {allocation!r}")
        min_per_stratum = 1 if min_per_stratum is None else int(min_per_stratum)
        if min_per_stratum < 0:
            raise InputError(f"--min-per-stratum must be >= 0; got {min_per_stratum}")
        self.inner, self.column, self.allocation, self.floor = inner, column, allocation, min_per_stratum
        self.name = inner.name
        self.summary = f"{inner.summary}; within each stratum of '{column}' ({allocation} allocation)"
        self.needs = tuple(dict.fromkeys((*inner.needs, column)))
        self.optional = inner.optional
        self.unbiased, self.scored, self.biased_because = inner.unbiased, inner.scored, inner.biased_because

    def params(self) -> dict[str, Any]:
        return {**self.inner.params(), "stratify": self.column, "allocation": self.allocation,
                "min_per_stratum": self.floor}

    def keeps(self, s: int, direction: str | None) -> str:
        return self.inner.keeps(s, direction) if hasattr(self.inner, "keeps") else f"{s} rows"

    # ---- drawing
    def check_block(self, b: int, cols: dict, size: int, n: int) -> tuple[list, int]:
        """Per stratum value in the block: (value, rows, the inner design's pass 1 on those rows); and the missing values."""
        lab = _values(cols[self.column])
        bad = _missing(lab)
        if bad:
            return [], bad
        keys, inv = np.unique(lab, return_inverse=True)
        out = []
        for h, key in enumerate(keys):
            rows = np.flatnonzero(inv == h)
            out.append((_plain(key), len(rows), self.inner.check_block(b, _subset(cols, rows), size, n)))
        return out, 0

    def compact(self, stats: list, size: int) -> list:
        """Each stratum's inner statistics compacted by the inner design, all on the last statistic, in block
        order (the plan reads them per stratum in that order); the others keep their count of missing values."""
        per: dict[Any, list] = {}
        for block, _ in stats:
            for key, rows, inner_stats in block:
                per.setdefault(key, []).append((rows, inner_stats))
        last = []
        for key, entries in per.items():
            inner = self.inner.compact([st for _, st in entries], size)
            last.extend((key, rows, st) for (rows, _), st in zip(entries, inner))
        return [([], bad) for _, bad in stats[:-1]] + [(last, stats[-1][1])]

    def plan(self, stats: list, size: int, seed: int, path: str | None) -> Plan:
        bad = sum(st[1] for st in stats)
        if bad:
            raise InputError(f"--stratify {self.column}: {bad} rows have no value in column '{self.column}'", path)
        per: dict[Any, list] = {}
        big_n: dict[Any, int] = {}
        for block, _ in stats:
            for key, rows, inner_stats in block:
                per.setdefault(key, []).append(inner_stats)
                big_n[key] = big_n.get(key, 0) + rows
        keys = sorted(per)
        sizes = np.array([big_n[k] for k in keys], dtype=np.int64)
        need = int(np.minimum(sizes, self.floor).sum())
        if size > sizes.sum():
            raise InputError(f"--size {size} is more than the {int(sizes.sum())} rows; lower it", path)
        if size < need:
            raise InputError(f"--min-per-stratum {self.floor} over the {len(keys)} strata of '{self.column}' needs "
                             f"{need} rows; got s = {size}: raise --size or lower --min-per-stratum", path)
        weight = sizes.astype(np.float64) if self.allocation == "proportional" else np.ones(len(keys))
        n_h = allocate(size, weight, sizes, floor=self.floor)
        plans, strata, min_prob = {}, [], []
        for h, key in enumerate(keys):
            strata.append({"stratum": key, "size": int(sizes[h]), "selected": int(n_h[h])})
            if n_h[h] > 0:
                sub_seed = int(np.random.SeedSequence([seed, 40, h]).generate_state(1)[0])
                plans[key] = self.inner.plan(per[key], int(n_h[h]), sub_seed, path)
                strata[-1].update({k: v for k, v in plans[key].stats.items() if k in ("certain", "q_ratio")})
                if plans[key].stats.get("min_prob") is not None:
                    min_prob.append(plans[key].stats["min_prob"])
        return Plan({"min_prob": min(min_prob) if min_prob else None, "strata": strata, "stratify": self.column},
                    plans=plans)

    def select_block(self, b: int, cols: dict, plan: Plan, block_rows: int) -> tuple | None:
        lab = _values(cols[self.column])
        keys, inv = np.unique(lab, return_inverse=True)
        parts = []
        for h, key in enumerate(keys):
            sub_plan = plan.plans.get(_plain(key))
            if sub_plan is None:
                continue
            rows = np.flatnonzero(inv == h)
            got = self.inner.select_block(b, _subset(cols, rows), sub_plan, block_rows)
            if got is not None:
                index, count, prob, columns = got
                parts.append((b * block_rows + rows[index - b * block_rows], count, prob, columns))
        if not parts:
            return None
        index = np.concatenate([p[0] for p in parts])
        order = np.argsort(index, kind="stable")
        columns = {c: _concat([p[3][c] for p in parts]) for c in parts[0][3]}
        columns = {c: (v.take(pa.array(order)) if isinstance(v, pa.Array) else v[order]) for c, v in columns.items()}
        return index[order], np.concatenate([p[1] for p in parts])[order], \
            np.concatenate([p[2] for p in parts])[order], columns

    def prune(self, index: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        """Each stratum's own cut of the rows it offered."""
        lab = _values(columns[self.column])
        keep = []
        for key, sub_plan in plan.plans.items():
            pos = np.flatnonzero(lab == key)
            if len(pos):
                sub = {c: (v.take(pa.array(pos)) if isinstance(v, pa.Array) else v[pos]) for c, v in columns.items()}
                k = self.inner.prune(index[pos], sub, sub_plan)
                keep.append(pos if k is None else pos[k])
        return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)

    def finish(self, index: np.ndarray, prob: np.ndarray, columns: dict[str, Any], plan: Plan) -> np.ndarray:
        """Each stratum's own ``finish`` on the rows it offered; the private columns (``_key``) are dropped."""
        lab = _values(columns[self.column])
        keep = []
        for key, sub_plan in plan.plans.items():
            pos = np.flatnonzero(lab == key)
            if not len(pos):
                continue
            sub = {c: (v.take(pa.array(pos)) if isinstance(v, pa.Array) else v[pos]) for c, v in columns.items()}
            k = self.inner.finish(index[pos], prob[pos], sub, sub_plan)
            keep.append(pos if k is None else pos[k])
        for c in [c for c in columns if c.startswith("_")]:
            del columns[c]
        return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)

    def weights(self, count: np.ndarray, prob: np.ndarray, size: int) -> np.ndarray:
        return self.inner.weights(count, prob, size)

    # ---- estimation
    def _strata(self, loss: np.ndarray, sel: dict[str, np.ndarray]):
        if self.column not in sel:
            raise InputError(f"a selection stratified by '{self.column}' needs that column to be estimated")
        lab = _values(sel[self.column])
        for key in np.unique(lab):
            m = lab == key
            yield m, {c: np.asarray(v)[m] for c, v in sel.items()}

    def estimate(self, loss: np.ndarray, sel: dict[str, np.ndarray], n: int) -> Estimate:
        """Σ_h of each stratum's estimate (N_h = Σ weight in the stratum for ``uniform``: N_h/n_h each)."""
        total, var, rows, strata = 0.0, 0.0, 0, 0
        for m, sub in self._strata(loss, sel):
            e = self.inner.estimate(loss[m], sub, int(round(float(np.sum(sub["weight"])))))
            total += e.total
            rows, strata = rows + int(m.sum()), strata + 1
            if e.var is None and not np.all(sub["prob"] >= 1.0):  # one row drawn at random: no variance estimate
                var = None
            elif var is not None:
                var += e.var or 0.0
        return Estimate(total, var, n, max(1, rows - strata))

    def units(self, loss: np.ndarray, sel: dict[str, np.ndarray]) -> list[np.ndarray] | None:
        out: list[np.ndarray] = []
        for m, sub in self._strata(loss, sel):
            u = self.inner.units(loss[m], sub)
            if u is None:
                return None
            out.extend(u)
        return out

    def guarantee(self, report: dict[str, Any]) -> str:
        text = self.inner.guarantee(report)
        k = len(report.get("strata") or [])
        return (f"{text} Drawn within each of the {k} strata of '{self.column}' ({self.allocation} allocation, at "
                f"least {self.floor} row{'' if self.floor == 1 else 's'} of each stratum that has them)" +
                ("; the weights are unbiased within each stratum." if self.unbiased else "."))
