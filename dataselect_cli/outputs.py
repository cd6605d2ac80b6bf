"""A command's outputs: all or nothing, checked before any work.

Inside :func:`outputs` every file a command writes goes to a temp file staged beside its target
(``.NAME.PID.XXXXXXXX.tmp``, fsynced); when the command succeeds the targets appear together, by renames
(signals held meanwhile), and when it fails every temp file, scratch file and directory it made is
removed, so a failed or interrupted run leaves the old outputs or none, never a part. The output
locations (not an input, a writable directory, ``--no-clobber``) are checked by :func:`check_output_path`
and :func:`check_output_dir` before any long work; temp files of killed runs are swept on the next write
(:func:`sweep_stale_temps`). The Parquet contract's writers (:mod:`dataselect_cli.io`) write through
:func:`_atomic_file`.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import InputError

#: The completion marker of a directory output (:mod:`dataselect_cli.parts`; a leading ``_``: readers skip it).
MANIFEST = "_manifest.json"


_NO_CLOBBER: ContextVar[bool] = ContextVar("no_clobber", default=False)
_RESUME: ContextVar[bool] = ContextVar("resume", default=False)


@contextmanager
def _switch(var: ContextVar[bool], on: bool) -> Iterator[None]:
    token = var.set(on)
    try:
        yield
    finally:
        var.reset(token)


def no_clobber(on: bool = True):
    """Inside this block, an output file that exists already is refused instead of replaced."""
    return _switch(_NO_CLOBBER, on)


def resuming() -> bool:
    """Whether ``--resume`` is on (:func:`resume`)."""
    return _RESUME.get()


def resume(on: bool = True):
    """Inside this block, :func:`~dataselect_cli.io.up_to_date` may skip a step whose outputs are already up to date."""
    return _switch(_RESUME, on)


class _Outputs:
    """The outputs of one command, staged as temp files beside their targets and renamed into place together."""

    def __init__(self) -> None:
        self.staged: dict[str, tuple[str, str]] = {}  # realpath of target → (temp file, path as given)
        self.dirs: list[str] = []  # directories this command created, deepest last
        self.after: list[Callable[[], None]] = []
        self.committed = False  # every output is in place
        self.written: list[str] = []  # the outputs renamed into place, as given
        self.scratch: list[str] = []  # this command's scratch files (:func:`scratch_file`), removed at the end

    def stage(self, tmp: str, path: str) -> None:
        key = os.path.realpath(path)
        old = self.staged.pop(key, None)
        if old is not None and os.path.exists(old[0]):
            os.unlink(old[0])
        self.staged[key] = (tmp, path)

    def drop_scratch(self) -> None:
        for tmp in self.scratch:
            _remove(tmp)
        self.scratch.clear()

    def commit(self) -> None:
        self.drop_scratch()  # before any output appears: a scratch file is never beside a committed output
        for key, (tmp, path) in list(self.staged.items()):
            if os.path.isdir(tmp):
                replace_dir(tmp, path)
            else:
                try:
                    os.replace(tmp, key)
                except OSError as exc:
                    raise InputError(f"cannot write: {exc.strerror or exc}", path) from None
            del self.staged[key]
            self.written.append(path)

    def rollback(self) -> None:
        self.drop_scratch()
        for tmp, _ in self.staged.values():
            _remove(tmp)
        self.staged.clear()
        for d in reversed(self.dirs):
            try:
                os.rmdir(d)  # only if empty: never a file that was there before
            except OSError:
                pass


_OUTPUTS: ContextVar[_Outputs | None] = ContextVar("outputs", default=None)


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back while the outputs are renamed into place, and raised again right after: a
    signal cannot leave some outputs committed and others not.

    The handlers are swapped for ones that only note the signal (a thread's signal mask would not do: the
    process's other threads, faiss's and Arrow's, would take the signal). Only the main thread can set
    handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: a handler not set from Python, which cannot be put back
            old[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])


@contextmanager
def outputs() -> Iterator[_Outputs]:
    """All or nothing across a command's outputs.

    Inside this block every file written through this module (the writers of :mod:`dataselect_cli.io`) goes to
    a temp file beside its target (fsynced); the targets appear together, by renames, only when the block ends
    without an exception, and an exception removes every temp file and every directory made by
    :func:`make_dir`. Reads of an output written earlier in the block (:func:`~dataselect_cli.io.open_parquet`,
    :func:`~dataselect_cli.io.fingerprint`) see the staged file. Nested blocks join the outer one. Callbacks
    registered with :func:`after_commit` run once everything is in place (the command's summary).
    """
    outer = _OUTPUTS.get()
    if outer is not None:
        yield outer
        return
    tx = _Outputs()
    token = _OUTPUTS.set(tx)
    try:
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        try:
            with _signals_held():
                tx.commit()
                tx.committed = True
        except BaseException:
            tx.rollback()
            raise
    finally:
        _OUTPUTS.reset(token)
    for fn in tx.after:
        fn()


def in_transaction() -> bool:
    """Whether this code runs inside :func:`outputs`."""
    return _OUTPUTS.get() is not None


def stage_dir(tmp: str, path: str) -> None:
    """Inside :func:`outputs`, stage the temp directory ``tmp`` to be renamed over the directory ``path`` at the
    commit (:mod:`dataselect_cli.parts`), or removed if the command fails."""
    tx = _OUTPUTS.get()
    if tx is not None:
        tx.stage(tmp, path)


def replace_dir(tmp: str, path: str) -> None:
    """Rename the complete directory ``tmp`` over ``path``. An existing ``path`` is first renamed aside (to a
    temp name the sweep knows) and removed after: a kill between the two renames leaves no ``path``, never a
    part of one."""
    real = os.path.realpath(path)
    if not os.path.isfile(os.path.join(tmp, MANIFEST)):
        raise RuntimeError(f"{tmp} has no {MANIFEST}; a directory output is committed only complete")
    old = None
    try:
        if os.path.lexists(real):
            old = tempfile.mkdtemp(prefix=f".{Path(real).name}.{os.getpid()}.", suffix=".tmp",
                                   dir=os.path.dirname(real))
            os.replace(real, old)  # onto the empty directory just made: an atomic rename
        os.replace(tmp, real)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None
    if old is not None:
        _remove(old)


def _remove(path: str) -> None:
    """Remove a temp file or directory, quietly."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def staged(path: str | os.PathLike) -> str:
    """The temp file holding ``path`` when this command wrote it and has not committed yet, else ``path``."""
    tx = _OUTPUTS.get()
    if tx is not None:
        hit = tx.staged.get(os.path.realpath(path))
        if hit is not None:
            return hit[0]
    return os.fspath(path)


def pending_outputs() -> list[str]:
    """The outputs this command has written so far (as given), in the order written; [] outside :func:`outputs`."""
    tx = _OUTPUTS.get()
    return [] if tx is None else [p for _, p in tx.staged.values()]


def after_commit(fn: Callable[[], None]) -> bool:
    """Run ``fn`` once the command's outputs are in place; False (not registered) outside :func:`outputs`."""
    tx = _OUTPUTS.get()
    if tx is None:
        return False
    tx.after.append(fn)
    return True


def scratch_file(near: str | os.PathLike, folder: str | None = None) -> str:
    """Create an empty scratch file for this command, named as the temp files of ``near`` (its primary
    output): ``.NAME.PID.XXXXXXXX.spill.tmp`` in ``folder`` (default: ``near``'s directory).

    Stale ones there, of runs killed meanwhile, are swept first (:func:`sweep_stale_temps`, which every
    later write of ``near`` runs too). Inside :func:`outputs` the file is removed when the block ends,
    before the outputs are renamed into place or as they are rolled back (an error, Ctrl-C); outside it,
    the caller removes it. An :class:`OSError` (no space, no permission) is the caller's to handle.
    """
    real = os.path.realpath(near)
    folder = folder or os.path.dirname(real)
    sweep_stale_temps(os.path.join(folder, os.path.basename(real)))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.{os.getpid()}.", suffix=".spill.tmp", dir=folder)
    os.close(fd)
    tx = _OUTPUTS.get()
    if tx is not None:
        tx.scratch.append(tmp)
    return tmp


def make_dir(path: str | os.PathLike) -> None:
    """Create an output directory (and missing parents); inside :func:`outputs` it is removed again if the
    command fails (and is empty)."""
    path = os.path.abspath(path)
    missing = []
    p = path
    while not os.path.exists(p):
        missing.append(p)
        p = os.path.dirname(p)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the directory: {exc.strerror or exc}", path) from None
    tx = _OUTPUTS.get()
    if tx is not None:
        tx.dirs.extend(reversed(missing))


def check_output_path(out: str | os.PathLike, inputs: list[str | os.PathLike], option: str = "-o") -> None:
    """Refuse, before any work, an output path that is one of the inputs, that is a directory, whose
    directory is missing, not a directory or not writable, or (inside :func:`no_clobber`) that exists
    already. ``option`` names the option in the message."""
    out_real = os.path.realpath(out)
    _check_not_an_input(out_real, inputs, "output path", option, out)
    if os.path.isdir(out_real):
        raise InputError(f"is a directory; give {option} a file path", str(out))
    check_writable_dir(os.path.dirname(out_real) or ".", str(out), option)
    if not _RESUME.get():  # with --resume an up-to-date output is skipped, not refused: see check_clobber
        check_clobber([out])


def _check_not_an_input(real: str, inputs: list[str | os.PathLike], what: str, option: str,
                        out: str | os.PathLike) -> None:
    """Refuse an output (``real``: its real path) that is one of the inputs: writing it would destroy one."""
    for p in inputs:
        if p is not None and os.path.realpath(p) == real:
            raise InputError(f"{what} is also an input ({p}); choose another {option}", str(out))


def check_clobber(outs: list[str | os.PathLike]) -> None:
    """Inside :func:`no_clobber`, refuse an output that exists already."""
    if _NO_CLOBBER.get():
        for out in outs:
            if os.path.exists(out):
                raise InputError("exists already and --no-clobber is set; remove it or drop --no-clobber", str(out))


def check_output_dir(out: str | os.PathLike, inputs: list[str | os.PathLike], option: str = "-o") -> None:
    """Refuse, before any work, an output directory that is a file or an input, or that cannot be created
    or written in (its parent must exist)."""
    real = os.path.realpath(out)
    _check_not_an_input(real, inputs, "output directory", option, out)
    if os.path.exists(real):
        if not os.path.isdir(real):
            raise InputError(f"is a file, not a directory; give {option} a directory", str(out))
        check_writable_dir(real, str(out), option)
    else:
        check_writable_dir(os.path.dirname(real) or ".", str(out), option)


def check_writable_dir(folder: str, out: str, option: str) -> None:
    """Raise an :class:`InputError` unless ``folder`` is an existing directory this process can create files in.

    Tried, not inferred from permission bits: a temp file is created and removed, so read-only file
    systems, ACLs and root on a read-only mount all give the true answer."""
    if not os.path.isdir(folder):
        up = folder
        while up and not os.path.exists(up):
            up = os.path.dirname(up)
        if up and not os.path.isdir(up):
            raise InputError(f"{up} is a file, not a directory; choose another {option}", out)
        raise InputError(f"directory {folder} does not exist; create it first", out)
    try:
        fd, probe = tempfile.mkstemp(prefix=".dataselect-probe.", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write in {folder} ({exc.strerror or exc}); choose another {option} or fix "
                         "its permissions", out) from None
    os.close(fd)
    os.unlink(probe)


#: OS errors that mean "this output cannot be written" (exit 2, one line) rather than a bug.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG,
                 errno.ENOENT, errno.ENOTDIR}


@contextmanager
def _atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Yield a temp file in the target's directory; on success fsync it and rename it over ``path``.

    A crash or a kill at any moment leaves the old file or the complete new one, never a part;
    an exception removes the temp file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    sweep_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        tx = _OUTPUTS.get()
        if tx is not None:
            tx.stage(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:  # a full disk, a read-only mount, …
            raise InputError(f"cannot write: {exc.strerror or exc}", path) from None
        raise


def sweep_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove the temp files ``.NAME.PID.*.tmp`` that runs killed while writing ``path`` left behind (temp
    directories of directory outputs too: :mod:`dataselect_cli.parts`).

    A temp file is stale when the process named in it no longer exists (a SIGKILL leaves no chance
    to clean up); a live writer's temp file is left alone. Returns the files removed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f".{Path(path).name}."
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        _remove(os.path.join(folder, name))
        if not os.path.lexists(os.path.join(folder, name)):
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temp file in the target's directory, fsync, then rename over ``path``."""
    with _atomic_file(path, mode) as f:
        write(f)
