"""``dsir`` and ``dsir-clusters``: DSIR importance weights toward a target (Xie et al., NeurIPS 2023).

* ``dsir`` scores the documents of a text corpus (``--text``, any format ``embed`` reads) by their log
  importance weight toward one or more target corpora (``--target``), from hashed n-gram
  bag-of-words models (:mod:`dataselect_cli.dsir`); the passes over the text are
  :mod:`dataselect_cli.steps.dsir`'s.
* ``dsir-clusters`` is embedding-space DSIR on ``cluster``'s clusters: w(c) = γ̂_T(c)/γ̂_R(c), the
  Laplace-smoothed cluster histograms of the target (``--target``, an embeddings file whose rows are
  assigned to the nearest centroid of the centers file) and of the raw rows (CLUSTERS).

Both write ``score`` = ``log_importance_weight`` (higher = closer to the target), to be resampled by
``sample --design gumbel-topk`` (DSIR's own, unweighted) or ``--design priority`` (weighted,
unbiased).
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar

import numpy as np

from .. import dsir as dsir_mod
from ..errors import InputError
from .base import Inputs, ScoreMethod

#: The direction of a DSIR score (the designs' messages read it).
DIRECTION = "higher=closer-to-target"


def check_laplace(laplace: float) -> float:
    if not (math.isfinite(laplace) and laplace >= 0):
        raise InputError(f"--laplace must be a number >= 0; got {laplace}")
    return float(laplace)


class DSIR(ScoreMethod):
    """Log importance weight of each document of a text corpus toward the target corpora (hashed n-grams)."""

    name = "dsir"
    summary = ("log importance weight of each document of --text toward --target (hashed n-gram DSIR; "
               "--compat data-selection for the package's exact weights)")
    inputs: ClassVar[tuple[str, ...]] = ("text",)
    direction = DIRECTION

    def __init__(self, text_column: str = "text", id_column: str | None = None, ngrams: int = 2,
                 buckets: int = 10_000, tokenizer: str = "words", compat: str | None = None, laplace: float = 0.0,
                 min_length: int = 100, fit_tokens: str = "auto", fit_shards: int = 1,
                 separate_targets: bool = False, target_proportions: str | list[float] | None = None,
                 skip_empty: bool = False):
        self.featurizer = dsir_mod.Featurizer(ngrams, buckets, tokenizer, compat)
        if tokenizer != "words" and compat:
            raise InputError("--tokenizer does not apply with --compat data-selection (it uses nltk's wordpunct)")
        self.text_column, self.id_column = text_column, id_column
        self.laplace = check_laplace(laplace)
        if min_length < 0:
            raise InputError(f"--min-length must be >= 0; got {min_length}")
        self.min_length = int(min_length)
        self.fit_cap = dsir_mod.fit_tokens_cap(fit_tokens, buckets)
        self.fit_tokens = fit_tokens if fit_tokens in ("auto", "all") else int(fit_tokens)
        if fit_shards < 1:
            raise InputError(f"--fit-shards must be >= 1; got {fit_shards}")
        self.fit_shards = int(fit_shards)
        self.separate_targets = bool(separate_targets)
        self.proportions = _proportions(target_proportions)
        self.skip_empty = bool(skip_empty)

    def params(self) -> dict[str, Any]:
        return {"text_column": self.text_column, "id_column": self.id_column, **self.featurizer.params(),
                "laplace": self.laplace, "min_length": self.min_length, "fit_tokens": self.fit_tokens,
                "fit_shards": self.fit_shards, "separate_targets": self.separate_targets,
                "target_proportions": self.proportions, "skip_empty": self.skip_empty}

    def check_targets(self, n_targets: int) -> None:
        """Refuse proportions that do not match the targets, or that need ``--separate-targets``."""
        if self.proportions is None:
            return
        if len(self.proportions) != n_targets:
            raise InputError(f"--target-proportions gives {len(self.proportions)} numbers for {n_targets} --target "
                             "corpora; give one per target, in order")
        if not self.separate_targets and n_targets > 1:
            raise InputError("--target-proportions weighs the targets of --separate-targets; add it (without it the "
                             "targets are pooled into one, as the package does)")


def _proportions(value: str | list[float] | None) -> list[float] | None:
    if value is None:
        return None
    try:
        p = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except ValueError:
        raise InputError(f"--target-proportions must be numbers separated by commas (e.g. 0.7,0.3); got {value!r}") \
            from None
    if not p or any(not math.isfinite(v) or v < 0 for v in p) or sum(p) <= 0:
        raise InputError(f"--target-proportions must be numbers >= 0 with a positive sum; got {value!r}")
    return [v / math.fsum(p) for v in p]


class DSIRClusters(ScoreMethod):
    """Embedding-space DSIR: log γ̂_T(c) − log γ̂_R(c) of each row's cluster c, Laplace-smoothed histograms."""

    name = "dsir-clusters"
    summary = ("log importance weight of each row's cluster toward --target embeddings (cluster histograms, "
               "--laplace, default 1)")
    inputs: ClassVar[tuple[str, ...]] = ("clusters", "target")
    direction = DIRECTION
    source_columns = ("cluster",)
    passthrough = ("cluster",)
    columns = ("score", "log_importance_weight")

    def __init__(self, laplace: float = 1.0):
        self.laplace = check_laplace(laplace)

    def params(self) -> dict[str, Any]:
        return {"laplace": self.laplace}

    def prepare(self, inputs: Inputs, note: Callable[[str], None]) -> tuple[np.ndarray, dict[str, Any]]:
        from ..cluster import nearest_centers
        from ..dataset import read_embeddings, read_table

        c = inputs.clusters
        k = len(c.size)
        centers, _ = read_table(inputs.centers, ["cluster", "centroid"], "centers")
        order = np.argsort(centers.column("cluster").to_numpy())
        centroid = np.stack(centers.column("centroid").to_numpy(zero_copy_only=False))[order].astype(np.float32)
        _, x = read_embeddings(inputs.target, warn=note)
        if x.shape[1] != centroid.shape[1]:
            raise InputError(f"has {x.shape[1]} dimensions but the clusters' centroids have {centroid.shape[1]}; "
                             "embed the target with the raw data's encoder", inputs.target)
        labels = nearest_centers(x, centroid)[0]
        raw = c.label_counts()
        target = np.bincount(labels, minlength=k)
        if self.laplace == 0 and (raw == 0).any():
            raise InputError("a cluster has no raw row; give --laplace > 0", inputs.centers)
        ratio = cluster_log_ratio(target, raw, self.laplace)
        return ratio, {"k": k, "target_rows": int(len(x)), "laplace": self.laplace,
                       "target_clusters_empty": int((target == 0).sum()),
                       "log_weight_range": [float(ratio.min()), float(ratio.max())]}

    def score_block(self, b: int, cols: dict, state: np.ndarray) -> tuple[dict[str, np.ndarray], tuple]:
        w = state[np.asarray(cols["cluster"], np.int64)]
        return {"score": w, "log_importance_weight": w}, ()


def cluster_log_ratio(target: np.ndarray, raw: np.ndarray, laplace: float) -> np.ndarray:
    """log γ̂_T(c) − log γ̂_R(c), γ̂ = (count + a)/(N + a·k) (−inf where the target's smoothed share is 0).

    >>> cluster_log_ratio(np.array([2, 0]), np.array([1, 1]), 1.0).round(4).tolist()
    [0.4055, -0.6931]
    """
    pt, pr = dsir_mod.distribution(target, laplace), dsir_mod.distribution(raw, laplace)
    return np.array([(math.log(a) if a > 0 else -math.inf) - math.log(b) for a, b in zip(pt.tolist(), pr.tolist())])
