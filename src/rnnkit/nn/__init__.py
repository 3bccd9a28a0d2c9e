"""Recurrent layers and cells: torch.nn's contract, rnnkit's gate equations."""

import torch

from rnnkit.checks import InputDtypeError, InputError
from rnnkit.nn._base import BACKENDS, RecurrentBase
from rnnkit.nn._cell import Recurrence, RecurrentCell
from rnnkit.nn._cells import GRUCell, LSTMCell, RNNCell
from rnnkit.nn._extended import ElmanRNN
from rnnkit.nn._from_spec import CLASSES, SpecCell
from rnnkit.nn._interop import quantize_dynamic, to_torch
from rnnkit.nn._recurrent import Recurrent, detach_state
from rnnkit.nn._registry import LAYERS, make_layer
from rnnkit.nn._rnn import GRU, LSTM, RNN
from rnnkit.nn.conv import ConvEncoder

__all__ = [
    "BACKENDS",
    "GRU",
    "LAYERS",
    "LSTM",
    "RNN",
    "ConvEncoder",
    "ElmanRNN",
    "GRUCell",
    "InputDtypeError",
    "InputError",
    "LSTMCell",
    "RNNCell",
    "Recurrence",
    "Recurrent",
    "RecurrentBase",
    "RecurrentCell",
    "SpecCell",
    "detach_state",
    "make_layer",
    "quantize_dynamic",
    "to_torch",
]

# The cells written once in rnnkit.cells: SRU and SRUCell, LiGRU and LiGRUCell, ...
for _cell, _layer in CLASSES.values():
    globals().update({_cell.__name__: _cell, _layer.__name__: _layer})
    __all__ += [_cell.__name__, _layer.__name__]
del _cell, _layer

# A whole model saved with torch.save loads with torch.load(weights_only=True) without its
# user naming rnnkit's classes: each of these only sets its attributes back from the file
# (no code from the file runs), as torch.nn's own modules do.
torch.serialization.add_safe_globals(
    [cls for cls in map(globals().get, __all__) if isinstance(cls, type)]
    + [torch.nn.ModuleList, torch.nn.ParameterList]
)
