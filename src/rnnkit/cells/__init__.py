"""Cells written once: each module here defines one cell for every backend.

A module ``rnnkit/cells/<name>.py`` holds a cell's parameters, state, options and equations
(its ``CELL``, a :class:`CellSpec`; see :mod:`rnnkit.cells._spec` for the contract). From it
come the torch cell and layer in :mod:`rnnkit.nn`, the ``cell=`` name of every task and of
``--cell``, the torch-free streaming runtime and the ONNX export: adding a cell is adding a
file here (and its tests). RNN, LSTM and GRU are cells here too; their torch classes are
torch.nn's hand-written drop-ins (``torch_native``), which run these equations.

:data:`CELLS` is the registry, read from this package's modules, so it has no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from rnnkit.cells._spec import ACTIVATIONS, CellSpec, Option, OptionError, Param

__all__ = ["ACTIVATIONS", "CELLS", "CellSpec", "Option", "OptionError", "Param"]


def _discover() -> dict[str, CellSpec]:
    found: dict[str, CellSpec] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        spec = importlib.import_module(f"{__name__}.{module.name}").CELL
        if spec.name in found:
            raise ImportError(f"cells: two modules define the cell {spec.name!r}")
        found[spec.name] = spec
    return found


#: Every cell of this package by name (e.g. ``"sru"``).
CELLS: dict[str, CellSpec] = _discover()
