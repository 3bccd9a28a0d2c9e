"""``rnnkit predict`` and ``rnnkit evaluate``: use a saved model folder, whatever its task.

The folder's ``config.json`` names its task; each task's command module knows how to read an
input for it and how to re-evaluate it on the data recorded in its metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rnnkit.commands import classify, forecast, generate, seq2seq, tag
from rnnkit.commands._common import user_errors

ModelDir = Annotated[
    Path,
    typer.Argument(help="A model folder written by rnnkit forecast/classify/tag/generate/seq2seq."),
]


def _task(model_dir: Path) -> str:
    from rnnkit.train import read_config

    config = read_config(model_dir)
    if config["task"] == "tagger" and config["metadata"].get("task") == "space_restorer":
        return "space_restorer"
    return str(config["task"])


def _dispatch(model_dir: Path, what: str, handlers: dict[str, Any]) -> Any:
    task = _task(model_dir)
    if task not in handlers:
        raise ValueError(
            f"model_dir: `rnnkit {what}` handles {', '.join(handlers)} models; {model_dir} is "
            f"a {task!r} model (use its own command or the Python API)"
        )
    return handlers[task]


@user_errors
def predict(
    model_dir: ModelDir,
    input: Annotated[
        str,
        typer.Argument(
            help="forecaster: a CSV with the training columns or a bundled series; "
            "classifier: a text or a file of one text per line; space restorer: a text or a "
            "file; generator: the prompt; seq2seq: the source text."
        ),
    ],
) -> None:
    """Apply a saved model to INPUT and print the result (JSON for forecasts and labels)."""
    handlers = {
        "forecaster": forecast.predict,
        "classifier": classify.predict,
        "space_restorer": tag.predict,
        "generator": generate.predict,
        "seq2seq": seq2seq.predict,
    }
    _dispatch(model_dir, "predict", handlers)(model_dir, input)


@user_errors
def evaluate(
    model_dir: ModelDir,
    test_size: Annotated[
        int | None,
        typer.Option(min=1, help="Forecaster: held-out final steps (default: as in training)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="The data the model was trained on: needed when that was a file (a model "
            "folder names bundled data only; rnnkit never opens a path it records)."
        ),
    ] = None,
) -> None:
    """Re-evaluate a saved model on the held-out part of the data it was trained on."""
    handlers = {
        "forecaster": lambda: forecast.evaluate(model_dir, test_size, data),
        "classifier": lambda: classify.evaluate(model_dir, data),
        "space_restorer": lambda: tag.evaluate(model_dir, data),
        "generator": lambda: generate.evaluate(model_dir, data),
        "seq2seq": lambda: seq2seq.evaluate(model_dir, data),
    }
    _dispatch(model_dir, "evaluate", handlers)()
