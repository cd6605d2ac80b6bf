"""The small formulas the per-example methods share, on numpy arrays (rows = examples or dynamics rows).

Everything is float64 and row-wise: a row's result depends on that row only, so it is the same
whatever block the row is read in.
"""

from __future__ import annotations

import numpy as np

#: Ids unpacked at a time when bits per checkpoint are turned into counts.
CHUNK = 65536


#: Classes up to which :func:`shifted` takes a row's maximum column by column: C passes of ``np.maximum`` over the
#: m rows, several times faster than ``max(axis=1)`` over rows of a few values (a maximum is exact, so the numbers
#: are the same either way; docs/performance.md).
COLUMN_MAX = 64


def shifted(z: np.ndarray) -> np.ndarray:
    """float64(z) − the maximum of its row, for every value of ``z`` (m, C): a new array, laid out as
    ``np.array(z, dtype=np.float64)`` would be (so that the row sums that follow add in the same order).

    >>> shifted(np.array([[1.0, 3.0], [2.0, -1.0]], np.float32)).tolist()
    [[-2.0, 0.0], [0.0, -3.0]]
    """
    if z.ndim == 2 and 0 < z.shape[1] <= COLUMN_MAX:
        top = z[:, 0].copy()  # in z's own type: its maximum, converted to float64 below, is exact
        for j in range(1, z.shape[1]):
            np.maximum(top, z[:, j], out=top)
        top = top.astype(np.float64, copy=False)[:, None]
    else:
        top = np.asarray(z, dtype=np.float64).max(axis=1, keepdims=True)
    e = np.empty_like(z, dtype=np.float64)
    np.subtract(z, top, out=e)
    return e


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``z`` (m, C), float64, shifted by the row maximum.

    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(6).tolist()
    [[0.25, 0.75]]
    """
    e = shifted(z)  # a new array, worked on in place (the same operations as without)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e


def gold_softmax(z: np.ndarray, label: np.ndarray) -> np.ndarray:
    """softmax(z)[i, label[i]] per row: the same bytes as ``gold(softmax(z), label)``, one division a row.

    >>> gold_softmax(np.array([[0.0, np.log(3.0)]]), np.array([1])).round(6).tolist()
    [0.75]
    """
    e = shifted(z)
    np.exp(e, out=e)
    return e[np.arange(len(e)), label] / e.sum(axis=1)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of logits (m, C), float64."""
    s = shifted(z)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def probs_of(cols: dict) -> np.ndarray:
    """The class probabilities of a block, float64, a new array: softmax of ``logits``, or the ``probs`` column as
    given."""
    if cols.get("logits") is not None:
        return softmax(cols["logits"])
    return np.array(cols["probs"], dtype=np.float64)


def gold(values: np.ndarray, label: np.ndarray) -> np.ndarray:
    """values[i, label[i]] for every row."""
    return values[np.arange(len(values)), label]


def error_norm(p: np.ndarray, label: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """EL2N: ‖p − onehot(label)‖₂ per row (Paul et al. 2021, Eq. 2); ``overwrite``: p is float64 and may be
    worked on in place (a new array, e.g. from :func:`probs_of`).

    >>> error_norm(np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([0, 0])).round(6).tolist()
    [0.707107, 0.0]
    """
    err = p if overwrite and p.dtype == np.float64 else np.array(p, dtype=np.float64)
    err[np.arange(len(err)), label] -= 1.0
    np.multiply(err, err, out=err)
    return np.sqrt(err.sum(axis=1))


def gold_margin(z: np.ndarray, label: np.ndarray) -> np.ndarray:
    """z_y − max_{j≠y} z_j per row (the AUM margin of Pleiss et al. 2020, on logits).

    >>> gold_margin(np.array([[2.0, 1.0, -1.0], [0.0, 3.0, 1.0]]), np.array([0, 0])).tolist()
    [1.0, -3.0]
    """
    other = np.array(z, dtype=np.float64)  # a copy, worked on in place
    rows = np.arange(len(other))
    zy = other[rows, label]
    other[rows, label] = -np.inf
    return zy - other.max(axis=1)


def top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(largest, second largest) value of each row (C >= 2); the second is 0 when C = 1."""
    if p.shape[1] == 1:
        return p[:, 0].astype(np.float64), np.zeros(len(p))
    part = np.partition(p, p.shape[1] - 2, axis=1)
    return part[:, -1].astype(np.float64), part[:, -2].astype(np.float64)


def entropy(p: np.ndarray) -> np.ndarray:
    """−Σ_c p_c ln p_c per row, in nats (0 ln 0 = 0).

    >>> entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).round(6).tolist()
    [0.693147, 0.0]
    """
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return 0.0 - t.sum(axis=1)  # not -sum: a certain row is 0.0, not -0.0


def correct_of(cols: dict) -> np.ndarray:
    """The ``correct`` column of a block, or argmax(logits) == label where it is absent (first maximum on ties)."""
    if cols.get("correct") is not None:
        return np.asarray(cols["correct"], dtype=bool)
    return np.argmax(cols["logits"], axis=1) == cols["label"]


def unpack(bits: np.ndarray, k: int) -> np.ndarray:
    """Bits per checkpoint (…, ceil(K/8)) uint8, little bit order, as bools (…, K)."""
    return np.unpackbits(bits, axis=-1, count=k, bitorder="little").astype(bool)


def forgetting_events(bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(forgetting events, ever correct) per (id, run) from correctness bits over K ordered checkpoints.

    A forgetting event is a checkpoint t where the example is correct and it is not at t+1
    (Toneva et al. 2019). Unpacked ``CHUNK`` ids at a time.

    >>> b = np.packbits(np.array([[[1, 0, 1, 0], [0, 0, 0, 0]]], bool), axis=-1, bitorder="little")
    >>> [a.tolist() for a in forgetting_events(b, 4)]
    [[[2, 0]], [[True, False]]]
    """
    n = bits.shape[0]
    events = np.empty(bits.shape[:2], np.int64)
    ever = np.empty(bits.shape[:2], bool)
    for lo in range(0, n, CHUNK):
        c = unpack(bits[lo : lo + CHUNK], k)
        events[lo : lo + CHUNK] = (c[..., :-1] & ~c[..., 1:]).sum(axis=-1)
        ever[lo : lo + CHUNK] = c.any(axis=-1)
    return events, ever


def count_bits(bits: np.ndarray, k: int) -> np.ndarray:
    """How many of the K checkpoints are set, per (id, run)."""
    out = np.empty(bits.shape[:2], np.int64)
    for lo in range(0, bits.shape[0], CHUNK):
        out[lo : lo + CHUNK] = unpack(bits[lo : lo + CHUNK], k).sum(axis=-1)
    return out


def welford_step(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """One step of Welford's running mean and sum of squared deviations: the state (count (G,), mean (G, D),
    m2 (G, D)) of G groups after each takes its next vector x (G, D), in float64; the population variance of a
    group's vectors is m2 / count once it has taken them all. The same operations whatever the blocks the
    vectors come in, so a group's result depends only on the order of its vectors.

    >>> c, mu, m2 = np.zeros(1), np.zeros((1, 2)), np.zeros((1, 2))
    >>> for x in ([0.0, 1.0], [2.0, 1.0]):
    ...     c, mu, m2 = welford_step(c, mu, m2, np.array([x]))
    >>> (m2 / c[:, None]).tolist()
    [[1.0, 0.0]]
    """
    count = count + 1
    x = np.asarray(x, dtype=np.float64)
    delta = x - mean
    mean = mean + delta / count[:, None]
    return count, mean, m2 + delta * (x - mean)


def normalize(v: np.ndarray, how: str, label: np.ndarray | None) -> np.ndarray:
    """z-scores of ``v``: per class (``label``), over the data set, or none; a group with no spread maps to 0.

    >>> normalize(np.array([1.0, 3.0, 5.0, 5.0]), "class", np.array([0, 0, 1, 1])).tolist()
    [-1.0, 1.0, 0.0, 0.0]
    """
    if how == "none":
        return v.copy()
    groups = np.zeros(len(v), np.int64) if how == "dataset" else np.asarray(label)
    out = np.empty(len(v))
    for g in np.unique(groups):
        at = groups == g
        mu, sd = v[at].mean(), v[at].std()
        out[at] = (v[at] - mu) / sd if sd > 0 else 0.0
    return out
