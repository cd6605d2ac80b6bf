"""Every default of a run, defined once, and the parsers of option values (shared by the CLI and the library).

The CLI's ``typer`` options (:mod:`dataselect_cli.cli.options`) take their defaults from here, and
so do the library's functions, so a default is written in one place.
"""

from __future__ import annotations

from .errors import InputError

#: --seed
SEED = 0
#: --eps when neither --eps nor --size is given.
EPS = 0.1
#: --z
Z = 2
#: --init choices of k-means (the first is the default).
INITS = ("kmeans++", "random", "afkmc2")
#: k-means --tol: Lloyd's iterations stop once the objective improves by less than this fraction. Measured
#: (docs/performance.md): past a 10⁻³ step the objective falls by under 0.3 % more, while each further
#: iteration costs as much as a quarter of the final assignment pass.
KMEANS_TOL = 1e-3
#: --memory-limit, as the CLI shows it.
MEMORY_LIMIT = "4GB"
#: --scratch value that turns the spill of decoded blocks off.
NO_SCRATCH = "none"
#: embed --batch-size (documents read and encoded at a time).
TEXT_BATCH = 8192
#: embed --model
TEXT_MODEL = "hash"
#: dedup --eps (NeMo Curator's default eps_to_extract) and --keep (SemDeDup's "hard": farthest from the centroid)
DEDUP_EPS = 0.01
DEDUP_KEEP = "far"
#: --engine, dask --workers
ENGINE = "local"
WORKERS = 2
#: evaluate
EVAL_BUDGETS = "0.01,0.02,0.05"
EVAL_REPEATS = 5
EVAL_HOLDOUT = 0.2
#: δ of the empirical intervals of ``estimate`` when the selection names none.
DELTA_EMPIRICAL = 0.05
#: dynamics: the proxy model, its training and what it records
DYN_MODEL = "linear"
DYN_MODELS = ("linear", "mlp")
DYN_EPOCHS = 10
DYN_CHECKPOINTS = "all"
DYN_EVERY_UNTIL = 2.0
DYN_RUNS = 1
DYN_BATCH = 128
DYN_LR = {"linear": 1e-2, "mlp": 1e-3}
DYN_HIDDEN = 256
DYN_INPUT_GRAD = "full"
DYN_NULL = True

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
          "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}


def parse_bytes(value: str, option: str = "--memory-limit") -> int:
    """Parse a size such as 4GB, 512MB, 2GiB or 1000000 (bytes); units are powers of 1024.

    >>> parse_bytes("4GB") == 4 << 30, parse_bytes("512 mb")
    (True, 536870912)
    """
    text = str(value).strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    try:
        return int(float(number) * _UNITS[text[len(number):]])  # Scale refuses a size <= 0
    except (ValueError, KeyError):
        raise InputError(f"{option} must be a size such as 4GB or 512MB; got {value!r}") from None


def parse_rows(value: str | int, option: str) -> int | str:
    """Parse a row-count option: 'auto', 'all' or a positive integer."""
    if value in ("auto", "all"):
        return value
    try:
        rows = int(value)
    except ValueError:
        raise InputError(f"{option} must be 'auto', 'all' or a number of rows; got {value!r}") from None
    if rows <= 0:
        raise InputError(f"{option} must be a positive number of rows; got {value}")
    return rows
