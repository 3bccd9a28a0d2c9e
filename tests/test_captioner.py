"""Captioner, the shared convolutional encoder, and the captioned digit grids."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data.digits import (
    DIGIT_NAMES,
    DigitImages,
    caption,
    caption_grids,
    fit_digit_classifier,
    load_digit_split,
    read_grids,
)
from rnnkit.nn import ConvEncoder
from rnnkit.tasks.captioner import Captioner, CaptionerConfig
from rnnkit.train import TrainConfig

TINY = {"channels": (8, 16), "hidden_size": 48, "embedding_size": 16}


def quick(epochs: int) -> TrainConfig:
    return TrainConfig(max_epochs=epochs, patience=epochs, batch_size=32, learning_rate=0.01)


# ---------------------------------------------------------------------- the encoder


def test_conv_encoder_matches_torch_layers_and_its_shape_formula() -> None:
    encoder = ConvEncoder(1, (4, 6), ((2, 1), (2, 2))).eval()
    images = torch.randn(3, 1, 8, 21)
    reference = torch.nn.functional.max_pool2d(
        torch.relu(encoder.blocks[1](torch.nn.functional.conv2d(images, encoder.blocks[0].weight,
                                                                padding=1))), (2, 1))  # fmt: skip
    reference = torch.nn.functional.max_pool2d(
        torch.relu(encoder.blocks[5](torch.nn.functional.conv2d(reference,
                                                                encoder.blocks[4].weight,
                                                                padding=1))), (2, 2))  # fmt: skip
    output = encoder(images)
    assert torch.allclose(output, reference, atol=1e-6)
    assert tuple(output.shape[1:]) == encoder.output_shape(8, 21) == (6, 2, 10)


def test_conv_encoder_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"pools: expected one \(height, width\) window per block"):
        ConvEncoder(1, (4, 8), ((2, 2),))
    with pytest.raises(ValueError, match=r"channels\[1\]: expected an int >= 1, got 0"):
        ConvEncoder(1, (4, 0), ((2, 2), (2, 2)))
    with pytest.raises(ValueError, match="images: 3x16 is too small for the pooling windows"):
        ConvEncoder(1, (4, 8), ((2, 2), (2, 2))).output_shape(3, 16)


# ---------------------------------------------------------------------- data


def test_captions_name_the_count_and_the_digits() -> None:
    assert caption([7, 2, 9]) == "three digits: seven two nine"
    assert caption([0]) == "one digit: zero"
    with pytest.raises(ValueError, match="digits: expected at least one digit"):
        caption([])


def test_grids_put_the_named_digits_in_reading_order() -> None:
    """Source digits of constant ink ``(d + 1) / 10`` make every cell name its digit."""
    source = DigitImages(
        np.repeat((np.arange(10, dtype=np.float32) + 1)[:, None, None] / 10, 8, 1).repeat(8, 2),
        np.arange(10),
    )
    images, captions = caption_grids(source, 200, seed=3)
    assert images.shape == (200, 16, 16)
    counts = Counter()
    for image, text in zip(images, captions, strict=True):
        cells = [image[r : r + 8, c : c + 8] for r in (0, 8) for c in (0, 8)]
        digits = [round(cell[0, 0] * 10) - 1 for cell in cells if cell.max() > 0]
        assert text == caption(digits)
        counts[len(digits)] += 1
    assert set(counts) == {1, 2, 3, 4}  # every count appears


def test_the_cell_baseline_reads_grids_of_the_digits_it_learnt() -> None:
    """Faint ink everywhere and one bright pixel of their own: ten "digits" a linear
    classifier tells apart, so the baseline must caption their grids exactly."""
    images = np.full((10, 8, 8), 0.1, dtype=np.float32)
    images.reshape(10, 64)[np.arange(10), np.arange(10) * 6] = 1.0
    source = DigitImages(images, np.arange(10))
    grids, captions = caption_grids(source, 100, seed=4)
    assert read_grids(fit_digit_classifier(source), grids) == captions
    with pytest.raises(ValueError, match=r"max_digits: expected an int in \[1, 4\]"):
        caption_grids(source, 5, max_digits=5)


# ---------------------------------------------------------------------- the captioner


@pytest.fixture(scope="module")
def digits() -> tuple[DigitImages, DigitImages]:
    return load_digit_split()


@pytest.fixture(scope="module")
def trained(digits: tuple[DigitImages, DigitImages]) -> Captioner:
    images, captions = caption_grids(digits[0], 1500, seed=1)
    model = Captioner(**TINY, training=quick(5))
    model.fit(images, captions, progress=False)
    return model


def test_tiny_captioner_learns_to_caption_unseen_handwriting(
    trained: Captioner, digits: tuple[DigitImages, DigitImages]
) -> None:
    images, captions = caption_grids(digits[1], 300, seed=2)
    result = trained.evaluate(images, captions)
    majority = Counter(caption_grids(digits[0], 1500, seed=1)[1]).most_common(1)[0][0]
    baseline = np.mean([c == majority for c in captions])
    assert result["exact_match"] > 0.3 > 10 * baseline, (result, baseline)
    assert result["word_error_rate"] < 0.25, result
    # the count word is the easy part: nearly always right
    counts = [p.split()[:2] == c.split()[:2] for p, c in zip(trained.predict(images), captions,
                                                           strict=True)]  # fmt: skip
    assert np.mean(counts) > 0.9
    beam = trained.evaluate(images, captions, beam_size=3)
    assert beam["exact_match"] >= result["exact_match"] - 0.03, (beam, result)


def test_save_and_load_give_identical_captions(
    trained: Captioner, digits: tuple[DigitImages, DigitImages], tmp_path: Path
) -> None:
    images, _ = caption_grids(digits[1], 20, seed=5)
    trained.save(tmp_path / "model", metadata={"data": "digits"})
    loaded = Captioner.load(tmp_path / "model")
    assert loaded.predict(images) == trained.predict(images)
    assert loaded.predict(images, beam_size=3) == trained.predict(images, beam_size=3)
    assert loaded.vocabulary == trained.vocabulary
    assert set(loaded.vocabulary.tokens[4:]) == {*DIGIT_NAMES, "digit:", "digits:"}
    assert loaded.metadata == {"data": "digits"}


def test_greedy_is_beam_search_of_one_and_max_length_cuts(
    trained: Captioner, digits: tuple[DigitImages, DigitImages]
) -> None:
    images, _ = caption_grids(digits[1], 30, seed=6)
    assert trained.predict(images, beam_size=1) == trained.predict(images, beam_size=1)
    cut = trained.predict(images, max_length=2)
    assert all(len(c.split()) <= 2 for c in cut)
    assert [c.split()[:2] for c in trained.predict(images)] == [c.split() for c in cut]


def test_any_cell_decodes(digits: tuple[DigitImages, DigitImages]) -> None:
    images, captions = caption_grids(digits[0], 40, seed=1, max_digits=2)
    for cell in ("gru", "layernorm_lstm"):
        model = Captioner(cell=cell, num_layers=2, channels=(4,), pools=((2, 2),),
                          hidden_size=8, embedding_size=4, training=quick(1))  # fmt: skip
        model.fit(images, captions, progress=False)
        assert len(model.predict(images[:3], beam_size=2)) == 3


def test_bad_input_gets_clear_errors(
    trained: Captioner, digits: tuple[DigitImages, DigitImages]
) -> None:
    images, captions = caption_grids(digits[1], 3, seed=7)
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 16, 16\) with N >= 1, got"):
        trained.predict(np.zeros((2, 16, 17)))
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 16, 16\)"):
        trained.predict(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="captions: words not in the model's vocabulary: 'ten'"):
        trained.evaluate(images, ["one digit: ten", *captions[1:]])
    with pytest.raises(ValueError, match=r"captions\[1\]: expected at least one word, got ' '"):
        trained.evaluate(images, [captions[0], " ", captions[2]])
    with pytest.raises(ValueError, match=r"captions: expected one caption per image \(N = 3\)"):
        trained.evaluate(images, captions[:2])
    with pytest.raises(TypeError, match="captions: expected a list of strings, got one str"):
        trained.evaluate(images, "one digit: one")
    fresh = Captioner(**TINY)
    with pytest.raises(ValueError, match=r"captions\[0\]: '<eos>' is reserved for the decoder"):
        fresh.fit(np.zeros((2, 16, 16)), ["one <eos>", "two"], progress=False)
    with pytest.raises(ValueError, match="images: 2x2 is too small for the pooling windows"):
        fresh.fit(np.zeros((2, 2, 2)), ["one", "two"], progress=False)
    with pytest.raises(RuntimeError, match=r"Captioner: call fit\(\) or Captioner.load"):
        fresh.predict(images)
    with pytest.raises(ValueError, match="dropout: expected a float in"):
        CaptionerConfig(dropout=1.5)


# ---------------------------------------------------------------------- command line, example


def test_cli_trains_compares_saves_and_reloads(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["caption", "--train-images", "200", "--test-images", "40", "--epochs", "1",
            "--hidden-size", "8", "--no-progress", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "logistic regression per cell" in result.output
    assert (out / "model" / "config.json").is_file()
    again = runner.invoke(app, ["caption", "--model", str(out / "model"), "--test-images", "40"])
    assert again.exit_code == 0, again.output
    assert "exact match" in again.output
    bad = runner.invoke(app, ["caption", "--model", str(out / "logs")])
    assert bad.exit_code == 2
    assert "is not an rnnkit model" in bad.stderr


def test_example_runs_and_learns(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "captioning.py"
    spec = importlib.util.spec_from_file_location("captioning", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--images", "800", "--epochs", "4", "--hidden", "32",
                            "--lr", "0.01", "--test-images", "100"])  # fmt: skip
    assert results["word_error_rate"] < 0.5, results  # the count words alone are 2 of ~4.5
    assert f"{results['exact_match']:.3f}" in capsys.readouterr().out


# ---------------------------------------------------------------------- quality bar


@pytest.mark.slow
def test_full_captioner_meets_the_bar(digits: tuple[DigitImages, DigitImages]) -> None:
    images, captions = caption_grids(digits[0], 10_000, seed=1)
    test_images, test_captions = caption_grids(digits[1], 1000, seed=2)
    started = time.perf_counter()
    model = Captioner(training=TrainConfig(max_epochs=15, patience=3, learning_rate=0.005))
    model.fit(images, captions, progress=False)
    seconds = time.perf_counter() - started
    greedy = model.evaluate(test_images, test_captions)
    beam = model.evaluate(test_images, test_captions, beam_size=4)
    guesses = read_grids(fit_digit_classifier(digits[0]), test_images)
    baseline = np.mean([g == c for g, c in zip(guesses, test_captions, strict=True)])
    print(f"\ncaptions: greedy {greedy}, beam 4 {beam}, per-cell logistic regression exact "
          f"match {baseline:.3f}, {seconds:.0f} s training, {len(model.history.val_loss)} "
          f"epochs")  # fmt: skip
    assert greedy["exact_match"] >= 0.90, greedy
    assert beam["exact_match"] >= 0.90, beam
