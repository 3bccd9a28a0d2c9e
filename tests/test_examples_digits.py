"""The digits example: a GRU reading the rows learns the digits (far above chance, near
logistic regression on all pixels) and draws the confusion matrix of its test set."""

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "digits.py"


def test_digits_example_learns(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figure = tmp_path / "confusion.svg"
    result = module.main(["--epochs", "4", "--hidden", "32", "--out", str(figure)])
    assert figure.read_text().lstrip().startswith("<?xml")
    assert result["baseline"] > 0.9  # logistic regression on the 64 pixels
    assert result["accuracy"] > 0.8, result  # chance is 0.1
    assert result["accuracy"] > result["baseline"] - 0.15, result
