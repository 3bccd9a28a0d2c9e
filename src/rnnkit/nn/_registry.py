"""Layers by name, so tasks and the command line can say ``cell="gru"``."""

from __future__ import annotations

from typing import Any

from rnnkit.nn._base import RecurrentBase
from rnnkit.nn._from_spec import CLASSES
from rnnkit.nn._rnn import GRU, LSTM, RNN

LAYERS: dict[str, type[RecurrentBase]] = {
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
    **{name: layer for name, (_, layer) in CLASSES.items()},  # the cells of rnnkit.cells
}


def make_layer(cell: str, input_size: int, hidden_size: int, **options: Any) -> RecurrentBase:
    """The layer registered as ``cell`` (see ``LAYERS``), built with ``options``."""
    if cell not in LAYERS:
        raise ValueError(f"cell: expected one of {sorted(LAYERS)}, got {cell!r}")
    return LAYERS[cell](input_size, hidden_size, **options)
