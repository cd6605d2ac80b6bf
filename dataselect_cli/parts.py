"""Directory outputs: per-row rows written as part files by the tasks that compute them, committed at once.

An ``-o`` path that ends with ``/`` asks for a directory output (so does one naming a directory that
already holds a :data:`MANIFEST`, i.e. an earlier directory output of this tool). Its layout::

    clusters/part-00000000.parquet   rows of block 0 (the block grid: :mod:`dataselect_cli.grid`)
    clusters/part-00000001.parquet   rows of block 1, …
    clusters/_manifest.json          the completion marker: the run's metadata, rows and bytes and
                                     sha256 of every part

Part names sort in block order, so the directory reads back (:class:`~dataselect_cli.pqdataset.ParquetDataset`
takes a directory's files in name order) as the same table, in row order, as the single-file output.
A part holds one block and depends on nothing else, so its bytes are the same whatever the engine,
the partitions or the memory limit.

The commit cannot be half-done (as datatrove's completion files): :func:`begin` makes a temp directory
``.NAME.PID.XXXX.tmp`` beside the target; each task writes its parts there (:func:`write_part`: a
hidden temp file renamed into place, so a task run twice, after a lost worker, replaces its own part
and a task killed mid-write leaves only a hidden file); :func:`finish` checks that every part is there,
removes anything else, writes the manifest last, and the directory is renamed into place with the
command's other outputs (:func:`dataselect_cli.outputs.outputs`). A reader refuses a directory that holds
parts of ours without a manifest (:func:`dataset_files`), and the stale-temp sweep removes the temp
directory of a killed run (:func:`dataselect_cli.outputs.sweep_stale_temps`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import io, outputs
from .errors import InputError
from .io import read_manifest
from .outputs import MANIFEST

#: Name of block b's part: fixed width, so that name order is block order up to 10⁸ blocks.
PART = "part-{:08d}.parquet"


def is_dir_output(path: str | os.PathLike) -> bool:
    """Whether ``-o path`` asks for a directory output: a trailing ``/`` or a directory output of ours."""
    p = os.fspath(path)
    return p.endswith(("/", os.sep)) or os.path.isfile(os.path.join(p, MANIFEST))


def check_output(out: str | os.PathLike, inputs: list, option: str = "-o") -> None:
    """Refuse, before any work, a directory output that is or holds an input, a file, a directory that is neither
    empty nor an output of ours (a commit replaces the whole directory), or whose parent cannot be written in."""
    real = os.path.realpath(out)
    outputs.check_output_dir(out, inputs, option)
    for p in inputs:
        if p is not None and os.path.realpath(p).startswith(real + os.sep):
            raise InputError(f"holds an input ({p}), and a directory output replaces the whole directory; choose "
                             f"another {option}", str(out))
    if os.path.isdir(real) and os.listdir(real) and not os.path.isfile(os.path.join(real, MANIFEST)):
        raise InputError(f"is a directory that dataselect did not write (no {MANIFEST}); a directory output "
                         f"replaces the whole directory: give {option} a new or empty one", str(out))
    outputs.check_writable_dir(os.path.dirname(real) or ".", str(out), option)
    if not outputs.resuming():
        outputs.check_clobber([real])


def begin(out: str | os.PathLike) -> str:
    """Make the temp directory ``.NAME.PID.XXXX.tmp`` beside ``out`` where the parts are written; inside
    :func:`dataselect_cli.outputs.outputs` it is removed if the command fails and renamed over ``out`` at the commit."""
    real = os.path.realpath(out)
    outputs.sweep_stale_temps(real)
    try:
        tmp = tempfile.mkdtemp(prefix=f".{Path(real).name}.{os.getpid()}.", suffix=".tmp",
                               dir=os.path.dirname(real))
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", str(out)) from None
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; workers running as the same user need no more
    outputs.stage_dir(tmp, str(out))
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def part_schema(schema: pa.Schema, meta: dict[str, Any], b: int) -> pa.Schema:
    """``schema`` with the run's metadata and ``part``: b. Without the summary, which no block knows, and
    without the inputs' fingerprints, which the manifest holds (one entry per file of a directory input: in
    every part, they would make the parts' footers grow with the number of parts)."""
    own = {key: v for key, v in meta.items() if key not in ("summary", "inputs")}
    return schema.with_metadata({**(schema.metadata or {}), io.META_KEY: io.meta_bytes({**own, "part": b})})


def write_part(folder: str, b: int, table: pa.Table, meta: dict[str, Any]) -> dict[str, Any]:
    """Write block b's rows as ``folder/part-b.parquet`` (a hidden temp file, fsynced, then renamed: a task
    run again replaces its own part whole); return its manifest entry (name, rows, bytes, sha256)."""
    name = PART.format(b)
    table = table.cast(part_schema(table.schema, meta, b))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w+b") as f:
            io.write_parquet(table, f)
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)
            digest = io.sha256_of(f)
            size = f.tell()
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return {"name": name, "rows": table.num_rows, "bytes": size, "sha256": digest}


class Sink:
    """Where a pass's tasks write their blocks' rows: picklable (a Dask task carries it to its worker).

    Parameters
    ----------
    folder : str
        The temp directory of :func:`begin`.
    meta : dict
        The run's metadata (:func:`dataselect_cli.io.make_meta`) without the summary.
    ids : dataset or None
        Where the ``id`` column of a block comes from (a :class:`~dataselect_cli.pqdataset.ParquetDataset` or a
        synthetic input, read by the task); None when the block's columns hold ``id`` already.
    """

    def __init__(self, folder: str, meta: dict[str, Any], ids=None):
        self.folder, self.meta, self.ids = folder, meta, ids

    def __call__(self, b: int, block_rows: int, columns: dict[str, Any]) -> dict[str, Any]:
        """Write block b (rows [b·block_rows, …)) with ``columns`` after ``id``; return its manifest entry."""
        cols = dict(columns)
        if self.ids is not None:
            lo = b * block_rows
            hi = lo + len(next(iter(columns.values())))
            t = next(self.ids.iter_tables(["id"], lo, hi, hi - lo))
            cols = {"id": io.id_type(t.column("id").combine_chunks(), self.ids.path), **cols}
        return write_part(self.folder, b, pa.table(cols), self.meta)


def finish(folder: str, out: str | os.PathLike | None, meta: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Complete a directory output: check that ``folder`` holds exactly the parts of ``entries`` (one per block,
    in block order) with their sizes, remove anything else (a part half-written by a lost worker), then write
    the manifest, the completion marker, last. Outside :func:`dataselect_cli.outputs.outputs` the directory is
    renamed over ``out`` here; inside, at the command's commit; ``out`` None: it stays where it is (a scratch
    folder)."""
    names = [e["name"] for e in entries]
    if names != [PART.format(b) for b in range(len(entries))]:
        raise RuntimeError(f"the parts of {out} are not one per block in block order")
    for name in os.listdir(folder):
        if name not in set(names):
            p = os.path.join(folder, name)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    for e in entries:
        size = os.path.getsize(os.path.join(folder, e["name"]))
        if size != e["bytes"]:
            raise RuntimeError(f"part {e['name']} of {out} has {size} bytes, its task wrote {e['bytes']}")
    manifest = {"dataselect": meta, "rows": sum(e["rows"] for e in entries), "parts": entries}
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, sort_keys=True, indent=1, default=io.json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(folder)
    if out is not None and not outputs.in_transaction():
        outputs.replace_dir(folder, str(out))


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dataset_files(path: str, found: list[str]) -> list[str]:
    """The files of a directory input in row order: the manifest's parts for a directory output of ours, else
    ``found`` (the directory's Parquet files in name order). An :class:`InputError` for a directory of ours
    without its manifest: a run that did not finish (its temp directory) or a manifest removed by hand."""
    manifest = read_manifest(path)
    if manifest is None:
        if _is_temp_name(path) or (found and "part" in _file_meta(found[0])):
            raise InputError(f"is an unfinished dataselect directory output (parts without {MANIFEST}: the run "
                             "that wrote it did not complete); re-run that command", path)
        return found
    real = outputs.staged(path)
    files = [os.path.join(real, e["name"]) for e in manifest["parts"]]
    for f, e in zip(files, manifest["parts"]):
        if not os.path.isfile(f) or os.path.getsize(f) != e.get("bytes"):
            raise InputError(f"part {e['name']} is missing or has another size than {MANIFEST} records; re-run "
                             "the command that wrote it", path)
    return files


def fingerprint(path: str, files: list[str]) -> dict[str, Any] | None:
    """The fingerprint of a directory output of ours as an input: one entry (its name, rows, bytes, and the
    sha256 of its manifest, which holds every part's sha256), after checking each part's sha256 against the
    manifest; None for a directory that is not ours. So the metadata of what reads it stays one entry, whatever
    the number of parts."""
    manifest = read_manifest(path)
    if manifest is None:
        return None
    for f, e in zip(files, manifest["parts"]):
        if io.fingerprint(f)["sha256"] != e.get("sha256"):
            raise InputError(f"part {e['name']} changed after it was written (its sha256 differs from {MANIFEST}); "
                             "re-run the command that wrote it", path)
    with open(os.path.join(outputs.staged(path), MANIFEST), "rb") as fh:
        digest = io.sha256_of(fh)
    return {"name": Path(os.path.realpath(path)).name, "rows": manifest.get("rows"),
            "bytes": sum(e["bytes"] for e in manifest["parts"]), "manifest_sha256": digest}


def _is_temp_name(path: str) -> bool:
    name = Path(os.path.realpath(path)).name
    return name.startswith(".") and name.endswith(".tmp")


def _file_meta(file: str) -> dict[str, Any]:
    try:
        raw = (pq.read_schema(file).metadata or {}).get(io.META_KEY)
        return json.loads(raw) if raw else {}
    except (OSError, ValueError, pa.ArrowInvalid):
        return {}
