"""A tiny scorer for ``--loss-command``: the loss of the digits model (sample_data/model.npz) on the rows asked for.

  dataselect sample --k 40 --probes 4 --eps 0.1 out/emb.parquet --data sample_data/digits.parquet \
      --loss-command "python sample_data/score_rows.py {in} {out}" --estimate

dataselect writes the ids it needs to {in} (Parquet; with --data, the rows' own columns too: here
pixels and label) and reads {out} (Parquet: id, loss, one row per id of {in}). Your scorer has the
same shape: read {in}, run your model on those rows, write {out}. Anything it prints goes to
dataselect's stderr; a non-zero exit fails the run (exit 2) with the last lines of its stderr.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from oracle import cross_entropy  # the loss of sample_data/oracle.py: the same model, the same numbers


def main(request: str, out: str) -> None:
    rows = pq.read_table(request)
    if "pixels" not in rows.column_names or "label" not in rows.column_names:
        sys.exit(f"score_rows.py: {request} has no pixels and label; "
                 "run dataselect with --data sample_data/digits.parquet")
    pixels = np.asarray(rows.column("pixels").combine_chunks().flatten()).reshape(-1, 64).astype(np.float64)
    loss = cross_entropy(pixels, rows.column("label").to_numpy())
    pq.write_table(pa.table({"id": rows.column("id"), "loss": loss}), out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python sample_data/score_rows.py REQUEST.parquet LOSSES.parquet")
    main(sys.argv[1], sys.argv[2])
