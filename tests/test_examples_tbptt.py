"""The truncated-BPTT example runs end to end and its model learns something."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tbptt_long_series.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tbptt_long_series", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tbptt_example_beats_the_training_mean(capsys: pytest.CaptureFixture[str]) -> None:
    results = load_example().main(["--epochs", "2", "--hidden", "16"])
    # The training mean (0 after standardising) is the best forecast that learnt nothing.
    assert results["val_mse"] < 0.5 * results["mean_mse"], results
    printed = capsys.readouterr().out
    assert "naive next = current" in printed
    assert f"{results['val_mse']:.4f}" in printed
