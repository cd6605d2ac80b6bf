"""The user's scorer as the loss oracle: ``--loss-command "CMD {in} {out}"`` (issue 15).

For each query (the k center rows, the probes, the selected rows, …) the tool writes the asked ids,
with the columns of ``--data`` for those rows, as a Parquet file ``{in}`` in a private temp
directory, runs CMD with ``{in}`` and ``{out}`` replaced by the two paths, and reads back ``{out}``:
a Parquet table ``id, loss`` holding exactly the asked ids, validated like a ``--losses`` file.

* CMD is split into words as a shell would (:func:`shlex.split`) and run without a shell, unless
  ``shell`` (``--shell``): then ``/bin/sh -c`` runs it, with the two paths quoted.
* The child runs in a session (and process group) of its own; on a timeout, Ctrl-C or SIGTERM the
  whole group is killed (SIGKILL) before the error goes up, so no scorer outlives the run.
* Its stdout and stderr are relayed, line by line, to the tool's stderr (as notes: silenced by
  ``--quiet``), never to the tool's stdout; the last lines of its stderr end any error message.
* The environment variable ``DATASELECT_PURPOSE`` tells the child what the query is for
  (``centers``, ``probes``, ``selected``); ``batch`` (``--loss-batch``) splits a query into runs of at
  most that many ids.
"""

from __future__ import annotations

import collections
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import io
from .dataset import open_table, read_losses, take_sorted
from .errors import InputError
from .oracle import Oracle

#: How many of the child's last stderr lines an error shows, and how many characters of each.
TAIL_LINES, TAIL_CHARS = 5, 200
#: Seconds to wait for the child's output relays to drain once it has exited (a grandchild may hold them open).
DRAIN_S = 2.0


def _quiet(_: str) -> None:
    """Relay nothing."""


class CommandOracle(Oracle):
    """Losses computed by the user's scorer, run as a subprocess for every query (``--loss-command``).

    Parameters
    ----------
    command : str
        The command line; it must contain ``{in}`` (the request: Parquet, ``id`` and the ``data``
        columns) and ``{out}`` (where the scorer writes Parquet ``id, loss``).
    shell : bool, default=False
        Run ``command`` with ``/bin/sh -c`` (pipes, redirections, variables); the paths are quoted.
    batch : int or None
        At most this many ids per run of the command (None: a whole query in one run).
    timeout : float or None
        Seconds one run may take (None: no limit); past it the child's process group is killed.
    data : str or None
        A table (Parquet, CSV, TSV, JSON lines) with ``id`` and any other columns: the request file
        carries those columns for the asked ids, so the scorer needs no lookups.
    note : callable
        Receives the child's output lines (stdout and stderr) and one line per run.

    All of it is checked here, before any work: the placeholders, the words, the executable, the
    data table's ids (read once).
    """

    def __init__(self, command: str, *, shell: bool = False, batch: int | None = None,
                 timeout: float | None = None, data: str | None = None, note: Callable[[str], None] = _quiet):
        super().__init__()
        self.command, self.shell, self.batch, self.timeout, self.note = command, shell, batch, timeout, note
        self.label = f"--loss-command '{command}'"
        self.calls = 0
        missing = [p for p in ("{in}", "{out}") if p not in command]
        if missing:
            raise InputError(f"{self.label} has no {' and no '.join(missing)}: write {{in}} where your scorer reads "
                             "the ids and {out} where it writes id, loss (e.g. 'python score.py {in} {out}')")
        if batch is not None and batch < 1:
            raise InputError(f"--loss-batch must be >= 1; got {batch}")
        if timeout is not None and not timeout > 0:
            raise InputError(f"--loss-timeout must be a positive number of seconds; got {timeout}")
        self.argv = self._words()
        if not shell and shutil.which(self.argv[0]) is None:
            raise InputError(f"{self.label}: {self.argv[0]!r} is not a command on PATH nor an executable file; "
                             "name the program that runs your scorer (e.g. python), or add --shell")
        self.data = self.data_ids = None
        if data is not None:
            self.data = open_table(data, what="data", option="--data")
            self.data.require(["id"], "data")
            self.data_ids = io.read_ids(self.data, self.data.path)

    def _words(self) -> list[str]:
        """The command's words (also under ``--shell``, where they only name the files it reads)."""
        try:
            words = shlex.split(self.command)
        except ValueError as exc:
            if self.shell:
                return []
            raise InputError(f"{self.label} cannot be split into words ({exc}); fix its quotes, or add "
                             "--shell") from None
        return words

    # ---- what the metadata records

    def params(self) -> dict[str, Any]:
        """The command and ``--shell`` (compared by ``--resume``; ``--loss-batch`` and ``--loss-timeout`` are not)."""
        return {"loss_command": self.command, "shell": self.shell}

    def inputs(self) -> dict[str, str]:
        """``--data``, and every file the command names (a script, a model file), by role: fingerprinted in the
        metadata, so that ``--resume`` redoes a step whose scorer or data changed."""
        out = {"data": self.data.path} if self.data is not None else {}
        for word in self.argv:
            if "{in}" not in word and "{out}" not in word and os.path.isfile(word):
                out[f"loss_command:{word}"] = word
        return out

    def summary(self) -> dict[str, Any]:
        """:meth:`Oracle.summary` with the command (not the number of runs, which ``batch`` sets: the outputs do
        not depend on it)."""
        return {**super().summary(), "command": self.command, "shell": self.shell}

    # ---- the queries

    def _losses(self, ids: pa.Array, why: str) -> np.ndarray:
        step = self.batch or len(ids)
        loss = np.empty(len(ids))
        for lo in range(0, len(ids), step):
            part = ids.slice(lo, step)
            loss[lo:lo + len(part)] = self._run(part, why)
        return loss

    def _request(self, ids: pa.Array, why: str) -> pa.Table:
        """The request table: ``id`` and, with ``data``, the other columns of the data table for those ids."""
        if self.data is None:
            return pa.table({"id": ids})
        pos = io.lookup(self.data_ids, ids, self.data.path, f"{why} row", "; --data must hold every row of the input")
        columns = [c for c in self.data.schema.names if c != "id"]
        rows = _take(self.data, columns, pos)
        return pa.table({"id": ids, **{c: rows.column(c) for c in columns}})

    def _run(self, ids: pa.Array, why: str) -> np.ndarray:
        """One run of the command on ``ids``: their losses, in their order, or an :class:`InputError`."""
        import pyarrow.compute as pc

        what = f"{self.label} ({why}, {len(ids)} ids)"
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="dataselect-losses-") as tmp:
            req, res = os.path.join(tmp, "request.parquet"), os.path.join(tmp, "losses.parquet")
            pq.write_table(self._request(ids, why), req)
            code, err, out = self._call(req, res, why, what)
            tail = _tail(err, "stderr") or _tail(out, "stdout")
            if code != 0:
                how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit status {code}"
                raise InputError(f"{what} failed: {how}{tail}; run it by hand on a request file to see why")
            if not os.path.isfile(res):
                raise InputError(f"{what} exited 0 but wrote no file at {{out}}{tail}; write Parquet id, loss there")
            try:
                rids, rloss = read_losses(res, "parquet")
            except InputError as exc:
                raise InputError(f"{what}: its {{out}} {exc.message}{tail}") from None
            if rids.type != ids.type:
                raise InputError(f"{what}: its {{out}} has {rids.type} ids, the request {ids.type} ids{tail}; "
                                 "write the ids as read from {in}")
            extra = rids.filter(pc.invert(pc.is_in(rids, value_set=ids)))
            if len(extra):
                shown = ", ".join(repr(v) for v in extra.slice(0, 10).to_pylist())
                raise InputError(f"{what}: its {{out}} has {len(extra)} ids that were not asked for: {shown}"
                                 f"{' …' if len(extra) > 10 else ''}{tail}; write exactly the ids of {{in}}")
            pos = io.lookup(rids, ids, f"{what}: its {{out}}", f"{why} row",
                            f"; write a loss for every id of {{in}}{tail}")
        self.calls += 1
        self.note(f"--loss-command: {len(ids)} losses ({why}) in {time.monotonic() - t0:.1f} s")
        return rloss[pos]

    def _call(self, req: str, res: str, why: str, what: str) -> tuple[int, list[str], list[str]]:
        """Run the command; return (exit status, its last stderr lines, its last stdout lines). Its process group
        is killed on a timeout and on any exception (Ctrl-C, SIGTERM), which then goes up."""
        if self.shell:
            args: Any = self.command.replace("{in}", shlex.quote(req)).replace("{out}", shlex.quote(res))
        else:
            args = [w.replace("{in}", req).replace("{out}", res) for w in self.argv]
        env = {**os.environ, "DATASELECT_PURPOSE": why}
        try:
            proc = subprocess.Popen(args, shell=self.shell, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise InputError(f"{what} could not start: {exc.strerror or exc}") from None
        err: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        out: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        relays = [threading.Thread(target=self._relay, args=(stream, kept), daemon=True)
                  for stream, kept in ((proc.stderr, err), (proc.stdout, out))]
        for t in relays:
            t.start()
        try:
            code = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            _drain(relays)
            raise InputError(f"{what} timed out after {self.timeout:g} s (--loss-timeout) and was killed"
                             f"{_tail(list(err), 'stderr')}; raise --loss-timeout or lower --loss-batch") from None
        except BaseException:
            kill_group(proc)
            raise
        _drain(relays)
        return code, list(err), list(out)

    def _relay(self, stream, kept: collections.deque) -> None:
        """Pass the child's output lines to ``note`` (the tool's stderr), keeping the last ones for errors."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            kept.append(line)
            self.note(f"  [loss-command] {line}")
        stream.close()


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (it leads one: ``start_new_session``) and reap the child."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # no process groups (Windows): the child alone
            proc.kill()
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass
    proc.wait()


def _signal_name(num: int) -> str:
    """``SIGKILL`` for 9 (the name of the signal that ended the child), or ``signal 99``."""
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _drain(relays: list[threading.Thread]) -> None:
    for t in relays:
        t.join(DRAIN_S)


def _tail(lines: list[str], stream: str) -> str:
    """``; its stderr ends: a | b`` for an error message (one line), or '' when the child wrote nothing there."""
    lines = [ln.strip()[:TAIL_CHARS] for ln in lines if ln.strip()]
    return f"; its {stream} ends: {' | '.join(lines)}" if lines else ""


def _take(table, columns: list[str], pos: np.ndarray) -> pa.Table:
    """Rows ``pos`` (in that order) of ``columns`` of a Parquet dataset or text table, read block by block."""
    order = np.argsort(pos, kind="stable")
    parts = [t for _, _, t in take_sorted(table, columns, pos[order])]
    rows = pa.concat_tables(parts) if parts else table.schema.select(columns).empty_table()
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return rows.take(pa.array(back))


def from_options(losses: str | None, command: str | None, *, shell: bool = False, batch: int | None = None,
                 timeout: float | None = None, data: str | None = None,
                 note: Callable[[str], None] = _quiet) -> CommandOracle | None:
    """The oracle of the command-line options: a :class:`CommandOracle` with ``--loss-command``, else None;
    an :class:`InputError` for ``--losses`` with it, or one of its options without it."""
    if command is None:
        for given, name in ((shell, "--shell"), (batch, "--loss-batch"), (timeout, "--loss-timeout"),
                            (data, "--data")):
            if given:
                raise InputError(f"{name} applies to --loss-command; add --loss-command CMD (or drop {name})")
        return None
    if losses is not None:
        raise InputError("give --losses FILE or --loss-command CMD, not both")
    return CommandOracle(command, shell=shell, batch=batch, timeout=timeout, data=data, note=note)
