"""The harness behind ``dataselect evaluate``: selection strategies, proxy models, metrics. Arrays in, arrays out.

A run splits the rows into a training part and a held-out part (``holdout``), trains the *proxy
model* on the whole training part (the reference), and then, for every strategy × budget ×
repeat, selects rows of the training part, retrains the proxy model on them (unweighted, and with
the strategy's weights when it has unbiased ones) and measures:

* the held-out metric: accuracy (``--label``: multinomial logistic regression) or 1 − R²
  (``--target``: least squares);
* the subset's estimate of the full training part's mean loss, Σ w·ℓ / n, where ℓ is the loss of
  the reference model (cross-entropy, or squared residual) and the truth is its mean over every
  training row; its relative error;
* whether the intervals around that estimate covered the truth: the paper's Theorem 2 (only for
  the tool's own design, whose ε and Λ·Φ it knows) and the CLT interval (for any design with
  unbiased weights). A design without unbiased weights (k-center, margin) gets no interval: null.

Every random choice comes from ``np.random.SeedSequence`` keyed by (seed, budget, repeat, name),
so the same seed gives the same table, and strategies that share a step (the uniform warm start,
the clustering) share its draw within a (budget, repeat).
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa

from . import bounds, io, sample, scores
from .cluster import Clustering, cluster
from .models import L2_LOGISTIC, L2_LSQ, _design, fit_least_squares, fit_logistic, log_proba  # noqa: F401
from .errors import InputError

#: Share of the budget B spent on the uniform warm start and on the center rows (the paper's §5.1: 0.2·B each).
WARM_FRAC = 0.2
#: δ of the CLT interval (a 95 % interval).
CLT_DELTA = 0.05


@dataclass
class Task:
    """The data of a run, split and standardised. ``kind`` is "label" or "target"."""

    kind: str
    emb: np.ndarray        # (n, d) float32: the training part's embeddings (clustering, k-center)
    x: np.ndarray          # (n, d) float64: the training part standardised (the proxy model's features)
    y: np.ndarray          # (n,) int class or float target
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 0
    loss: np.ndarray = field(default=None)  # (n,) the reference model's loss on every training row
    metric_full: float = float("nan")
    _cache: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def metric(self) -> str:
        return "accuracy" if self.kind == "label" else "1-R2"

    def fit(self, index: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """Train the proxy model on the training rows ``index``."""
        if self.kind == "label":
            return fit_logistic(self.x[index], self.y[index], self.classes, weight)
        return fit_least_squares(self.x[index], self.y[index], weight)

    def losses(self, theta: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-row loss of a model on training rows: cross-entropy, or the squared residual."""
        x = self.x if rows is None else self.x[rows]
        y = self.y if rows is None else self.y[rows]
        if self.kind == "label":
            return -log_proba(theta, x)[np.arange(len(y)), y]
        return (_design(x) @ theta - y) ** 2

    def test_metric(self, theta: np.ndarray) -> float:
        """Held-out accuracy, or 1 − R² = Σ(y − ŷ)² / Σ(y − ȳ)²."""
        if self.kind == "label":
            return float(np.mean(np.argmax(log_proba(theta, self.x_test), axis=1) == self.y_test))
        resid = _design(self.x_test) @ theta - self.y_test
        sst = float(np.sum((self.y_test - self.y_test.mean()) ** 2))
        return float(np.sum(resid**2) / sst) if sst > 0 else float("nan")


def make_task(emb: np.ndarray, y: np.ndarray, kind: str, holdout: float, seed: int) -> Task:
    """Split the rows (seeded), standardise with the training part's statistics, fit the reference model.

    ``y`` is already encoded: class indices for "label", floats for "target".
    """
    n = len(y)
    perm = np.random.default_rng([seed, 0]).permutation(n)
    n_test = max(1, int(round(holdout * n)))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    x = emb.astype(np.float64)
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
    sd[sd == 0] = 1.0
    xs = (x - mu) / sd
    t = Task(kind, np.ascontiguousarray(emb[train]), xs[train], y[train], xs[test], y[test],
             classes=int(y.max()) + 1 if kind == "label" else 0)
    theta = t.fit(np.arange(t.n))
    t.loss = t.losses(theta)
    t.metric_full = t.test_metric(theta)
    return t


# --------------------------------------------------------------------------- strategies


@dataclass
class Selection:
    """What a strategy returns.

    ``index``: distinct training rows, sorted; ``weight``: their unbiased weights (Σ w·ℓ estimates
    Σ ℓ), or None for a design without them; ``total`` and ``var``: the estimate of Σ ℓ and its
    variance estimate (None: no interval); ``df``: degrees of freedom of the CLT interval;
    ``theorem2``: the paper's interval for the mean (None where it does not apply); ``eps``.
    """

    index: np.ndarray
    weight: np.ndarray | None
    total: float
    var: float | None = None
    df: int = 1
    theorem2: tuple[float, float] | None = None
    eps: float | None = None


@dataclass
class Seeds:
    """The seeds of one (budget, repeat): ``shared`` for steps several strategies share, ``own`` per strategy."""

    shared: int
    own: int

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.shared, *key])


def _int_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0] >> 1)  # < 2³¹: faiss takes an int


def _centers(budget: int, center_frac: float) -> int:
    return max(1, int(round(center_frac * budget)))


def _clustering(task: Task, k: int, z: int, seed: int) -> Clustering:
    """k-means with snapped centers on the training embeddings, cached per (k, z, seed)."""
    key = ("cluster", k, z, seed)
    if key not in task._cache:
        task._cache[key] = cluster(task.emb, k, z=z, seed=seed)
    return task._cache[key]


def _warm_start(task: Task, budget: int, seeds: Seeds) -> np.ndarray:
    """The uniform warm start of 0.2·B rows (shared by every warm-started strategy of a (budget, repeat))."""
    m = max(1, int(round(WARM_FRAC * budget)))
    return np.sort(seeds.rng(1).choice(task.n, size=m, replace=False))


def _uniform_estimate(loss: np.ndarray, n: int) -> tuple[float, float | None]:
    """Σℓ estimated from a simple random sample without replacement, and its variance (with the fpc)."""
    m = len(loss)
    total = n * float(loss.mean())
    if m < 2:
        return total, None
    return total, n * n * (1 - m / n) * float(loss.var(ddof=1)) / m


def strategy_uniform(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """B rows uniformly without replacement; weight n/B (Horvitz–Thompson)."""
    idx = np.sort(np.random.default_rng(seeds.own).choice(task.n, size=budget, replace=False))
    total, var = _uniform_estimate(task.loss[idx], task.n)
    return Selection(idx, np.full(budget, task.n / budget), total, var, df=budget - 1)


def _lam(opt: dict, proxy_total: float, phi: float, n: int) -> float:
    lam = opt.get("lam")
    return scores.balanced_lambda(proxy_total, phi, n) if lam is None else float(lam)


def strategy_sensitivity(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """The tool's own design (Algorithm 1): k = center_frac·B clusters, the reference model's loss at
    the k center rows, Λ = ``lam`` or the balanced default, B i.i.d. draws, weight count/(B·p)."""
    n, k = task.n, _centers(budget, opt["center_frac"])
    cl = _clustering(task, k, 2, seeds.shared)
    center_loss = task.loss[cl.center_index]
    dterm = scores.distance_term(cl.distance, 2)
    lam = _lam(opt, float(center_loss[cl.labels].sum()), float(cl.cost.sum()), n)
    sc = scores.sensitivity(cl.labels, dterm, center_loss, np.full(k, lam))
    index, count = sample.draw_iid(sc.mass, budget, seeds.own)
    p = sc.prob[index]
    total, var = bounds.hansen_hurwitz(task.loss[index], p, count, budget)
    eps = bounds.eps_for_size(budget)
    lam_phi = lam * float(cl.cost.sum())
    t2 = bounds.theorem2_interval(total, eps, lam_phi, n) if eps < 1 else (0.0, math.inf)
    return Selection(index, sample.weights(count, p, budget), total, var, df=budget - 1, theorem2=t2, eps=eps)


def _fixed_plus_draws(task: Task, fixed: np.ndarray, mass: np.ndarray, draws: int, seed: int
                      ) -> Selection:
    """Rows ``fixed`` (weight 1) plus ``draws`` i.i.d. draws ∝ ``mass`` from the other rows.

    Σ_fixed ℓ + the Hansen–Hurwitz estimate over the others is unbiased for Σ ℓ given ``fixed``.
    """
    n = task.n
    rest = np.setdiff1d(np.arange(n), fixed)
    fixed_total = float(task.loss[fixed].sum())
    m = mass[rest]
    if draws <= 0 or len(rest) == 0 or m.sum() <= 0:
        return Selection(fixed, np.ones(len(fixed)), fixed_total, 0.0, df=1)
    pos, count = sample.draw_iid(m, draws, seed)
    p = m[pos] / m.sum()
    t, var = bounds.hansen_hurwitz(task.loss[rest[pos]], p, count, draws)
    index = np.concatenate([fixed, rest[pos]])
    weight = np.concatenate([np.ones(len(fixed)), sample.weights(count, p, draws)])
    order = np.argsort(index, kind="stable")
    return Selection(index[order], weight[order], fixed_total + t, var, df=max(1, draws - 1))


def strategy_sensitivity_budget(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """The paper's experiment protocol (§5.1): a uniform warm start of 0.2·B trains a model M; 0.2·B
    k-means centers snapped to real rows join the selection; the rest of the budget is drawn i.i.d.
    ∝ ℓ_M(center) + Λ·‖e − center‖² among the other rows."""
    warm = _warm_start(task, budget, seeds)
    k = _centers(budget, opt["center_frac"])
    cl = _clustering(task, k, 2, seeds.shared)
    model = task.fit(warm)
    center_loss = task.losses(model, cl.center_index)
    dterm = scores.distance_term(cl.distance, 2)
    lam = _lam(opt, float(center_loss[cl.labels].sum()), float(cl.cost.sum()), task.n)
    mass = scores.sensitivity(cl.labels, dterm, center_loss, np.full(k, lam)).mass
    fixed = np.union1d(warm, cl.center_index)
    return _fixed_plus_draws(task, fixed, mass, budget - len(fixed), seeds.own)


def strategy_sensitivity_regression(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """The paper's regression variant (Algorithm 2, as run in its §5.3): k-median-style clusters (z = 1),
    x0 fitted on the centers weighted by cluster size, the k center rows (whose labels Algorithm 2
    queries) in the selection, the rest drawn ∝ Λ·‖a − â‖ + (⟨â, x0⟩ − b̂)²; Λ → ∞ (p ∝ distance, the
    paper's choice) unless ``lam`` is given."""
    k = _centers(budget, opt["center_frac"])
    cl = _clustering(task, k, 1, seeds.shared)
    c = cl.center_index
    dist = cl.distance.astype(np.float64)
    lam = opt.get("lam")
    if lam is None:
        mass = dist
    else:
        x0 = fit_least_squares(task.x[c], task.y[c], cl.size.astype(np.float64))
        mass = float(lam) * dist + task.losses(x0, c)[cl.labels]
    return _fixed_plus_draws(task, np.sort(c), mass, budget - k, seeds.own)


def strategy_leverage(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """Leverage-score sampling: B i.i.d. draws ∝ h_i = ‖Q_i‖² of [x, 1] = QR; weight count/(B·p)."""
    if "leverage" not in task._cache:
        q, _ = np.linalg.qr(_design(task.x))
        task._cache["leverage"] = np.sum(q**2, axis=1)
    h = task._cache["leverage"]
    index, count = sample.draw_iid(h, budget, seeds.own)
    p = h[index] / h.sum()
    total, var = bounds.hansen_hurwitz(task.loss[index], p, count, budget)
    return Selection(index, sample.weights(count, p, budget), total, var, df=budget - 1)


def kcenter_greedy(emb: np.ndarray, budget: int, first: int, already: np.ndarray | None = None) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): repeatedly add the row farthest from the selection.

    Starts from ``already`` when given, else from row ``first``; returns the sorted selection of
    ``budget`` rows (including ``already``). O(n·budget·d) time, O(n) memory.

    Examples
    --------
    >>> kcenter_greedy(np.array([[0.0], [1.0], [10.0], [4.0], [6.0]]), 3, first=0).tolist()
    [0, 2, 3]
    """
    x = emb.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    chosen = list(already) if already is not None and len(already) else [first]
    mind = np.full(len(x), np.inf)
    for c in chosen:
        mind = np.minimum(mind, sq - 2 * x @ x[c] + sq[c])
    while len(chosen) < budget:
        c = int(np.argmax(mind))
        chosen.append(c)
        mind = np.minimum(mind, sq - 2 * x @ x[c] + sq[c])
        mind[c] = -np.inf  # never pick a chosen row again, even when rounding leaves it above 0
    return np.sort(np.array(chosen, dtype=np.int64))


def _unweighted(task: Task, idx: np.ndarray) -> Selection:
    """A selection without unbiased weights: its estimate is the subset's plain mean loss, no interval."""
    return Selection(idx, None, task.n * float(task.loss[idx].mean()))


def strategy_kcenter(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """k-center greedy on the embeddings from a random first row; no unbiased weights."""
    first = int(np.random.default_rng(seeds.own).integers(task.n))
    return _unweighted(task, kcenter_greedy(task.emb, budget, first))


def strategy_margin(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """Margin sampling, warm-started as in the paper: the 0.2·B uniform warm start trains M, then the
    rows with the smallest margin p₍₁₎ − p₍₂₎ under M fill the budget. No unbiased weights."""
    warm = _warm_start(task, budget, seeds)
    logp = log_proba(task.fit(warm), task.x)
    top2 = np.sort(np.exp(logp), axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    margin[warm] = np.inf
    pick = np.argsort(margin, kind="stable")[: budget - len(warm)]
    return _unweighted(task, np.sort(np.concatenate([warm, pick])))


#: name → (function, tasks it applies to). Names are the CLI's ``--strategies`` choices.
STRATEGIES: dict[str, tuple[Callable[..., Selection], tuple[str, ...]]] = {
    "uniform": (strategy_uniform, ("label", "target")),
    "sensitivity": (strategy_sensitivity, ("label", "target")),
    "sensitivity-budget": (strategy_sensitivity_budget, ("label", "target")),
    "sensitivity-regression": (strategy_sensitivity_regression, ("target",)),
    "kcenter": (strategy_kcenter, ("label", "target")),
    "margin": (strategy_margin, ("label",)),
    "leverage": (strategy_leverage, ("target",)),
}


def default_strategies(kind: str) -> list[str]:
    """Every strategy that applies to the task, in registry order."""
    return [name for name, (_, kinds) in STRATEGIES.items() if kind in kinds]


# --------------------------------------------------------------------------- the grid


RESULT_COLUMNS = ["strategy", "budget", "budget_fraction", "repeat", "rows", "weights", "metric",
                  "test_unweighted", "test_weighted", "estimate", "truth", "rel_error", "eps",
                  "theorem2_low", "theorem2_high", "theorem2_covered", "clt_low", "clt_high", "clt_covered"]


def _covered(iv: tuple[float, float] | None, truth: float) -> bool | None:
    return None if iv is None else bool(iv[0] <= truth <= iv[1])


def run_one(task: Task, name: str, budget: int, repeat: int, seed: int, opt: dict) -> dict:
    """One strategy × budget × repeat: select, retrain, measure. Returns one results row (a dict)."""
    fn = STRATEGIES[name][0]
    seeds = Seeds(_int_seed(seed, budget, repeat), _int_seed(seed, budget, repeat, zlib.crc32(name.encode())))
    sel = fn(task, budget, seeds, opt)
    n, truth = task.n, float(task.loss.mean())
    estimate = sel.total / n
    clt = None
    if sel.var is not None and sel.weight is not None:
        clt = bounds.clt_interval(sel.total, max(sel.var, 0.0), sel.df + 1, CLT_DELTA, n)
    weighted = task.test_metric(task.fit(sel.index, sel.weight)) if sel.weight is not None else None
    t2 = sel.theorem2
    return {
        "strategy": name, "budget": budget, "budget_fraction": budget / n, "repeat": repeat,
        "rows": len(sel.index), "weights": "unbiased" if sel.weight is not None else "none",
        "metric": task.metric, "test_unweighted": task.test_metric(task.fit(sel.index)), "test_weighted": weighted,
        "estimate": estimate, "truth": truth, "rel_error": abs(estimate - truth) / truth if truth > 0 else None,
        "eps": sel.eps, "theorem2_low": t2[0] if t2 else None, "theorem2_high": t2[1] if t2 else None,
        "theorem2_covered": _covered(t2, truth), "clt_low": clt[0] if clt else None,
        "clt_high": clt[1] if clt else None, "clt_covered": _covered(clt, truth),
    }


def reference_row(task: Task) -> dict:
    """The full-data row: the reference model trained on every training row."""
    truth = float(task.loss.mean())
    row = {c: None for c in RESULT_COLUMNS}
    row.update({"strategy": "full", "budget": task.n, "budget_fraction": 1.0, "repeat": 0, "rows": task.n,
                "weights": "all rows", "metric": task.metric, "test_unweighted": task.metric_full,
                "test_weighted": task.metric_full, "estimate": truth, "truth": truth, "rel_error": 0.0})
    return row


def run_grid(task: Task, strategies: list[str], budgets: list[int], repeats: int, seed: int, opt: dict,
             advance: Callable[[int], None] = lambda _k: None) -> list[dict]:
    """The reference row, then every budget × repeat × strategy (in that order)."""
    rows = [reference_row(task)]
    for budget in budgets:
        for repeat in range(repeats):
            for name in strategies:
                rows.append(run_one(task, name, budget, repeat, seed, opt))
                advance(1)
    return rows


def resolve_budgets(values: list[float], n: int) -> list[int]:
    """Budgets as row counts: values < 1 are fractions of the training part's n (rounded), others counts.

    Examples
    --------
    >>> resolve_budgets([0.01, 0.05, 500.0], 1438)
    [14, 72, 500]
    """
    return [max(1, int(round(v * n))) if v < 1 else int(v) for v in values]


# --------------------------------------------------------------------------- summary


#: Summary quantities: (key in the aggregate, results column, how it is aggregated, better).
SUMMARY_FIELDS = [
    ("test_unweighted", "test_unweighted", "mean", None),
    ("test_weighted", "test_weighted", "mean", None),
    ("rel_error", "rel_error", "mean", "low"),
    ("theorem2_coverage", "theorem2_covered", "share", None),
    ("clt_coverage", "clt_covered", "share", None),
    ("rows", "rows", "mean", None),
]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sd (ddof = 1; 0 for one repeat) per (strategy, budget); coverage as a share of repeats.

    Entries whose values are all null stay null (e.g. the weighted metric of k-center).
    """
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["budget"]), []).append(r)
    out = []
    for (name, budget), rs in groups.items():
        entry = {"strategy": name, "budget": budget, "budget_fraction": rs[0]["budget_fraction"], "runs": len(rs)}
        for key, col, how, _ in SUMMARY_FIELDS:
            vals = np.array([r[col] for r in rs if r[col] is not None], dtype=np.float64)
            if len(vals) == 0:
                entry[key], entry[key + "_sd"] = None, None
            elif how == "share":
                entry[key], entry[key + "_sd"] = float(vals.mean()), None
            else:
                entry[key] = float(vals.mean())
                entry[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out.append(entry)
    return out


def best_per_budget(agg: list[dict], key: str, higher: bool) -> dict[int, str]:
    """The strategy with the best mean ``key`` at each budget (the full-data row excluded; ties: first)."""
    best: dict[int, tuple[float, str]] = {}
    for e in agg:
        v = e.get(key)
        if e["strategy"] == "full" or v is None or not math.isfinite(v):
            continue
        score = -v if higher else v
        if e["budget"] not in best or score < best[e["budget"]][0]:
            best[e["budget"]] = (score, e["strategy"])
    return {b: name for b, (_, name) in best.items()}


# --------------------------------------------------------------------------- file level (``dataselect evaluate``)


OUTPUT_FILES = ("results.parquet", "summary.md", "report.html")
PLOT_FILES = ("metric.png", "rel_error.png", "coverage.png")


def parse_budgets(text: str) -> list[float]:
    """'0.01,0.02' or '500,1000' → sorted distinct positive numbers (fractions < 1, row counts >= 1)."""
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise InputError(f"--budgets: {part!r} is not a number; give fractions of the training part "
                             "(0.01,0.05) or row counts (500,1000)") from None
        if not (math.isfinite(v) and v > 0) or (v >= 1 and v != int(v)):
            raise InputError(f"--budgets: {part!r} must be a fraction in (0, 1) or a whole number of rows")
        values.append(v)
    return sorted(set(values))


def parse_strategies(text: str | None, kind: str) -> list[str]:
    """The ``--strategies`` list, checked against the registry and the task."""
    if text is None:
        return default_strategies(kind)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise InputError("--strategies is empty; name at least one of " + ", ".join(STRATEGIES))
    for name in names:
        if name not in STRATEGIES:
            raise InputError(f"--strategies: unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
        if kind not in STRATEGIES[name][1]:
            need = "--target (regression)" if kind == "label" else "--label (classification)"
            raise InputError(f"--strategies: {name!r} applies only with {need}")
    return list(dict.fromkeys(names))


def _read_column(path: str, column: str, ids, option: str, data: bool):
    """The ``column`` of ``path`` in the order of the embeddings' ``ids`` (joined on id for --data)."""
    from .dataset import ParquetDataset

    ds = ParquetDataset(path)  # a file or a directory of files
    names = ds.schema.names
    if column not in names:
        where = "" if data else " (pass --data TABLE if the column lives in another file)"
        raise InputError(f"{option}: no column {column!r}{where}; columns: {', '.join(names)}", path)
    col = ds.read_column(column).combine_chunks()
    if data:
        ds.require(["id"], "--data")
        col = col.take(pa.array(io.lookup(io.read_ids(ds, path), ids, path, "embeddings")))
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{option}: column {column!r} is null at row {row}; fill or drop those rows", path)
    return col


def encode_label(col, path: str, column: str) -> np.ndarray:
    """Class labels (integers, strings or booleans) → indices 0..C−1 in sorted order of the values."""
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_boolean(t)):
        raise InputError(f"--label: column {column!r} has type {t}; classes must be integers, strings or "
                         "booleans (use --target for a numeric target)", path)
    _, y = np.unique(np.asarray(col.to_pylist(), dtype=object if not pa.types.is_integer(t) else np.int64),
                     return_inverse=True)
    if y.max() < 1:
        raise InputError(f"--label: column {column!r} holds a single class; classification needs two or more", path)
    return y.astype(np.int64)


def encode_target(col, path: str, column: str) -> np.ndarray:
    """A numeric, finite target column → float64."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise InputError(f"--target: column {column!r} has type {col.type}; the target must be numeric "
                         "(use --label for classes)", path)
    y = col.cast(pa.float64()).to_numpy()
    if not np.isfinite(y).all():
        row = int(np.flatnonzero(~np.isfinite(y))[0])
        raise InputError(f"--target: column {column!r} is NaN or infinite at row {row}; fix or drop it", path)
    return y


def evaluate_file(emb: str, out_dir: str, *, label: str | None = None, target: str | None = None,
                  data: str | None = None, strategies: str | None = None, budgets: str = "0.01,0.02,0.05",
                  repeats: int = 5, holdout: float = 0.2, center_frac: float = WARM_FRAC, lam: float | None = None,
                  seed: int = 0, note: Callable[[str], None] = lambda _m: None,
                  progress=None) -> dict:
    """``dataselect evaluate``: run the grid on EMB and write results.parquet, summary.md, plots and report.html.

    Returns a summary: the paths written, n, the metric, the full-data metric and the best strategy per budget.
    """
    if (label is None) == (target is None):
        raise InputError("give exactly one of --label COL (classification) or --target COL (regression)")
    if not 0 < holdout < 1:
        raise InputError(f"--holdout must be a fraction in (0, 1), e.g. 0.2; got {holdout}")
    if not 0 < center_frac < 1:
        raise InputError(f"--center-frac must be in (0, 1), e.g. 0.2; got {center_frac}")
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        raise InputError(f"--lambda must be a finite number >= 0; got {lam}")
    kind, column = ("label", label) if label is not None else ("target", target)
    names = parse_strategies(strategies, kind)
    values = parse_budgets(budgets)
    if not os.path.isdir(out_dir):
        if os.path.exists(out_dir):
            raise InputError("exists and is not a directory; -o names the output directory", out_dir)
        os.makedirs(out_dir)
    paths = {f: os.path.join(out_dir, f) for f in OUTPUT_FILES + PLOT_FILES}
    for p in paths.values():
        io.check_output_path(p, [emb, data])
    ids, x = io.read_embeddings(emb, warn=note)
    col = _read_column(data or emb, column, ids, f"--{kind}", data is not None)
    y = encode_label(col, data or emb, column) if kind == "label" else encode_target(col, data or emb, column)
    n_test = max(1, int(round(holdout * len(y))))
    n_train = len(y) - n_test
    if n_train < 4:
        raise InputError(f"only {n_train} training rows after --holdout {holdout}; need more rows or a smaller "
                         "--holdout", emb)
    sizes = resolve_budgets(values, n_train)
    for v, b in zip(values, sizes):
        if b >= n_train or b < 2:
            raise InputError(f"--budgets: {v:g} means {b} rows, but it must be at least 2 and below the "
                             f"{n_train} training rows (n = {len(y)} minus the --holdout {holdout}); lower it")
    sizes = sorted(set(sizes))
    task = make_task(x, y, kind, holdout, seed)
    del x
    opt = {"center_frac": center_frac, "lam": lam}
    total = len(sizes) * repeats * len(names)
    if progress is None:
        rows = run_grid(task, names, sizes, repeats, seed, opt)
    else:
        with progress("evaluating", total) as advance:
            rows = run_grid(task, names, sizes, repeats, seed, opt, advance)
    params = {"label": label, "target": target, "strategies": names, "budgets": sizes, "repeats": repeats,
              "holdout": holdout, "center_frac": center_frac, "lambda": lam, "seed": seed,
              "l2": L2_LOGISTIC if kind == "label" else L2_LSQ}
    info = {"n": len(y), "n_train": task.n, "n_test": len(task.y_test), "d": int(task.x.shape[1]),
            "kind": kind, "metric": task.metric, "classes": task.classes or None,
            "metric_full": task.metric_full, "truth": float(task.loss.mean()), "params": params,
            "emb": os.path.basename(emb), "data": os.path.basename(data) if data else None}
    agg = aggregate(rows)
    higher = kind == "label"
    info["best"] = {str(b): s for b, s in sorted(best_per_budget(agg, "test_unweighted", higher).items())}
    inputs = {"embeddings": emb, **({"data": data} if data else {})}
    io.write_table(results_table(rows), paths["results.parquet"],
                   io.make_meta("evaluate", params, inputs, {k: v for k, v in info.items() if k != "params"}, seed))
    from . import htmlreport

    written = htmlreport.write_evaluate_report(rows, agg, info, paths, note=note)
    return {**{k: v for k, v in info.items() if k != "params"}, "strategies": names, "budgets": sizes,
            "repeats": repeats, "written": written}


def results_table(rows: list[dict]) -> pa.Table:
    """The results rows as an Arrow table with fixed column types (nullable where a value may be absent)."""
    types = {"strategy": pa.string(), "budget": pa.int64(), "budget_fraction": pa.float64(),
             "repeat": pa.int32(), "rows": pa.int64(), "weights": pa.string(), "metric": pa.string(),
             "theorem2_covered": pa.bool_(), "clt_covered": pa.bool_()}
    return pa.table({c: pa.array([r[c] for r in rows], types.get(c, pa.float64())) for c in RESULT_COLUMNS})
