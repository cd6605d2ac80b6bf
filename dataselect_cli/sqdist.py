"""Squared L2 distances of rows to centers: faiss's float32 values, the exact ones row by row, and a bound on the
difference (what lets the k-means passes and the bounded Lloyd trust faiss where it cannot be wrong). Arrays in,
arrays out."""

from __future__ import annotations

import numpy as np

#: Rows per gather in the exact-distance passes: two (rows × d) float32 temporaries each (12 MiB at d = 384),
#: small enough that an in-memory run stays within 1.3× the matrix (docs/performance.md).
BLOCK = 4096


def faiss_error_bound(norm_x: np.ndarray, norm_c: np.ndarray, d: int) -> np.ndarray:
    """Twice a bound on |faiss's float32 ‖x − c‖² − its exact value| plus that of :func:`sqdist_rows`, per row.

    faiss computes ‖x‖² + ‖c‖² − 2⟨x, c⟩ in float32: each of the three d-term sums, in any order and
    with or without fused multiply-adds, is within γ_d = d·u / (1 − d·u) (u = 2⁻²⁴) of its sum of
    absolute terms, and the two additions round once each, so the error is at most
    γ_{d+3}·(‖x‖ + ‖c‖)². :func:`sqdist_rows` rounds each difference to float32 and sums the squares
    in float64: within 3u·‖x − c‖² ≤ 3u·(‖x‖ + ‖c‖)². The bound returned is 4·γ_{d+3}·(‖x‖ + ‖c‖)²,
    more than twice the sum of both, so that the norms' own rounding cannot matter.
    """
    u = 2.0 ** -24
    gamma = (d + 3) * u / (1 - (d + 3) * u)
    return 4 * gamma * (norm_x + norm_c) ** 2


def sqdist_rows(x: np.ndarray, centers: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None
                 ) -> np.ndarray:
    """‖x_i − centers[labels_i]‖², float64, row by row (the same value whatever block holds the row); ``rows``:
    of the rows ``x[rows]`` (gathered a block at a time), ``labels`` then one per row of ``rows``."""
    out = np.empty(len(labels), dtype=np.float64)
    for s in range(0, len(labels), BLOCK):
        part = x[s : s + BLOCK] if rows is None else x[rows[s : s + BLOCK]]
        diff = part - centers[labels[s : s + BLOCK]]
        out[s : s + BLOCK] = np.einsum("ij,ij->i", diff, diff, dtype=np.float64)  # squares summed in float64
    return out
