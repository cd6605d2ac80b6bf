"""The ``dataselect`` typer app: its help, ``--version``, the one place that maps errors to exit codes, and ``main``.

Exit codes: 0 ok; 2 bad usage or bad input (one line on stderr); 1 an internal error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
from typing import Callable

import typer
from typer.core import TyperCommand, TyperGroup  # public: typer's documented bases for custom classes

from .. import __version__
from ..errors import InputError

HELP = """Shrink a training set to a small weighted subset whose weighted loss estimates the full
set's loss within a stated (1±ε) bound (clustering-based sensitivity sampling, Axiotis et al. 2024).

Pipeline: embed → cluster → (you compute the k center losses) → score → sample → estimate → apply.
One step: dataselect sample --k 100 --eps 0.1 emb.parquet
Your scorer asked for the losses: ... --probes 3 --loss-command "python s.py {in} {out}" --estimate
Look inside: dataselect show FILE; dataselect report SELECTED
"""


class OneLineUsageErrors(TyperGroup):
    """The app's command group: a usage error (missing argument, bad option value, unknown option or command)
    prints one line, ``error: <message> (see 'dataselect CMD -h')``, on stderr and exits 2, as the tool's own
    errors do, instead of Click's Usage/Try/Error block. It holds for ``main()`` and for ``CliRunner`` alike."""

    def make_context(self, info_name, args, parent=None, **extra):  # the group's own options
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):  # resolving the command and parsing its arguments
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors():
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        # Typer's usage errors (its bundled Click's UsageError and subclasses, typer.BadParameter among them) carry
        # exit_code 2, a format_message() and the context they arose in; typer exports no base class to catch.
        if getattr(exc, "exit_code", None) != 2 or not hasattr(exc, "format_message") \
                or type(exc).__name__ == "NoArgsIsHelpError":  # `dataselect` alone: the help, as before
            raise
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path} {ctx.help_option_names[0]}" if ctx is not None else "dataselect -h"
        typer.echo(f"error: {exc.format_message().rstrip('.')} (see '{where}')", err=True)
        raise typer.Exit(2) from None


class Command(TyperCommand):
    """Every command's class: its usage line names the arguments as ``dataselect sample [OPTIONS] INPUT``
    (typer writes a required argument as ``{INPUT}``, which reads like a template placeholder)."""

    def collect_usage_pieces(self, ctx):
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in super().collect_usage_pieces(ctx)]


app = typer.Typer(help=HELP, cls=OneLineUsageErrors, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, add_completion=True,
                  context_settings={"help_option_names": ["-h", "--help"]})


def errors_to_exit(fn: Callable) -> Callable:
    """Map InputError to one stderr line and exit 2; anything else to exit 1 (traceback with DATASELECT_DEBUG=1).

    It also applies every command's ``--no-clobber`` and ``--resume`` to the outputs the command
    writes, and makes them all or nothing (:func:`dataselect_cli.outputs.outputs`): they appear together
    when the command succeeds, and none of them when it fails.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..outputs import no_clobber, outputs, resume

        tx = None
        try:
            with no_clobber(kwargs.get("no_clobber", False)), resume(kwargs.get("resume", False)), outputs() as tx:
                return fn(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except typer.Exit:
            raise
        except BrokenPipeError:  # stdout closed early (| head): stop quietly, as other command-line tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except (KeyboardInterrupt, Terminated) as exc:
            # a signal that came while the outputs were renamed into place was held back until all of them were
            written = tx is not None and tx.committed and tx.written
            how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
            typer.echo(f"{how}; " + ("its outputs had all been written" if written else "no output was written"),
                       err=True)
            raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 143) from None
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit 1
            if os.environ.get("DATASELECT_DEBUG"):
                traceback.print_exc()
            typer.echo(f"internal error: {type(exc).__name__}: {exc} (set DATASELECT_DEBUG=1 for a traceback)",
                       err=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dataselect {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Shrink a training set to a small weighted subset with a stated (1±ε) bound."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that temp files are removed as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    app(prog_name="dataselect")
