"""Layers by name, so tasks and the command line can say ``cell="gru"``."""

from __future__ import annotations

from typing import Any

from rnnkit.cells import CELLS
from rnnkit.nn import _rnn
from rnnkit.nn._base import RecurrentBase
from rnnkit.nn._from_spec import CLASSES

#: The layer of every cell of :data:`rnnkit.cells.CELLS` by name: the hand-written torch.nn
#: drop-in (:class:`RNN`, :class:`LSTM`, :class:`GRU`) of a ``torch_native`` cell, the
#: generated layer of any other.
LAYERS: dict[str, type[RecurrentBase]] = {
    name: getattr(_rnn, spec.layer) if spec.torch_native else CLASSES[name][1]
    for name, spec in CELLS.items()
}


def make_layer(cell: str, input_size: int, hidden_size: int, **options: Any) -> RecurrentBase:
    """The layer registered as ``cell`` (see ``LAYERS``), built with ``options``."""
    if cell not in LAYERS:
        raise ValueError(f"cell: expected one of {sorted(LAYERS)}, got {cell!r}")
    return LAYERS[cell](input_size, hidden_size, **options)
