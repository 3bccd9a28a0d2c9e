"""The custom-cell example learns its target far better than predicting zero."""

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_cell.py"


def test_custom_cell_example_learns() -> None:
    spec = importlib.util.spec_from_file_location("custom_cell", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, zero = module.main(steps=150)
    assert model < 0.1 * zero, (model, zero)
