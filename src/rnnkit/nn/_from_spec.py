"""The torch cell and layer of every cell written once in :mod:`rnnkit.cells`.

For a :class:`rnnkit.cells.CellSpec` named ``sru`` with ``layer="SRU"`` this makes
``SRUCell`` (a :class:`rnnkit.nn.RecurrentCell` whose ``project`` and ``step`` are the spec's
equations on tensors) and ``SRU`` (:class:`rnnkit.nn.Recurrent` with that cell), so stacking,
bidirectional, ``lengths``, ``PackedSequence``, the learnable initial state and the recurrent
regularisers come from the layer, as for the other extended cells. The torch.nn drop-ins
(RNN, LSTM, GRU: ``spec.torch_native``) are written by hand and read the same spec.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rnnkit.cells import CELLS, CellSpec, Param
from rnnkit.functional import State
from rnnkit.functional.ops import TORCH
from rnnkit.nn import _engine
from rnnkit.nn._cells import SpecEquations
from rnnkit.nn._extended import Device, _ExtendedCell
from rnnkit.nn._recurrent import CellLayer


class SpecCell(SpecEquations, _ExtendedCell):
    """A cell whose parameters and equations are a :class:`rnnkit.cells.CellSpec`'s.

    The options are attributes of the cell (e.g. ``cell.nonlinearity``), so the spec's
    equations read the cell itself as their ``p``.
    """

    spec: ClassVar[CellSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in vars(cls):  # the constructor as the spec defines it, for inspect and help
            cls.__signature__ = _signature(cls.spec)  # type: ignore[attr-defined]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *arguments: Any,
        device: Device = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        if not hasattr(type(self), "spec"):
            raise TypeError(
                "SpecCell is the base of the cells of rnnkit.cells: use one of them (e.g. "
                "rnnkit.nn.SRUCell), or add a module with a CellSpec to rnnkit.cells"
            )
        options = self._by_name(arguments, options)
        bias = options.pop("bias", True)
        checked = self.spec.check_options(options, hidden_size)
        sizes = self.spec.state_sizes(hidden_size, checked)
        super().__init__(input_size, hidden_size, sizes, bias, device, dtype)
        for name, value in checked.items():
            # an option that is also a cell property (Jordan's output_size, the state's
            # width) is read from it
            if not isinstance(getattr(type(self), name, None), property):
                setattr(self, name, value)
        for name, param in self._initials().items():
            shape = () if param is None else param.shape
            self._parameter(name, *shape, enabled=param is not None)
        self.reset_parameters()

    def _by_name(self, arguments: tuple, options: dict[str, Any]) -> dict[str, Any]:
        """The positional ``arguments`` after ``hidden_size`` named as ``spec.positional``,
        merged into ``options``; Python's ``TypeError`` for too many or a repeated one."""
        names = self.spec.positional
        if len(arguments) > len(names):
            raise TypeError(
                f"{type(self).__name__}() takes at most {len(names) + 2} positional arguments "
                f"({len(arguments) + 2} were given)"
            )
        named = dict(zip(names, arguments, strict=False))
        repeated = sorted(named.keys() & options.keys())
        if repeated:
            raise TypeError(
                f"{type(self).__name__}() got multiple values for argument {repeated[0]!r}"
            )
        return named | options

    def reset_parameters(self) -> None:
        """Each parameter as the spec says: ``U(-bound, bound)``, ``U(low, bound)`` or filled
        with a constant, in the spec's order (so a seed gives the same values)."""
        for name, param in self._initials().items():
            if param is None:
                continue
            weight = getattr(self, name)
            if param.bound is None:
                nn.init.constant_(weight, param.fill)
            else:
                low = -param.bound if param.low is None else param.low
                nn.init.uniform_(weight, low, param.bound)

    @property
    def options(self) -> dict[str, Any]:
        """The cell's options by name (each is also an attribute, as the equations read it)."""
        return self.spec.options_of(self)

    def _initials(self) -> dict[str, Param | None]:
        return self.spec.parameters(self.input_size, self.hidden_size, self.bias, self.options)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        changed = {
            name: value
            for name, value in self.options.items()
            if value != self.spec.options[name].default
        }
        return text + "".join(f", {name}={value!r}" for name, value in changed.items())


class _UnmaskedSpecCell(SpecCell):
    """A spec cell that takes no recurrent dropout (``spec.recurrent_dropout`` False): its
    ``step`` has no ``dropout_mask``, so the layer refuses ``recurrent_dropout``."""

    def step(self, x_t: Tensor, state: State) -> State:  # type: ignore[override]
        return tuple(self.spec.step(TORCH, self, x_t, state, None))

    def engine_kernel(self) -> _engine.Fused | None:
        # declared with step, so that _engine.computes sees the kernel compute this step
        return super().engine_kernel()


def _signature(spec: CellSpec) -> inspect.Signature:
    """The cell's constructor as its spec defines it, for ``help()`` and ``inspect``."""
    kinds = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    defaults = {"bias": True} | {name: option.default for name, option in spec.options.items()}
    given = ["input_size", "hidden_size", *spec.positional]
    keywords = [name for name in defaults if name not in spec.positional]
    return inspect.Signature(
        [inspect.Parameter(name, kinds[0]) for name in given[:2]]
        + [inspect.Parameter(name, kinds[0], default=defaults[name]) for name in given[2:]]
        + [inspect.Parameter(name, kinds[1], default=defaults[name]) for name in keywords]
        + [inspect.Parameter(name, kinds[1], default=None) for name in ("device", "dtype")]
    )


def _classes(spec: CellSpec) -> tuple[type[SpecCell], type[CellLayer]]:
    cell = type(
        spec.cell_name,
        (SpecCell if spec.recurrent_dropout else _UnmaskedSpecCell,),
        {"spec": spec, "__doc__": spec.doc, "__module__": "rnnkit.nn"},
    )
    layer_doc = (
        f"{spec.layer} layer: :class:`Recurrent` with :class:`{spec.cell_name}`.\n\n"
        f"Layer options (``num_layers``, ``bidirectional``, ``lengths=``, ...) are "
        f":class:`Recurrent`'s; the cell options (``bias``"
        f"{''.join(f', ``{name}``' for name in spec.options)}) are the cell's. Output "
        f"``(L, N, D * S_0)``; state {', '.join(f'``{s}_n``' for s in spec.state)}, each "
        f"``(D * num_layers, N, S_k)`` (``S_k = H`` unless the cell says otherwise).\n\n"
        f"{spec.doc}"
    )
    layer = type(spec.layer, (CellLayer,), {"cell": cell, "__doc__": layer_doc})
    layer.__module__ = "rnnkit.nn"
    return cell, layer


#: ``{name: (cell class, layer class)}`` for every cell of :data:`rnnkit.cells.CELLS` but the
#: torch.nn drop-ins (``torch_native``: their classes are written by hand, in
#: :mod:`rnnkit.nn._rnn` and :mod:`rnnkit.nn._cells`).
CLASSES: dict[str, tuple[type[SpecCell], type[CellLayer]]] = {
    name: _classes(spec) for name, spec in CELLS.items() if not spec.torch_native
}
