"""A torch-free streaming runtime: NumPy (and numba when installed) inference of rnnkit models.

:func:`rnnkit.export.export_runtime` (on the torch side, above this package) writes one
portable file: safetensors tensors and a JSON header. ``load`` reads it with NumPy alone and
returns a model that runs one step at a time, keeping its own state, for one stream or many::

    rnnkit.export.export_runtime(model, "sensor.rnnkit")    # torch side
    model = rnnkit.runtime.load("sensor.rnnkit")            # device side: numpy (+ numba)
    for reading in sensor:
        y = model.step(reading)

Importing this package never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnkit.runtime._classifier import StreamingClassifier
from rnnkit.runtime._file import FORMAT, MAX_STEPS, VERSION, RuntimeFileError, read_file, write_file
from rnnkit.runtime._forecaster import StreamingForecaster
from rnnkit.runtime._generator import StreamingGenerator
from rnnkit.runtime._kernels import NUMBA
from rnnkit.runtime._layers import (
    BACKENDS,
    CELLS,
    DTYPES,
    StreamingRNN,
    cell_tensors,
    kernels,
    state_sizes,
)

#: True when numba is installed, so ``backend="auto"`` runs compiled kernels.
ACCELERATED = NUMBA is not None

__all__ = [
    "ACCELERATED",
    "BACKENDS",
    "CELLS",
    "DTYPES",
    "FORMAT",
    "MAX_STEPS",
    "VERSION",
    "RuntimeFileError",
    "StreamingClassifier",
    "StreamingForecaster",
    "StreamingGenerator",
    "StreamingRNN",
    "cell_tensors",
    "load",
    "read_file",
    "state_sizes",
    "write_file",
]


def load(
    path: str | Path, backend: str = "auto", dtype: str = "float32"
) -> StreamingRNN | StreamingForecaster | StreamingGenerator | StreamingClassifier:
    """Read and check a runtime file; never runs code from it.

    Args:
        path: a file written by :func:`rnnkit.export.export_runtime` (or ``rnnkit export``).
        backend: ``"auto"`` (numba when installed, else NumPy), ``"numba"`` or ``"numpy"``.
        dtype: ``"float32"`` (the weights' own), or ``"float64"`` for the recurrent state
            and arithmetic: on the NumPy kernels, several times slower, for long streams of
            a cell that amplifies rounding. A LayerNorm-LSTM is one: LN rescales the
            recurrent input to unit variance whatever the size of ``h``, so two float32
            implementations part by 1e-4 over 10,000 steps (torch.nn's layer and its own
            cell do), while float64 follows torch's float64 model to 1e-12.

    Returns:
        A :class:`StreamingRNN` for an exported layer, a :class:`StreamingForecaster` for a
        forecaster, a :class:`StreamingGenerator` for a generator, a
        :class:`StreamingClassifier` for a classifier.

    Raises:
        RuntimeFileError: (a ValueError) naming the file and what is wrong: missing,
            truncated, corrupt, foreign, another format version, a missing or malformed field,
            a missing tensor, one of the wrong shape, one the header does not describe, or
            values that are not finite numbers.
    """
    kernels(backend, dtype)  # check them before reading the file
    header, tensors = read_file(path)
    architecture = header.get("architecture")
    builders = {
        "forecaster": StreamingForecaster,
        "generator": StreamingGenerator,
        "classifier": StreamingClassifier,
    }
    if architecture != "layer" and architecture not in builders:
        raise RuntimeFileError(
            f"runtime file {str(path)!r}: unknown architecture {architecture!r}; this rnnkit "
            "reads 'layer', 'forecaster', 'generator' and 'classifier'"
        )
    read = _Read(tensors)
    try:
        if architecture == "layer":
            model = StreamingRNN(header.get("layer", {}), read, backend, "layer", dtype)
        else:
            model = builders[architecture](header, read, backend, dtype)
    except (KeyError, TypeError, ValueError) as error:
        message = error.args[0] if error.args else repr(error)
        raise RuntimeFileError(f"runtime file {str(path)!r}: {message}") from None
    unread = sorted(set(tensors) - read.names)
    if unread:  # e.g. a header whose num_layers was lowered: the model would not be the file's
        raise RuntimeFileError(
            f"runtime file {str(path)!r}: tensor {unread[0]!r} is not part of the model its "
            "header describes"
        )
    return model


class _Read(dict):
    """A file's tensors that remember which of them the model read."""

    def __init__(self, tensors: dict[str, Any]) -> None:
        super().__init__(tensors)
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        self.names.add(name)
        return super().__getitem__(name)
