"""``dataselect dynamics``: embeddings + a label → the training-dynamics table of a proxy model trained on them.

The model (:mod:`dataselect_cli.dynamics.proxy`, :mod:`dataselect_cli.dynamics.mlp`) is trained first, keeping a
copy of its parameters at each checkpoint; then every row is evaluated at every checkpoint, block by block, and
streamed out grouped by id (each id's rows in (run, checkpoint) order), so the file is sorted by (id, run,
checkpoint) when the embeddings are sorted by id.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, io, options, outputs
from ..fingerprints import input_fingerprints
from ..dynamics import make_plan, parse_checkpoints
from ..dynamics.proxy import LinearProxy, NullLinear, WithNull, standardize, train
from ..dynamics.schema import COLUMNS, dynamics_schema, to_table
from ..errors import InputError
from ..progress import Progress, silent
from .common import Note, quiet, skip


def parse_input_grad(text: str | int) -> str | int:
    """``--input-grad``: 'full', 'none' or a number k of random-projection dimensions."""
    text = str(text).strip().lower()
    if text in ("full", "none"):
        return text
    try:
        k = int(text)
    except ValueError:
        raise InputError(f"--input-grad must be full, none or a number of projected dimensions; got {text!r}") \
            from None
    if k < 1:
        raise InputError(f"--input-grad must be a positive number of dimensions; got {k}")
    return k


def projection(d: int, k: int, seed: int) -> np.ndarray:
    """A (d, k) Gaussian random projection with entries N(0, 1/k), seeded, shared by every run and checkpoint:
    E‖g·R‖² = ‖g‖², so the spread of projected gradients across checkpoints estimates VoG's ``var`` variant."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**32 - 1]))
    return rng.normal(0.0, 1.0 / math.sqrt(k), (d, k))


def check_params(model: str, epochs: int, checkpoints: str, runs: int, batch_size: int, lr: float | None,
                 hidden: int, input_grad: str | int) -> tuple[float, str | int]:
    """The cross-option checks, before anything is read; returns (lr, input_grad) resolved."""
    if model not in options.DYN_MODELS:
        raise InputError(f"--model must be one of {', '.join(options.DYN_MODELS)}; got {model!r}")
    if epochs < 1:
        raise InputError(f"--epochs must be >= 1; got {epochs}")
    parse_checkpoints(checkpoints, epochs)
    if runs < 1:
        raise InputError(f"--runs must be >= 1; got {runs}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1; got {batch_size}")
    lr = options.DYN_LR[model] if lr is None else lr
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr must be a finite number > 0; got {lr}")
    if hidden < 1:
        raise InputError(f"--hidden must be >= 1; got {hidden}")
    if model == "mlp":
        from ..dynamics.mlp import import_torch

        import_torch()
    return lr, parse_input_grad(input_grad)


def read_labels(emb: str, label: str, data: str | None, note: Note) -> tuple[pa.Array, np.ndarray, np.ndarray, list]:
    """(ids, embeddings, class indices 0..C−1, the class values in index order)."""
    from .evaluate import read_column, encode_label  # here: the evaluate step's imports are heavy

    ids, x = dataset.read_embeddings(emb, warn=note)
    col = read_column(data or emb, label, ids, "--label", data is not None)
    y = encode_label(col, data or emb, label)
    values = col.to_pylist()
    classes = sorted(set(values))  # encode_label's order: the sorted distinct values
    if len(y) < 2:
        raise InputError(f"has {len(y)} row; training needs at least 2", emb)
    return ids, x, y, classes


def dynamics_file(emb: str, out: str, *, label: str, data: str | None = None, model: str = options.DYN_MODEL,
                  epochs: int = options.DYN_EPOCHS, checkpoints: str = options.DYN_CHECKPOINTS,
                  every_steps: int | None = None, every_until: float = options.DYN_EVERY_UNTIL,
                  runs: int = options.DYN_RUNS, batch_size: int = options.DYN_BATCH, lr: float | None = None,
                  hidden: int = options.DYN_HIDDEN, input_grad: str | int = options.DYN_INPUT_GRAD,
                  null: bool = options.DYN_NULL, seed: int = options.SEED, note: Note = quiet,
                  progress: Progress = silent) -> dict[str, Any]:
    """``dataselect dynamics``: train a proxy classifier on EMB's vectors and write its training dynamics.

    Parameters
    ----------
    emb : str
        Embeddings file or directory (id, embedding); every row is a training row.
    out : str
        The dynamics table to write: one row per (id, run, checkpoint) with id, run, checkpoint, epoch, step,
        label, logits, correct, loss, grad_sqnorm, lr, input_grad and null_logits
        (:mod:`dataselect_cli.dynamics.schema`).
    label : str
        Class column of EMB, or of ``data`` (joined on id); encoded as 0..C−1 in sorted order of its values.
    model : {"linear", "mlp"}
        Softmax regression (numpy) or one hidden ReLU layer of ``hidden`` units (torch), on the standardised vectors.
    epochs, checkpoints, every_steps, every_until
        The schedule (:func:`dataselect_cli.dynamics.make_plan`).
    runs : int
        Replicates with other seeds (column ``run``).
    batch_size, lr
        Mini-batch Adam; ``lr`` None = 1e-2 (linear) or 1e-3 (mlp).
    input_grad : "full", "none" or int
        The gradient of the gold logit with respect to the embedding, all D dimensions, none, or a seeded
        Gaussian projection to k dimensions.
    null : bool
        Also train each run's null model (PVI's p_null: the same model on an empty input, by the same optimiser on
        the same batches; :class:`~dataselect_cli.dynamics.proxy.NullLinear`,
        :class:`~dataselect_cli.dynamics.mlp.MLPNull`) and write its logits at each checkpoint as ``null_logits``.

    Returns
    -------
    dict
        The summary also stored in the file's metadata: n, d, classes, labels (the class values in index
        order), model, grad_block, plan, rows, and the accuracy and mean loss at the last checkpoint per run.
    """
    lr, input_grad = check_params(model, epochs, checkpoints, runs, batch_size, lr, hidden, input_grad)
    outputs.check_output_path(out, [emb, data])
    params = {"label": label, "data": data is not None, "model": model, "epochs": epochs, "checkpoints": checkpoints,
              "every_steps": every_steps, "every_until": every_until if every_steps else None, "runs": runs,
              "batch_size": batch_size, "lr": lr, "hidden": hidden if model == "mlp" else None,
              "input_grad": input_grad, "null": bool(null)}
    inputs = input_fingerprints({"embeddings": emb, "data": data})
    if (done := skip([out], "dynamics", params, inputs, seed, note)) is not None:
        return done
    ids, x, y, classes = read_labels(emb, label, data, note)
    n, d = x.shape
    if isinstance(input_grad, int) and input_grad >= d:
        raise InputError(f"--input-grad {input_grad} projects onto as many dimensions as the embeddings have ({d}) "
                         "or more; use --input-grad full", emb)
    plan = make_plan(checkpoints, epochs, n, batch_size, every_steps, every_until)
    xs, _mu, sd = standardize(x)
    del x
    c = int(y.max()) + 1
    proxies, snaps = _train_runs(model, xs, y, c, plan, runs, batch_size, lr, hidden, seed, null, progress)
    with _model_context(model):
        last = [proxies[r].evaluate(snaps[r][-1], xs, y, sd, input_grad=False) for r in range(runs)]
    k = len(plan.steps)
    summary = {"n": n, "d": d, "classes": c, "labels": classes, "model": model, "grad_block": proxies[0].grad_block,
               "runs": runs, "checkpoints": k, "steps_per_epoch": plan.steps_per_epoch,
               "plan": [{"checkpoint": i, "epoch": plan.epoch_of(s), "step": s} for i, s in enumerate(plan.steps)],
               "rows": n * runs * k, "lr": lr,
               "input_grad": None if input_grad == "none" else ("full" if input_grad == "full" else input_grad),
               "null": _null_summary(model) if null else None,
               "accuracy_last": [float(np.mean(o["correct"])) for o in last],
               "loss_last": [float(np.mean(o["loss"])) for o in last]}
    cols = tuple(col for col in COLUMNS if not (col == "null_logits" and not null)
                 and not (col == "input_grad" and input_grad == "none"))
    schema = dynamics_schema(ids.type, c, cols, None if input_grad == "none" else d if input_grad == "full"
                             else input_grad)
    proj = projection(d, input_grad, seed) if isinstance(input_grad, int) else None
    with io.parquet_stream(out, schema, io.make_meta("dynamics", params, inputs, summary, seed)) as write, \
            progress("recording", n * runs * k, "rows") as advance:
        block = max(1, io.ROW_GROUP_SIZE // (runs * k))
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            t = _block_table(proxies, snaps, plan, xs, y, sd, ids, lo, hi, lr, proj, input_grad != "none", schema)
            write(t)
            advance(t.num_rows)
    return summary


def _null_summary(model: str) -> str:
    """What the null model of ``model`` is, for the summary."""
    if model == "mlp":
        return "the mlp (the run's initial weights) on an all-zero standardised input, same Adam and batches"
    return "bias-only softmax (the linear proxy on an empty input), same Adam and batches"


def _train_runs(model: str, xs: np.ndarray, y: np.ndarray, c: int, plan, runs: int, batch_size: int, lr: float,
                hidden: int, seed: int, null: bool, progress: Progress) -> tuple[list, list[list]]:
    """Train one proxy per run (seeds from (seed, run)), with its null model alongside when ``null``; return the
    proxies and their snapshots per checkpoint. The null model draws nothing from the run's random streams, so
    the other columns are the same with or without it."""
    proxies, snaps = [], []
    with progress("training", runs * plan.steps[-1], "steps") as advance, _model_context(model):
        for r in range(runs):
            init, order = np.random.SeedSequence([seed, r]).spawn(2)
            if model == "mlp":
                from ..dynamics.mlp import MLPProxy

                proxy: Any = MLPProxy(xs.shape[1], c, lr, init, hidden)
                if null:
                    from ..dynamics.mlp import MLPNull

                    proxy = WithNull(proxy, MLPNull(xs.shape[1], c, lr, init, hidden))
            else:
                proxy = LinearProxy(xs.shape[1], c, lr, init)
                if null:
                    proxy = WithNull(proxy, NullLinear(c, lr))
            snaps.append(train(proxy, xs, y, plan, batch_size, np.random.default_rng(order), advance))
            proxies.append(proxy)
    return proxies, snaps


def _model_context(model: str):
    """torch's deterministic settings around an MLP run; nothing for the numpy proxy."""
    import contextlib

    if model != "mlp":
        return contextlib.nullcontext()
    from ..dynamics.mlp import deterministic, import_torch

    return deterministic(import_torch())


def _block_table(proxies, snaps, plan, xs, y, sd, ids, lo: int, hi: int, lr: float, proj, with_grad: bool,
                 schema: pa.Schema) -> pa.Table:
    """Rows lo..hi evaluated at every (run, checkpoint), id-major: row i's R·K rows are consecutive."""
    runs, k = len(proxies), len(plan.steps)
    b = hi - lo
    parts = []
    ctx = _model_context(proxies[0].name)
    with ctx:
        for r in range(runs):
            for snap in snaps[r]:
                parts.append(proxies[r].evaluate(snap, xs[lo:hi], y[lo:hi], sd, input_grad=with_grad))
        # the null model's logits: one vector per (run, checkpoint), the same for every id
        null = np.stack([proxies[r].null_logits(snap) for r in range(runs) for snap in snaps[r]]) \
            if "null_logits" in schema.names else None

    def stack(name: str) -> np.ndarray:
        a = np.stack([p[name] for p in parts], axis=1)  # (b, R·K, …)
        return a.reshape((b * runs * k,) + a.shape[2:])

    steps = np.array(plan.steps, dtype=np.int64)
    cols: dict[str, Any] = {
        "id": ids.slice(lo, b).take(pa.array(np.repeat(np.arange(b), runs * k))),
        "run": np.tile(np.repeat(np.arange(runs, dtype=np.int32), k), b),
        "checkpoint": np.tile(np.arange(k, dtype=np.int32), b * runs),
        "epoch": np.tile(steps / plan.steps_per_epoch, b * runs),
        "step": np.tile(steps, b * runs),
        "label": np.repeat(y[lo:hi].astype(np.int32), runs * k),
        "logits": stack("logits"), "correct": stack("correct"),
        "loss": stack("loss").astype(np.float32), "grad_sqnorm": stack("grad_sqnorm").astype(np.float32),
        "lr": np.full(b * runs * k, lr, dtype=np.float32),
    }
    if with_grad:
        g = stack("input_grad")
        cols["input_grad"] = g if proj is None else g @ proj
    if null is not None:
        cols["null_logits"] = np.tile(null, (b, 1))
    return to_table(cols, schema)
