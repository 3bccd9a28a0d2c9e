"""The autocomplete example (run in full: it takes seconds) learns every word's last letter,
"wor" -> "d" included."""

import importlib.util
import math
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "autocomplete.py"


def test_autocomplete_example_learns() -> None:
    spec = importlib.util.spec_from_file_location("autocomplete", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main([])  # the full example: 100 steps, seconds
    assert result["wor"] == "d"
    # Guessing the most common last letter gets half the words; the model gets them all.
    assert result["majority"] == 0.5
    assert result["accuracy"] == 1.0
    assert result["loss"] < 0.1 * math.log(26), result
