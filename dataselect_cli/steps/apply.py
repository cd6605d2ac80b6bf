"""``dataselect apply``: a selection + the data → the selected rows of the data with weight and count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import dataset, grid, io, kinds
from ..dataset import ParquetDataset
from ..errors import InputError
from .common import Note, quiet, skip


def apply_file(selected: str, data: str, out: str, *, id_column: str = "id", note: Note = quiet,
               block_rows: int = grid.BLOCK_ROWS) -> dict[str, Any]:
    """``dataselect apply``: the selected rows of DATA (a file or a directory), in DATA's order, with
    ``weight`` and ``count``; DATA is streamed block by block, so it may be larger than memory."""
    params = {"id_column": id_column}
    kinds.check_not_swapped((selected, "selection", "SELECTED"), (data, "data", "DATA"))
    ds = ParquetDataset(data)
    io.check_output_path(out, [selected, *ds.files])
    inputs = dataset.input_fingerprints({"selected": selected, "data": ds})
    if (done := skip([out], "apply", params, inputs, None, note)) is not None:
        return done
    sel, _ = dataset.read_table(selected, ["id", "count", "weight"], "selected")
    ds.require([id_column], "data")
    for c in ("weight", "count"):
        if c in ds.schema.names:
            raise InputError(f"already has a column '{c}'; rename it before applying a selection", data)
    ids = io.read_ids(ds, data, id_column)
    pos = io.lookup(ids, sel.column("id").combine_chunks(), data, "selected")
    order = np.argsort(pos, kind="stable")
    rows, weight, count = pos[order], sel.column("weight").to_numpy()[order], sel.column("count").to_numpy()[order]
    schema = ds.schema.append(pa.field("weight", pa.float64())).append(pa.field("count", pa.int32()))
    summary = {"rows": len(rows), "data_rows": ds.n}
    with io.parquet_stream(out, schema, io.make_meta("apply", params, inputs, summary)) as write:
        start = 0
        for t in ds.iter_tables(schema.names[:-2], 0, ds.n, block_rows):  # one sequential pass
            lo, hi = np.searchsorted(rows, [start, start + t.num_rows])
            t, start = t.take(pa.array(rows[lo:hi] - start)), start + t.num_rows
            if hi == lo:
                continue
            write(t.append_column("weight", pa.array(weight[lo:hi])).append_column("count",
                                                                                  pa.array(count[lo:hi], pa.int32())))
    return summary
