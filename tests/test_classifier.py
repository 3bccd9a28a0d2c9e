"""SequenceClassifier on tasks with a known answer, its pooling, files, errors and the CLI."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.commands import classify
from rnnkit.nn import LAYERS
from rnnkit.tasks.classifier import (
    ClassifierConfig,
    ClassifierNetwork,
    SequenceClassifier,
    load_digit_rows,
    load_sentiment,
    read_labelled_csv,
    split_indices,
    tfidf_baseline,
)
from rnnkit.train import TrainConfig

KEYWORDS = ("red", "green", "blue")
FILLER = [f"w{i}" for i in range(30)]
TINY = TrainConfig(max_epochs=6, patience=3, batch_size=32, learning_rate=1e-2)


def keyword_task(count: int, seed: int) -> tuple[list[str], list[str]]:
    """4-11 filler words with one of three keywords inserted at a random position; the
    label is the keyword. No position or length carries information, so chance is 1/3."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(count):
        words = list(rng.choice(FILLER, size=int(rng.integers(4, 12))))
        keyword = KEYWORDS[int(rng.integers(3))]
        words.insert(int(rng.integers(len(words) + 1)), keyword)
        texts.append(" ".join(words))
        labels.append(keyword)
    return texts, labels


def majority_accuracy(train_labels: list, test_labels: list) -> float:
    majority = max(set(train_labels), key=list(train_labels).count)
    return float(np.mean([label == majority for label in test_labels]))


@pytest.fixture(scope="module")
def keyword_model() -> SequenceClassifier:
    """A unidirectional GRU that must carry the keyword to the last step ("last" pooling)."""
    texts, labels = keyword_task(400, seed=0)
    model = SequenceClassifier(
        cell="gru",
        hidden_size=24,
        embedding_size=16,
        bidirectional=False,
        pooling="last",
        dropout=0.0,
        training=TINY,
    )
    model.fit(texts, labels, val_fraction=0.2, progress=False)
    return model


# ----------------------------------------------------------------------------- learning


def test_a_word_at_a_random_position_is_learned(keyword_model: SequenceClassifier) -> None:
    texts, labels = keyword_task(300, seed=1)
    report = keyword_model.evaluate(texts, labels)
    chance = majority_accuracy(keyword_task(400, seed=0)[1], labels)
    assert chance < 0.4
    assert report["accuracy"] > 0.9, report
    assert report["confusion_matrix"].sum() == 300
    assert keyword_model.classes == ("blue", "green", "red")


def test_bidirectional_mean_max_is_learned() -> None:
    texts, labels = keyword_task(300, seed=2)
    model = SequenceClassifier(
        cell="lstm",
        hidden_size=16,
        embedding_size=16,
        bidirectional=True,
        pooling="mean+max",
        training=TINY,
    )
    model.fit(texts, labels, progress=False)
    test_texts, test_labels = keyword_task(300, seed=3)
    assert model.evaluate(test_texts, test_labels)["accuracy"] > 0.9
    assert model.network.head.in_features == 2 * 2 * 16  # (mean, max) x (D = 2) x H


def test_digits_row_by_row_beat_the_majority_class() -> None:
    images, digits = load_digit_rows()
    assert images.shape == (1797, 8, 8) and images.min() >= 0 and images.max() == 1
    kept, test = split_indices(digits.tolist(), 0.2, seed=0)
    model = SequenceClassifier(
        cell="gru",
        hidden_size=32,
        bidirectional=False,
        pooling="last",
        dropout=0.0,
        training=TrainConfig(max_epochs=3, batch_size=64, learning_rate=1e-2),
    )
    model.fit(images[kept], digits[kept], progress=False)
    accuracy = model.evaluate(images[test], digits[test])["accuracy"]
    majority = majority_accuracy(digits[kept].tolist(), digits[test].tolist())
    assert majority < 0.15
    assert accuracy > majority + 0.6, accuracy


def test_tfidf_baseline_reads_the_keyword() -> None:
    texts, labels = keyword_task(300, seed=4)
    report = tfidf_baseline(texts[:200], labels[:200], texts[200:], labels[200:])
    assert report["accuracy"] > 0.9
    assert set(report) == {"accuracy", "macro_f1", "confusion_matrix"}


def test_evaluate_agrees_with_predict(keyword_model: SequenceClassifier) -> None:
    texts, labels = keyword_task(100, seed=5)
    predictions = keyword_model.predict(texts)
    report = keyword_model.evaluate(texts, labels)
    assert report["accuracy"] == pytest.approx(np.mean(predictions == np.array(labels)))
    proba = keyword_model.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    matrix = report["confusion_matrix"]
    for row, truth in enumerate(keyword_model.classes):
        for column, guess in enumerate(keyword_model.classes):
            expected = sum(
                t == truth and p == guess for t, p in zip(labels, predictions, strict=True)
            )
            assert matrix[row, column] == expected


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "last+mean+max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooling_ignores_padding(pooling: str, bidirectional: bool) -> None:
    """Each sequence alone == the same sequence in a batch whose padding is random tokens."""
    config = ClassifierConfig(
        pooling=pooling, bidirectional=bidirectional, hidden_size=8, embedding_size=4
    )
    network = ClassifierNetwork(0, 3, config, vocab_size=20).eval()
    lengths = torch.tensor([7, 3, 1, 5])
    batch = torch.randint(2, 20, (4, 7))  # positions past each length are garbage
    with torch.no_grad():
        together = network(batch, lengths)
        alone = torch.cat(
            [
                network(batch[i : i + 1, :n], lengths[i : i + 1])
                for i, n in enumerate(lengths.tolist())
            ]
        )
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_every_cell_pools_padded_batches_exactly(cell: str) -> None:
    config = ClassifierConfig(cell=cell, pooling="last+mean+max", hidden_size=6, num_layers=2)
    network = ClassifierNetwork(3, 4, config).eval()  # numeric inputs, F = 3
    lengths = torch.tensor([5, 2, 4])
    batch = torch.randn(3, 5, 3)
    with torch.no_grad():
        together = network(batch, lengths)
        alone = torch.cat(
            [network(batch[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate([5, 2, 4])]
        )
    assert together.shape == (3, 4)
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)


def test_last_pooling_is_the_final_state_of_each_direction() -> None:
    config = ClassifierConfig(pooling="last", hidden_size=5, embedding_size=4, num_layers=2)
    network = ClassifierNetwork(0, 2, config, vocab_size=10).eval()
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        output, _ = network.encoder(network.embedding(ids))  # (1, L, 2 * H)
        expected = network.head(torch.cat([output[0, -1, :5], output[0, 0, 5:]]))
        got = network(ids, torch.tensor([5]))[0]
    torch.testing.assert_close(got, expected)


def test_predictions_do_not_depend_on_the_rest_of_the_batch(
    keyword_model: SequenceClassifier,
) -> None:
    short, long = "w1 red", " ".join(["w2"] * 40 + ["blue"])
    np.testing.assert_allclose(
        keyword_model.predict_proba([short]),
        keyword_model.predict_proba([short, long])[:1],
        atol=1e-6,
    )


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_comes_from_the_training_part_only() -> None:
    texts, labels = keyword_task(60, seed=6)
    texts = [f"{text} only{i}" for i, text in enumerate(texts)]  # one unique token each
    model = SequenceClassifier(hidden_size=4, embedding_size=4, training=TrainConfig(max_epochs=1))
    model.fit(texts, labels, val_fraction=0.25, progress=False)
    train_rows, val_rows = split_indices(labels, 0.25, seed=0)
    vocabulary = model.vocabulary
    assert all(f"only{i}" in vocabulary for i in train_rows)
    assert not any(f"only{i}" in vocabulary for i in val_rows)


def test_unknown_tokens_map_to_unk(keyword_model: SequenceClassifier) -> None:
    vocabulary = keyword_model.vocabulary
    assert "zebra" not in vocabulary and "quokka" not in vocabulary
    red = vocabulary.encode(["red"])[0]
    assert red != vocabulary.unk_index
    assert vocabulary.encode(["zebra", "red"]) == [vocabulary.unk_index, red]
    np.testing.assert_array_equal(
        keyword_model.predict_proba(["w3 zebra red w4"]),
        keyword_model.predict_proba(["w3 quokka red w4"]),
    )


@pytest.mark.parametrize(
    ("min_count", "max_vocab", "kept"),
    [(1, None, ("a", "b", "d", "c")), (4, None, ("a", "b", "d")), (1, 4, ("a", "b"))],
)
def test_min_count_and_max_vocab(min_count: int, max_vocab: int | None, kept: tuple) -> None:
    """Three rows of each class train: a 3 x 3 + 3 = 12 times, b 9, d 6, c 3."""
    texts, labels = ["a a a b b c", "a b d d"] * 4, [0, 1] * 4
    model = SequenceClassifier(min_count=min_count, max_vocab=max_vocab, hidden_size=4,
                               embedding_size=4, training=TrainConfig(max_epochs=1))  # fmt: skip
    model.fit(texts, labels, val_fraction=0.25, progress=False)
    assert model.vocabulary.tokens == ("<pad>", "<unk>", *kept)


# ----------------------------------------------------------------------------- files


def test_save_load_gives_identical_probabilities(
    keyword_model: SequenceClassifier, tmp_path: Path
) -> None:
    texts, _ = keyword_task(50, seed=7)
    keyword_model.save(tmp_path / "model", metadata={"data": "keywords"})
    loaded = SequenceClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(texts), keyword_model.predict_proba(texts))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["classes"] == ["blue", "green", "red"]
    assert config["vocabulary"][:2] == ["<pad>", "<unk>"] and "red" in config["vocabulary"]
    assert loaded.metadata == {"data": "keywords"}


def test_numeric_sequences_of_varying_length_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sequences = [rng.normal(size=(int(rng.integers(2, 9)), 3)) for _ in range(80)]
    labels = [int(s[:, 0].sum() > 0) for s in sequences]
    model = SequenceClassifier(hidden_size=8, training=TrainConfig(max_epochs=2))
    model.fit(sequences, labels, val_fraction=0.25, progress=False)
    model.save(tmp_path / "model")
    loaded = SequenceClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(sequences), model.predict_proba(sequences))
    assert loaded.vocabulary is None and loaded.predict(sequences[:3]).dtype.kind == "i"


# ----------------------------------------------------------------------------- errors


def test_empty_text_is_a_clear_error(keyword_model: SequenceClassifier) -> None:
    with pytest.raises(
        ValueError,
        match=r"^inputs\[1\]: expected a text with at least one word "
        r"token, got ''$",
    ):
        keyword_model.predict(["red", "", "blue"])
    with pytest.raises(ValueError, match=r"^inputs\[0\]: .* got '  '$"):
        SequenceClassifier().fit(["  ", "a", "b", "c"], [0, 1, 0, 1], progress=False)
    with pytest.raises(ValueError, match=r"^inputs: expected at least one example, got none$"):
        keyword_model.predict([])


def test_unseen_label_at_evaluation_is_a_clear_error(keyword_model: SequenceClassifier) -> None:
    with pytest.raises(
        ValueError,
        match=r"^labels: 'purple' not seen in training \(known "
        r"classes: 'blue', 'green', 'red'\)$",
    ):
        keyword_model.evaluate(["w1 red", "w2 purple"], ["red", "purple"])


def test_inputs_of_another_kind_are_a_clear_error(keyword_model: SequenceClassifier) -> None:
    with pytest.raises(ValueError, match=r"^inputs: this model was fitted on texts, got numeric"):
        keyword_model.predict(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match=r"^inputs: expected a list of texts, got one str"):
        keyword_model.predict("w1 red")
    with pytest.raises(TypeError, match=r"^inputs\[1\]: expected a str, got NoneType None$"):
        keyword_model.predict(["w1 red", None])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pooling": "avg"}, "pooling: expected 'last', 'mean', 'max' or a '+'-joined"),
        ({"pooling": "mean+mean"}, "pooling: expected"),
        ({"tokens": "byte"}, "tokens: expected one of 'word', 'char', got 'byte'"),
        ({"cell": "transformer"}, "cell: expected one of"),
        ({"dropout": 1.0}, "dropout: expected a float in [0, 1), got 1.0"),
        ({"max_vocab": 2}, "max_vocab: expected an int >= 3, got 2"),
    ],
)
def test_bad_settings_are_clear_errors(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        SequenceClassifier(**options)


def test_bad_labels_and_fractions_are_clear_errors() -> None:
    model = SequenceClassifier()
    with pytest.raises(ValueError, match=r"^labels: expected at least 2 classes, got \['a'\]$"):
        model.fit(["x", "y"], ["a", "a"], progress=False)
    with pytest.raises(TypeError, match=r"^labels: expected str or int labels, got float 0\.5$"):
        model.fit(["x", "y"], [0.5, 1], progress=False)
    with pytest.raises(ValueError, match=r"^labels: expected one label per input \(N = 2\)"):
        model.fit(["x", "y"], [0], progress=False)
    with pytest.raises(ValueError, match=r"^val_fraction: expected a float in \(0, 1\), got 0$"):
        model.fit(["x", "y"], [0, 1], val_fraction=0, progress=False)
    with pytest.raises(ValueError, match=r"^val_fraction: cannot split 3 examples by class"):
        model.fit(["x", "y", "z"], [0, 1, 1], progress=False)
    with pytest.raises(RuntimeError, match="call fit"):
        model.predict(["x"])


# ----------------------------------------------------------------------------- data


def test_csv_text_na_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('label,text\npos,NA\nneg,"a, quoted ""line"""\npos,\n', encoding="utf-8")
    texts, labels = read_labelled_csv(path)
    assert texts == ["NA", 'a, quoted "line"', ""] and labels == ["pos", "neg", "pos"]
    texts, labels = load_sentiment()
    assert len(texts) == 3000 and sorted(set(labels)) == [0, 1] and all(texts)


# ----------------------------------------------------------------------------- CLI


def invoke(*args: str):
    app = typer.Typer()
    app.command("classify")(classify.command)
    app.command("other")(lambda: None)  # keep "classify" a subcommand
    return CliRunner().invoke(app, ["classify", *args, "--no-progress"])


def test_cli_trains_on_a_csv_and_saves_the_model(tmp_path: Path) -> None:
    texts, labels = keyword_task(300, seed=8)
    path = tmp_path / "k.csv"
    rows = "".join(f"{t},{label}\n" for t, label in zip(texts, labels, strict=True))
    path.write_text("sentence,colour\n" + rows, encoding="utf-8")
    result = invoke(
        "--data",
        str(path),
        "--text-column",
        "sentence",
        "--label-column",
        "colour",
        "--hidden-size",
        "16",
        "--epochs",
        "6",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert "TF-IDF + logistic regression" in result.output and "Confusion matrix" in result.output
    model = SequenceClassifier.load(tmp_path / "model")
    assert model.metadata["source"]["data"] == str(path)
    assert model.evaluate(*keyword_task(100, seed=9))["accuracy"] > 0.6

    # The saved folder is enough for `rnnkit predict` and `rnnkit evaluate`.
    new_texts, _ = keyword_task(5, seed=10)
    (tmp_path / "new.txt").write_text("\n".join(new_texts), encoding="utf-8")
    predicted = CliRunner().invoke(
        app, ["predict", str(tmp_path / "model"), str(tmp_path / "new.txt")]
    )
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["label"] for r in rows] == list(model.predict(new_texts))
    probabilities = model.predict_proba(new_texts).max(axis=1)
    np.testing.assert_allclose([r["probability"] for r in rows], probabilities, atol=1e-4)
    folder = CliRunner().invoke(app, ["predict", str(tmp_path / "model"), str(tmp_path)])
    assert folder.exit_code == 2 and "expected a text or a text file, got the folder" in (
        " ".join(folder.output.split())
    )
    refused = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model")])
    assert refused.exit_code == 2 and "pass it with --data FILE" in refused.output
    evaluated = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model"), "--data", str(path)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "Confusion matrix" in evaluated.stdout and evaluated.stdout in result.stdout


def test_cli_digits(tmp_path: Path) -> None:
    result = invoke(
        "--data", "digits", "--hidden-size", "8", "--epochs", "1", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "majority class" in result.output and "TF-IDF" not in result.output
    assert SequenceClassifier.load(tmp_path / "model").classes == tuple(range(10))


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text("text,label\na,0\n", encoding="utf-8")
    result = invoke("--data", str(path), "--label-column", "y", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "label_column: 'y' is not a column of k.csv (columns: text, label)" in result.output
    result = invoke("--data", "nonsense", "--out", str(tmp_path))
    assert result.exit_code == 2 and "data: expected sentiment, digits or a CSV" in result.output


# ----------------------------------------------------------------------------- quality


@pytest.mark.slow
def test_digits_quality_bar() -> None:
    """>= 97 % test accuracy on an 80/10/10 split (settings chosen on validation)."""
    images, digits = load_digit_rows()
    kept, test = split_indices(digits.tolist(), 0.1, seed=0)
    model = SequenceClassifier(
        cell="gru", hidden_size=128, training=TrainConfig(max_epochs=60, patience=10)
    )
    model.fit(images[kept], digits[kept], val_fraction=1 / 9, progress=False)
    report = model.evaluate(images[test], digits[test])
    print(f"digits: test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}")
    assert report["accuracy"] >= 0.97


@pytest.mark.slow
def test_sentiment_beats_tfidf() -> None:
    """Bidirectional GRU over words vs TF-IDF + logistic regression, same 80/10/10 split."""
    texts, labels = load_sentiment()
    kept, test = split_indices(labels, 0.1, seed=0)
    train_texts, train_labels = [texts[i] for i in kept], [labels[i] for i in kept]
    test_texts, test_labels = [texts[i] for i in test], [labels[i] for i in test]
    model = SequenceClassifier(dropout=0.5, token_dropout=0.2)
    model.fit(train_texts, train_labels, val_fraction=1 / 9, progress=False)
    ours = model.evaluate(test_texts, test_labels)
    baseline = tfidf_baseline(train_texts, train_labels, test_texts, test_labels)
    print(f"sentiment: rnnkit {ours['accuracy']:.4f} vs TF-IDF {baseline['accuracy']:.4f}")
    assert ours["accuracy"] > baseline["accuracy"]
