"""What a file is (embeddings, clusters, centers, scores, selection, subset, losses, …), from its metadata and
columns: for ``dataselect show`` and for the hints that catch swapped arguments."""

from __future__ import annotations

import os
from typing import Any

from .errors import InputError, with_article

#: The kind of file each command writes, by the columns that tell its outputs apart.
_BY_COMMAND = {"embed": "embeddings", "score": "scores", "sample": "selection", "apply": "subset",
               "evaluate": "evaluate results", "estimate": "estimate report", "dynamics": "dynamics",
               "dynamics-recorder": "dynamics", "bandit": "selection", "dedup": "dedup"}

#: What each kind holds, for messages.
COLUMNS = {
    "embeddings": "id, embedding", "clusters": "id, cluster, distance", "centers": "cluster, center_id, size, cost",
    "scores": "id, cluster, …, prob (or id, score)", "selection": "id, count, prob, weight, cluster",
    "losses": "id, loss", "subset": "your data's columns, weight, count",
    "dynamics": "id, checkpoint, label, logits, …", "dedup": "id, cluster, duplicate_of, max_similarity, kept_id, keep",
}


#: Where a file of each kind comes from, for messages.
MADE_BY = {"clusters": "'dataselect cluster' writes it", "selection": "'dataselect sample' writes it",
           "scores": "'dataselect score' writes it", "embeddings": "'dataselect embed' writes it",
           "dedup": "'dataselect dedup' writes it",
           "dynamics": "'dataselect dynamics' or dataselect_cli.dynamics.Recorder writes it"}


def kind(names: list[str], meta: dict[str, Any]) -> str | None:
    """The kind of a table with columns ``names`` and ``dataselect`` metadata ``meta``; None when unknown."""
    command = meta.get("command")
    if command == "cluster":
        return "centers" if "center_id" in names else "clusters"
    if command in _BY_COMMAND:
        return _BY_COMMAND[command]
    cols = set(names)
    if {"id", "duplicate_of", "keep"} <= cols:
        return "dedup"
    if {"id", "count", "weight"} <= cols:
        return "selection"
    if {"id", "prob"} <= cols or {"id", "score"} <= cols:
        return "scores"
    if {"id", "checkpoint", "logits"} <= cols:
        return "dynamics"
    if {"center_id", "cluster"} <= cols:
        return "centers"
    if {"id", "cluster", "distance"} <= cols:
        return "clusters"
    if {"id", "embedding"} <= cols:
        return "embeddings"
    if {"id", "loss"} <= cols:
        return "losses"
    return None


def kind_of(path: str | os.PathLike | None) -> str | None:
    """The kind of a Parquet file or directory of them; None when it is unknown or unreadable (the
    command's own checks then say what is wrong)."""
    from .pqdataset import ParquetDataset

    if path is None or not os.path.exists(path):
        return None
    try:
        ds = ParquetDataset(path)
        return kind(ds.schema.names, ds.metadata)
    except (InputError, OSError, ValueError):
        return None


def check_not_swapped(first: tuple[str, str, str], second: tuple[str | None, str, str]) -> None:
    """Refuse two inputs given in each other's place, before any other check reads them.

    Each argument is (path, the kind expected there, how the user names that place: 'CLUSTERS',
    '--losses'). When the first is not of its kind but the second is — or the first is of the
    second's kind — the user most likely swapped them.
    """
    (p1, want1, name1), (p2, want2, name2) = first, second
    k1 = kind_of(p1)
    if k1 == want1 or k1 is None:
        return
    k2 = kind_of(p2)
    if p2 is not None and (k2 == want1 or (k1 == want2 and k2 != want2)):
        raise InputError(f"is {a_kind(k1)} file, not {a_kind(want1)} file, and {p2} is {a_kind(k2)} file: did you swap "
                         f"{name1} and {name2}? {name1} takes the {want1} file ({COLUMNS.get(want1, '')})", p1)
    raise InputError(f"is {a_kind(k1)} file, not {a_kind(want1)} file ({COLUMNS.get(want1, '')}); "
                     f"{MADE_BY.get(want1, '')}", p1)


def a_kind(k: str | None) -> str:
    """"a selection", "an embeddings", or "an unrecognised" (for messages)."""
    return with_article(k or "unrecognised")
