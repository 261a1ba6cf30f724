"""The CLI through typer's runner, and the one-line-error check every CLI test file shares."""
from typer.testing import CliRunner

from lsbench.cli import app

runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def assert_one_line_error(result, fragment):
    """Exit code 2, exactly one stderr line, starting 'error: ' and holding ``fragment``, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
