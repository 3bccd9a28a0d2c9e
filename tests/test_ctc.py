"""CTCRecognizer, its decoders and metrics, and the digit strips it reads."""

from __future__ import annotations

import importlib.util
import itertools
import math
import time
from collections import defaultdict
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data.digits import (
    DigitImages,
    digit_strips,
    fit_digit_classifier,
    load_digit_split,
    read_strips,
    strip_width,
)
from rnnkit.tasks.ctc import (
    CTCConfig,
    CTCRecognizer,
    character_error_rate,
    ctc_greedy_decode,
    ctc_prefix_beam_search,
    edit_distance,
    required_steps,
)
from rnnkit.train import ModelFileError, TrainConfig

TINY = {"channels": (8, 16), "hidden_size": 32}


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    """An alignment read as a labelling: repeats merged, blanks (0) removed."""
    return tuple(s for t, s in enumerate(path) if s != 0 and (t == 0 or s != path[t - 1]))


def brute_force(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """The probability of every labelling, by enumerating all ``C ** T`` alignments."""
    probs = log_probs.double().exp()
    steps, symbols = probs.shape
    totals: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(symbols), repeat=steps):
        totals[collapse(path)] += math.prod(float(probs[t, s]) for t, s in enumerate(path))
    return totals


def random_log_probs(steps: int, symbols: int, seed: int, sharpness: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(sharpness * torch.randn(steps, symbols, generator=generator), -1)


# ---------------------------------------------------------------------- decoding


@pytest.mark.parametrize(("steps", "symbols", "seed"), [(1, 3, 0), (4, 3, 1), (5, 3, 2), (4, 4, 3),
                                                        (6, 3, 4), (3, 5, 5)])  # fmt: skip
def test_prefix_beam_search_with_a_wide_beam_is_exact(steps: int, symbols: int, seed: int) -> None:
    log_probs = random_log_probs(steps, symbols, seed)
    truth = brute_force(log_probs)
    found = ctc_prefix_beam_search(log_probs, beam_size=10_000)
    assert {labelling for labelling, _ in found} == set(truth)
    for labelling, log_p in found:
        assert math.exp(log_p) == pytest.approx(truth[labelling], rel=1e-9)
    assert [p for _, p in found] == sorted((p for _, p in found), reverse=True)
    assert found[0][0] == max(truth, key=truth.get)


def test_brute_force_agrees_with_torch_ctc_loss() -> None:
    """The reference itself, checked against torch's forward algorithm."""
    log_probs = random_log_probs(5, 4, seed=7)
    for labelling, p in brute_force(log_probs).items():
        if not labelling:
            continue
        loss = torch.nn.functional.ctc_loss(
            log_probs.unsqueeze(1).double(), torch.tensor([labelling]), torch.tensor([5]),
            torch.tensor([len(labelling)]), reduction="sum",
        )  # fmt: skip
        assert math.exp(-float(loss)) == pytest.approx(p, rel=1e-9)


def test_a_narrow_beam_finds_the_best_labelling_on_peaked_inputs() -> None:
    for seed in range(10):
        log_probs = random_log_probs(6, 3, seed, sharpness=4.0)
        truth = brute_force(log_probs)
        best = ctc_prefix_beam_search(log_probs, beam_size=3)[0]
        assert best[0] == max(truth, key=truth.get)
        # pruned prefixes take some alignments with them: a lower bound
        assert 0 < math.exp(best[1]) <= truth[best[0]] * (1 + 1e-12)


def test_greedy_decode_collapses_the_best_path() -> None:
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    one_hot = torch.nn.functional.one_hot(torch.tensor(path), 4).float()
    assert ctc_greedy_decode(one_hot) == [(1, 1, 2, 3)]
    batch = torch.stack([random_log_probs(7, 4, seed) for seed in range(5)])  # (N, T, C)
    expected = [collapse(tuple(row)) for row in batch.argmax(-1).tolist()]
    assert ctc_greedy_decode(batch) == expected
    # the single best alignment, which the beam search with one beam follows as well
    assert ctc_prefix_beam_search(one_hot.log(), beam_size=1)[0][0] == (1, 1, 2, 3)


def test_prefix_beam_search_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"log_probs: expected shape \(T, C\), got \(2, 3, 4\)"):
        ctc_prefix_beam_search(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="beam_size: expected an int >= 1, got 0"):
        ctc_prefix_beam_search(torch.zeros(3, 4), beam_size=0)


# ---------------------------------------------------------------------- metrics


@cache
def reference_distance(a: str, b: str) -> int:
    """The recursive definition of the Levenshtein distance."""
    if not a or not b:
        return len(a) + len(b)
    return min(reference_distance(a[1:], b) + 1, reference_distance(a, b[1:]) + 1,
               reference_distance(a[1:], b[1:]) + (a[0] != b[0]))  # fmt: skip


@given(st.text("abc", max_size=8), st.text("abc", max_size=8))
def test_edit_distance_matches_the_recursive_definition(a: str, b: str) -> None:
    assert edit_distance(a, b) == reference_distance(a, b)


def test_edit_distance_and_character_error_rate_on_known_cases() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    # 1 substitution + 1 deletion + 2 insertions over 4 + 2 + 1 true characters
    assert character_error_rate(["1234", "56", "7"], ["1294", "5", "789"]) == pytest.approx(4 / 7)
    with pytest.raises(ValueError, match=r"predicted: expected one prediction per label \(2\)"):
        character_error_rate(["1", "2"], ["1"])


def test_required_steps_counts_repeats() -> None:
    assert [required_steps(s) for s in ("1", "12", "11", "111", "1211")] == [1, 2, 3, 5, 5]


# ---------------------------------------------------------------------- data


def test_strips_are_composed_from_the_named_digits() -> None:
    """Source digits of constant ink ``(d + 1) / 10`` make every column name its digit."""
    source = DigitImages(
        np.repeat((np.arange(10, dtype=np.float32) + 1)[:, None, None] / 10, 8, 1).repeat(8, 2),
        np.arange(10),
    )
    images, labels = digit_strips(source, 50, seed=3, min_digits=3, max_digits=6, max_gap=2)
    assert images.shape == (50, 8, strip_width(6, 2)) == (50, 8, 62)
    for image, label in zip(images, labels, strict=True):
        assert 3 <= len(label) <= 6
        ink = image[0][image[0] > 0]
        assert len(ink) == 8 * len(label)
        read = [str(round(v * 10) - 1) for v in ink[::8]]
        assert "".join(read) == label
    assert digit_strips(source, 5, seed=3)[1] == digit_strips(source, 5, seed=3)[1]


def test_the_segmentation_baseline_reads_strips_of_the_digits_it_learnt() -> None:
    """Faint ink in every column and one bright pixel of their own: ten "digits" a linear
    classifier tells apart, so the baseline must read their strips exactly, touching
    digits (gap 0) included."""
    images = np.full((10, 8, 8), 0.1, dtype=np.float32)
    images.reshape(10, 64)[np.arange(10), np.arange(10) * 6] = 1.0
    source = DigitImages(images, np.arange(10))
    strips, labels = digit_strips(source, 100, seed=4, max_gap=2)
    assert read_strips(fit_digit_classifier(source), strips) == labels


def test_train_and_test_digits_are_disjoint_real_images() -> None:
    train_digits, test_digits = load_digit_split(0.25, seed=0)
    assert len(train_digits) + len(test_digits) == 1797
    assert not {d.tobytes() for d in train_digits.images} & {
        d.tobytes() for d in test_digits.images
    }
    assert train_digits.images.min() == 0 and train_digits.images.max() == 1


# ---------------------------------------------------------------------- the recogniser


@pytest.fixture(scope="module")
def digits() -> tuple[DigitImages, DigitImages]:
    return load_digit_split()


@pytest.fixture(scope="module")
def trained(digits: tuple[DigitImages, DigitImages]) -> CTCRecognizer:
    images, labels = digit_strips(digits[0], 1200, seed=1, min_digits=3, max_digits=5)
    training = TrainConfig(max_epochs=6, patience=6, batch_size=32, learning_rate=0.01)
    model = CTCRecognizer(**TINY, training=training)
    model.fit(images, labels, progress=False)
    return model


def test_tiny_recogniser_learns_to_read_unseen_strips(
    trained: CTCRecognizer, digits: tuple[DigitImages, DigitImages]
) -> None:
    images, labels = digit_strips(digits[1], 300, seed=2, min_digits=3, max_digits=5)
    result = trained.evaluate(images, labels)
    segmentation = read_strips(fit_digit_classifier(digits[0]), images)
    baseline_cer = character_error_rate(labels, segmentation)
    assert result["cer"] < 0.1, result
    assert result["sequence_accuracy"] > 0.6, result
    assert result["cer"] < baseline_cer, (result, baseline_cer)
    assert trained.history.val_loss[-1] < 0.3 * trained.history.val_loss[0]
    beam = trained.evaluate(images, labels, beam_size=4)
    assert beam["cer"] <= result["cer"] + 0.01


def test_strips_wider_than_in_training_are_read_too(
    trained: CTCRecognizer, digits: tuple[DigitImages, DigitImages]
) -> None:
    images, labels = digit_strips(digits[1], 100, seed=4, min_digits=6, max_digits=7)
    assert images.shape[2] > strip_width(5, 3)
    assert trained.evaluate(images, labels)["cer"] < 0.2


def test_save_and_load_give_identical_predictions(
    trained: CTCRecognizer, digits: tuple[DigitImages, DigitImages], tmp_path
) -> None:
    images, _ = digit_strips(digits[1], 20, seed=5, min_digits=3, max_digits=5)
    trained.save(tmp_path / "model", metadata={"data": "digits"})
    loaded = CTCRecognizer.load(tmp_path / "model")
    assert torch.equal(loaded.log_probs(images), trained.log_probs(images))
    assert loaded.predict(images, beam_size=3) == trained.predict(images, beam_size=3)
    assert loaded.alphabet == trained.alphabet == "0123456789"
    assert loaded.metadata == {"data": "digits"}
    with pytest.raises(ModelFileError, match="is a 'ctc' model, expected 'classifier'"):
        from rnnkit.tasks import SequenceClassifier

        SequenceClassifier.load(tmp_path / "model")


def test_same_seed_same_model(digits: tuple[DigitImages, DigitImages]) -> None:
    images, labels = digit_strips(digits[0], 64, seed=1, min_digits=3, max_digits=4)
    runs = []
    for _ in range(2):
        model = CTCRecognizer(channels=(4,), pools=((2, 2),), hidden_size=8,
                              training=TrainConfig(max_epochs=1, batch_size=16))  # fmt: skip
        model.fit(images, labels, progress=False)
        runs.append(model.log_probs(images[:4]))
    assert torch.equal(*runs)


def test_bad_input_gets_clear_errors(
    trained: CTCRecognizer, digits: tuple[DigitImages, DigitImages]
) -> None:
    images, labels = digit_strips(digits[1], 4, seed=6, min_digits=3, max_digits=5)
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 8, W\) with N >= 1, got"):
        trained.predict(np.zeros((2, 9, 40)))
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 8, W\)"):
        trained.predict(np.zeros((0, 8, 40)))
    with pytest.raises(ValueError, match="images: 8x1 is too small for the pooling windows"):
        trained.predict(np.zeros((2, 8, 1)))
    with pytest.raises(ValueError, match="labels: characters not in the model's alphabet "
                       "'0123456789': 'x'"):  # fmt: skip
        trained.evaluate(images, ["12x", *labels[1:]])
    with pytest.raises(ValueError, match=r"labels\[1\]: expected at least one character, got ''"):
        trained.evaluate(images, [labels[0], "", *labels[2:]])
    with pytest.raises(ValueError, match=r"labels: expected one label per image \(N = 4\), got 3"):
        trained.evaluate(images, labels[:3])
    fresh = CTCRecognizer(**TINY)
    with pytest.raises(ValueError, match=r"labels\[1\]: '1233' needs at least 5 CTC steps \(4 "
                       r"characters \+ 1 repeats\), but images 8x8 give only 4"):  # fmt: skip
        fresh.fit(np.zeros((2, 8, 8)), ["12", "1233"], progress=False)
    with pytest.raises(ValueError, match=r"labels\[0\]: expected at least one character"):
        fresh.fit(np.zeros((2, 8, 40)), ["", "1"], progress=False)
    with pytest.raises(TypeError, match=r"labels\[0\]: expected a str, got int 12"):
        fresh.fit(np.zeros((2, 8, 40)), [12, "1"], progress=False)
    with pytest.raises(ValueError, match="images: contains NaN or inf"):
        fresh.fit(np.full((2, 8, 40), np.nan), ["1", "2"], progress=False)
    with pytest.raises(RuntimeError, match=r"CTCRecognizer: call fit\(\) or CTCRecognizer.load"):
        fresh.predict(images)
    with pytest.raises(ValueError, match="cell: expected one of"):
        CTCConfig(cell="transformer")
    with pytest.raises(ValueError, match=r"pools: expected one \(height, width\) window per block"):
        CTCConfig(channels=(8, 16), pools=((2, 2),))


# ---------------------------------------------------------------------- command line


def test_cli_trains_compares_saves_and_reloads(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["ctc", "--train-strips", "200", "--test-strips", "40", "--max-digits", "4",
            "--epochs", "1", "--hidden-size", "8", "--no-progress", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "segmentation + logistic regression" in result.output
    assert (out / "model" / "weights.safetensors").is_file()
    again = runner.invoke(app, ["ctc", "--model", str(out / "model"), "--test-strips", "40"])
    assert again.exit_code == 0, again.output
    assert "sequence accuracy" in again.output
    bad = runner.invoke(app, ["ctc", "--model", str(tmp_path / "missing")])
    assert bad.exit_code == 2
    assert "is not an rnnkit model" in bad.stderr


# ---------------------------------------------------------------------- the example


def test_example_runs_and_learns(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "ctc_digits.py"
    spec = importlib.util.spec_from_file_location("ctc_digits", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--strips", "800", "--epochs", "5", "--hidden", "32", "--lr", "0.01",
                            "--batch-size", "16", "--max-digits", "4",
                            "--test-strips", "100"])  # fmt: skip
    assert results["cer"] < 0.5, results  # reading nothing at all has a CER of 1
    assert f"CER {results['cer']:.4f}" in capsys.readouterr().out


# ---------------------------------------------------------------------- quality bar


@pytest.mark.slow
def test_full_recogniser_meets_the_bar(digits: tuple[DigitImages, DigitImages]) -> None:
    images, labels = digit_strips(digits[0], 8000, seed=1)
    test_images, test_labels = digit_strips(digits[1], 1000, seed=2)
    started = time.perf_counter()
    model = CTCRecognizer(training=TrainConfig(max_epochs=12, patience=3, batch_size=32))
    model.fit(images, labels, progress=False)
    seconds = time.perf_counter() - started
    greedy = model.evaluate(test_images, test_labels)
    beam = model.evaluate(test_images, test_labels, beam_size=8)
    baseline = read_strips(fit_digit_classifier(digits[0]), test_images)
    print(f"\nCTC digit strips: greedy {greedy}, beam 8 {beam}, segmentation baseline CER "
          f"{character_error_rate(test_labels, baseline):.4f}, {seconds:.0f} s training, "
          f"{len(model.history.val_loss)} epochs")  # fmt: skip
    for result in (greedy, beam):
        assert result["sequence_accuracy"] >= 0.90, result
        assert result["cer"] <= 0.03, result
