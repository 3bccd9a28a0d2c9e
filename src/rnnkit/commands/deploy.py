"""``rnnkit export`` (a saved model to one deployable file) and ``rnnkit stream`` (run one)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import Option

from rnnkit.commands._common import console, print_error, user_errors

#: What ``rnnkit stream`` does with a line that is not a valid step.
ON_ERROR = ("stop", "skip", "warn")

FORMATS = ("runtime", "onnx")


@user_errors
def export(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by rnnkit.")],
    out: Annotated[Path, Option(help="The file to write.")],
    format: Annotated[str, Option(help="runtime (torch-free rnnkit.runtime) or onnx.")] = "runtime",
) -> None:
    """Write a saved model as one deployable file: the torch-free runtime's, or ONNX."""
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx":
        from rnnkit.export import export_onnx

        try:
            written = export_onnx(model_dir, out)
        except ImportError as error:
            raise ValueError(f"format: onnx: {error}") from None  # its message names the fix
    else:
        from rnnkit.export import export_runtime

        written = export_runtime(model_dir, out)
    console.print(f"Wrote {written}")


@user_errors
def stream(
    model_file: Annotated[Path, typer.Argument(help="A file written by `rnnkit export`.")],
    backend: Annotated[str, Option(help="auto (numba if installed), numba or numpy.")] = "auto",
    dtype: Annotated[
        str, Option(help="float32, or float64 state and arithmetic (NumPy backend).")
    ] = "float32",
    on_error: Annotated[
        str,
        Option(
            help="A line that is not a valid step (not numbers, NaN, the wrong count): stop "
            "(exit 2), skip it, or warn (on stderr) and skip it. A skipped line leaves the "
            "stream as it was and prints nothing."
        ),
    ] = "stop",
) -> None:
    """Run a runtime file over stdin, one line per step, printing each output at once.

    A line holds the step's comma-separated numbers; for a forecaster that uses calendar
    features, its timestamp first (ISO 8601; one with a UTC offset is taken in UTC, as the
    training data's times were). Each output is one line of comma-separated
    numbers (a forecaster's horizon x K values row by row, and an empty line while it
    warms up). Blank input lines are skipped. For a generator a line is text: its characters
    are read in turn (the text carries on across lines) and the output is a JSON object of
    the five likeliest next characters and their probabilities. For a text classifier a line
    is one text, for a numeric one the next step of one sequence; the output is a JSON object
    of the class probabilities.
    """
    from rnnkit.runtime import StreamingClassifier, StreamingGenerator, load

    if on_error not in ON_ERROR:  # not rnnkit.nn's checks: they import torch
        raise ValueError(f"on_error: expected one of {', '.join(ON_ERROR)}, got {on_error!r}")
    model = load(model_file, backend, dtype)
    for number, line in enumerate(sys.stdin, start=1):
        if isinstance(model, StreamingClassifier) and model.kind == "text":
            if line.strip():
                probabilities = model.predict_proba([line.rstrip("\n")])[0]
                _write(_by_class(model.classes, probabilities))
            continue
        if isinstance(model, StreamingGenerator):
            text = line.rstrip("\n")
            for character in text:
                model.step(character)
            if text:
                _write(json.dumps(model.predict_next(5), ensure_ascii=False))
            continue
        if not line.strip():
            continue
        try:
            _write(_numeric_step(model, line))
        except ValueError as error:
            message = f"stdin line {number}: {error}"
            if on_error == "stop":
                raise ValueError(message) from None
            if on_error == "warn":
                print_error(f"{message} (skipped)", label="warning:")


def _numeric_step(model: Any, line: str) -> str:
    """One step of a numeric model from a line of comma-separated numbers (after the
    timestamp, for a calendar forecaster): the output line to print."""
    import numpy as np

    from rnnkit.runtime import StreamingClassifier, StreamingForecaster, StreamingRNN

    fields = [f.strip() for f in line.split(",")]
    timestamp = None
    if isinstance(model, StreamingForecaster) and model.calendar:
        timestamp, fields = fields[0], fields[1:]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"expected comma-separated finite numbers, got {line.strip()!r}")
    if isinstance(model, StreamingRNN) and max(map(abs, values)) > float(np.finfo(model.dtype).max):
        # a layer's own step keeps torch's semantics: inf would enter its state
        raise ValueError(f"expected numbers the model's {model.dtype} holds, got {line.strip()!r}")
    if isinstance(model, StreamingForecaster):
        output = model.step(values, timestamp)
    else:
        output = model.step(values)
    if isinstance(model, StreamingClassifier):
        return _by_class(model.classes, output)
    return "" if output is None else ",".join(f"{v:.8g}" for v in output.reshape(-1))


def _by_class(classes: tuple, probabilities: Any) -> str:
    return json.dumps(dict(zip(map(str, classes), probabilities.tolist(), strict=True)))


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()  # a pipe gets each output as soon as it exists
