"""``RNNCell``, ``LSTMCell`` and ``GRUCell``: one time step, torch.nn's contract.

Parameters ``weight_ih`` ``(G*H, H_in)``, ``weight_hh`` ``(G*H, H)``, ``bias_ih`` and
``bias_hh`` ``(G*H,)`` (registered as None without bias) with ``G`` = 1, 4 (i, f, g, o) or
3 (r, z, n), initialised as torch.nn does, so state dicts load in both directions.

Each is also a :class:`rnnkit.nn.RecurrentCell`, so ``Recurrent(LSTMCell, ...)`` works. Their
``project`` and ``step`` (and, with ``fused=False``, their ``forward``) are the equations of
their cells of :mod:`rnnkit.cells` (``rnn``, ``lstm``, ``gru``), run on the cell itself.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rnnkit.cells import CELLS, CellSpec
from rnnkit.checks import (
    InputError,
    check_bool,
    check_choice,
    check_dtype,
    check_finite,
    check_int,
    check_rank,
    check_state_structure,
    check_tensor,
    check_tensor_like,
    check_width,
)
from rnnkit.functional import State
from rnnkit.functional.ops import TORCH
from rnnkit.nn import _engine
from rnnkit.nn._cell import RecurrentCell


class SpecEquations:
    """A cell's ``project``, ``step`` and ``engine_kernel`` from its :attr:`spec`, which reads the
    cell itself as its ``p`` (the parameters and options are the cell's attributes). Listed
    before :class:`RecurrentCell` in a cell's bases."""

    spec: ClassVar[CellSpec]

    def project(self, x: Tensor) -> Tensor:
        """``(L, N, H_in) -> (L, N, G)``: the spec's input side for all steps."""
        return self.spec.project(TORCH, self, x)

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        """One step of the spec's recurrence: the new state, its first tensor the output."""
        return tuple(self.spec.step(TORCH, self, x_t, state, dropout_mask))

    def engine_kernel(self) -> _engine.Fused | None:
        """The spec's fused recurrence for :mod:`rnnkit.nn._engine`, or None (the reference
        loop) where it has none."""
        hook = self.spec.engine_kernel
        return None if hook is None else hook(_engine.HOOKS, self)


class _CellBase(SpecEquations, RecurrentCell, nn.RNNCellBase):
    """A torch.nn cell (each is a subclass of its torch.nn namesake: torch.nn.RNNCellBase makes
    and initialises the parameters) that is also a :class:`RecurrentCell`; the equations are
    its :attr:`spec`'s (:class:`SpecEquations`)."""

    gates: int

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
        fused: bool,
        check_finite: bool,
    ) -> None:
        check_int("input_size", input_size, torch_says="input_size must be greater than zero")
        check_int("hidden_size", hidden_size, minimum=0)  # torch.nn's cells take 0
        if not isinstance(bias, bool):  # torch.nn's cells take any value and test its truth
            warnings.warn(
                f"bias: expected a bool, got {type(bias).__name__} {bias!r}, taken as "
                f"{bool(bias)} as torch.nn does (the third positional argument is bias, not "
                "nonlinearity)",
                stacklevel=3,
            )
        # not RecurrentCell.__init__: its super() is torch.nn's cell in this class's MRO
        nn.RNNCellBase.__init__(
            self, input_size, hidden_size, bias, self.gates, device, check_dtype(dtype)
        )
        self._state_sizes = (hidden_size,) * self.num_states
        self.fused = check_bool("fused", fused)
        self.check_finite = check_bool("check_finite", check_finite)

    @property
    def num_states(self) -> int:
        return len(self.spec.state)

    @property
    def options(self) -> dict[str, Any]:
        """The spec's options, as the cell holds them."""
        return self.spec.options_of(self)

    def _prepare(
        self, input: Tensor, hx: Tensor | tuple[Tensor, ...] | None
    ) -> tuple[Tensor, tuple[Tensor, ...], bool]:
        """Validate; return ``x`` ``(N, H_in)``, the state as ``(N, H)`` tensors, batched."""
        # In torch.nn's order: shapes first, then dtypes and devices.
        name, rank = type(self).__name__, check_tensor("input", input).dim()
        torch_says = f"{name}: Expected input to be 1D or 2D, got {rank}D instead"
        check_rank("input", input, (1, 2), "(N, H_in) or unbatched (H_in,)", torch_says)
        width, expected = input.shape[-1], self.input_size
        torch_says = f"input has inconsistent input_size: got {width} expected {expected}"
        check_width("input", input, expected, "H_in = input_size", torch_says)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        hx = None if hx is None else check_state_structure(hx, self.num_states)
        labels = ["hx"] if self.num_states == 1 else [f"hx[{k}]" for k in range(self.num_states)]
        state = []
        for k, h in enumerate(hx or ()):
            label = labels[k]
            torch_label = f"hx[{k}]" if self.num_states > 1 else "hidden"
            torch_says = f"{name}: Expected {torch_label} to be 1D or 2D, got {h.dim()}D instead"
            legend = "(N, H) like input" if batched else "(H,) like unbatched input"
            check_rank(label, check_tensor(label, h), (input.dim(),), legend, torch_says)
            if batched and h.shape[0] != x.shape[0]:
                raise InputError(
                    f"{label}: expected shape (N, H) = {(x.shape[0], self.hidden_size)}, got "
                    f"{tuple(h.shape)} (Input batch size {x.shape[0]} doesn't match hidden{k} "
                    f"batch size {h.shape[0]})"
                )
            width, expected = h.shape[-1], self.hidden_size
            torch_says = f"hidden{k} has inconsistent hidden_size: got {width}, expected {expected}"
            check_width(label, h, expected, "H = hidden_size", torch_says)
            state.append(h if batched else h.unsqueeze(0))
        check_tensor_like("input", input, self.weight_ih)
        for label, h in zip(labels, state, strict=False):
            check_tensor_like(label, h, self.weight_ih)
            if self.check_finite:
                check_finite(label, h)
        if self.check_finite:
            check_finite("input", x)
        if hx is None:
            state = [x.new_zeros(x.shape[0], self.hidden_size)] * self.num_states
        return x, tuple(state), batched


class RNNCell(_CellBase, nn.RNNCell):
    """One Elman step ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``; see :class:`rnnkit.nn.RNN`.

    Shapes: input ``(N, H_in)`` or ``(H_in,)``; ``hx`` and the result ``(N, H)`` or ``(H,)``.
    """

    spec = CELLS["rnn"]
    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        fused: bool = True,
        check_finite: bool = False,
    ) -> None:
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias, device, dtype, fused, check_finite)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, hx)
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.fused:
            kernel = torch.rnn_tanh_cell if self.nonlinearity == "tanh" else torch.rnn_relu_cell
            h = kernel(x, h, *weights)
        else:
            (h,) = self.step(self.project(x), (h,))
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase, nn.LSTMCell):
    """One LSTM step, gate order ``(i, f, g, o)``; see :class:`rnnkit.nn.LSTM`.

    Shapes: input ``(N, H_in)`` or ``(H_in,)``; ``hx = (h, c)`` and the result ``(h', c')``
    each ``(N, H)`` or ``(H,)``.
    """

    spec = CELLS["lstm"]
    gates = 4
    # torch.nn.LSTMCell has no projection: what the spec reads of one
    proj_size = 0
    weight_hr = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        fused: bool = True,
        check_finite: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype, fused, check_finite)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, state, batched = self._prepare(input, hx)
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.fused:
            h, c = torch.lstm_cell(x, state, *weights)
        else:
            h, c = self.step(self.project(x), state)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase, nn.GRUCell):
    """One GRU step, gate order ``(r, z, n)``; see :class:`rnnkit.nn.GRU`.

    Shapes: input ``(N, H_in)`` or ``(H_in,)``; ``hx`` and the result ``(N, H)`` or ``(H,)``.
    """

    spec = CELLS["gru"]
    gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        fused: bool = True,
        check_finite: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype, fused, check_finite)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, hx)
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.fused:
            h = torch.gru_cell(x, h, *weights)
        else:
            (h,) = self.step(self.project(x), (h,))
        return h if batched else h.squeeze(0)
