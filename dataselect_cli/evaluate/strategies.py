"""``evaluate``'s selection strategies: each selects rows of the training part and estimates Σ ℓ.

The tool's own strategies score with the same method (:mod:`dataselect_cli.methods`) and draw
with the same designs (:mod:`dataselect_cli.designs`) as the commands; the others (k-center,
margin, leverage, the paper's protocols) are the baselines the literature compares against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa

from .. import bounds, calibration, designs
from ..cluster import Clustering, choose_probes, cluster
from ..designs import Drawn
from ..designs.base import until_distinct
from ..designs.iid import IID
from ..methods import Clusters, Inputs
from ..methods.leverage import leverage_exact
from ..prefix import dz_order
from ..methods.sensitivity import Sensitivity, queried_stats
from ..models import _design, center_residuals, log_proba
from ..traversal import Traversal
from .task import Task

#: Share of the budget B spent on the uniform warm start and on the center rows (the paper's §5.1: 0.2·B each).
WARM_FRAC = 0.2
#: Probe rows per cluster whose losses ``sensitivity-auto`` also knows (the setting of issue 12: center + 3).
PROBES = 3
#: δ of the CLT interval (a 95 % interval).
CLT_DELTA = 0.05


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
    greg: tuple[float, float | None, int] | None = None  # model-assisted (total, variance, df)
    draws: int | None = None
    boot: tuple[float, float] | None = None  # the bootstrap-t interval for the mean
    printed: dict[str, tuple[float, float]] | None = None  # what `estimate` prints (:func:`printed_intervals`)
    units: list[np.ndarray] | None = None  # the estimate's units, where no design's `estimate` states the interval
    earlier: list["Selection"] = field(default_factory=list)  # an adaptive run's earlier rounds, in order


@dataclass
class Seeds:
    """The seeds of one (budget, repeat): ``shared`` for steps several strategies share, ``own`` per strategy,
    ``repeat`` per strategy and repeat but the same for every budget."""

    shared: int
    own: int
    repeat: int = 0

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


def _sensitivity_mass(task: Task, cl: Clustering, center_loss: np.ndarray, opt: dict, z: int = 2
                      ) -> tuple[np.ndarray, float]:
    """(mass of every row, Σ Λ_i·Φ_i) by the ``sensitivity`` score method, as ``dataselect score`` computes
    them: its global step on the clustering and the center losses, then its block function on all rows."""
    ids = pa.array(np.arange(task.n, dtype=np.int64))
    centers = ids.take(pa.array(cl.center_index))
    clusters = Clusters(ids, cl.labels, cl.distance, centers, cl.size, cl.cost, z, task.emb.shape[1])
    method = Sensitivity(lam=opt.get("lam"))
    state, summary = method.prepare(Inputs(clusters, (centers, center_loss.astype(np.float64))), lambda _m: None)
    cols, _ = method.score_block(0, {"cluster": cl.labels, "distance": cl.distance}, state)
    return cols["mass"], summary["lambda_phi"]


def _iid(loss: np.ndarray, mass: np.ndarray, draws: int, seed: int) -> tuple[Drawn, float, float, list[np.ndarray]]:
    """``draws`` i.i.d. draws ∝ ``mass`` by the ``iid`` design: its estimate of Σ ``loss``, the variance
    estimate and the design's units (for the skew-corrected t interval)."""
    design = IID()
    d = design.draw_arrays(mass, draws, seed)
    sel = {"count": d.count, "prob": d.prob, "weight": d.weight}
    est = design.estimate(loss[d.index], sel, len(loss))
    return d, est.total, est.var if est.var is not None else float("nan"), design.units(loss[d.index], sel)


def _draw_budget(design, mass: np.ndarray, budget: int, seed: int, labels: np.ndarray, unit: str) -> Drawn:
    """A draw of ``budget`` draws, or with ``unit="rows"`` of ``budget`` distinct rows (as ``sample --rows``)."""
    if unit == "rows" and design.with_replacement:
        return until_distinct(lambda s: design.draw_arrays(mass, s, seed, cluster=labels), budget)[0]
    return design.draw_arrays(mass, budget, seed, cluster=labels)


def _greg(task: Task, d: Drawn, design, cl: Clustering, center_loss: np.ndarray) -> tuple[float, float | None, int]:
    """The model-assisted estimate of Σ ℓ (calibrated to the cluster sizes, or to n and the proxy total)."""
    sel = {"count": d.count, "prob": d.prob, "weight": d.weight, "cluster": d.columns["cluster"]}
    ga = calibration.model_assisted(design, task.loss[d.index], sel, center_loss, cl.size, task.n)
    return ga.total, ga.resid.var, ga.resid.df


def design_strategy(name: str) -> Callable[..., Selection]:
    """The tool's pipeline with design ``name``: k = center_frac·B clusters, the reference model's loss at the
    k center rows, the sensitivity mass (Λ = ``lam`` or the balanced default), B draws (or B distinct rows)
    by the design, its weights and estimator, and the model-assisted estimate beside it."""

    def strategy(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
        return _design_selection(task, _clustering(task, _centers(budget, opt["center_frac"]), 2, seeds.shared),
                                 name, budget, seeds, opt)

    strategy.__doc__ = f"sensitivity scores, design {name}"
    return strategy


def design_draw(task: Task, cl: Clustering, name: str, budget: int, seeds: Seeds, opt: dict
                ) -> tuple[designs.Design, Drawn, float]:
    """(the design that drew, its draw, Σ Λ·Φ): design ``name`` on the sensitivity mass of clustering ``cl``
    (center rows' losses known; ``auto`` also knows PROBES probe losses per cluster)."""
    k = len(cl.center_index)
    mass, lam_phi = _sensitivity_mass(task, cl, task.loss[cl.center_index], opt)
    design = designs.get(name)
    if opt.get("unit") == "rows":
        design = design.for_rows()
    if name == "auto":  # the queried losses: the centers' and PROBES more per cluster
        probe = np.flatnonzero(choose_probes(cl.labels, cl.center_index, PROBES, seeds.shared))
        rows = np.concatenate([cl.center_index, probe])
        design.bind({"k": k, "clusters": queried_stats(cl.labels[rows], task.loss[rows], k)})
    d = _draw_budget(design, mass, budget, seeds.own, cl.labels, opt.get("unit", "draws"))
    return design.resolved(), d, lam_phi


def _design_selection(task: Task, cl: Clustering, name: str, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """The selection of design ``name`` (:func:`design_draw`), its estimate and the intervals ``estimate`` prints."""
    n = task.n
    center_loss = task.loss[cl.center_index]
    design, d, lam_phi = design_draw(task, cl, name, budget, seeds, opt)
    sel = {"count": d.count, "prob": d.prob, "weight": d.weight, "cluster": d.columns["cluster"]}
    est = design.estimate(task.loss[d.index], sel, n)
    printed = printed_intervals(design, d, task.loss[d.index], cl, center_loss, n, seeds.own)
    t2 = eps = None
    if design.name == "iid":
        eps = bounds.eps_for_size(d.draws)
        t2 = bounds.theorem2_interval(est.total, eps, lam_phi, n) if eps < 1 else (0.0, math.inf)
    return Selection(d.index, d.weight, est.total, est.var, df=est.df, theorem2=t2, eps=eps,
                     greg=_greg(task, d, design, cl, center_loss), draws=d.draws,
                     boot=printed.get("bootstrap_interval"), printed=printed)


def printed_intervals(design, d: Drawn, loss: np.ndarray, cl: Clustering, center_loss: np.ndarray, n: int,
                      seed: int) -> dict[str, tuple[float, float]]:
    """The intervals for the mean that ``dataselect estimate`` prints for this selection (by the very same
    function, :func:`~dataselect_cli.steps.estimate.estimate_selection`): ``clt_interval``,
    ``bootstrap_interval`` and the model-assisted ``greg_interval``, each (low, high) where printed."""
    from ..steps.estimate import estimate_selection

    table = pa.table({"count": d.count, "prob": d.prob, "weight": d.weight, "cluster": d.columns["cluster"]})
    rep = {"n": n, "seed": seed, "clusters": [{"size": int(sz), "center_loss": float(c)}
                                             for sz, c in zip(cl.size, center_loss)]}
    out = estimate_selection(table, rep, loss, design=design, delta=CLT_DELTA, bootstrap=True)
    got = {key: (out[key]["low"], out[key]["high"]) for key in ("clt_interval", "bootstrap_interval") if key in out}
    greg = out.get("model_assisted", {}).get("clt_interval")
    if greg is not None:
        got["greg_interval"] = (greg["low"], greg["high"])
    return got


strategy_sensitivity = design_strategy("iid")


def strategy_sensitivity_adaptive(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """The paper's adaptive variant (Algorithm 3) with ``rounds`` r: the center_frac·B queried rows split into r
    rounds of k = ⌊center_frac·B / r⌋ rows of the D^z order; round i draws B i.i.d. draws by the sensitivity mass
    of the clustering of the first i·k rows. The last round is the selection; the others are in ``earlier``."""
    rounds = int(opt.get("rounds") or 1)
    k = max(1, _centers(budget, opt["center_frac"]) // rounds)
    key = ("dz", k, rounds, seeds.shared)
    if key not in task._cache:
        task._cache[key] = dz_order(task.emb, k * rounds, z=2, seed=seeds.shared,
                                    keep=tuple(i * k for i in range(1, rounds + 1)))
    order = task._cache[key]
    sels = []
    for i in range(1, rounds + 1):
        p = order.prefixes[i * k]
        size = np.bincount(p.labels, minlength=i * k).astype(np.int64)
        cost = np.bincount(p.labels, weights=p.distance.astype(np.float64) ** 2, minlength=i * k)
        cl = Clustering(p.labels, p.distance, order.index[: i * k], np.empty((0, task.emb.shape[1])), size, cost)
        sels.append(_design_selection(task, cl, "iid", budget, Seeds(seeds.shared, _int_seed(seeds.own, i)), opt))
    sels[-1].earlier = sels[:-1]
    return sels[-1]


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
    d, t, var, units = _iid(task.loss[rest], m, draws, seed)
    index = np.concatenate([fixed, rest[d.index]])
    weight = np.concatenate([np.ones(len(fixed)), d.weight])
    order = np.argsort(index, kind="stable")
    return Selection(index[order], weight[order], fixed_total + t, var, df=max(1, draws - 1), units=units)


def strategy_sensitivity_budget(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """The paper's experiment protocol (§5.1): a uniform warm start of 0.2·B trains a model M; 0.2·B
    k-means centers snapped to real rows join the selection; the rest of the budget is drawn i.i.d.
    ∝ ℓ_M(center) + Λ·‖e − center‖² among the other rows."""
    warm = _warm_start(task, budget, seeds)
    k = _centers(budget, opt["center_frac"])
    cl = _clustering(task, k, 2, seeds.shared)
    model = task.fit(warm)
    mass, _ = _sensitivity_mass(task, cl, task.losses(model, cl.center_index), opt)
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
    _, residual = center_residuals(task.x[c], task.y[c], cl.size)
    lam = opt.get("lam")
    mass, _ = _sensitivity_mass(task, cl, residual, {"lam": math.inf if lam is None else lam}, z=1)
    return _fixed_plus_draws(task, np.sort(c), mass, budget - k, seeds.own)


def strategy_leverage(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """Leverage-score sampling: B i.i.d. draws ∝ the leverage h_i of the rows of [x, 1]; weight count/(B·p)."""
    if "leverage" not in task._cache:
        task._cache["leverage"] = leverage_exact(_design(task.x))
    d, total, var, units = _iid(task.loss, task._cache["leverage"], budget, seeds.own)
    return Selection(d.index, d.weight, total, var, df=budget - 1, units=units)


def kcenter_greedy(emb: np.ndarray, budget: int, first: int) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): from row ``first``, repeatedly add the row farthest from
    the selection; the sorted selection of ``budget`` rows (:class:`~dataselect_cli.traversal.Traversal`,
    float32). O(n·budget·d) time, O(n) memory.

    Examples
    --------
    >>> kcenter_greedy(np.array([[0.0], [1.0], [10.0], [4.0], [6.0]]), 3, first=0).tolist()
    [0, 2, 3]
    """
    t = Traversal(emb)
    t.add(first)
    return np.sort(np.array(t.extend_farthest(budget), dtype=np.int64))


def _unweighted(task: Task, idx: np.ndarray) -> Selection:
    """A selection without unbiased weights: its estimate is the subset's plain mean loss, no interval."""
    return Selection(idx, None, task.n * float(task.loss[idx].mean()))


def strategy_kcenter(task: Task, budget: int, seeds: Seeds, opt: dict) -> Selection:
    """k-center greedy on the embeddings from a random first row (the same for every budget of a repeat, so the
    selection of a budget is the first rows of a larger one's and the traversal is computed once); no unbiased
    weights."""
    first = int(np.random.default_rng(seeds.repeat).integers(task.n))
    cache = task._cache.setdefault("kcenter", {})  # first row → its traversal: a budget extends a smaller one's
    if first not in cache:
        cache[first] = Traversal(task.emb)  # float32 already: the traversals share the matrix
        cache[first].add(first)
    return _unweighted(task, np.sort(np.array(cache[first].extend_farthest(budget), dtype=np.int64)))


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
    "uniform": (design_strategy("uniform"), ("label", "target")),
    "sensitivity": (strategy_sensitivity, ("label", "target")),
    "sensitivity-mixture": (design_strategy("mixture"), ("label", "target")),
    "sensitivity-poisson": (design_strategy("poisson"), ("label", "target")),
    "sensitivity-pareto": (design_strategy("pareto"), ("label", "target")),
    "sensitivity-stratified": (design_strategy("stratified"), ("label", "target")),
    "sensitivity-auto": (design_strategy("auto"), ("label", "target")),
    "sensitivity-adaptive": (strategy_sensitivity_adaptive, ("label", "target")),
    "sensitivity-budget": (strategy_sensitivity_budget, ("label", "target")),
    "sensitivity-regression": (strategy_sensitivity_regression, ("target",)),
    "kcenter": (strategy_kcenter, ("label", "target")),
    "margin": (strategy_margin, ("label",)),
    "leverage": (strategy_leverage, ("target",)),
}


#: Strategies run only when named in ``--strategies`` (the adaptive rounds: a study of their own, docs/adaptive.md).
OPT_IN = ("sensitivity-adaptive",)


def default_strategies(kind: str) -> list[str]:
    """Every strategy that applies to the task, in registry order, but those of :data:`OPT_IN`."""
    return [name for name, (_, kinds) in STRATEGIES.items() if kind in kinds and name not in OPT_IN]
