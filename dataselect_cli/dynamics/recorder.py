"""A recorder for your own training loop: log each batch's logits, labels and ids; get the dynamics table."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import pyarrow as pa

from .. import io, outputs
from ..errors import InputError
from .schema import COLUMNS, dynamics_schema, to_table

_OPTIONAL = ("epoch", "step", "loss", "grad_sqnorm", "lr", "input_grad", "null_logits")
_DTYPES = {"run": np.int32, "checkpoint": np.int32, "epoch": np.float64, "step": np.int64, "loss": np.float32,
           "grad_sqnorm": np.float32, "lr": np.float32}


def _numpy(value: Any) -> np.ndarray:
    """A torch tensor (detached, moved to the CPU; half precision widened) or anything array-like, as numpy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    return np.asarray(value)


class Recorder:
    """Write the training-dynamics table from your own PyTorch (or numpy) training loop.

    Parameters
    ----------
    path : str or path-like
        The Parquet file to write. It appears only at :meth:`close` (temp file, then rename); a failure inside
        a ``with`` block leaves no file.
    num_classes : int
        C, the width of ``logits``.
    params : dict, optional
        Anything to record in the file's ``dataselect`` metadata (model name, optimiser, …), JSON-serialisable.

    Examples
    --------
    >>> from dataselect_cli.dynamics import Recorder                     # doctest: +SKIP
    >>> with Recorder("dyn.parquet", num_classes=10) as rec:             # doctest: +SKIP
    ...     for epoch in range(3):
    ...         train_one_epoch(model)
    ...         for ids, x, y in loader:                                  # the training rows, evaluated
    ...             with torch.no_grad():
    ...                 rec.log(ids, model(x), y, checkpoint=epoch, epoch=epoch + 1)

    Notes
    -----
    The first :meth:`log` fixes which optional columns the file has, the id type (integers or strings) and
    the width of ``input_grad``; later calls must give the same. Rows are buffered and written in row groups of
    :data:`dataselect_cli.io.ROW_GROUP_SIZE`, so memory stays bounded. Log the rows at a checkpoint with the
    model in evaluation mode (no dropout), as ``dataselect dynamics`` does: per-batch outputs taken during
    training come from a model that changes within the epoch.
    """

    def __init__(self, path: str | os.PathLike, num_classes: int, *, params: dict | None = None):
        if int(num_classes) != num_classes or num_classes < 2:
            raise InputError(f"Recorder: num_classes must be a whole number >= 2; got {num_classes!r}")
        outputs.check_output_path(path, [], "path")
        self.path, self.classes = os.fspath(path), int(num_classes)
        self.params = dict(params or {})
        self.rows = 0
        self._stack: contextlib.ExitStack | None = None
        self._write = None
        self._columns: tuple[str, ...] | None = None
        self._id_type: pa.DataType | None = None
        self._input_dim: int | None = None
        self._closed = False

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def log(self, ids, logits, labels, *, checkpoint, run=0, epoch=None, step=None, loss=None, grad_sqnorm=None,
            lr=None, input_grad=None, null_logits=None) -> None:
        """Append one batch: m rows at ``checkpoint`` (and ``run``).

        ``ids`` (m,) integers or strings; ``logits`` (m, C) pre-softmax outputs; ``labels`` (m,) gold classes in
        0..C−1. ``checkpoint``, ``run``, ``epoch``, ``step`` and ``lr`` take one value for the batch or one per row;
        ``loss`` and ``grad_sqnorm`` one per row; ``input_grad`` (m, D); ``null_logits`` (m, C) or (C,) for the
        batch, the logits of the same model trained on empty inputs (PVI). Torch tensors are detached and copied to
        the CPU. ``correct`` is derived as argmax(logits) == label.
        """
        if self._closed:
            raise InputError("Recorder.log: the recorder is closed", self.path)
        logits = _numpy(logits)
        if logits.ndim != 2 or logits.shape[1] != self.classes:
            raise InputError(f"Recorder.log: logits must have shape (m, {self.classes}); got {logits.shape}",
                             self.path)
        m = logits.shape[0]
        if not np.isfinite(logits).all():
            raise InputError("Recorder.log: logits hold NaN or infinite values", self.path)
        cols: dict[str, Any] = {"id": self._ids(ids, m), "logits": logits.astype(np.float32)}
        y = self._per_row(labels, m, "labels", np.int64, scalar=False)
        if len(y) and (y.min() < 0 or y.max() >= self.classes):
            raise InputError(f"Recorder.log: labels must be in 0..{self.classes - 1}; got {int(y.min())}.."
                             f"{int(y.max())}", self.path)
        cols["label"] = y.astype(np.int32)
        cols["correct"] = np.argmax(cols["logits"], axis=1) == y
        cols["run"] = self._per_row(run, m, "run", _DTYPES["run"])
        cols["checkpoint"] = self._per_row(checkpoint, m, "checkpoint", _DTYPES["checkpoint"])
        given = {"epoch": epoch, "step": step, "loss": loss, "grad_sqnorm": grad_sqnorm, "lr": lr,
                 "input_grad": input_grad}
        for name in ("epoch", "step", "lr", "loss", "grad_sqnorm"):
            if given[name] is not None:
                cols[name] = self._per_row(given[name], m, name, _DTYPES[name],
                                           scalar=name not in ("loss", "grad_sqnorm"))
        if input_grad is not None:
            g = _numpy(input_grad)
            if g.ndim != 2 or g.shape[0] != m or (self._input_dim is not None and g.shape[1] != self._input_dim):
                want = f"({m}, {self._input_dim if self._input_dim is not None else 'D'})"
                raise InputError(f"Recorder.log: input_grad must have shape {want}; got {g.shape}", self.path)
            cols["input_grad"] = g.astype(np.float32)
        if null_logits is not None:
            z0 = _numpy(null_logits)
            z0 = np.broadcast_to(z0, (m, self.classes)) if z0.shape == (self.classes,) else z0
            if z0.shape != (m, self.classes):
                raise InputError(f"Recorder.log: null_logits must have shape ({self.classes},) or (m, "
                                 f"{self.classes}); got {z0.shape}", self.path)
            if not np.isfinite(z0).all():
                raise InputError("Recorder.log: null_logits hold NaN or infinite values", self.path)
            cols["null_logits"] = np.ascontiguousarray(z0, dtype=np.float32)
        names = tuple(c for c in COLUMNS if c in cols)
        if self._columns is None:
            self._open(names, cols)
        elif names != self._columns:
            diff = sorted(set(names) ^ set(self._columns))
            raise InputError(f"Recorder.log: give the same columns at every call; {', '.join(diff)} differs from "
                             "the first call", self.path)
        if m:
            self._write(to_table(cols, self._schema))
            self.rows += m

    def close(self) -> None:
        """Write the file (rename the temp file into place). Logging nothing is an error: no file is written."""
        if self._closed:
            return
        self._closed = True
        if self._stack is None or not self.rows:
            self.abort()
            raise InputError("Recorder: no rows were logged; nothing written", self.path)
        self._stack.close()

    def abort(self) -> None:
        """Discard what was logged: no file is written (or replaced)."""
        self._closed = True
        if self._stack is not None:
            stack, self._stack = self._stack, None
            with contextlib.suppress(_Abort):
                stack.__exit__(_Abort, _Abort(), None)

    # ---- helpers

    def _open(self, names: tuple[str, ...], cols: dict[str, Any]) -> None:
        self._columns = names
        self._id_type = cols["id"].type
        self._input_dim = cols["input_grad"].shape[1] if "input_grad" in cols else None
        self._schema = dynamics_schema(self._id_type, self.classes, names, self._input_dim)
        meta = io.make_meta("dynamics-recorder", {"num_classes": self.classes, **self.params}, {},
                            {"classes": self.classes, "columns": list(names)})
        self._stack = contextlib.ExitStack()
        self._write = self._stack.enter_context(io.parquet_stream(self.path, self._schema, meta))

    def _ids(self, ids, m: int) -> pa.Array:
        a = _numpy(ids)
        if a.ndim != 1 or len(a) != m:
            raise InputError(f"Recorder.log: ids must have shape ({m},), one per row of logits; got {a.shape}",
                             self.path)
        if a.dtype.kind in "iu":
            arr = pa.array(a.astype(np.int64))
        elif a.dtype.kind in "UO":
            try:
                arr = pa.array([str(v) if not isinstance(v, str) else v for v in a.tolist()], pa.string())
            except (TypeError, ValueError):
                arr = None
        else:
            arr = None
        if arr is None:
            raise InputError(f"Recorder.log: ids must be integers or strings; got {a.dtype}", self.path)
        if self._id_type is not None and arr.type != self._id_type:
            raise InputError(f"Recorder.log: ids are {arr.type} here but {self._id_type} at the first call", self.path)
        return arr

    def _per_row(self, value, m: int, name: str, dtype, scalar: bool = True) -> np.ndarray:
        a = _numpy(value)
        if scalar and a.ndim == 0:
            a = np.full(m, a)
        if a.shape != (m,):
            one = "one value or " if scalar else ""
            raise InputError(f"Recorder.log: {name} must be {one}one value per row ({m}); got shape {a.shape}",
                             self.path)
        if a.dtype.kind not in "iufb" or (np.dtype(dtype).kind in "iu" and a.dtype.kind == "f"
                                          and not np.array_equal(a, np.round(a))):
            raise InputError(f"Recorder.log: {name} must be {'whole ' if np.dtype(dtype).kind in 'iu' else ''}"
                             f"numbers; got {a.dtype}", self.path)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise InputError(f"Recorder.log: {name} holds NaN or infinite values", self.path)
        return a.astype(dtype)


class _Abort(Exception):
    """Raised into the open file's context by :meth:`Recorder.abort`, so that it removes its temp file."""
