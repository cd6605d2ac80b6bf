"""The training-dynamics table: its columns and their Arrow types (the contract shared by ``dataselect dynamics``,
the :class:`~dataselect_cli.dynamics.Recorder` and the score methods that read it).

One row per (id, run, checkpoint): ``id``, ``run`` (int32), ``checkpoint`` (int32, 0, 1, 2, … within a run),
``epoch`` (float64), ``step`` (int64), ``label`` (int32, 0..C−1), ``logits`` (fixed_size_list<float32>[C]),
``correct`` (bool), ``loss``, ``grad_sqnorm``, ``lr`` (float32), ``input_grad`` (fixed_size_list<float32>[D])
and ``null_logits`` (fixed_size_list<float32>[C]). Only ``id``, ``checkpoint``, ``label`` and ``logits`` are
required; a writer leaves out the optional columns it does not have.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: Every column, in the order a file holds them.
COLUMNS = ("id", "run", "checkpoint", "epoch", "step", "label", "logits", "correct", "loss", "grad_sqnorm", "lr",
           "input_grad", "null_logits")
REQUIRED = ("id", "checkpoint", "label", "logits")
#: Scalar columns and their types (the list columns are built by :func:`dynamics_schema`).
SCALAR_TYPES = {"run": pa.int32(), "checkpoint": pa.int32(), "epoch": pa.float64(), "step": pa.int64(),
                "label": pa.int32(), "correct": pa.bool_(), "loss": pa.float32(), "grad_sqnorm": pa.float32(),
                "lr": pa.float32()}


def dynamics_schema(id_type: pa.DataType, classes: int, columns: tuple[str, ...] = COLUMNS,
                    input_dim: int | None = None) -> pa.Schema:
    """The Arrow schema of a dynamics table with ``columns`` (a subset of :data:`COLUMNS`, kept in their order).

    ``input_dim`` is the width D of ``input_grad`` (needed when that column is present).
    """
    fields = []
    for name in COLUMNS:
        if name not in columns:
            continue
        if name == "id":
            t = id_type
        elif name in ("logits", "null_logits"):
            t = pa.list_(pa.float32(), classes)
        elif name == "input_grad":
            t = pa.list_(pa.float32(), int(input_dim))
        else:
            t = SCALAR_TYPES[name]
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    """An (m, k) array as a fixed_size_list<float32>[k] column."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def to_table(columns: dict[str, object], schema: pa.Schema) -> pa.Table:
    """The columns (numpy arrays, (m, k) arrays for the list columns, or Arrow arrays) as a table of ``schema``."""
    arrays = []
    for field in schema:
        v = columns[field.name]
        if isinstance(v, np.ndarray) and v.ndim == 2:
            v = fixed_list(v)
        elif isinstance(v, np.ndarray):
            v = pa.array(v, field.type)
        arrays.append(v)
    return pa.Table.from_arrays(arrays, schema=schema)
