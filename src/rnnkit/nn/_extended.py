"""Extended cells: Jordan.

Each cell is a :class:`rnnkit.nn.RecurrentCell` (``project`` all steps, then ``step`` one at a
time) whose maths is in :mod:`rnnkit.functional.extended`; each layer is
:class:`rnnkit.nn.Recurrent` with that cell, so stacking, bidirectional, ``lengths``,
``PackedSequence``, unbatched input, a learnable initial state, recurrent dropout and zoneout
come from the layer. Calling a cell runs one step from the raw input.

:data:`ElmanRNN` is :class:`rnnkit.nn.RNN`, the Elman network (Elman 1990).

Shape letters: ``L`` sequence length, ``N`` batch, ``H_in`` input features, ``H`` hidden
size, ``O`` the Jordan network's output size, ``D`` directions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import (
    check_bool,
    check_choice,
    check_dtype,
    check_int,
)
from rnnkit.functional import State
from rnnkit.functional.extended import (
    OUTPUT_NONLINEARITIES,
    jordan_recurrence,
)
from rnnkit.functional.fused import fused_jordan
from rnnkit.nn import _engine
from rnnkit.nn._cell import RecurrentCell
from rnnkit.nn._recurrent import CellLayer
from rnnkit.nn._rnn import RNN

Device = torch.device | str | None

#: The Elman network (Elman 1990, "Finding structure in time"): the hidden state is fed back,
#: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``. It is :class:`rnnkit.nn.RNN`.
ElmanRNN = RNN


class _ExtendedCell(RecurrentCell):
    """Parameter bookkeeping and a validated one-step ``forward`` for the cells below."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        state_sizes: tuple[int, ...],
        bias: bool,
        device: Device,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__(check_int("input_size", input_size), state_sizes)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.bias = check_bool("bias", bias)
        self._factory = {"device": device, "dtype": check_dtype(dtype)}

    def _parameter(self, name: str, *shape: int, enabled: bool = True) -> None:
        """Register an uninitialised parameter, or None (stable state-dict keys)."""
        value = nn.Parameter(torch.empty(shape, **self._factory)) if enabled else None
        self.register_parameter(name, value)

    def forward(self, input: Tensor, hx: Tensor | State | None = None) -> State:
        """One step from the raw input.

        Args:
            input: ``(N, H_in)`` or unbatched ``(H_in,)``.
            hx: the state, a tuple of ``(N, S_k)`` (or ``(S_k,)``) tensors (a bare tensor for
                a one-tensor state); zeros when None.

        Returns:
            The new state, a tuple shaped like ``hx``; its first tensor is the output.
        """
        x, state, batched = self._step_input(input, hx)
        new_state = self.step(self.project(x.unsqueeze(0))[0], state)
        return new_state if batched else tuple(s.squeeze(0) for s in new_state)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"


# ----------------------------------------------------------------------------- Jordan


class JordanCell(_ExtendedCell):
    r"""Jordan network cell (Jordan 1986): the hidden layer is fed the previous *output*.

    .. math::
        h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + W_{yh} y_{t-1}), \qquad
        y_t = \mathrm{out\_act}(W_{hy} h_t + b_{hy})

    The state is ``(y,)`` (``S_0 = O``), so a layer built on this cell outputs ``y`` and
    layer ``k > 0`` reads ``D * O`` features. This is the textbook form; in Jordan's network
    the fed-back "state units" also decay, ``s_t = mu s_{t-1} + y_{t-1}``; here ``mu = 0``.

    Reference: M. I. Jordan, "Serial order: a parallel distributed processing approach",
    ICS Report 8604, Institute for Cognitive Science, UC San Diego, 1986.

    Args:
        input_size: ``H_in``.
        hidden_size: ``H``, the hidden layer (not fed back).
        output_size: ``O``, the output fed back; defaults to ``hidden_size``.
        bias: use ``b_ih`` and ``b_hy``.
        nonlinearity: ``act``, ``"tanh"`` or ``"relu"``.
        output_nonlinearity: ``out_act``: ``"identity"``, ``"tanh"``, ``"sigmoid"``,
            ``"relu"`` or ``"softmax"`` (over the ``O`` outputs).
        device, dtype: of the parameters.

    Parameters: ``weight_ih`` ``(H, H_in)``, ``bias_ih`` ``(H,)``, ``weight_yh`` ``(H, O)``,
    ``weight_hy`` ``(O, H)``, ``bias_hy`` ``(O,)``; the biases are None without ``bias``.
    Initialisation: every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn.RNN's rule (and
    nn.Linear's for ``weight_hy``, which reads ``H`` features), so with ``O = H`` the cell
    starts at the scale of an Elman RNN of the same size.

    Shapes (one step): input ``(N, H_in)``; state ``(y,)`` with ``y`` ``(N, O)``.

    Example:
        >>> cell = JordanCell(3, 8, output_size=2, output_nonlinearity="sigmoid")
        >>> (y,) = cell(torch.randn(4, 3))
        >>> y.shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        bias: bool = True,
        nonlinearity: str = "tanh",
        output_nonlinearity: str = "identity",
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        output_size = hidden_size if output_size is None else check_int("output_size", output_size)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.output_nonlinearity = check_choice(
            "output_nonlinearity", output_nonlinearity, tuple(OUTPUT_NONLINEARITIES)
        )
        super().__init__(input_size, hidden_size, (output_size,), bias, device, dtype)
        self._parameter("weight_ih", hidden_size, input_size)
        self._parameter("bias_ih", hidden_size, enabled=bias)
        self._parameter("weight_yh", hidden_size, output_size)
        self._parameter("weight_hy", output_size, hidden_size)
        self._parameter("bias_hy", output_size, enabled=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))`` (see the class docstring)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        """``(L, N, H_in) -> (L, N, H)``: ``x W_ih^T + b_ih`` for all steps."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        y = jordan_recurrence(
            x_t,
            state[0],
            self.weight_yh,
            self.weight_hy,
            self.bias_hy,
            self.nonlinearity,
            self.output_nonlinearity,
            dropout_mask,
        )
        return (y,)

    def engine_kernel(self) -> _engine.Fused:
        options = {
            "nonlinearity": self.nonlinearity,
            "output_nonlinearity": self.output_nonlinearity,
        }
        kernel = _engine.one_state_kernel(
            fused_jordan, self.weight_yh, self.weight_hy, self.bias_hy
        )
        return _engine.Fused(kernel, options, self.project)

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", output_size={self.output_size}"
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if self.output_nonlinearity != "identity":
            text += f", output_nonlinearity={self.output_nonlinearity!r}"
        return text


# ----------------------------------------------------------------------------- layers


class JordanRNN(CellLayer):
    """Jordan network layer: :class:`Recurrent` with :class:`JordanCell`.

    Layer options (``num_layers``, ``bidirectional``, ``lengths=``, ``learn_init``, ...) are
    :class:`Recurrent`'s; the cell options (``output_size``, ``bias``, ``nonlinearity``,
    ``output_nonlinearity``) are :class:`JordanCell`'s. Output ``(L, N, D * O)``, state
    ``(y_n,)`` with ``y_n`` ``(D * num_layers, N, O)``.

    Example:
        >>> layer = JordanRNN(3, 16, output_size=2, num_layers=2)
        >>> output, (y_n,) = layer(torch.randn(7, 4, 3))
        >>> output.shape, y_n.shape
        (torch.Size([7, 4, 2]), torch.Size([2, 4, 2]))
    """

    cell = JordanCell
