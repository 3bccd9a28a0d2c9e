"""``rnnkit classify``: train a sequence classifier, compare it with baselines, save it.

Register with::

    from rnnkit.commands import classify
    app.command("classify")(classify.command)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from rnnkit.commands._common import Resume, console, evaluation_source, user_errors

Option = typer.Option


@user_errors
def command(
    data: Annotated[
        str, Option(help="sentiment, digits (8x8 images read row by row) or a CSV file.")
    ],
    text_column: Annotated[str, Option(help="Text column of a CSV.")] = "text",
    label_column: Annotated[str, Option(help="Label column of a CSV.")] = "label",
    tokens: Annotated[str, Option(help="Text tokens: word or char.")] = "word",
    min_count: Annotated[int, Option(min=1, help="Keep tokens seen this often.")] = 1,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = "gru",
    bidirectional: Annotated[bool, Option("--bidirectional/--unidirectional")] = True,
    pooling: Annotated[str, Option(help="last, mean, max or e.g. mean+max.")] = "mean+max",
    embedding_size: Annotated[int, Option(min=1)] = 64,
    hidden_size: Annotated[int, Option(min=1)] = 64,
    num_layers: Annotated[int, Option(min=1)] = 1,
    dropout: Annotated[float, Option(help="On embeddings and before the head.")] = 0.5,
    token_dropout: Annotated[float, Option(help="Share of training tokens read as <unk>.")] = 0.2,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = 30,
    patience: Annotated[int, Option(min=1, help="Epochs without a better val loss.")] = 5,
    test_fraction: Annotated[float, Option(help="Share of all examples for testing.")] = 0.1,
    val_fraction: Annotated[float, Option(help="Share of all examples for validation.")] = 0.1,
    seed: Annotated[int, Option()] = 0,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model and the log.")] = Path("runs/classify"),
    resume: Resume = False,
) -> None:
    """Train a sequence classifier; compare it with baselines on a held-out split.

    The split is seeded and stratified; the test metrics are printed next to the majority
    class and, for texts, TF-IDF + logistic regression, with the confusion matrix."""
    from rnnkit.tasks.classifier import SequenceClassifier
    from rnnkit.train import TrainConfig

    if not (test_fraction > 0 and val_fraction > 0 and test_fraction + val_fraction < 1):
        raise ValueError(
            f"test_fraction, val_fraction: expected both > 0 with a sum < 1, got "
            f"{test_fraction} and {val_fraction}"
        )
    source = {"data": data, "columns": [text_column, label_column],
              "test_fraction": test_fraction, "seed": seed}  # fmt: skip
    (train_inputs, train_labels), test = _split(source)
    model = SequenceClassifier(
        tokens=tokens, min_count=min_count, cell=cell, bidirectional=bidirectional,
        pooling=pooling, embedding_size=embedding_size, hidden_size=hidden_size,
        num_layers=num_layers, dropout=dropout, token_dropout=token_dropout,
        training=TrainConfig(max_epochs=epochs, patience=patience, seed=seed),
    )  # fmt: skip
    console.print(
        f"Training a {cell} classifier on {data}: {len(train_labels)} examples for training "
        f"and validation, {len(test[1])} for testing ..."
    )
    model.fit(
        train_inputs, train_labels, val_fraction=val_fraction / (1 - test_fraction),
        log_dir=out / "logs", progress=progress, resume=resume,
    )  # fmt: skip
    _report(model, (train_inputs, train_labels), test, data)
    saved = model.save(out / "model", metadata={"source": source})
    console.print(f"Model: {saved}")


def evaluate(model_dir: Path, data: str | None) -> None:
    """Re-evaluate a saved classifier on the test split of the data it was trained on
    (``data``: its file)."""
    from rnnkit.tasks.classifier import SequenceClassifier

    model = SequenceClassifier.load(model_dir)
    source = evaluation_source(model_dir, model.metadata.get("source"), data)
    _report(model, *_split(source), source["data"])


def predict(model_dir: Path, input: str) -> None:
    """Print the label and its probability of each line of ``input`` (a text, or a UTF-8
    text file with one example per line) as JSON lines."""
    from rnnkit.tasks.classifier import SequenceClassifier

    model = SequenceClassifier.load(model_dir)
    path = Path(input)
    if path.is_dir():
        raise ValueError(f"input: expected a text or a text file, got the folder {input!r}")
    texts = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [input]
    probabilities = model.predict_proba(texts)
    for text, p in zip(texts, probabilities, strict=True):
        label = model.classes[int(p.argmax())]
        print(json.dumps({"text": text, "label": label, "probability": round(float(p.max()), 4)},
                         ensure_ascii=False))  # fmt: skip


Split = tuple[Any, list[Any]]  # inputs (texts or an (N, L, F) array) and their labels


def _split(source: dict[str, Any]) -> tuple[Split, Split]:
    """The seeded, stratified (training, test) split that ``source`` describes."""
    from rnnkit.tasks.classifier import split_indices

    inputs, labels = _load(source["data"], *source["columns"])
    kept, test = split_indices(labels, source["test_fraction"], source["seed"], "test_fraction")
    return (
        (_take(inputs, kept), [labels[i] for i in kept]),
        (_take(inputs, test), [labels[i] for i in test]),
    )


def _report(model: Any, training: Split, test: Split, data: str) -> None:
    """Print the model's test metrics next to the baselines, and its confusion matrix."""
    from rnnkit.tasks.classifier import classification_metrics, tfidf_baseline

    name = f"rnnkit {model.config.cell}"
    results = {name: model.evaluate(*test)}
    majority = max(model.classes, key=training[1].count)
    results["majority class"] = classification_metrics(
        test[1], [majority] * len(test[1]), model.classes
    )
    if isinstance(training[0], list):
        results["TF-IDF + logistic regression"] = tfidf_baseline(*training, *test)
    _print_metrics(results, f"{data}: {len(test[1])} test examples")
    _print_confusion(results[name]["confusion_matrix"], model.classes)


def _load(data: str, text_column: str, label_column: str) -> tuple[Any, list[Any]]:
    from rnnkit.tasks.classifier import load_digit_rows, load_sentiment, read_labelled_csv

    if data == "sentiment":
        return load_sentiment()
    if data == "digits":
        images, digits = load_digit_rows()
        return images, digits.tolist()
    if not data.lower().endswith(".csv") and not Path(data).exists():
        raise ValueError(f"data: expected sentiment, digits or a CSV file, got {data!r}")
    return read_labelled_csv(data, text_column, label_column)


def _take(inputs: Any, rows: np.ndarray) -> Any:
    return inputs[rows] if isinstance(inputs, np.ndarray) else [inputs[i] for i in rows]


def _print_metrics(results: dict[str, dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    table.add_column("method")
    table.add_column("accuracy", justify="right")
    table.add_column("macro-F1", justify="right")
    best = max(r["accuracy"] for r in results.values())
    for name, r in results.items():
        style = "bold green" if r["accuracy"] == best else None
        table.add_row(name, f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}", style=style)
    console.print(table)


def _print_confusion(matrix: np.ndarray, classes: tuple[Any, ...]) -> None:
    table = Table(title="Confusion matrix")
    table.add_column("true \\ predicted")
    for c in classes:
        table.add_column(str(c), justify="right")
    for c, row in zip(classes, matrix, strict=True):
        table.add_row(str(c), *(str(n) for n in row))
    console.print(table)
