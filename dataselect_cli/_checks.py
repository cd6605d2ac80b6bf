"""Boundary checks on arrays and parameters.

Each check raises :class:`~dataselect_cli.errors.InputError` with one line that names the file,
column or row at fault and says what to do. The core modules (``cluster``, ``scores``,
``sample``, ``bounds``) assume their input passed these checks and do not repeat them.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from .errors import InputError
from .options import INITS


def _first_bad_row(bad: np.ndarray, ids: np.ndarray | None) -> str:
    row = int(np.flatnonzero(bad)[0])
    if ids is None:
        return f"row {row}"
    value = ids[row]
    value = value.as_py() if hasattr(value, "as_py") else value  # pyarrow scalar
    return f"row {row} (id {value!r})"


#: Largest magnitude accepted in an embedding: squared distances of such vectors stay far inside float32.
MAX_ABS = 1e15


def first_bad_value(x: np.ndarray) -> tuple[int, str, str] | None:
    """(row, what, what to do) of the first row of ``x`` holding a NaN, an infinity or a value beyond ±MAX_ABS, or None."""
    if len(x) == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if -MAX_ABS <= float(np.min(x)) and float(np.max(x)) <= MAX_ABS:  # False for NaN: min/max propagate it
            return None
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            return int(np.flatnonzero(bad)[0]), "a NaN or infinite value", "fix or drop that row and re-run"
        big = (np.abs(x) > MAX_ABS).any(axis=1)
        if big.any():
            return int(np.flatnonzero(big)[0]), f"a value beyond ±{MAX_ABS:g}", \
                "scale the vectors down (squared distances would overflow float32)"
    return None


def check_embeddings(x: np.ndarray, ids: np.ndarray | None = None, *, path: str | None = None) -> None:
    """Check that embeddings are a non-empty float32 matrix of shape (n, d) of finite values within ±MAX_ABS.

    The check takes the min and max first (O(n·d) time, O(1) memory; NaN propagates through both)
    and only runs the element-wise pass to name the first bad row, as scikit-learn's
    ``_assert_all_finite`` does.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError("no embeddings: the file has 0 rows; embed some data first", path)
    if x.shape[1] == 0:
        raise InputError("column 'embedding' holds empty vectors (d = 0); re-embed the data", path)
    bad = first_bad_value(x)
    if bad is not None:
        full = np.zeros(x.shape[0], dtype=bool)
        full[bad[0]] = True
        raise InputError(f"column 'embedding' has {bad[1]} at {_first_bad_row(full, ids)}; {bad[2]}", path)


def check_unique_ids(ids: pa.Array, *, path: str | None = None, column: str = "id") -> None:
    """Check that ``ids`` has no duplicates, naming one duplicate if it has."""
    import pyarrow.compute as pc

    if pa.types.is_integer(ids.type) and not ids.null_count and len(ids) > 1:
        x = ids.to_numpy()
        if bool((x[1:] > x[:-1]).all()):  # strictly increasing (the usual case): no duplicate, without a hash table
            return
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
    if len(repeated):
        raise_duplicate(repeated[0]["values"].as_py(), repeated[0]["counts"].as_py(), len(repeated), path, column)


def raise_duplicate(dup, count: int, repeated: int, path: str | None, column: str = "id") -> None:
    """The duplicate-id error: ``dup`` (the repeated id seen first) appears ``count`` times, ``repeated`` ids repeat."""
    raise InputError(f"column '{column}' has duplicate ids ({dup!r} appears {count} times; {repeated} ids repeated); "
                     "ids must be unique", path)


def check_losses(loss: np.ndarray, ids: np.ndarray | None = None, *, path: str | None = None) -> None:
    """Check that losses are finite and non-negative."""
    bad = ~np.isfinite(loss)
    if bad.any():
        raise InputError(
            f"column 'loss' has a NaN or infinite value at {_first_bad_row(bad, ids)}; "
            "losses must be finite numbers >= 0",
            path,
        )
    neg = loss < 0
    if neg.any():
        raise InputError(
            f"column 'loss' is negative at {_first_bad_row(neg, ids)}; losses must be >= 0 "
            "(shift or clip them, e.g. use a loss rather than a log-likelihood)",
            path,
        )


def check_eps(eps: float) -> None:
    """Check that ε lies in the open interval (0, 1)."""
    if not (0.0 < eps < 1.0):
        raise InputError(f"--eps must lie strictly between 0 and 1; got {eps}")


def check_delta(delta: float) -> None:
    """Check that δ lies in the open interval (0, 1)."""
    if not (0.0 < delta < 1.0):
        raise InputError(f"--delta must lie strictly between 0 and 1; got {delta}")


def check_k(k: int, n: int, *, path: str | None = None) -> None:
    """Check that 1 <= k <= n."""
    if k <= 0:
        raise InputError(f"--k must be a positive number of clusters; got {k}")
    if k > n:
        raise InputError(f"--k {k} is larger than the number of rows ({n}); use --k {n} or less", path)


def check_lambda(lam: float, infinite: bool = False) -> None:
    """Check that Λ is a finite number >= 0 (or +∞ where ``infinite`` allows it)."""
    if not ((math.isfinite(lam) or (infinite and lam == math.inf)) and lam >= 0):
        raise InputError(f"--lambda must be a finite number >= 0{' or inf' if infinite else ''}; got {lam}")


def check_z(z: int) -> None:
    """Check that the distance exponent is 1 or 2."""
    if z not in (1, 2):
        raise InputError(f"--z must be 1 or 2; got {z}")


def check_kmeans_options(opt, k: int) -> None:
    """Check a :class:`~dataselect_cli.cluster.KMeansOptions` against k (before any work)."""
    if opt.init not in INITS:
        raise InputError(f"--init must be one of {', '.join(INITS)}; got {opt.init!r}")
    for name, value in (("--fit-sample", opt.fit_sample), ("--init-sample", opt.init_sample)):
        if isinstance(value, int) and value < k:
            raise InputError(f"{name} {value} is smaller than --k {k}; use at least k rows (or 'auto', 'all')")
    if opt.niter < 1 or opt.nredo < 1 or opt.refine < 0 or (opt.fit_niter is not None and opt.fit_niter < 0):
        raise InputError("--niter and --nredo must be >= 1, --refine and --fit-niter >= 0")
    if not 0 <= opt.tol < 1:
        raise InputError(f"--tol must lie in [0, 1); got {opt.tol}")


def check_fraction(fraction: float) -> None:
    """Check that a sample fraction is in (0, 1]."""
    if not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise InputError(f"--fraction must be in (0, 1] (the share of the rows to keep); got {fraction}")


def check_size(size: int) -> None:
    """Check that a sample size is a positive number of draws."""
    if size <= 0:
        raise InputError(f"--size must be a positive number of draws; got {size}")
