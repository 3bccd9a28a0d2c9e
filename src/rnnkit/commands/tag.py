"""``rnnkit tag``: learn to restore the spaces of a text, or restore them with a saved model.

Register with ``app.command("tag")(tag.command)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rnnkit.commands._common import Resume, console, user_errors
from rnnkit.data import read_text

Option = typer.Option


@user_errors
def command(
    data: Annotated[
        str | None, Option(help="Text to learn from: shakespeare, korean (bundled) or a file.")
    ] = None,
    text: Annotated[
        str | None, Option(help="Restore the spaces of this text (with --model).")
    ] = None,
    model: Annotated[Path | None, Option(help="A model folder written by `rnnkit tag`.")] = None,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = "lstm",
    hidden_size: Annotated[int, Option(min=1, help="Hidden units per direction.")] = 128,
    num_layers: Annotated[int, Option(min=1)] = 2,
    embedding_size: Annotated[int, Option(min=1, help="Features per character.")] = 32,
    dropout: Annotated[float, Option(min=0.0, max=0.99)] = 0.1,
    bidirectional: Annotated[bool, Option("--bidirectional/--unidirectional")] = True,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = 8,
    batch_size: Annotated[int, Option(min=1, help="Lines per training batch.")] = 128,
    learning_rate: Annotated[float, Option(min=0.0)] = 5e-3,
    val_fraction: Annotated[float, Option(help="Validation block, after the training one.")] = 0.1,
    test_fraction: Annotated[float, Option(help="Held-out final block of lines.")] = 0.1,
    max_lines: Annotated[int | None, Option(min=3, help="Use only the first N lines.")] = None,
    show: Annotated[int, Option(min=0, help="Restored test lines to show.")] = 5,
    seed: Annotated[int, Option()] = 0,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model and the training log.")] = Path(
        "runs/tag"
    ),
    resume: Resume = False,
) -> None:
    """Train a character tagger that puts spaces back into text whose spaces were removed:
    lines split chronologically into train/validation/test, per-character boundary
    precision/recall/F1 on the test lines against a character-bigram rule. With --text and
    --model, print TEXT with its spaces restored instead."""
    from rnnkit.tasks.tagger import SpaceRestorer
    from rnnkit.train import TrainConfig

    if text is not None:
        if model is None:
            raise ValueError("model: --text needs --model DIR (a folder written by `rnnkit tag`)")
        restored = SpaceRestorer.load(model).restore(text)
        console.print(restored, markup=False, highlight=False, soft_wrap=True)
        return
    if data is None:
        raise ValueError("data: give --data (shakespeare, korean or a text file) to train, or "
                         "--text with --model to restore spaces")  # fmt: skip
    source = read_text(data)
    if max_lines is not None:
        source = "\n".join(source.splitlines()[:max_lines])
    restorer = SpaceRestorer(
        cell=cell, hidden_size=hidden_size, num_layers=num_layers,
        embedding_size=embedding_size, dropout=dropout, bidirectional=bidirectional,
        training=TrainConfig(max_epochs=epochs, batch_size=batch_size,
                             learning_rate=learning_rate, seed=seed),
    )  # fmt: skip
    _train(restorer, data, source, (val_fraction, test_fraction), show, progress, out, resume)


def _train(
    restorer: Any,
    data: str,
    source: str,
    fractions: tuple[float, float],
    show: int,
    progress: bool,
    out: Path,
    resume: bool,
) -> None:
    """Split, train, compare with the bigram rule on the test lines, show some, save."""
    from rnnkit.tasks.tagger import WindowBaseline, split_lines, tag_scores, unspace

    train_lines, val_lines, test_lines, dropped = split_lines(source, *fractions)
    console.print(
        f"{data}: {len(train_lines)} training, {len(val_lines)} validation and "
        f"{len(test_lines)} test lines ({dropped} held-out lines also in training dropped)"
    )
    if not test_lines or not val_lines:
        raise ValueError(f"data: no held-out lines left in {data!r} (all repeat training lines)")
    started = time.perf_counter()
    history = restorer.fit(
        train_lines, val_lines, log_dir=out / "logs", progress=progress, resume=resume
    )
    seconds = time.perf_counter() - started
    chars, tags = zip(*(unspace(line) for line in test_lines), strict=True)
    bigram = WindowBaseline(1, 1).fit(*zip(*(unspace(line) for line in train_lines), strict=True))
    name = f"rnnkit {restorer.tagger.config.cell}"
    scores = {
        name: restorer.evaluate(test_lines),
        "bigram rule": tag_scores(tags, bigram.predict(chars), positive=1),
    }
    _print_scores(scores, f"{data}: per-character word boundaries, {len(test_lines)} test lines")
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
    saved = restorer.save(out / "model", {"data": data, "test_scores": scores[name]})
    console.print(f"Model: {saved}")


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
