"""Leave-one-out R² of each proxy over the probes on docs/designs' data sets (docs/intervals.md, "Proxies").

docs/designs' setting at B = 207 (80 on diabetes): k = 0.2·B clusters of the training rows, 3 probes per
cluster, the reference model's losses; for 10 clusterings (evaluate's seeds), the R² of
:func:`dataselect_cli.proxy.loo_r2` for the center, mean and knn proxies: the median and the range. Needs
out/docs/ (``make designs``); about 2 minutes.
Run: python bench/bench_proxies.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataselect_cli import dataset, proxy  # noqa: E402
from dataselect_cli.cluster import choose_probes  # noqa: E402
from dataselect_cli.evaluate.strategies import PROBES, _centers, _clustering, _int_seed  # noqa: E402
from dataselect_cli.evaluate.task import make_task  # noqa: E402
from dataselect_cli.steps.evaluate import encode_label, encode_target, read_column  # noqa: E402

SETS = [("digits", "label", 207), ("diabetes", "target", 80), ("stdlib", "label", 207),
        ("synth-follow", "target", 207), ("synth-unrelated", "target", 207)]


def main() -> None:
    print("| data set | center | mean | knn |\n|---|---|---|---|")
    for name, kind, budget in SETS:
        path = str(ROOT / "out" / "docs" / f"{name}.parquet")
        ids, x = dataset.read_embeddings(path)
        col = read_column(path, kind, ids, "--" + kind, False)
        y = encode_label(col, path, kind) if kind == "label" else encode_target(col, path, kind)
        task = make_task(x, y, kind, 0.2, 0)
        got: dict[str, list[float]] = {"center": [], "mean": [], "knn": []}
        for repeat in range(10):
            seed = _int_seed(0, budget, repeat)  # the clustering evaluate shares within a (budget, repeat)
            cl = _clustering(task, _centers(budget, 0.2), 2, seed)
            probe = np.flatnonzero(choose_probes(cl.labels, cl.center_index, PROBES, seed))
            rows = np.concatenate([cl.center_index, probe])
            r2 = proxy.loo_r2(cl.labels[rows], task.loss[rows], np.arange(len(rows)) < len(cl.center_index),
                              task.emb[rows].astype(np.float64))
            for key in got:
                got[key].append(r2[key])
        print(f"| {name} | " + " | ".join(f"{np.median(v):.2f} ({min(v):.2f} to {max(v):.2f})"
                                          for v in got.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
