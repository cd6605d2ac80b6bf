"""The demo's loss oracle: the per-example loss of the warm-start model of sample_data/model.npz.

In a real pipeline this is your model: it computes the loss of exactly the rows dataselect asks for.

  python sample_data/oracle.py --centers clusters.centers.parquet --probes clusters.parquet -o center_losses.parquet
  python sample_data/oracle.py --ids selected.parquet -o selected_losses.parquet
  python sample_data/oracle.py --all -o all_losses.parquet        # every row (the truth, for comparison)

Writes a losses file (id, loss): the multinomial cross-entropy of the row's true label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).parent


def cross_entropy(pixels: np.ndarray, label: np.ndarray) -> np.ndarray:
    model = np.load(HERE / "model.npz")
    z = (pixels / 16.0) @ model["w"] + model["b"]
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(label)), label]


def requested_ids(args: argparse.Namespace) -> pa.Array | None:
    parts = []
    if args.centers:
        parts.append(pq.read_table(args.centers, columns=["center_id"]).column("center_id"))
    if args.probes:
        t = pq.read_table(args.probes, columns=["id", "probe"])
        parts.append(t.filter(t.column("probe")).column("id"))
    if args.ids:
        parts.append(pq.read_table(args.ids, columns=["id"]).column("id"))
    if not parts:
        return None
    return pc.unique(pa.chunked_array([c for p in parts for c in p.chunks], type=pa.int64()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--centers", help="centers file: losses of its center_id rows")
    ap.add_argument("--probes", help="clusters file: losses of its rows marked probe")
    ap.add_argument("--ids", help="any file with an id column (e.g. selected.parquet)")
    ap.add_argument("--all", action="store_true", help="losses of every row")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    data = pq.read_table(HERE / "digits.parquet")
    ids = requested_ids(args)
    if ids is None and not args.all:
        ap.error("say which rows: --centers, --probes, --ids or --all")
    if not args.all:
        data = data.filter(pc.is_in(data.column("id"), value_set=ids))
    pixels = np.asarray(data.column("pixels").combine_chunks().flatten()).reshape(-1, 64).astype(np.float64)
    loss = cross_entropy(pixels, data.column("label").to_numpy())
    pq.write_table(pa.table({"id": data.column("id"), "loss": loss}), args.output)
    print(f"oracle: {len(loss)} losses -> {args.output}")


if __name__ == "__main__":
    main()
