"""The bidirectional example, reduced: reading the future wins at word boundaries, and a
bidirectional language model's near-zero training loss does not survive generation."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "bidirectional.py"


@pytest.fixture(scope="module")
def results() -> dict[str, float]:
    spec = importlib.util.spec_from_file_location("bidirectional", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--chars", "120000", "--epochs", "3", "--steps", "200", "--hidden", "32"]
    return module.main([*argv, "--sample", "200"])


def test_the_future_helps_to_find_word_boundaries(results: dict[str, float]) -> None:
    # The counting baselines agree: the next character tells more than the previous one.
    past, future = (
        results["f1_counts: previous + current char"],
        results["f1_counts: current + next char"],
    )
    assert future > past + 0.1, results
    assert results["f1_bidirectional LSTM"] > results["f1_forward LSTM"] + 0.1, results
    assert results["f1_bidirectional LSTM"] > future, results


def test_a_bidirectional_language_model_reads_the_answer(results: dict[str, float]) -> None:
    # A forward model never sees the future: both scorings are the same computation.
    assert results["forward_causal"] == pytest.approx(results["forward_visible"], abs=1e-4)
    # With the next character visible the bidirectional loss collapses...
    assert results["bidirectional_visible"] < 0.5 * results["forward_visible"], results
    # ... but predicting from the prefix, as generation must, it is the worse model.
    assert results["bidirectional_causal"] > results["forward_causal"], results
    assert results["bidirectional_real_words"] < results["forward_real_words"], results
