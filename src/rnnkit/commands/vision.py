"""``rnnkit caption`` and ``rnnkit ctc``: read images of real handwritten digits.

Both compose their images from scikit-learn's 8x8 digits split into disjoint training and
test source images (:mod:`rnnkit.data.digits`), train (or load with ``--model``), print the
test metrics next to a baseline that knows how the images were made, and save the model.

Register with::

    app.command("caption")(vision.caption)
    app.command("ctc")(vision.ctc)
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
    further_process,
    user_errors,
)

Option = typer.Option
CAPTIONER = TaskDefaults("rnnkit.tasks.captioner:CaptionerConfig")
CAPTION_TRAINING = TaskDefaults("rnnkit.tasks.captioner:Captioner.default_training")
CTC = TaskDefaults("rnnkit.tasks.ctc:CTCConfig")
CTC_TRAINING = TaskDefaults("rnnkit.tasks.ctc:CTCRecognizer.default_training")
STRIPS = TaskDefaults("rnnkit.data.digits:digit_strips")
PREFIX_BEAM = TaskDefaults("rnnkit.tasks.ctc:ctc_prefix_beam_search")


@user_errors
def caption(
    model: Annotated[
        Path | None, Option(help="Evaluate this saved model instead of training one.")
    ] = None,
    train_images: Annotated[int, Option(min=2, help="Training grids composed.")] = 10_000,
    test_images: Annotated[int, Option(min=1, help="Test grids composed.")] = 1000,
    cell: Annotated[str, Option(help="Decoder layer: rnn, lstm, gru, ...")] = CAPTIONER.cell,
    hidden_size: Annotated[
        int, Option(min=1, help="Decoder hidden units.")
    ] = CAPTIONER.hidden_size,
    num_layers: Annotated[int, Option(min=1)] = CAPTIONER.num_layers,
    epochs: Annotated[
        int, Option(min=1, help="Maximum training epochs.")
    ] = CAPTION_TRAINING.max_epochs,
    patience: Annotated[
        int, Option(min=1, help="Epochs without a better val loss.")
    ] = CAPTION_TRAINING.patience,
    learning_rate: Annotated[float, Option(min=0.0)] = CAPTION_TRAINING.learning_rate,
    beam_size: Annotated[int, Option(min=1, help="Beam search width (1: greedy).")] = 4,
    show: Annotated[int, Option(min=0, help="Test captions to show.")] = 5,
    seed: Annotated[int, Option()] = CAPTION_TRAINING.seed,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model and the log.")] = Path("runs/caption"),
    resume: Resume = False,
    devices: Devices = CAPTION_TRAINING.devices,
    num_nodes: NumNodes = CAPTION_TRAINING.num_nodes,
    strategy: Strategy = CAPTION_TRAINING.strategy,
) -> None:
    """Caption grids of handwritten digits ("three digits: seven two nine"); vs a baseline.

    A CNN encoder and an attending LSTM decoder caption 2x2 grids of 1-4 digits; prints
    exact-match and word error rates (greedy and beam search) next to logistic regression per
    grid cell."""
    from rnnkit.data.digits import caption_grids, fit_digit_classifier, read_grids
    from rnnkit.tasks.captioner import Captioner

    if model is not None:
        captioner = Captioner.load(model)
        seed = captioner.metadata.get("data", {}).get("seed", seed)
    train_digits, test_digits = _digit_split(seed)
    test_x, test_captions = caption_grids(test_digits, test_images, seed + 2)
    if model is None:
        captioner = Captioner(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            training=replace(
                Captioner.default_training,
                max_epochs=epochs,
                patience=patience,
                learning_rate=learning_rate,
                seed=seed,
                devices=devices,
                num_nodes=num_nodes,
                strategy=strategy,
            ),
        )
        console.print(f"Training a captioner ({cell} decoder) on {train_images} grids ...")
        _fit(captioner, caption_grids(train_digits, train_images, seed + 1), out, progress, resume)
        if further_process():  # the evaluation and the model come from global rank 0
            return
    name = f"rnnkit CNN + {captioner.config.cell}"
    results = {f"{name}, greedy": captioner.evaluate(test_x, test_captions)}
    if beam_size > 1:
        results[f"{name}, beam {beam_size}"] = captioner.evaluate(test_x, test_captions, beam_size)
    guesses = read_grids(fit_digit_classifier(train_digits), test_x)
    results["logistic regression per cell"] = {
        "exact_match": sum(g == c for g, c in zip(guesses, test_captions, strict=True))
        / len(test_captions),
        "word_error_rate": _word_error_rate(test_captions, guesses),
    }
    _print_results(
        results,
        {"exact_match": "exact match", "word_error_rate": "word error rate"},
        f"digit grids: {test_images} test images of unseen handwriting",
    )
    for truth, predicted in zip(
        test_captions[:show], captioner.predict(test_x[:show], beam_size), strict=True
    ):
        console.print(f"  {truth}\n  -> {predicted}", highlight=False)
    if model is None:
        data = {"seed": seed, "train_images": train_images}
        console.print(f"Model: {captioner.save(out / 'model', {'data': data})}")


@user_errors
def ctc(
    model: Annotated[
        Path | None, Option(help="Evaluate this saved model instead of training one.")
    ] = None,
    train_strips: Annotated[int, Option(min=2, help="Training strips composed.")] = 8000,
    test_strips: Annotated[int, Option(min=1, help="Test strips composed.")] = 1000,
    min_digits: Annotated[int, Option(min=1, help="Fewest digits per strip.")] = STRIPS.min_digits,
    max_digits: Annotated[int, Option(min=1, help="Most digits per strip.")] = STRIPS.max_digits,
    max_gap: Annotated[
        int, Option(min=0, help="Most blank columns between digits.")
    ] = STRIPS.max_gap,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = CTC.cell,
    hidden_size: Annotated[
        int, Option(min=1, help="Hidden units per direction.")
    ] = CTC.hidden_size,
    num_layers: Annotated[int, Option(min=1)] = CTC.num_layers,
    epochs: Annotated[
        int, Option(min=1, help="Maximum training epochs.")
    ] = CTC_TRAINING.max_epochs,
    patience: Annotated[
        int, Option(min=1, help="Epochs without a better val loss.")
    ] = CTC_TRAINING.patience,
    batch_size: Annotated[
        int, Option(min=1, help="Strips per training batch.")
    ] = CTC_TRAINING.batch_size,
    beam_size: Annotated[
        int, Option(min=1, help="Prefix beam search width (1: greedy).")
    ] = PREFIX_BEAM.beam_size,
    show: Annotated[int, Option(min=0, help="Test strips to show.")] = 5,
    seed: Annotated[int, Option()] = CTC_TRAINING.seed,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model and the log.")] = Path("runs/ctc"),
    resume: Resume = False,
    devices: Devices = CTC_TRAINING.devices,
    num_nodes: NumNodes = CTC_TRAINING.num_nodes,
    strategy: Strategy = CTC_TRAINING.strategy,
) -> None:
    """Read strips of handwritten digits with CTC; compare with segmentation + a classifier.

    A bidirectional recurrent layer over image columns reads strips of 3-8 digits; prints
    sequence accuracy and character error rate (greedy and beam search) next to segmentation
    + logistic regression."""
    from rnnkit.data.digits import digit_strips, fit_digit_classifier, read_strips
    from rnnkit.tasks.ctc import CTCRecognizer, character_error_rate

    layout = {"min_digits": min_digits, "max_digits": max_digits, "max_gap": max_gap}
    if model is not None:
        recogniser = CTCRecognizer.load(model)
        saved = recogniser.metadata.get("data", {})  # test strips like the training ones
        layout.update(saved.get("layout", {}))
        seed = saved.get("seed", seed)
    train_digits, test_digits = _digit_split(seed)
    test_images, test_labels = digit_strips(test_digits, test_strips, seed + 2, **layout)
    if model is None:
        images, labels = digit_strips(train_digits, train_strips, seed + 1, **layout)
        recogniser = CTCRecognizer(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            training=replace(
                CTCRecognizer.default_training,
                max_epochs=epochs,
                patience=patience,
                batch_size=batch_size,
                seed=seed,
                devices=devices,
                num_nodes=num_nodes,
                strategy=strategy,
            ),
        )
        console.print(f"Training a {cell} CTC recogniser on {train_strips} strips ...")
        _fit(recogniser, (images, labels), out, progress, resume)
        if further_process():  # the evaluation and the model come from global rank 0
            return
    name = f"rnnkit {recogniser.config.cell}"
    results = {f"{name}, greedy": recogniser.evaluate(test_images, test_labels)}
    if beam_size > 1:
        results[f"{name}, beam {beam_size}"] = recogniser.evaluate(
            test_images, test_labels, beam_size
        )
    guesses = read_strips(fit_digit_classifier(train_digits), test_images)
    results["segmentation + logistic regression"] = {
        "sequence_accuracy": sum(g == t for g, t in zip(guesses, test_labels, strict=True))
        / len(test_labels),
        "cer": character_error_rate(test_labels, guesses),
    }
    _print_results(
        results,
        {"sequence_accuracy": "sequence accuracy", "cer": "CER"},
        f"digit strips: {test_strips} test strips of unseen handwriting",
    )
    predictions = recogniser.predict(test_images[:show], beam_size)
    for truth, predicted in zip(test_labels[:show], predictions, strict=True):
        console.print(f"  {truth:>10} -> {predicted}", highlight=False)
    if model is None:
        data = {"layout": layout, "seed": seed, "train_strips": train_strips}
        console.print(f"Model: {recogniser.save(out / 'model', {'data': data})}")


def _digit_split(seed: int) -> tuple[Any, Any]:
    from rnnkit.data.digits import load_digit_split

    return load_digit_split(seed=seed)


def _word_error_rate(truth: list[str], predicted: list[str]) -> float:
    from rnnkit.tasks.ctc import edit_distance

    errors = sum(edit_distance(t.split(), p.split()) for t, p in zip(truth, predicted, strict=True))
    return errors / sum(len(t.split()) for t in truth)


def _fit(task: Any, data: tuple[Any, Any], out: Path, progress: bool, resume: bool) -> None:
    started = time.perf_counter()
    history = task.fit(*data, log_dir=out / "logs", progress=progress, resume=resume)
    console.print(
        f"Trained {len(history.val_loss)} epochs in {time.perf_counter() - started:.0f} s "
        f"(weights of epoch {history.best_epoch + 1} kept)."
    )


def _print_results(
    results: dict[str, dict[str, float]], metrics: dict[str, str], title: str
) -> None:
    table = Table(title=title)
    table.add_column("method")
    for label in metrics.values():
        table.add_column(label, justify="right")
    first = next(iter(metrics))
    best = max(r[first] for r in results.values())
    for name, values in results.items():
        style = "bold green" if values[first] == best else None
        table.add_row(name, *(f"{values[m]:.4f}" for m in metrics), style=style)
    console.print(table)
