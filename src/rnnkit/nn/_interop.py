"""rnnkit's drop-in layers and cells handed to tools that take torch.nn's exact classes.

Some of torch's tools look a module's class up by identity, not ``isinstance``: dynamic
quantization maps ``type(module)`` (exactly ``torch.nn.LSTM``, ...) to its quantized module.
:func:`to_torch` gives such tools the torch.nn module that computes what rnnkit's does, with
the same parameters; :func:`quantize_dynamic` is torch's, on a model holding rnnkit's layers.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rnnkit.cells import CELLS
from rnnkit.nn import _cells, _rnn
from rnnkit.nn._base import RecurrentBase

# rnnkit's class -> torch.nn's, for the layer and cell of every torch.nn drop-in of the
# registry, taken when rnnkit is imported (before any swap of torch.nn).
TORCH_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    getattr(ours, name): getattr(nn, name)
    for spec in CELLS.values()
    if spec.torch_native
    for ours, name in ((_rnn, spec.layer), (_cells, spec.cell_name))
}
_LAYER_ARGUMENTS = ("num_layers", "bias", "batch_first", "dropout", "bidirectional")


def _torch_twin(module: nn.Module) -> nn.Module | None:
    """torch.nn's module with ``module``'s configuration and parameters, or None when
    ``module`` uses an option torch.nn lacks (learned initial state, recurrent regularisers)."""
    torch_class = TORCH_CLASSES.get(type(module))
    if torch_class is None:
        return None
    if getattr(module, "learn_init", False) or getattr(module, "recurrent_dropout", 0) > 0:
        return None
    if getattr(module, "zoneout", 0) > 0:
        return None
    weight = next(module.parameters())
    options: dict[str, Any] = {"bias": module.bias, "device": weight.device, "dtype": weight.dtype}
    if isinstance(module, RecurrentBase):
        options |= {name: getattr(module, name) for name in _LAYER_ARGUMENTS}
    # the cell's options where they are not the defaults (torch.nn's too): torch.nn.LSTMCell
    # takes no proj_size
    defaults = {name: option.default for name, option in module.spec.options.items()}
    options |= module.spec.options_of(module).items() - defaults.items()
    twin = torch_class(module.input_size, module.hidden_size, **options)
    twin.load_state_dict(module.state_dict())
    return twin.train(module.training)


def to_torch(model: nn.Module) -> nn.Module:
    """``model`` with every rnnkit drop-in layer and cell replaced by its torch.nn namesake.

    The replacement has the same configuration, parameter values, device, dtype and training
    mode, so it computes the same function. Modules that use options torch.nn lacks
    (``learn_init``, ``recurrent_dropout``, ``zoneout``) and rnnkit's extended cells stay
    as they are. ``model`` itself is changed in place (and returned) unless it is such a
    module itself, in which case the twin is returned.

    Example:
        >>> model = torch.nn.Sequential(LSTM(4, 8))
        >>> type(to_torch(model)[0]) is torch.nn.modules.rnn.LSTM
        True
    """
    twin = _torch_twin(model)
    if twin is not None:
        return twin
    for name, child in model.named_children():
        setattr(model, name, to_torch(child))
    return model


def quantize_dynamic(
    model: nn.Module,
    qconfig_spec: Any = None,
    dtype: torch.dtype = torch.qint8,
    mapping: Any = None,
    inplace: bool = False,
) -> nn.Module:
    """:func:`torch.ao.quantization.quantize_dynamic` for a model holding rnnkit's layers.

    torch's function quantizes a module only when its class is exactly one of
    ``qconfig_spec`` (e.g. ``{torch.nn.LSTM, torch.nn.GRU}``), so it would leave rnnkit's
    layers in float. This one first hands it the torch.nn twins (:func:`to_torch`), so the
    result is the one torch gives on the same model built from torch.nn. Arguments as
    torch's.
    """
    model = to_torch(model if inplace else copy.deepcopy(model))
    return torch.ao.quantization.quantize_dynamic(model, qconfig_spec, dtype, mapping, True)
