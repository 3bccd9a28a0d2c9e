"""``RNNCell``, ``LSTMCell`` and ``GRUCell``: one time step, torch.nn's contract.

Parameters ``weight_ih`` ``(G*H, H_in)``, ``weight_hh`` ``(G*H, H)``, ``bias_ih`` and
``bias_hh`` ``(G*H,)`` (registered as None without bias) with ``G`` = 1, 4 (i, f, g, o) or
3 (r, z, n), initialised as torch.nn does, so state dicts load in both directions.

Each is also a :class:`rnnkit.nn.RecurrentCell`, so ``Recurrent(LSTMCell, ...)`` works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.functional import (
    State,
    gru_cell,
    gru_recurrence,
    lstm_cell,
    lstm_recurrence,
    rnn_cell,
    rnn_recurrence,
)
from rnnkit.nn._cell import RecurrentCell
from rnnkit.nn._checks import (
    check_bool,
    check_choice,
    check_dtype,
    check_finite,
    check_int,
    check_shape,
    check_state_structure,
    check_tensor_like,
)


class _CellBase(RecurrentCell):
    gates: int
    num_states: int = 1

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
        check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        super().__init__(input_size, (hidden_size,) * self.num_states)
        self.bias = check_bool("bias", bias)
        self.fused = check_bool("fused", fused)
        self.check_finite = check_bool("check_finite", check_finite)
        factory = {"device": device, "dtype": check_dtype(dtype)}
        gate_size = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gate_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gate_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gate_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        """``(L, N, H_in) -> (L, N, G*H)``: ``x W_ih^T + b_ih`` for all steps."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def _prepare(
        self, input: Tensor, hx: Tensor | tuple[Tensor, ...] | None
    ) -> tuple[Tensor, tuple[Tensor, ...], bool]:
        """Validate; return ``x`` ``(N, H_in)``, the state as ``(N, H)`` tensors, batched."""
        check_tensor_like("input", input, self.weight_ih)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected shape (N, H_in) or unbatched (H_in,) with H_in = input_size "
                f"= {self.input_size}, got {tuple(input.shape)}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if self.check_finite:
            check_finite("input", x)
        if hx is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            return x, (zeros,) * self.num_states, batched
        hx = check_state_structure(hx, self.num_states)
        state = []
        for k, h in enumerate(hx):
            name = "hx" if self.num_states == 1 else f"hx[{k}]"
            check_tensor_like(name, h, self.weight_ih)
            expected_shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            check_shape(name, h, expected_shape, "(N, H)" if batched else "(H,)")
            if self.check_finite:
                check_finite(name, h)
            state.append(h if batched else h.unsqueeze(0))
        return x, tuple(state), batched

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        return text


class RNNCell(_CellBase):
    """One Elman step ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``; see :class:`rnnkit.nn.RNN`.

    Shapes: input ``(N, H_in)`` or ``(H_in,)``; ``hx`` and the result ``(N, H)`` or ``(H,)``.
    """

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
            h = rnn_cell(x, h, *weights, nonlinearity=self.nonlinearity)
        return h if batched else h.squeeze(0)

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        weights = (self.weight_hh, self.bias_hh)
        return (rnn_recurrence(x_t, state[0], *weights, self.nonlinearity, dropout_mask),)


class LSTMCell(_CellBase):
    """One LSTM step, gate order ``(i, f, g, o)``; see :class:`rnnkit.nn.LSTM`.

    Shapes: input ``(N, H_in)`` or ``(H_in,)``; ``hx = (h, c)`` and the result ``(h', c')``
    each ``(N, H)`` or ``(H,)``.
    """

    gates = 4
    num_states = 2

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
        step = torch.lstm_cell if self.fused else lstm_cell
        h, c = step(x, state, *weights)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        h, c = state
        return lstm_recurrence(x_t, h, c, self.weight_hh, self.bias_hh, None, dropout_mask)


class GRUCell(_CellBase):
    """One GRU step, gate order ``(r, z, n)``; see :class:`rnnkit.nn.GRU`.

    Shapes: input ``(N, H_in)`` or ``(H_in,)``; ``hx`` and the result ``(N, H)`` or ``(H,)``.
    """

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
        h = (torch.gru_cell if self.fused else gru_cell)(x, h, *weights)
        return h if batched else h.squeeze(0)

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        return (gru_recurrence(x_t, state[0], self.weight_hh, self.bias_hh, dropout_mask),)
