"""The ops of :mod:`rnnkit.cells._spec` on tensors: the cells' equations run on torch with these
(the layers' reference path and :mod:`rnnkit.functional`'s cell functions)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.functional.linear import linear


def _layer_norm(v: Tensor, weight: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    # The gain and shift apart from layer_norm: its backward sums their gradients in one
    # buffer per thread, so they would change with the thread count; these sums do not.
    normalised = F.layer_norm(v, v.shape[-1:], None, None, eps) * weight
    return normalised if bias is None else normalised + bias


_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}

#: The ops of :mod:`rnnkit.cells._spec` on tensors.
TORCH = SimpleNamespace(
    linear=linear,
    sigmoid=torch.sigmoid,
    tanh=torch.tanh,
    relu=torch.relu,
    act=lambda v, name: _ACTIVATIONS[name](v),
    split=lambda v, parts: v.chunk(parts, dim=-1),
    concat=lambda *values: torch.cat(values, dim=-1),
    layer_norm=_layer_norm,
    softmax=lambda v: torch.softmax(v, dim=-1),
    clamp=torch.clamp,
    divide=lambda a, b: a / b.clamp_min(torch.finfo(b.dtype).tiny),
)
