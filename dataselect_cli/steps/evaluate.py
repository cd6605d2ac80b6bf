"""``dataselect evaluate``: embeddings + a label or target → results.parquet, summary.md, plots and report.html.

The strategies, proxy models and metrics are in :mod:`dataselect_cli.evaluate`; this module reads,
validates, runs the grid and writes.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
import pyarrow as pa

from .. import dataset, htmlreport, io, options, outputs
from .._checks import check_lambda
from ..fingerprints import input_fingerprints
from ..pqdataset import ParquetDataset
from ..errors import InputError
from ..evaluate.harness import resolve_budgets, run_grid
from ..evaluate.strategies import STRATEGIES, WARM_FRAC, default_strategies
from ..evaluate.task import make_task
from ..evaluate.summary import aggregate, best_per_budget, results_table
from ..models import L2_LOGISTIC, L2_LSQ
from ..progress import silent
from .common import skip

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


def read_column(path: str, column: str, ids, option: str, data: bool):
    """The ``column`` of ``path`` in the order of the embeddings' ``ids`` (joined on id for --data)."""
    ds = ParquetDataset(path, "table" if data else "embeddings")  # a file or a directory of files
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
                  data: str | None = None, strategies: str | None = None, budgets: str = options.EVAL_BUDGETS,
                  repeats: int = options.EVAL_REPEATS, holdout: float = options.EVAL_HOLDOUT, center_frac: float = WARM_FRAC, lam: float | None = None,
                  seed: int = options.SEED, unit: str = "draws", note: Callable[[str], None] = lambda _m: None,
                  progress=None, rounds: int | None = None) -> dict:
    """``dataselect evaluate``: run the grid on EMB and write results.parquet, summary.md, plots and report.html.

    Returns a summary: the paths written, n, the metric, the full-data metric and the clear best strategy per budget (None where none is).

    ``rounds`` splits the queried rows of ``sensitivity-adaptive`` into that many rounds (default 1); each
    earlier round gets its own results rows (``sensitivity-adaptive round i/r``).
    """
    if (label is None) == (target is None):
        raise InputError("give exactly one of --label COL (classification) or --target COL (regression)")
    if not 0 < holdout < 1:
        raise InputError(f"--holdout must be a fraction in (0, 1), e.g. 0.2; got {holdout}")
    if not 0 < center_frac < 1:
        raise InputError(f"--center-frac must be in (0, 1), e.g. 0.2; got {center_frac}")
    if lam is not None:
        check_lambda(lam)
    if rounds is not None and rounds < 1:
        raise InputError(f"--rounds must be >= 1; got {rounds}")
    if unit not in ("draws", "rows"):
        raise InputError(f"--unit must be draws or rows; got {unit!r}")
    kind, column = ("label", label) if label is not None else ("target", target)
    names = parse_strategies(strategies, kind)
    values = parse_budgets(budgets)
    outputs.check_output_dir(out_dir, [emb, data])
    paths = {f: os.path.join(out_dir, f) for f in OUTPUT_FILES + PLOT_FILES}
    if os.path.isdir(out_dir):
        for p in paths.values():
            outputs.check_output_path(p, [emb, data])
    params = {"label": label, "target": target, "strategies": names, "budgets": values, "repeats": repeats,
              "holdout": holdout, "center_frac": center_frac, "lambda": lam, "seed": seed, "unit": unit,
              "l2": L2_LOGISTIC if kind == "label" else L2_LSQ}
    if rounds is not None:  # recorded only when set, so that earlier results stay up to date (--resume)
        params["rounds"] = rounds
    inputs = input_fingerprints({"embeddings": emb, "data": data})
    always = [paths[f] for f in OUTPUT_FILES]
    if all(os.path.exists(p) for p in always) and \
            (done := skip([paths["results.parquet"]], "evaluate", params, inputs, seed, note)) is not None:
        written = always + [paths[f] for f in PLOT_FILES if os.path.exists(paths[f])]
        return {**done, "strategies": names, "repeats": repeats, "budgets": done.get("budgets"), "written": written}
    ids, x = dataset.read_embeddings(emb, warn=note)
    col = read_column(data or emb, column, ids, f"--{kind}", data is not None)
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
    opt = {"center_frac": center_frac, "lam": lam, "unit": unit, "rounds": rounds}
    rows = run_grid(task, names, sizes, repeats, seed, opt, progress or silent)
    params = {**params, "budgets": sizes}  # the row counts the budgets resolved to
    shown = list(dict.fromkeys(r["strategy"] for r in rows[1:]))  # with an adaptive run's earlier rounds
    info = {"n": len(y), "n_train": task.n, "n_test": len(task.y_test), "d": int(task.x.shape[1]),
            "kind": kind, "metric": task.metric, "classes": task.classes or None,
            "metric_full": task.metric_full, "truth": float(task.loss.mean()), "params": params,
            "emb": os.path.basename(emb), "data": os.path.basename(data) if data else None,
            "budgets": sizes}
    agg = aggregate(rows)
    higher = kind == "label"
    info["best"] = {str(b): s for b, s in sorted(best_per_budget(agg, "test_unweighted", higher).items())}
    outputs.make_dir(out_dir)
    io.write_table(results_table(rows), paths["results.parquet"],
                   io.make_meta("evaluate", {**params, "budgets": values}, inputs,
                                {k: v for k, v in info.items() if k != "params"}, seed))
    shown_info = {**info, "params": {**params, "strategies": shown}}
    written = htmlreport.write_evaluate_report(rows, agg, shown_info, paths, note=note)
    return {**{k: v for k, v in info.items() if k != "params"}, "strategies": names, "budgets": sizes,
            "repeats": repeats, "written": written}
