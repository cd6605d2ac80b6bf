"""Regenerate sample_data/ from scikit-learn's bundled handwritten digits (no download).

Writes
  digits.parquet       id, label, pixels (64 values 0..16): the data set a user would select from
  digits_vectors.npy   float32 (1797, 64), pixels / 16: the vectors `dataselect embed` turns into embeddings
  model.npz            a softmax-regression model trained on a uniform 20% warm start (the paper's
                       classification protocol); oracle.py computes its per-example loss

Run: .venv/bin/pip install scikit-learn && .venv/bin/python sample_data/make_sample_data.py
(scikit-learn is needed only here, for its copy of the UCI digits; everything is seeded.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

HERE = Path(__file__).parent
SEED = 0
WARM_START = 0.2


def softmax_regression(x: np.ndarray, y: np.ndarray, classes: int, *, l2: float = 1e-2, steps: int = 500,
                       lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch gradient descent on the L2-regularised multinomial log-loss."""
    w = np.zeros((x.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(x)
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return w, b


def main() -> None:
    digits = load_digits()
    pixels = digits.data.astype(np.uint8)
    label = digits.target.astype(np.int64)
    n = len(label)
    x = (pixels / 16.0).astype(np.float32)
    rng = np.random.default_rng(SEED)
    warm = np.sort(rng.choice(n, size=int(WARM_START * n), replace=False))
    w, b = softmax_regression(x[warm].astype(np.float64), label[warm], 10)
    table = pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "label": pa.array(label),
        "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), 64),
    })
    pq.write_table(table, HERE / "digits.parquet", compression="zstd")
    np.save(HERE / "digits_vectors.npy", x)
    np.savez(HERE / "model.npz", w=w, b=b, warm_start=warm)
    print(f"wrote {n} digits, warm start {len(warm)} rows")


if __name__ == "__main__":
    main()
