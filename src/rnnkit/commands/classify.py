"""``rnnkit classify``: train a sequence classifier, compare it with baselines, save it.

Register with::

    from rnnkit.commands import classify
    app.command("classify")(classify.command)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from rnnkit.commands._common import (
    Devices,
    NumNodes,
    Resume,
    Strategy,
    TaskDefaults,
    console,
    evaluation_source,
    further_process,
    user_errors,
)

Option = typer.Option
PLANNED = "the classifier's for texts; from the data for sequences"
MODEL = TaskDefaults("rnnkit.tasks.classifier:ClassifierConfig")
TRAINING = TaskDefaults("rnnkit.tasks.classifier:SequenceClassifier.default_training")


@user_errors
def command(
    data: Annotated[
        str,
        Option(
            help="sentiment, digits (8x8 images read row by row), a CSV of texts, or a file "
            "of numeric sequences: UCR/UEA .ts, UCR .tsv/.csv (label then values), a "
            "long-format CSV (id, time, channels, label) or .npz (X, y); .gz allowed."
        ),
    ],
    test: Annotated[
        str | None, Option(help="A test file in the same format: the split to report on.")
    ] = None,
    val: Annotated[
        str | None, Option(help="A validation file in the same format (sequences).")
    ] = None,
    fill: Annotated[
        str | None, Option(help="Fill missing values: ffill, interpolate or zero.")
    ] = None,
    id_column: Annotated[str, Option(help="Example id column of a long-format CSV.")] = "id",
    time_column: Annotated[str, Option(help="Time column of a long-format CSV.")] = "time",
    text_column: Annotated[str, Option(help="Text column of a CSV.")] = "text",
    label_column: Annotated[str, Option(help="Label column of a CSV.")] = "label",
    tokens: Annotated[str, Option(help="Text tokens: word or char.")] = MODEL.tokens,
    min_count: Annotated[int, Option(min=1, help="Keep tokens seen this often.")] = MODEL.min_count,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = MODEL.cell,
    bidirectional: Annotated[
        bool, Option("--bidirectional/--unidirectional")
    ] = MODEL.bidirectional,
    pooling: Annotated[str, Option(help="last, mean, max or e.g. mean+max.")] = MODEL.pooling,
    embedding_size: Annotated[int, Option(min=1)] = MODEL.embedding_size,
    hidden_size: Annotated[int, Option(min=1)] = MODEL.hidden_size,
    num_layers: Annotated[int, Option(min=1)] = MODEL.num_layers,
    dropout: Annotated[float, Option(help="On embeddings and before the head.")] = MODEL.dropout,
    token_dropout: Annotated[
        float, Option(help="Share of training tokens read as <unk>.")
    ] = MODEL.token_dropout,
    front_end: Annotated[
        str | None, Option(help="Sequences: none or conv (default: conv).")
    ] = None,
    stride: Annotated[
        int | None, Option(min=1, help="Sequences: steps averaged into one (default: from L).")
    ] = None,
    augment: Annotated[
        str | None,
        Option(help="Sequences: none or e.g. jitter+scaling+slicing (default: from N)."),
    ] = None,
    blend: Annotated[
        str | None,
        Option(
            help="Sequences: rocket (mix in ROCKET, weighed on validation) or none "
            "(default: rocket unless ROCKET would take minutes)."
        ),
    ] = None,
    members: Annotated[
        int | None, Option(min=1, help="Networks averaged (default: 3 under 500 examples).")
    ] = None,
    class_weights: Annotated[
        bool | None,
        Option("--class-weights/--no-class-weights", help="Default: when classes are imbalanced."),
    ] = None,
    baselines: Annotated[
        bool, Option("--baselines/--no-baselines", help="Sequences: run 1-NN DTW and ROCKET.")
    ] = True,
    epochs: Annotated[
        int | None,
        Option(min=1, help=f"Maximum training epochs (default: {PLANNED})."),
    ] = None,
    patience: Annotated[
        int | None,
        Option(min=1, help=f"Epochs without a better val loss (default: {PLANNED})."),
    ] = None,
    batch_size: Annotated[int | None, Option(min=1, help=f"Default: {PLANNED}.")] = None,
    test_fraction: Annotated[float, Option(help="Share of all examples for testing.")] = 0.1,
    val_fraction: Annotated[
        float | None,
        Option(
            help="Share of all examples for validation (default: 0.1; from the data for sequences)."
        ),
    ] = None,
    seed: Annotated[int, Option()] = TRAINING.seed,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model and the log.")] = Path("runs/classify"),
    resume: Resume = False,
    devices: Devices = TRAINING.devices,
    num_nodes: NumNodes = TRAINING.num_nodes,
    strategy: Strategy = TRAINING.strategy,
) -> None:
    """Train a sequence classifier; compare it with baselines on a held-out split.

    The split is seeded and stratified (or --test FILE); the test metrics are printed next
    to the majority class and, for texts, TF-IDF + logistic regression, for numeric
    sequences 1-NN DTW and ROCKET, with the confusion matrix and per-class precision and
    recall (also saved: OUT/confusion.png, OUT/report.json). For numeric sequences, the
    settings not given come from the training data (plan_for_sequences), and are printed;
    the planned ROCKET blend is reported beside the network alone."""
    from rnnkit.checks import check_choice
    from rnnkit.tasks.classifier import SequenceClassifier, plan_for_sequences
    from rnnkit.tasks.classifier_blend import BLENDS

    if blend is not None:  # before the data are read and the plan printed
        check_choice("blend", blend, BLENDS)
    if not (
        test_fraction > 0
        and (val_fraction or 0.1) > 0
        and test_fraction + (val_fraction or 0.1) < 1
    ):
        raise ValueError(
            f"test_fraction, val_fraction: expected both > 0 with a sum < 1, got "
            f"{test_fraction} and {val_fraction}"
        )
    reading = {"fill": fill, "id_column": id_column, "time_column": time_column}
    source = {
        "data": data,
        "columns": [text_column, label_column],
        "test_fraction": test_fraction,
        "seed": seed,
        "reading": reading,
    }
    if test is not None:  # recorded, not its path: a model folder never names a file to read
        source["test"] = "given"
    (train_inputs, train_labels), test_split = _split(source, test)
    numeric = not isinstance(train_inputs, list) or not isinstance(train_inputs[0], str)
    given = {
        "front_end": front_end,
        "stride": stride,
        "augment": augment,
        "members": members,
        "blend": blend,
    }
    options = {k: v for k, v in given.items() if v is not None}
    fit_options: dict[str, Any] = {}
    if numeric:
        lengths = [len(x) for x in train_inputs]
        plan = plan_for_sequences(train_labels, lengths, seed)
        options = {**plan.options, **options}
        training = plan.training
        fit_options = {"val_fraction": plan.val_fraction, "class_weights": plan.class_weights}
        for note in plan.notes:
            console.print(f"Plan: {note}.", highlight=False)
        console.print(
            "Plan: " + ", ".join(f"{k} {v}" for k, v in options.items()) + ".", highlight=False
        )
    else:
        training = SequenceClassifier.default_training
    training = replace(
        training,
        max_epochs=epochs or training.max_epochs,
        patience=patience or training.patience,
        batch_size=batch_size or training.batch_size,
        seed=seed,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
    )
    if val_fraction is not None or not numeric:
        held = val_fraction if val_fraction is not None else 0.1
        fit_options["val_fraction"] = held / (1 - test_fraction) if test is None else held
    if class_weights is not None:
        fit_options["class_weights"] = class_weights
    if val is not None:
        fit_options["validation"] = _load(val, source)
    model = SequenceClassifier(
        tokens=tokens,
        min_count=min_count,
        cell=cell,
        bidirectional=bidirectional,
        pooling=pooling,
        embedding_size=embedding_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout,
        token_dropout=token_dropout,
        training=training,
        **options,
    )
    console.print(
        f"Training a {cell} classifier on {data}: {len(train_labels)} examples for training "
        f"and validation, {len(test_split[1])} for testing ..."
    )
    model.fit(
        train_inputs,
        train_labels,
        log_dir=out / "logs",
        progress=progress,
        resume=resume,
        **fit_options,
    )
    if further_process():  # the baselines, report, figures and model come from rank 0
        return
    results = _report(model, (train_inputs, train_labels), test_split, test or data, baselines)
    _save_report(out, model, results)
    saved = model.save(out / "model", metadata={"source": source})
    console.print(f"Model: {saved}")


def evaluate(model_dir: Path, data: str | None) -> None:
    """Re-evaluate a saved classifier on the test split of the data it was trained on
    (``data``: its file)."""
    from rnnkit.tasks.classifier import SequenceClassifier

    model = SequenceClassifier.load(model_dir)
    source = evaluation_source(model_dir, model.metadata.get("source"), data)
    if "test" in source:  # trained with --test FILE: DATA is that test file, read whole
        inputs, labels = _load(source["data"], source)
        results = {f"rnnkit {model.config.cell}": model.evaluate(inputs, labels)}
        _print_metrics(results, f"{source['data']}: {len(labels)} test examples")
        _print_confusion(next(iter(results.values()))["confusion_matrix"], model.classes)
        return
    _report(model, *_split(source), source["data"])


def predict(model_dir: Path, input: str) -> None:
    """Print the label and its probability of each line of ``input`` (a text, or a UTF-8
    text file with one example per line), or of each example of a sequence file for a model
    trained on sequences, as JSON lines."""
    from rnnkit.tasks.classifier import SequenceClassifier

    model = SequenceClassifier.load(model_dir)
    path = Path(input)
    if model._require_fitted().kind == "sequence":
        from rnnkit.data.sequences import read_sequences

        sequences = read_sequences(path).sequences  # labels in the file are not used
        for index, p in enumerate(model.predict_proba(sequences)):
            label = model.classes[int(p.argmax())]
            print(
                json.dumps(
                    {"index": index, "label": label, "probability": round(float(p.max()), 4)}
                )
            )
        return
    if path.is_dir():
        raise ValueError(f"input: expected a text or a text file, got the folder {input!r}")
    texts = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [input]
    probabilities = model.predict_proba(texts)
    for text, p in zip(texts, probabilities, strict=True):
        label = model.classes[int(p.argmax())]
        print(
            json.dumps(
                {"text": text, "label": label, "probability": round(float(p.max()), 4)},
                ensure_ascii=False,
            )
        )


Split = tuple[Any, list[Any]]  # inputs (texts or an (N, L, F) array) and their labels


def _split(source: dict[str, Any], test: str | None = None) -> tuple[Split, Split]:
    """The seeded, stratified (training, test) split that ``source`` describes, or the
    whole data file and the ``test`` file."""
    from rnnkit.tasks.classifier import split_indices

    inputs, labels = _load(source["data"], source)
    if test is not None:
        return (inputs, labels), _load(test, source)
    kept, held = split_indices(labels, source["test_fraction"], source["seed"], "test_fraction")
    return (
        (_take(inputs, kept), [labels[i] for i in kept]),
        (_take(inputs, held), [labels[i] for i in held]),
    )


def _report(
    model: Any, training: Split, test: Split, data: str, baselines: bool = True
) -> dict[str, dict[str, Any]]:
    """Print the model's test metrics next to the baselines, its confusion matrix and
    per-class precision and recall; return the metrics by method."""
    from rnnkit.tasks.classifier import classification_metrics, tfidf_baseline

    name = f"rnnkit {model.config.cell}"
    results = {name: model.evaluate(*test)}
    if model.blend is not None:  # the blend is the model's answer; the network's beside it
        results[f"{name}, network only"] = model.evaluate(*test, blend=False)
        console.print(
            f"Blend: ROCKET's share {model.blend['weight']:.1f}, chosen on "
            f"{model.blend['validation_examples']} validation examples.",
            highlight=False,
        )
    majority = max(model.classes, key=training[1].count)
    results["majority class"] = classification_metrics(
        test[1], [majority] * len(test[1]), model.classes
    )
    if isinstance(training[0], list) and isinstance(training[0][0], str):
        results["TF-IDF + logistic regression"] = tfidf_baseline(*training, *test)
    elif baselines:
        results.update(_sequence_baselines(training, test, model.classes, model.training.seed))
    _print_metrics(results, f"{data}: {len(test[1])} test examples")
    _print_confusion(results[name]["confusion_matrix"], model.classes)
    _print_per_class(results[name]["confusion_matrix"], model.classes)
    return results


#: Above this many multiply-adds a baseline would take many minutes: it is skipped.
BASELINE_BUDGET = 2e11


def _sequence_baselines(
    training: Split, test: Split, classes: tuple, seed: int
) -> dict[str, dict[str, Any]]:
    """1-NN DTW and ROCKET on the same split (skipped, with a note, when too large)."""
    from rnnkit.sequence_baselines import NearestNeighbourDTW, RocketClassifier
    from rnnkit.tasks.classifier import classification_metrics

    lengths = [len(x) for x in (*training[0], *test[0])]
    mean = float(np.mean(lengths))
    results = {}
    costs = {
        "1-NN DTW": len(training[1]) * (len(training[1]) * 5 + len(test[1])) * mean**2,
        "ROCKET": len(lengths) * 10_000 * mean * 9,
    }
    for method, make in (("1-NN DTW", NearestNeighbourDTW), ("ROCKET", RocketClassifier)):
        if costs[method] > BASELINE_BUDGET:
            console.print(f"{method}: skipped (about {costs[method]:.0e} operations)")
            continue
        model = make() if method == "1-NN DTW" else make(seed=seed)
        predictions = model.fit(*training).predict(test[0])
        results[method] = classification_metrics(test[1], predictions.tolist(), classes)
    return results


def _save_report(out: Path, model: Any, results: dict[str, dict[str, Any]]) -> None:
    """OUT/confusion.png and OUT/report.json (accuracy and macro-F1 per method, the
    model's per-class precision and recall, the blend's weight and its validation accuracies
    or null), each written atomically."""
    from rnnkit.atomic import atomic_file
    from rnnkit.viz import plot_confusion

    name = f"rnnkit {model.config.cell}"
    matrix = results[name]["confusion_matrix"]
    plot_confusion(matrix, model.classes, out / "confusion.png")
    report = {
        "methods": {
            m: {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]} for m, r in results.items()
        },
        "classes": list(model.classes),
        "confusion_matrix": matrix.tolist(),
        "per_class": per_class(matrix, model.classes),
        "blend": model.blend,
    }
    with atomic_file(out / "report.json") as staging:
        staging.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def per_class(matrix: np.ndarray, classes: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Precision, recall and support of each class from a ``(C, C)`` confusion matrix
    (rows: truth); a class never predicted has precision 0."""
    matrix = np.asarray(matrix)
    predicted, actual = matrix.sum(0), matrix.sum(1)
    rows = []
    for i, c in enumerate(classes):
        hits = matrix[i, i]
        rows.append(
            {
                "class": c,
                "support": int(actual[i]),
                "precision": float(hits / predicted[i]) if predicted[i] else 0.0,
                "recall": float(hits / actual[i]) if actual[i] else 0.0,
            }
        )
    return rows


def _load(data: str, source: dict[str, Any]) -> tuple[Any, list[Any]]:
    from rnnkit.data.sequences import is_sequence_file, read_sequences
    from rnnkit.tasks.classifier import load_digit_rows, load_sentiment, read_labelled_csv

    text_column, label_column = source["columns"]
    if data == "sentiment":
        return load_sentiment()
    if data == "digits":
        images, digits = load_digit_rows()
        return images, digits.tolist()
    path = Path(data)
    if is_sequence_file(path, text_column) and path.is_file():
        reading = source.get("reading") or {}
        sequences = read_sequences(
            path,
            reading.get("fill"),
            reading.get("id_column", "id"),
            reading.get("time_column", "time"),
            label_column,
        )
        return sequences.sequences, sequences.labels
    if not data.lower().endswith(".csv") and not path.exists():
        raise ValueError(
            f"data: expected sentiment, digits or a CSV file, or sequences in a .ts, .tsv or "
            f".npz file, got {data!r}"
        )
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


def _print_per_class(matrix: np.ndarray, classes: tuple[Any, ...]) -> None:
    table = Table(title="Per class")
    for column in ("class", "precision", "recall", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in per_class(matrix, classes):
        table.add_row(
            str(row["class"]),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            str(row["support"]),
        )
    console.print(table)


def _print_confusion(matrix: np.ndarray, classes: tuple[Any, ...]) -> None:
    table = Table(title="Confusion matrix")
    table.add_column("true \\ predicted")
    for c in classes:
        table.add_column(str(c), justify="right")
    for c, row in zip(classes, matrix, strict=True):
        table.add_row(str(c), *(str(n) for n in row))
    console.print(table)
