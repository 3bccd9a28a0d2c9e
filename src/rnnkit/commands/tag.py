"""``rnnkit tag``: learn to restore the spaces of a text, or restore them with a saved model.

Register with ``app.command("tag")(tag.command)``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

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
TAGGER = TaskDefaults("rnnkit.tasks.tagger:TaggerConfig")
# SpaceRestorer's own sizes and training, over TaggerConfig's and TrainConfig's
RESTORER = TaskDefaults("rnnkit.tasks.tagger:RESTORER_OPTIONS")
TRAINING = TaskDefaults("rnnkit.tasks.tagger:RESTORER_TRAINING")
SPLIT = TaskDefaults("rnnkit.tasks.tagger:split_lines")


@user_errors
def command(
    data: Annotated[
        str | None, Option(help="Text to learn from: shakespeare, korean (bundled) or a file.")
    ] = None,
    text: Annotated[
        str | None, Option(help="Restore the spaces of this text (with --model).")
    ] = None,
    model: Annotated[Path | None, Option(help="A model folder written by `rnnkit tag`.")] = None,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = TAGGER.cell,
    hidden_size: Annotated[
        int, Option(min=1, help="Hidden units per direction.")
    ] = RESTORER.hidden_size,
    num_layers: Annotated[int, Option(min=1)] = RESTORER.num_layers,
    embedding_size: Annotated[
        int, Option(min=1, help="Features per character.")
    ] = TAGGER.embedding_size,
    dropout: Annotated[float, Option(min=0.0, max=0.99)] = RESTORER.dropout,
    bidirectional: Annotated[
        bool, Option("--bidirectional/--unidirectional")
    ] = TAGGER.bidirectional,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = TRAINING.max_epochs,
    batch_size: Annotated[
        int, Option(min=1, help="Lines per training batch.")
    ] = TRAINING.batch_size,
    learning_rate: Annotated[float, Option(min=0.0)] = TRAINING.learning_rate,
    val_fraction: Annotated[
        float, Option(help="Validation block, after the training one.")
    ] = SPLIT.val_fraction,
    test_fraction: Annotated[
        float, Option(help="Held-out final block of lines.")
    ] = SPLIT.test_fraction,
    max_lines: Annotated[int | None, Option(min=3, help="Use only the first N lines.")] = None,
    show: Annotated[int, Option(min=0, help="Restored test lines to show.")] = 5,
    seed: Annotated[int, Option()] = TRAINING.seed,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model and the training log.")] = Path(
        "runs/tag"
    ),
    resume: Resume = False,
    devices: Devices = TRAINING.devices,
    num_nodes: NumNodes = TRAINING.num_nodes,
    strategy: Strategy = TRAINING.strategy,
) -> None:
    """Train a tagger that puts the spaces back into text; compare it with a bigram rule.

    Lines are split chronologically into train/validation/test; per-character boundary
    precision/recall/F1 on the test lines are printed next to a character-bigram rule. With
    --text and --model, print TEXT with its spaces restored instead."""
    from rnnkit.tasks.tagger import RESTORER_TRAINING, SpaceRestorer

    if text is not None:
        if model is None:
            raise ValueError("model: --text needs --model DIR (a folder written by `rnnkit tag`)")
        restored = SpaceRestorer.load(model).restore(text)
        console.print(restored, markup=False, highlight=False, soft_wrap=True)
        return
    if data is None:
        raise ValueError(
            "data: give --data (shakespeare, korean or a text file) to train, or "
            "--text with --model to restore spaces"
        )
    source = {
        "data": data,
        "max_lines": max_lines,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
    }
    train_lines, val_lines, test_lines = _split(source)
    restorer = SpaceRestorer(
        cell=cell,
        hidden_size=hidden_size,
        num_layers=num_layers,
        embedding_size=embedding_size,
        dropout=dropout,
        bidirectional=bidirectional,
        training=replace(
            RESTORER_TRAINING,
            max_epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
        ),
    )
    started = time.perf_counter()
    history = restorer.fit(
        train_lines, val_lines, log_dir=out / "logs", progress=progress, resume=resume
    )
    seconds = time.perf_counter() - started
    if further_process():  # the scores and the model come from global rank 0
        return
    scores = _report(restorer, train_lines, test_lines, data)
    console.print(
        f"Trained {len(history.val_loss)} epochs in {seconds:.0f} s "
        f"(weights of epoch {history.best_epoch + 1} kept)."
    )
    for line in test_lines[:show]:
        console.print(
            f"  {line}\n  -> {restorer.restore(line)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    saved = restorer.save(out / "model", {"source": source, "test_scores": scores})
    console.print(f"Model: {saved}")


def evaluate(model_dir: Path, data: str | None) -> None:
    """Re-score a saved space restorer on the test lines of the text it was trained on
    (``data``: its file)."""
    from rnnkit.tasks.tagger import SpaceRestorer

    restorer = SpaceRestorer.load(model_dir)
    source = evaluation_source(model_dir, restorer.tagger.metadata.get("source"), data)
    train_lines, _, test_lines = _split(source)
    _report(restorer, train_lines, test_lines, source["data"])


def predict(model_dir: Path, input: str) -> None:
    """Print ``input`` (a text, or a UTF-8 text file) with its spaces restored."""
    from rnnkit.tasks.tagger import SpaceRestorer

    path = Path(input)
    text = path.read_text(encoding="utf-8") if path.is_file() else input
    print(SpaceRestorer.load(model_dir).restore(text))


def _split(source: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Training, validation and test lines: consecutive blocks of the text's lines."""
    from rnnkit.data import read_text
    from rnnkit.tasks.tagger import split_lines

    text = read_text(source["data"])
    if source["max_lines"] is not None:
        text = "\n".join(text.splitlines()[: source["max_lines"]])
    train_lines, val_lines, test_lines, dropped = split_lines(
        text, source["val_fraction"], source["test_fraction"]
    )
    console.print(
        f"{source['data']}: {len(train_lines)} training, {len(val_lines)} validation and "
        f"{len(test_lines)} test lines ({dropped} held-out lines also in training dropped)"
    )
    if not test_lines or not val_lines:
        raise ValueError(
            f"data: no held-out lines left in {source['data']!r} (all repeat training lines)"
        )
    return train_lines, val_lines, test_lines


def _report(
    restorer: Any, train_lines: list[str], test_lines: list[str], data: str
) -> dict[str, float]:
    """Print the restorer's test scores next to the bigram rule's; return the restorer's."""
    from rnnkit.tasks.tagger import WindowBaseline, tag_scores, unspace

    chars, tags = zip(*(unspace(line) for line in test_lines), strict=True)
    bigram = WindowBaseline(1, 1).fit(*zip(*(unspace(line) for line in train_lines), strict=True))
    name = f"rnnkit {restorer.tagger.config.cell}"
    scores = {
        name: restorer.evaluate(test_lines),
        "bigram rule": tag_scores(tags, bigram.predict(chars), positive=1),
    }
    _print_scores(scores, f"{data}: per-character word boundaries, {len(test_lines)} test lines")
    return scores[name]


def _print_scores(scores: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    table.add_column("method")
    for metric in ("precision", "recall", "F1", "accuracy"):
        table.add_column(metric, justify="right")
    best = max(values["f1"] for values in scores.values())
    for name, values in scores.items():
        style = "bold green" if values["f1"] == best else None
        cells = (values[m] for m in ("precision", "recall", "f1", "accuracy"))
        table.add_row(name, *(f"{v:.4f}" for v in cells), style=style)
    console.print(table)
