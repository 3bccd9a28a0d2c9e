"""``rnnkit classify``: train a sequence classifier, compare it with baselines, save it.

Register with::

    from rnnkit.commands import classify
    app.command("classify")(classify.command)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from rnnkit.commands._common import Resume, console, user_errors

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
    """Train a classifier on a seeded, stratified split; print test metrics next to baselines
    (majority class; TF-IDF + logistic regression for texts) and the confusion matrix."""
    from rnnkit.tasks.classifier import (
        SequenceClassifier,
        classification_metrics,
        split_indices,
        tfidf_baseline,
    )
    from rnnkit.train import TrainConfig

    if not (test_fraction > 0 and val_fraction > 0 and test_fraction + val_fraction < 1):
        raise ValueError(
            f"test_fraction, val_fraction: expected both > 0 with a sum < 1, got "
            f"{test_fraction} and {val_fraction}"
        )
    inputs, labels = _load(data, text_column, label_column)
    kept, test = split_indices(labels, test_fraction, seed, "test_fraction")
    train_inputs, train_labels = _take(inputs, kept), [labels[i] for i in kept]
    test_inputs, test_labels = _take(inputs, test), [labels[i] for i in test]
    model = SequenceClassifier(
        tokens=tokens, min_count=min_count, cell=cell, bidirectional=bidirectional,
        pooling=pooling, embedding_size=embedding_size, hidden_size=hidden_size,
        num_layers=num_layers, dropout=dropout, token_dropout=token_dropout,
        training=TrainConfig(max_epochs=epochs, patience=patience, seed=seed),
    )  # fmt: skip
    console.print(
        f"Training a {cell} classifier on {data}: {len(kept)} examples for training and "
        f"validation, {len(test)} for testing ..."
    )
    model.fit(
        train_inputs, train_labels, val_fraction=val_fraction / (1 - test_fraction),
        log_dir=out / "logs", progress=progress, resume=resume,
    )  # fmt: skip
    results = {f"rnnkit {cell}": model.evaluate(test_inputs, test_labels)}
    majority = max(model.classes, key=train_labels.count)
    results["majority class"] = classification_metrics(
        test_labels, [majority] * len(test_labels), model.classes
    )
    if isinstance(inputs, list):
        results["TF-IDF + logistic regression"] = tfidf_baseline(
            train_inputs, train_labels, test_inputs, test_labels
        )
    _print_metrics(results, f"{data}: {len(test)} test examples")
    _print_confusion(results[f"rnnkit {cell}"]["confusion_matrix"], model.classes)
    split = {"test_fraction": test_fraction, "val_fraction": val_fraction, "seed": seed}
    saved = model.save(out / "model", metadata={"data": data, "split": split})
    console.print(f"Model: {saved}")


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
