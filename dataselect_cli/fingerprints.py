"""Input fingerprints: the ``inputs`` of an output's metadata, a fingerprint per input role (what ``--resume``
compares, :mod:`dataselect_cli.io`), computed at once (:func:`input_fingerprints`) or in a background thread
while the run reads its rows (:class:`PendingFingerprints`).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Mapping
from typing import Any, Iterator

from . import io, outputs
from .pqdataset import ParquetDataset


def input_fingerprints(inputs: dict[str, Any]) -> dict[str, dict]:
    """The metadata's ``inputs``: a fingerprint per role. A value is a file's path (any format: the
    bytes are hashed), a directory of Parquet files or a :class:`ParquetDataset` (one entry per file,
    ``role/relative path``), a :class:`~dataselect_cli.tables.TextTable`, a
    fingerprint already computed (a dict, kept), or None (left out)."""
    out: dict[str, dict] = {}
    for role, p in inputs.items():
        if p is None:
            continue
        if isinstance(p, dict):
            out[role] = p
        elif hasattr(p, "fingerprints"):  # a ParquetDataset, a TextTable, a synthetic input
            out.update(p.fingerprints(role))
        elif os.path.isdir(outputs.staged(p)):  # a directory of Parquet files, or a directory output not yet committed
            out.update(ParquetDataset(outputs.staged(p)).fingerprints(role))
        else:
            out[role] = io.fingerprint(p)
    return out


class PendingFingerprints(Mapping):
    """:func:`input_fingerprints` of ``inputs``, the roles ``later`` hashed in a background thread while
    the run reads its rows.

    A read-only mapping (role → fingerprint) that waits for the hashing the first time it is looked
    at, so that a run waits for the SHA-256 of its big inputs only where the fingerprints are needed
    (writing the outputs; ``--resume`` when every output exists). Hashing releases the GIL, and the
    first pass over the rows (the decode into memory, or the streamed pass gathering the k-means fit
    rows) keeps one core busy decoding Parquet. The mapping equals ``input_fingerprints(inputs)``,
    entries in the same order; the other roles are hashed at once, so that a missing file among them
    is still refused before any work. An error while hashing later (a file gone) is raised where the
    fingerprints are first needed.
    """

    def __init__(self, inputs: dict[str, Any], later: tuple[str, ...]):
        self._order = list(inputs)
        self._parts = {role: input_fingerprints({role: p}) for role, p in inputs.items() if role not in later}
        self._error: BaseException | None = None
        ctx = contextvars.copy_context()  # the command's staged outputs (outputs.staged), as the caller sees them
        self._thread = threading.Thread(target=ctx.run, args=(self._work, {r: inputs[r] for r in later if r in inputs}),
                                        daemon=True, name="dataselect-fingerprints")
        self._thread.start()
        self._result: dict[str, dict] | None = None

    def _work(self, inputs: dict[str, Any]) -> None:
        try:
            for role, p in inputs.items():
                self._parts[role] = input_fingerprints({role: p})
        except BaseException as exc:  # noqa: BLE001 - raised where the fingerprints are needed
            self._error = exc

    def _done(self) -> dict[str, dict]:
        if self._result is None:
            self._thread.join()
            if self._error is not None:
                raise self._error
            self._result = {key: fp for role in self._order for key, fp in self._parts[role].items()}
        return self._result

    def __getitem__(self, role: str) -> dict:
        return self._done()[role]

    def __iter__(self) -> Iterator[str]:
        return iter(self._done())

    def __len__(self) -> int:
        return len(self._done())
