"""The Quad-style cluster bandit (Zhang et al., ICLR 2025): quality × diversity by UCB over clusters.

Clusters are arms. A *pull* asks the loss oracle (:mod:`dataselect_cli.oracle`) for the loss of one row
of the cluster, drawn uniformly without replacement (a seeded random order of each cluster's rows).
A row's *score* is its loss; ``prefer`` says whether high losses (hard, informative rows: the default)
or low ones (clean, easy rows) are the quality sought (Quad's quality is an influence, higher = better).

Each round, every arm i with rows left to pull gets the index

    UCB_i = ±mean_i + c·σ̂·sqrt(2·ln T / T_i)         (+ for prefer high, − for low)

T_i its pulls, T = Σ_j T_j, mean_i the mean loss of its pulled rows, and σ̂ the pooled within-arm
standard deviation of the pulled losses (their overall standard deviation while no arm has two
pulls). This is Quad's cluster score CS_i = Ī_i + α·sqrt(2·ln Σ_j T(C_j) / T(C_i)) with α = c·σ̂, so
that c does not depend on the losses' units; Quad counts the times a cluster was chosen, this module
counts pulled rows (the samples behind each mean). An arm never pulled has UCB = +∞. The
``arms_per_round`` arms of largest UCB (ties: fewer pulls first, then a seeded order of the arms) are
chosen and ``pulls_per_round`` more rows of each are queried, in one oracle query per round, until
the budget of queries is spent or every row has been queried. The budget is never exceeded: the last
round is cut to what is left.

The selection of s rows comes from the clusters in proportion to their pulls (largest remainders,
capped at each cluster's size; what the capped clusters leave goes to the others, clusters never
pulled last, in proportion to their rows): the bandit's pulls are what it learned of each cluster's
quality and of the clusters' diversity. Within a cluster its queried rows come first, best score
first, then its unqueried rows in the seeded random order. The selection is unweighted (weight 1):
the rows were chosen adaptively from the losses, so Σ weight·ℓ is the selected rows' loss and
estimates nothing about the full set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .designs.stratified import allocate
from .errors import InputError
from .oracle import Oracle

PREFER = ("high", "low")
#: Defaults of the options (one place): UCB1's c, one cluster a round, 2 rows a pull (bench/bench_bandit.py).
UCB_C = 1.0
ARMS_PER_ROUND = 1
PULLS_PER_ROUND = 2

#: Why ``estimate`` refuses a bandit selection.
NOT_AN_ESTIMATE = ("a bandit selection is unweighted (weight 1): its rows were chosen adaptively from the queried "
                   "losses, so Σ weight·loss does not estimate the full loss; estimate on a uniform selection instead")


def check_params(budget: int, ucb_c: float, arms_per_round: int, pulls_per_round: int, prefer: str) -> None:
    """Refuse bad bandit parameters (all but the size), before any work, with the option's name."""
    if budget < 1:
        raise InputError(f"--budget-queries must be a positive number of oracle queries; got {budget}")
    if not (math.isfinite(ucb_c) and ucb_c >= 0):
        raise InputError(f"--ucb-c must be a number >= 0 (0: no exploration bonus); got {ucb_c}")
    if arms_per_round < 1:
        raise InputError(f"--arms-per-round must be >= 1; got {arms_per_round}")
    if pulls_per_round < 1:
        raise InputError(f"--pulls-per-round must be >= 1; got {pulls_per_round}")
    if prefer not in PREFER:
        raise InputError(f"--prefer must be one of {', '.join(PREFER)}; got {prefer!r}")


def add_values(n: int, mean: float, m2: float, x: np.ndarray) -> tuple[int, float, float]:
    """(count, mean, Σ squared deviations) of a group after adding the values ``x`` (Chan et al.'s merge).

    >>> add_values(2, 1.0, 2.0, np.array([4.0]))     # {0, 2} and {4}: mean 2, Σ (x − 2)² = 4 + 0 + 4
    (3, 2.0, 8.0)
    """
    nb = len(x)
    if not nb:
        return n, mean, m2
    mean_b = float(x.mean())
    tot = n + nb
    delta = mean_b - mean
    return tot, mean + delta * nb / tot, m2 + float(np.sum((x - mean_b) ** 2)) + delta * delta * n * nb / tot


def noise_scale(pulls: np.ndarray, m2: np.ndarray, total_m2: float) -> float:
    """σ̂: the pooled within-arm standard deviation sqrt(Σ_i M2_i / (T − arms pulled)); the overall one,
    sqrt(M2 / (T − 1)), while no arm has two pulls; 0 with fewer than two pulls.

    >>> noise_scale(np.array([2, 2, 0]), np.array([0.5, 1.5, 0.0]), 9.0)   # sqrt(2 / (4 − 2))
    1.0
    """
    t = int(pulls.sum())
    df = t - int(np.sum(pulls > 0))
    if df > 0:
        return math.sqrt(float(m2.sum()) / df)
    return math.sqrt(total_m2 / (t - 1)) if t > 1 else 0.0


def ucb(mean: np.ndarray, pulls: np.ndarray, scale: float, c: float, prefer: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, bonus) of every arm: ±mean + c·σ̂·sqrt(2·ln T / T_i); +∞ (and bonus +∞) for an arm never pulled.

    >>> idx, bonus = ucb(np.array([1.0, 2.0, 0.0]), np.array([2, 8, 0]), 0.5, 1.0, "high")
    >>> bonus.round(4).tolist(), idx.round(4).tolist()        # T = 10: 0.5·sqrt(2 ln 10 / 2), … / 8
    ([0.7587, 0.3794, inf], [1.7587, 2.3794, inf])
    """
    t = float(pulls.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        bonus = np.where(pulls > 0, c * scale * np.sqrt(2.0 * math.log(max(t, 1.0)) / pulls), np.inf)
    sign = 1.0 if prefer == "high" else -1.0
    return np.where(pulls > 0, sign * mean + bonus, np.inf), bonus


def choose(index: np.ndarray, pulls: np.ndarray, available: np.ndarray, tie: np.ndarray, arms: int) -> np.ndarray:
    """The ``arms`` available arms of largest index (ties: fewer pulls first, then the seeded ``tie`` order).

    >>> choose(np.array([1.0, np.inf, 1.0, 3.0]), np.array([4, 0, 2, 9]), np.array([True, True, True, False]),
    ...        np.array([0.1, 0.2, 0.3, 0.4]), 2).tolist()
    [1, 2]
    """
    cand = np.flatnonzero(available)
    order = np.lexsort((tie[cand], pulls[cand], -index[cand]))
    return cand[order[:arms]]


@dataclass
class BanditResult:
    """What a bandit run did and selected.

    Attributes
    ----------
    rows : ndarray of int64
        The selected rows (positions 0..n−1), increasing.
    queried : ndarray of int64
        Every queried row, in query order; ``loss`` their losses and ``round`` the round that asked.
    arms : dict of str to ndarray
        Per cluster: ``size``, ``pulls``, ``chosen`` (rounds that chose it), ``mean`` (NaN: never pulled),
        ``bonus`` and ``index`` at the end, ``selected``.
    rounds : int
    scale : float
        σ̂ at the end.
    """

    rows: np.ndarray
    queried: np.ndarray
    loss: np.ndarray
    round: np.ndarray
    arms: dict[str, np.ndarray] = field(default_factory=dict)
    rounds: int = 0
    scale: float = 0.0


def run_bandit(labels: np.ndarray, ids: pa.Array, oracle: Oracle, *, budget: int, size: int, seed: int,
               ucb_c: float = UCB_C, arms_per_round: int = ARMS_PER_ROUND, pulls_per_round: int = PULLS_PER_ROUND,
               prefer: str = "high") -> BanditResult:
    """Run the bandit over the clusters ``labels`` (int, >= 0, one per row; ``ids`` the rows' ids) asking
    ``oracle`` for losses, at most ``budget`` of them, and select ``size`` rows (see the module's text)."""
    n = len(labels)
    check_params(budget, ucb_c, arms_per_round, pulls_per_round, prefer)
    if not 1 <= size <= n:
        raise InputError(f"--size must be in 1..{n} (the rows); got {size}")
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    rng = np.random.default_rng([seed, 41])
    order = np.lexsort((rng.random(n), labels))  # each cluster's rows in a seeded random order: its pull order
    start = np.searchsorted(labels[order], np.arange(k + 1))
    size_k = np.diff(start)
    tie = rng.random(k)
    pulls, chosen = np.zeros(k, np.int64), np.zeros(k, np.int64)
    mean, m2 = np.zeros(k), np.zeros(k)
    tot = (0, 0.0, 0.0)  # every pulled loss: count, mean, Σ squared deviations
    queried, losses, rounds_of = [], [], []
    spent, t, scale = 0, 0, 0.0
    while spent < budget:
        available = pulls < size_k
        if not available.any():
            break
        scale = noise_scale(pulls, m2, tot[2])
        index, _ = ucb(mean, pulls, scale, ucb_c, prefer)
        arms = choose(index, pulls, available, tie, arms_per_round)
        take, rows = [], []
        for i in arms:
            m = int(min(pulls_per_round, size_k[i] - pulls[i], budget - spent - sum(take)))
            if m <= 0:
                break
            take.append(m)
            rows.append(order[start[i] + pulls[i]: start[i] + pulls[i] + m])
        arms = arms[: len(take)]
        t += 1
        batch = np.concatenate(rows)
        got = oracle.query(ids.take(pa.array(batch)), f"bandit round {t}")
        for i, part in zip(arms, np.split(got, np.cumsum(take)[:-1])):
            pulls[i], mean[i], m2[i] = add_values(int(pulls[i]), float(mean[i]), float(m2[i]), part)
            chosen[i] += 1
        tot = add_values(*tot, got)
        spent += len(got)
        queried.append(batch)
        losses.append(got)
        rounds_of.append(np.full(len(batch), t, np.int32))
    scale = noise_scale(pulls, m2, tot[2])
    index, bonus = ucb(mean, pulls, scale, ucb_c, prefer)
    q = np.concatenate(queried) if queried else np.empty(0, np.int64)
    ql = np.concatenate(losses) if losses else np.empty(0)
    alloc = allocate(size, pulls.astype(np.float64), size_k, floor=0)
    rows = select_rows(order, start, pulls, alloc, q, ql, prefer)
    arms_out = {"size": size_k, "pulls": pulls, "chosen": chosen, "mean": np.where(pulls > 0, mean, np.nan),
                "bonus": bonus, "index": index, "selected": alloc}
    return BanditResult(rows, q, ql, np.concatenate(rounds_of) if rounds_of else np.empty(0, np.int32), arms_out,
                        t, scale)


def select_rows(order: np.ndarray, start: np.ndarray, pulls: np.ndarray, alloc: np.ndarray, queried: np.ndarray,
                loss: np.ndarray, prefer: str) -> np.ndarray:
    """The rows kept: in cluster i, its ``alloc[i]`` first rows of (queried rows by preferred loss, ties in pull
    order; then the unqueried rows in pull order). A cluster's first ``pulls[i]`` rows of ``order`` are its queried
    ones."""
    loss_of = dict(zip(queried.tolist(), loss.tolist()))
    keep = []
    sign = -1.0 if prefer == "high" else 1.0
    for i in np.flatnonzero(alloc):
        members = order[start[i]: start[i + 1]]
        done = members[: pulls[i]]
        key = sign * np.array([loss_of[r] for r in done.tolist()])
        ranked = done[np.argsort(key, kind="stable")]
        keep.append(np.concatenate([ranked, members[pulls[i]:]])[: alloc[i]])
    return np.sort(np.concatenate(keep)) if keep else np.empty(0, np.int64)


def arms_table(result: BanditResult) -> list[dict[str, Any]]:
    """One dict per cluster for the report: pulls, times chosen, mean loss, bonus and UCB at the end, rows selected."""
    a = result.arms

    def num(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    return [{"cluster": i, "size": int(a["size"][i]), "pulls": int(a["pulls"][i]), "chosen": int(a["chosen"][i]),
             "mean_loss": num(a["mean"][i]), "bonus": num(a["bonus"][i]), "ucb": num(a["index"][i]),
             "selected": int(a["selected"][i])} for i in range(len(a["size"]))]
