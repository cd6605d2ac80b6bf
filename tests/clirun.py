"""``run(*args, code=0)``: invoke the ``dataselect`` app in process and check its exit code (shared by the CLI tests)."""

from typer.testing import CliRunner

from dataselect_cli.cli import app

runner = CliRunner()


def run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result
