"""``sensitivity``: the sampling mass of clustering-based sensitivity sampling (the default method).

For a row e in cluster i with center row c_i (Axiotis et al. 2024, Algorithm 1):

* proxy loss      ℓ̂(e) = ℓ(c_i)                  (the k center losses are the only queries; ``--proxy``
                                                  mean, knn or auto predict it from the probes too,
                                                  :mod:`dataselect_cli.proxy`)
* distance term   v(e) = ‖e − c_i‖^z
* mass            m(e) = ℓ̂(e) + Λ_i · v(e)
* prob            p(e) = m(e) / Σ_x m(x)

Without any losses the proxy is ℓ̂ ≡ 1 and Λ = n / Φ_z, so p(e) = ½·(1/n) + ½·v(e)/Φ_z: the
"lightweight coreset" distribution of Bachem, Lucic & Krause (2018) with cluster centers.
Λ is ``--lambda`` (global), or estimated per cluster from probe losses (Lemma 8; the default
whenever the losses hold probe rows, and required by ``--estimate-lambda``), or else Σ ℓ̂ / Φ_z
(the loss and distance terms carry equal mass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from .. import bounds, grid, io
from .. import proxy as proxy_mod
from .._checks import check_lambda
from ..errors import InputError
from .base import Clusters, Inputs, ScoreMethod


#: How the report names Λ = ∞ (``--lambda inf``).
INFINITE_LAMBDA = ("∞ (--lambda inf): p ∝ distance^z, the proxy loss drops out (the paper's regression "
                   "experiments, §5.3); Theorem 2's additive term is then infinite: no (1 ± ε) bound")

#: ``--proxy``: the loss a row is expected to have — its center's (the paper's), the mean of its
#: cluster's queried losses (center and probes; the center's where no probe was queried), or the
#: inverse-distance average of the nearest queried rows' losses in the embedding space (:mod:`dataselect_cli.proxy`);
#: ``auto``: whichever of them predicts the probes best, each probe left out (the largest leave-one-out R²).
PROXIES = ("center", "mean", "knn", "auto")


@dataclass
class Scores:
    """Per-row columns of the scores file (all float64, shape (n,))."""

    proxy_loss: np.ndarray
    distance_term: np.ndarray
    mass: np.ndarray
    prob: np.ndarray


def distance_term(distance: np.ndarray, z: int) -> np.ndarray:
    """v(e) = distance^z, float64."""
    return distance.astype(np.float64) ** z


def balanced_lambda(proxy_total: float, phi_z: float, n: int) -> float:
    """The default global Λ: the value that gives the loss term and the distance term equal mass.

    Λ = Σ ℓ̂ / Φ_z, so Σ ℓ̂ = Λ·Φ_z. With the unit proxy (no losses) this is the design's
    Λ = n / Φ_z. When every proxy loss is 0 it falls back to n / Φ_z (p ∝ v then anyway), and
    when Φ_z = 0 (every row equals its center) to 0.
    """
    if phi_z <= 0:
        return 0.0
    return (proxy_total if proxy_total > 0 else n) / phi_z


def row_mass(labels: np.ndarray, dterm: np.ndarray, center_loss: np.ndarray, lam: np.ndarray,
             proxy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(proxy loss, mass) of each row: ℓ̂(e) = ℓ(c_i) (or the row's own ``proxy``) and m(e) = ℓ̂(e) + Λ_i·v(e).

    Where Λ_i = ∞ the mass is v(e) alone: the limit of p(e) = (ℓ̂ + Λv)/(ΛΦ + Σℓ̂) as Λ → ∞ is v(e)/Φ_z.

    >>> row_mass(np.array([0, 0]), np.array([0.0, 2.0]), np.array([1.0]), np.array([np.inf]))[1].tolist()
    [0.0, 2.0]
    """
    proxy = center_loss[labels].astype(np.float64) if proxy is None else np.asarray(proxy, dtype=np.float64)
    lam_row = lam[labels]
    infinite = np.isinf(lam_row)
    mass = proxy + np.where(infinite, 0.0, lam_row) * dterm
    mass[infinite] = dterm[infinite]
    return proxy, mass


def prob_from_mass(mass: np.ndarray, total: float, n: int) -> np.ndarray:
    """p(e) = m(e) / Σ m; uniform 1/n when every mass is 0."""
    return mass / total if total > 0 else np.full(len(mass), 1.0 / n)


def sensitivity(labels: np.ndarray, dterm: np.ndarray, center_loss: np.ndarray, lam: np.ndarray,
                block_rows: int = grid.BLOCK_ROWS) -> Scores:
    """Sensitivity sampling distribution of Algorithm 1, on arrays in memory.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
        Cluster of each row, in [0, k).
    dterm : ndarray of shape (n,), float64
        v(e) = ‖e − c‖^z, see :func:`distance_term`.
    center_loss : ndarray of shape (k,), float64, >= 0
        Loss of each cluster's center row (1.0 everywhere in the no-loss mode).
    lam : ndarray of shape (k,), float64, >= 0
        Λ_i of each cluster.
    block_rows : int
        The block grid behind Σ mass (:mod:`dataselect_cli.grid`), so that a partitioned engine
        computes the same total.

    Returns
    -------
    Scores
        ``prob`` sums to 1. If every mass is 0 (every row equals its center and every center
        loss is 0) ``prob`` is uniform, which is then as good as any design.

    Examples
    --------
    >>> s = sensitivity(np.array([0, 0, 1]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    >>> s.mass.tolist(), s.prob.tolist()
    ([1.0, 3.0, 2.0], [0.16666666666666666, 0.5, 0.3333333333333333])
    """
    proxy, mass = row_mass(labels, dterm, center_loss, lam)
    return Scores(proxy, dterm, mass, prob_from_mass(mass, grid.total(grid.block_sums(mass, block_rows)), len(mass)))


def queried_stats(labels: np.ndarray, loss: np.ndarray, k: int) -> dict[str, list]:
    """Per cluster, the losses the user computed (the center and any probes): how many, their mean, and
    their sample variance (None below 2). What ``--design auto`` predicts the designs' variances from.

    >>> queried_stats(np.array([0, 1, 0]), np.array([1.0, 5.0, 3.0]), 2)
    {'queried': [2, 1], 'queried_mean': [2.0, 5.0], 'queried_var': [2.0, None]}
    """
    count = np.bincount(labels, minlength=k)
    total = np.bincount(labels, weights=loss, minlength=k)
    mean = total / np.maximum(count, 1)
    sq = np.bincount(labels, weights=(loss - mean[labels]) ** 2, minlength=k)
    var = [float(sq[h] / (count[h] - 1)) if count[h] > 1 else None for h in range(k)]
    return {"queried": count.tolist(), "queried_mean": mean.tolist(), "queried_var": var}


@dataclass
class State:
    """What the block function needs: the center losses, Λ per cluster and z; with ``--proxy knn`` every row's
    proxy loss and the block grid it is cut by."""

    center_loss: np.ndarray
    lam: np.ndarray
    z: int
    row_proxy: np.ndarray | None = None
    block_rows: int = grid.BLOCK_ROWS


#: What to do when a center has no loss: where the center ids are, and the command that lists them.
CENTER_HINT = ("; give every center row a loss: the center ids are the column center_id of the centers file "
               "that 'dataselect cluster' wrote (list them with 'dataselect show CENTERS --column center_id'; "
               "a one-step 'sample --k' run has the same centers as 'cluster' with the same --k, --seed and "
               "k-means options, and writes them with --centers FILE)")


def holder_fix(ratios: np.ndarray, estimated: bool) -> str:
    """What would make the probes satisfy the Hölder assumption: the global Λ that holds for all of them
    (their largest ratio |ℓ(e) − ℓ(c)| / ‖e − c‖^z), or why none does, and ``--estimate-lambda``."""
    finite = ratios[np.isfinite(ratios)]
    if len(finite) < len(ratios):
        lam = ("no Λ holds for a probe at distance 0 from its center with another loss (a duplicate row with "
               "another loss; drop it from --losses)")
    else:
        lam = f"--lambda {float(finite.max()):.4g} (the largest probe ratio) holds for these probes"
    return lam if estimated else lam + "; --estimate-lambda sets Λ per cluster from the probes (Lemma 8)"


class Sensitivity(ScoreMethod):
    """Sensitivity mass m = ℓ̂ + Λ·v and prob p = m / Σ m (Algorithm 1)."""

    name = "sensitivity"
    summary = "mass = center loss + Λ·distance^z, prob = mass/Σ mass (Axiotis et al. 2024; the default)"
    inputs = ("clusters",)
    optional = ("losses",)
    direction = "mass"
    source_columns = ("cluster", "distance")
    passthrough = ("cluster",)
    columns = ("proxy_loss", "distance_term", "mass", "prob")

    def __init__(self, lam: float | None = None, estimate_lambda: bool = False, proxy: str = "center"):
        if lam is not None:
            check_lambda(lam, infinite=True)  # ∞ only where the run allows it: see check()
            if estimate_lambda:
                raise InputError("give --lambda or --estimate-lambda, not both")
        if proxy not in PROXIES:
            raise InputError(f"--proxy must be one of {', '.join(PROXIES)}; got {proxy!r}")
        self.lam, self.estimate_lambda, self.proxy = lam, estimate_lambda, proxy

    def params(self) -> dict[str, Any]:
        # JSON has no infinity: Λ = ∞ is recorded as "inf", the word --lambda takes
        out = {"lambda": "inf" if self.lam == math.inf else self.lam, "estimate_lambda": self.estimate_lambda}
        if self.proxy != "center":  # recorded only when set, so that earlier files stay up to date (--resume)
            out["proxy"] = self.proxy
        return out

    def check(self, available: set[str]) -> None:
        if self.lam == math.inf and "response" not in available:
            raise InputError("--lambda must be a finite number >= 0 here; inf (p ∝ distance^z, the loss term "
                             "dropped) applies to 'sample --regression', as in the paper's regression experiments")
        if self.estimate_lambda and "losses" not in available:
            raise InputError("--estimate-lambda needs --losses with the center rows and a few probe rows per cluster")
        if self.proxy == "knn" and not {"losses", "embeddings"} <= available:
            raise InputError("--proxy knn needs the queried losses (--losses or --loss-command) and the embeddings "
                             "(sample EMB in one step with --k, or 'score --embeddings EMB')")
        super().check(available)

    def default_lambda(self, center_loss: np.ndarray, c: Clusters, phi: float, n: int) -> float:
        """Λ of every cluster when it is not estimated: ``--lambda``, else :func:`balanced_lambda`."""
        if self.lam is not None:
            return float(self.lam)
        return balanced_lambda(c.proxy_total(center_loss), phi, n)

    def prepare(self, inputs: Inputs, note: Callable[[str], None]) -> tuple[State, dict[str, Any]]:
        """Center losses, Λ and the Hölder check; an :class:`InputError` for a center without a loss."""
        c = inputs.clusters
        n, k = c.rows(), len(c.center_id)
        cost = np.bincount(c.labels, weights=distance_term(c.distance, c.z), minlength=k) if c.stats is None \
            else c.stats.dterm_cost
        phi = float(cost.sum())
        c.locate(c.center_id, "the clusters file", "center")  # every center row must be a row of the data
        holder: dict[str, Any] = {"probes": 0, "violations": 0, "violated": False, "percentiles": {}}
        lam_info: dict[str, Any] = {}
        queried: dict[str, Any] = {}
        if inputs.losses is None:
            center_loss = np.ones(k)
            loss_mode = "none (unit proxy loss)"
            lam_vec = np.full(k, balanced_lambda(float(n), phi, n) if self.lam is None else self.lam)
            lam_mode = "n/Φ_z (no losses)" if self.lam is None else "--lambda"
        else:
            path = inputs.losses_path
            lids, lvals = inputs.losses
            pos = io.lookup(lids, c.center_id, path, "center", CENTER_HINT)
            center_loss = lvals[pos]
            loss_mode = "center losses"  # --proxy center, or what replaces it below
            is_center = np.zeros(len(lids), dtype=bool)
            is_center[pos] = True
            probe_ids = lids.filter(pa.array(~is_center))
            plab, pdist = c.locate(probe_ids, path, "probe") if len(probe_ids) else (np.empty(0, np.int64),
                                                                                   np.empty(0, np.float32))
            ratios = bounds.probe_ratios(lvals[~is_center], center_loss[plab], distance_term(pdist, c.z))
            queried = queried_stats(np.concatenate([np.arange(k), plab]),
                                    np.concatenate([center_loss, lvals[~is_center]]), k)
            # Λ from the probes whenever there are probes and no --lambda (issue 12): the Theorem 2 bound
            # then rests on the data's own ratios, not on a default nobody checked
            if self.estimate_lambda or (self.lam is None and len(plab)):
                if len(plab) == 0:
                    raise InputError("--estimate-lambda found no probe rows (rows other than the centers); add losses "
                                     f"of a few rows per cluster (Lemma 8 suggests {bounds.probes_needed(k)}; "
                                     "'dataselect cluster --probes T' marks them)", path)
                lam_vec, lam_info = bounds.estimate_lambda(plab, ratios, k, n)
                lam_mode = "estimated per cluster from probes (Lemma 8: max ratio × ln n)" + \
                    ("" if self.estimate_lambda else "; the default whenever probe rows have losses")
                if lam_info["borrowed"]:
                    note(f"warning: {len(lam_info['borrowed'])} clusters had no usable probe; they take the largest "
                         "Λ_i of the others")
            else:
                lam_vec = np.full(k, self.default_lambda(center_loss, c, phi, n))
                lam_mode = "--lambda" if self.lam is not None else \
                    "Σℓ̂/Φ_z (default: loss and distance terms carry equal mass; not checked against the data)"
            holder = bounds.holder_check(plab, ratios, lam_vec)
            if holder["violated"]:
                note(f"warning: {holder['violations']} of {holder['probes']} probes break the Hölder assumption "
                     "(|ℓ(e) − ℓ(c)| > Λ·‖e − c‖^z); the (1±ε) bound does not hold as stated; "
                     + holder_fix(ratios, self.estimate_lambda or self.lam is None))
        proxy, row_proxy, proxy_info = center_loss, None, {}
        if inputs.losses is not None:
            vectors = self.queried_vectors(inputs, probe_ids)
            qlab = np.concatenate([np.arange(k), plab])
            qloss = np.concatenate([center_loss, lvals[~is_center]])
            is_q_center = np.arange(len(qlab)) < k
            proxy_info = {"proxy": self.proxy, "probes": int(len(plab)),
                          "r2_loo": proxy_mod.loo_r2(qlab, qloss, is_q_center,
                                                     None if vectors is None else vectors[1])}
            chosen = self.proxy
            if chosen == "auto":
                r2s = {name: v for name, v in proxy_info["r2_loo"].items() if v is not None}
                chosen = max(r2s, key=lambda name: (r2s[name], name == "center")) if r2s else "center"
                proxy_info["chosen"] = chosen
            if chosen == "mean" and queried:
                proxy = np.asarray(queried["queried_mean"], dtype=np.float64)
                loss_mode = "mean of the cluster's queried losses (center and probes)"
            elif chosen == "knn":
                row_proxy = proxy_mod.knn_proxy(vectors[0], vectors[1], qloss)
                loss_mode = (f"inverse-distance average of the {min(proxy_mod.K_NEAREST, len(qloss))} nearest queried "
                             "losses (centers and probes) in the embedding space")
            if self.proxy == "auto":
                loss_mode += f" (--proxy auto: the best leave-one-out R² over the probes, {chosen})"
        infinite = bool(np.isinf(lam_vec).any())
        if infinite:
            lam_mode = INFINITE_LAMBDA
        summary = {
            "n": n, "d": c.d, "k": k, "z": c.z, "phi_z": phi, "loss_mode": loss_mode, "lambda_mode": lam_mode,
            # Λ = ∞ has no number in JSON: the report says so in words, and Σ Λ·Φ (the bound's term) is unknown
            "lambda": None if infinite else lam_vec.tolist(),
            "lambda_phi": None if infinite else float(np.dot(lam_vec, cost)),
            **({"lambda_infinite": True} if infinite else {}),
            "lambda_info": lam_info, "holder": holder, **({"proxy": proxy_info} if proxy_info else {}),
            "clusters": {
                "center_id": c.center_id.to_pylist(), "center_loss": center_loss.tolist(),
                "size": np.asarray(c.size).tolist(), "cost": cost.tolist(), **queried,
            },
        }
        return State(proxy, lam_vec, c.z, row_proxy, inputs.block_rows), summary

    def queried_vectors(self, inputs: Inputs, probe_ids: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
        """(every row's vector, the queried rows' vectors: centers by cluster, then the probes ``probe_ids``) from
        the embeddings, None when they are not at hand (they are read only for ``--proxy knn``, or
        ``score --embeddings``) or the run keeps nothing per row (a directory output)."""
        c = inputs.clusters
        if inputs.embeddings is None or c.ids is None:
            return None
        from ..dataset import read_embeddings

        ids, x = read_embeddings(inputs.embeddings)
        x = x[io.lookup(ids, c.ids, inputs.embeddings, "clusters file")]
        queried = io.lookup(c.ids, pa.concat_arrays([c.center_id.cast(c.ids.type), probe_ids.cast(c.ids.type)]),
                            inputs.embeddings, "queried")
        return x, x[queried]

    def score_block(self, b: int, cols: dict, state: State) -> tuple[dict[str, np.ndarray], tuple[float]]:
        """One block over columns ``cluster`` and ``distance``: its proxy loss, distance term and mass, and Σ mass."""
        labels = np.asarray(cols["cluster"]).astype(np.int64)
        dterm = distance_term(np.asarray(cols["distance"]), state.z)
        own = None
        if state.row_proxy is not None:
            lo = b * state.block_rows
            own = state.row_proxy[lo:lo + len(labels)]
        proxy, mass = row_mass(labels, dterm, state.center_loss, state.lam, own)
        return {"proxy_loss": proxy, "distance_term": dterm, "mass": mass}, (grid.block_sum(mass),)

    def finish(self, columns: dict[str, np.ndarray], sums: list[tuple[float, ...]], n: int) -> dict[str, np.ndarray]:
        columns["prob"] = prob_from_mass(columns["mass"], grid.total(np.array([s[0] for s in sums])), n)
        return columns
