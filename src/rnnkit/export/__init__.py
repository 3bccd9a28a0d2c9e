"""Exporters: a trained layer or task model to a file that another program runs.

* :func:`export_runtime` (:mod:`rnnkit.export.runtime`): the file the torch-free streaming
  runtime loads (:func:`rnnkit.runtime.load`);
* :func:`export_onnx` (:mod:`rnnkit.export.onnx`): an ONNX file for onnxruntime and other
  ONNX runtimes (needs ``pip install 'rnnkit[onnx]'``).

Both read layers through :data:`rnnkit.nn.LAYERS` and the cells of :mod:`rnnkit.cells`, and
models through :mod:`rnnkit.tasks`: this package sits above them, and nothing below it
imports it (``rnnkit export`` on the command line calls it). Each exporter is imported when
first asked for, so ``export_runtime`` does not import the tasks' training stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnkit.export.onnx import export_onnx
    from rnnkit.export.runtime import export_runtime

__all__ = ["export_onnx", "export_runtime"]
_MODULES = {"export_onnx": "rnnkit.export.onnx", "export_runtime": "rnnkit.export.runtime"}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
