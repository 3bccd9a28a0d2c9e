"""The command line and the seeds' first exercise."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

import rnnkit
from rnnkit.cli import app
from rnnkit.exercises import number_sequence

runner = CliRunner()


def test_version_flag_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"rnnkit {rnnkit.__version__}"


def test_console_script_is_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout
    assert "forecast" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forecast", "--lookback", "0"], "error: Invalid value for '--lookback'"),
        (["forecast", "--nope"], "error: No such option: --nope"),
        (["evaluate", "nowhere"], "error: model: 'nowhere' is not an rnnkit model"),
    ],
)
def test_usage_errors_are_one_line_like_every_other_error(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_number_sequence_learns_the_next_step() -> None:
    result = number_sequence(epochs=200)
    for query, predicted in result.predictions.items():
        assert abs(predicted - (query[-1] + 0.1)) < 0.02, (query, predicted)
    # Far better than the best constant guess (the mean target, MSE = var = 0.5**2 / 12).
    assert result.final_loss < 0.02 * (0.5**2 / 12)
