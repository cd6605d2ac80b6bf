"""``dataselect apply``: a selection + the data → the selected rows of the data with weight and count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, grid, io, kinds, outputs, tables
from ..fingerprints import input_fingerprints
from ..errors import InputError
from .common import Note, quiet, skip


def apply_file(selected: str, data: str, out: str, *, id_column: str = "id", fmt: str | None = None,
               note: Note = quiet, block_rows: int = grid.BLOCK_ROWS) -> dict[str, Any]:
    """``dataselect apply``: the selected rows of DATA, in DATA's order, with ``weight`` and ``count``;
    or, given a dedup table, DATA's kept rows as they are.

    Parameters
    ----------
    selected : str
        A selection written by ``dataselect sample``, or a dedup table written by ``dataselect dedup``
        (its rows with ``keep`` true are written, without weight or count: the deduplicated data set).
    data : str
        Parquet (a file or a directory), CSV, TSV or JSON lines, by its extension or ``fmt``
        (``--format``). It is streamed block by block, so it may be larger than memory; a text file
        is read twice (its ids first).
    out : str
        The output's format follows its extension (:func:`dataselect_cli.tables.output_format`):
        Parquet (with the metadata) by default, or CSV, TSV, JSON lines. CSV data written as CSV or
        TSV keeps its values as written (``007`` stays ``007``).
    id_column : str, default="id"
    fmt : {"parquet", "csv", "tsv", "jsonl"} or None
    block_rows : int
        Rows read and written at a time.
    """
    params: dict[str, Any] = {"id_column": id_column}
    dedup = kinds.kind_of(selected) == "dedup"
    if not dedup:
        kinds.check_not_swapped((selected, "selection", "SELECTED"), (data, "data", "DATA"))
    if fmt is not None:  # recorded only when given, so that earlier subsets stay up to date (--resume)
        params["format"] = fmt
    out_fmt = tables.output_format(out)
    data_fmt = tables.table_format(data, fmt, "--format")
    as_text = data_fmt in ("csv", "tsv") and out_fmt in ("csv", "tsv")
    ds = dataset.open_table(data, data_fmt, what="data", id_column=id_column, as_text=as_text)
    outputs.check_output_path(out, [selected, *ds.files])
    inputs = input_fingerprints({"selected": selected, "data": ds})
    if (done := skip([out], "apply", params, inputs, None, note)) is not None:
        return done
    ds.require([id_column], "data")
    if dedup:
        sel, _ = dataset.read_table(selected, ["id", "keep"], "dedup")
        sel = sel.filter(sel.column("keep"))
        schema = ds.schema
    else:
        sel, _ = dataset.read_table(selected, ["id", "count", "weight"], "selected")
        for c in ("weight", "count"):
            if c in ds.schema.names:
                raise InputError(f"already has a column '{c}'; rename it before applying a selection", data)
        schema = ds.schema.append(pa.field("weight", pa.float64())).append(pa.field("count", pa.int32()))
    tables.check_writable(schema, out_fmt, out)
    ids = io.read_ids(ds, data, id_column)
    pos = io.lookup(ids, sel.column("id").combine_chunks(), data, "kept" if dedup else "selected")
    order = np.argsort(pos, kind="stable")
    rows = pos[order]
    if not dedup:
        weight, count = sel.column("weight").to_numpy()[order], sel.column("count").to_numpy()[order]
    summary = {"rows": len(rows), "data_rows": ds.n, **({"dedup": True} if dedup else {})}
    meta = io.make_meta("apply", params, inputs, summary)
    stream = io.parquet_stream(out, schema, meta) if out_fmt == "parquet" else tables.text_stream(out, out_fmt, schema)
    with stream as write:
        names = schema.names if dedup else schema.names[:-2]
        for lo, hi, t in dataset.take_sorted(ds, names, rows, block_rows):  # one sequential pass
            if not dedup:
                t = t.append_column("weight", pa.array(weight[lo:hi])).append_column("count",
                                                                                    pa.array(count[lo:hi], pa.int32()))
            write(t)
    return summary
