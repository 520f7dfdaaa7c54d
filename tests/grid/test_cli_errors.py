"""One error policy for every command: a mistake in the input is one `error:` line, exit 2."""

import pytest
from click.testing import CliRunner

from grid.cli import COMMANDS, main


@pytest.mark.parametrize("args", [
    ["report", "nosuchgrid"],
    ["features", "--manifest", "/nonexistent/manifest.parquet"],
    ["data", "folds", "/nonexistent"],
    ["data", "prepare", "--iemocap", "/nonexistent", "--out", "{tmp}/out"],
    ["run", "smoke", "--set", "nosuch=1"],
])
def test_input_errors_print_one_error_line_and_exit_2(tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, [*args, *(["--results-dir", str(tmp_path)] if args[0] == "report" else [])])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output
    assert sum(line.startswith("error: ") for line in lines) == 1


def test_every_command_is_registered_and_loads():
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (name, result.output)
