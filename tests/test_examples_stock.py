"""The stock example: its naive error is the closed form, and the LSTM that forecasts the
change from today tracks the price (near naive, far better than a frozen forecast)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "stock.py"


def test_stock_example_tracks_the_price(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("stock", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figure = tmp_path / "stock.png"
    argv = ["--days", "700", "--test", "100", "--epochs", "4", "--hidden", "16"]
    errors = module.main([*argv, "--out", str(figure)])
    assert figure.read_bytes().startswith(b"\x89PNG")
    # Naive MAE = mean |close_t - close_{t-1}| over the test days.
    assert errors["naive"] == pytest.approx(errors["mean_change"])
    # Learned: far better than freezing the last training close, and within 1.5x naive.
    assert errors["change"] < 0.5 * errors["constant"], errors
    assert errors["change"] < 1.5 * errors["naive"], errors
