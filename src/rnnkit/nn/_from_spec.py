"""The torch cell and layer of every cell written once in :mod:`rnnkit.cells`.

For a :class:`rnnkit.cells.CellSpec` named ``sru`` with ``layer="SRU"`` this makes
``SRUCell`` (a :class:`rnnkit.nn.RecurrentCell` whose ``project`` and ``step`` are the spec's
equations on tensors) and ``SRU`` (:class:`rnnkit.nn.Recurrent` with that cell), so stacking,
bidirectional, ``lengths``, ``PackedSequence``, the learnable initial state and the recurrent
regularisers come from the layer, as for the other extended cells.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS, CellSpec, Param
from rnnkit.functional import State
from rnnkit.nn._extended import Device, _ExtendedCell
from rnnkit.nn._recurrent import CellLayer


def _layer_norm(v: Tensor, weight: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    # The gain and shift apart from layer_norm: its backward sums their gradients in one
    # buffer per thread, so they would change with the thread count; these sums do not.
    normalised = F.layer_norm(v, v.shape[-1:], None, None, eps) * weight
    return normalised if bias is None else normalised + bias


_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}

#: The ops of :mod:`rnnkit.cells._spec` on tensors.
TORCH = SimpleNamespace(
    linear=F.linear,
    sigmoid=torch.sigmoid,
    tanh=torch.tanh,
    relu=torch.relu,
    act=lambda v, name: _ACTIVATIONS[name](v),
    split=lambda v, parts: v.chunk(parts, dim=-1),
    concat=lambda *values: torch.cat(values, dim=-1),
    layer_norm=_layer_norm,
)


class SpecCell(_ExtendedCell):
    """A cell whose parameters and equations are a :class:`rnnkit.cells.CellSpec`'s.

    The options are attributes of the cell (e.g. ``cell.nonlinearity``), so the spec's
    equations read the cell itself as their ``p``.
    """

    spec: ClassVar[CellSpec]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        if not hasattr(type(self), "spec"):
            raise TypeError(
                "SpecCell is the base of the cells of rnnkit.cells: use one of them (e.g. "
                "rnnkit.nn.SRUCell), or add a module with a CellSpec to rnnkit.cells"
            )
        checked = self.spec.check_options(options)
        super().__init__(
            input_size, hidden_size, self.spec.state_sizes(hidden_size), bias, device, dtype
        )
        for name, value in checked.items():
            setattr(self, name, value)
        for name, param in self._initials().items():
            shape = () if param is None else param.shape
            self._parameter(name, *shape, enabled=param is not None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each parameter as the spec says: ``U(-bound, bound)`` or filled with a constant."""
        for name, param in self._initials().items():
            if param is None:
                continue
            weight = getattr(self, name)
            if param.bound is None:
                nn.init.constant_(weight, param.fill)
            else:
                nn.init.uniform_(weight, -param.bound, param.bound)

    @property
    def options(self) -> dict[str, Any]:
        """The cell's options by name (each is also an attribute, as the equations read it)."""
        return {name: getattr(self, name) for name in self.spec.options}

    def _initials(self) -> dict[str, Param | None]:
        return self.spec.parameters(self.input_size, self.hidden_size, self.bias, self.options)

    def project(self, x: Tensor) -> Tensor:
        """``(L, N, H_in) -> (L, N, G)``: the spec's input side for all steps."""
        return self.spec.project(TORCH, self, x)

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        return tuple(self.spec.step(TORCH, self, x_t, state, dropout_mask))

    def extra_repr(self) -> str:
        text = super().extra_repr()
        changed = {
            name: value
            for name, value in self.options.items()
            if value != self.spec.options[name].default
        }
        return text + "".join(f", {name}={value!r}" for name, value in changed.items())


def _classes(spec: CellSpec) -> tuple[type[SpecCell], type[CellLayer]]:
    cell = type(
        f"{spec.layer}Cell",
        (SpecCell,),
        {"spec": spec, "__doc__": spec.doc, "__module__": "rnnkit.nn"},
    )
    layer_doc = (
        f"{spec.layer} layer: :class:`Recurrent` with :class:`{spec.layer}Cell`.\n\n"
        f"Layer options (``num_layers``, ``bidirectional``, ``lengths=``, ...) are "
        f":class:`Recurrent`'s; the cell options (``bias``"
        f"{''.join(f', ``{name}``' for name in spec.options)}) are the cell's. Output "
        f"``(L, N, D * H)``; state {', '.join(f'``{s}_n``' for s in spec.state)}, each "
        f"``(D * num_layers, N, H)``.\n\n{spec.doc}"
    )
    layer = type(spec.layer, (CellLayer,), {"cell": cell, "__doc__": layer_doc})
    layer.__module__ = "rnnkit.nn"
    return cell, layer


#: ``{name: (cell class, layer class)}`` for every cell of :data:`rnnkit.cells.CELLS`.
CLASSES: dict[str, tuple[type[SpecCell], type[CellLayer]]] = {
    name: _classes(spec) for name, spec in CELLS.items()
}
