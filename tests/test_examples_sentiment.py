"""The sentiment example: a small bidirectional GRU learns review polarity (well above the
50 % of guessing, near TF-IDF + logistic regression) and draws its confusion matrix."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "sentiment.py"


@pytest.mark.slow  # about 40 s of training: a quality run (make quality)
def test_sentiment_example_learns(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("sentiment", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figure = tmp_path / "confusion.png"
    result = module.main(["--epochs", "8", "--hidden", "32", "--out", str(figure)])
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert result["baseline"] > 0.8  # TF-IDF + logistic regression
    assert result["accuracy"] > 0.7, result  # the classes are balanced: guessing gets 0.5
    assert result["accuracy"] > result["baseline"] - 0.12, result
