"""``dataselect show`` and ``dataselect report``: what a file is and holds, and a selection's stored report."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import pyarrow as pa

from .. import io, kinds
from ..pqdataset import ParquetDataset
from ..errors import InputError


def show_file(path: str) -> dict[str, Any]:
    """The schema and metadata summary of any file this tool reads or writes (a Parquet file, a directory
    of them, or an ``estimate --report`` JSON file).

    Returns
    -------
    dict
        ``path``, ``kind`` (embeddings, clusters, centers, scores, selection, subset, losses, …, or None),
        ``rows``, ``files``, ``row_groups``, ``columns`` ({name: type}) and ``dataselect`` (the metadata
        written with it: command, version, seed, params, inputs, summary; {} for other files).
    """
    if not os.path.exists(path):
        raise InputError("no such file", path)
    if path.lower().endswith(".json") and os.path.isfile(path):
        meta = io.read_meta(path)
        return {"path": path, "kind": kinds.kind([], meta), "rows": None, "files": 1, "row_groups": None,
                "columns": {}, "dataselect": meta}
    ds = ParquetDataset(path)
    meta = ds.metadata
    return {"path": path, "kind": kinds.kind(ds.schema.names, meta), "rows": ds.n, "files": len(ds.files),
            "row_groups": len(ds.row_groups), "columns": {f.name: str(f.type) for f in ds.schema},
            "dataselect": meta}


def show_lines(info: dict[str, Any]) -> list[str]:
    """``show_file``'s result as a few lines of text: what, columns, who wrote it, with what, from what."""
    what = f"{info['kind']} file" if info["kind"] else "a table dataselect does not recognise"
    size = "" if info["rows"] is None else \
        f", {info['rows']} rows in {info['row_groups']} row group{'' if info['row_groups'] == 1 else 's'}" + \
        (f", {info['files']} files" if info["files"] > 1 else "")
    lines = [f"{info['path']}: {what}{size}"]
    if info["columns"]:
        lines.append("columns: " + ", ".join(f"{k} {v}" for k, v in info["columns"].items()))
    meta = info["dataselect"]
    if not meta:
        lines.append("no dataselect metadata (not written by dataselect)")
        return lines
    lines.append(f"written by: dataselect {meta.get('version')} {meta.get('command')}"
                 + ("" if meta.get("seed") is None else f" (seed {meta['seed']})"))
    if meta.get("params"):
        lines.append("params: " + _scalars(meta["params"]))
    for role, fp in (meta.get("inputs") or {}).items():
        what = "generated, no file" if "synthetic" in fp else f"{fp.get('bytes')} bytes, sha256 {str(fp.get('sha256'))[:12]}…"
        lines.append(f"input {role}: {fp.get('name')} ({what})")
    if meta.get("summary"):
        lines.append("summary: " + _scalars(meta["summary"]))
    return lines


def _scalars(d: dict[str, Any], limit: int = 20) -> str:
    """The scalar entries of a dict (lists and nested objects left out: 'show --json' prints them all)."""
    items = [f"{k}={_fmt(v)}" for k, v in d.items() if v is None or isinstance(v, (int, float, str, bool))]
    more = f", … ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else json.dumps(v, ensure_ascii=False) if isinstance(v, str) else str(v)


def column_values(path: str, column: str, block_rows: int = 65_536) -> Iterator[str]:
    """Every value of ``column``, as text, one per row, read block by block (``show --column``)."""
    ds = ParquetDataset(path)
    ds.require([column], "input")
    for t in ds.iter_tables([column], 0, ds.n, block_rows):
        col = t.column(0)
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type):
            raise InputError(f"column '{column}' holds vectors; --column prints scalar columns (ids, labels, …)", path)
        for v in col.to_pylist():
            yield "" if v is None else str(v)


def stored_report(selected: str) -> dict[str, Any]:
    """The report a selection carries in its metadata (what ``sample`` printed and wrote to --report)."""
    info = show_file(selected)
    if info["kind"] != "selection" or not info["dataselect"].get("summary"):
        what = f"is {kinds.a_kind(info['kind'])} file, not a selection"
        raise InputError(f"{what}; 'dataselect report' re-renders the report a selection carries (use "
                         "'dataselect show' for any file)", selected)
    return info["dataselect"]["summary"]
