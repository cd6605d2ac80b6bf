"""File-level operations, one per subcommand: read → core math → write. Shared by the CLI and Python users.

Each lives in its own module of :mod:`dataselect_cli.steps`; this module gathers them under one
name. Every function returns the summary it also records in its output's metadata.

>>> from dataselect_cli import api
>>> report = api.sample_file("emb.parquet", "selected.parquet", k=100, eps=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

from .steps.apply import apply_file
from .steps.bandit import bandit_file
from .steps.cluster import CLUSTERING_KEYS, cluster_file, run_cluster
from .steps.common import Scale, default_centers_path
from .steps.dedup import dedup_file, run_dedup
from .steps.dynamics import dynamics_file
from .steps.embed import embed_file, embed_text_file
from .steps.estimate import estimate_file
from .steps.sample import run_sample, sample_file
from .steps.score import read_clusters, run_score, score_file
from .steps.show import show_file, stored_report

__all__ = ["CLUSTERING_KEYS", "Scale", "apply_file", "bandit_file", "cluster_file", "dedup_file", "default_centers_path",
           "dynamics_file", "embed_file", "embed_text_file", "estimate_file", "read_clusters", "run_cluster",
           "run_dedup", "run_sample", "run_score", "sample_file", "score_file", "show_file", "stored_report"]
