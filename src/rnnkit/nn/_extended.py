"""The base of the cells of :mod:`rnnkit.cells` in torch, and the Elman network's name.

The extended cells are written once in :mod:`rnnkit.cells`, each in its own module;
:mod:`rnnkit.nn._from_spec` makes their classes on :class:`_ExtendedCell`. :data:`ElmanRNN`
is :class:`rnnkit.nn.RNN`, the Elman network (Elman 1990).

Shape letters: ``N`` batch, ``H_in`` input features, ``S_k`` the width of state tensor ``k``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.checks import check_bool, check_dtype, check_int
from rnnkit.functional import State
from rnnkit.nn._cell import RecurrentCell
from rnnkit.nn._rnn import RNN

Device = torch.device | str | None

#: The Elman network (Elman 1990, "Finding structure in time"): the hidden state is fed back,
#: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``. It is :class:`rnnkit.nn.RNN`.
ElmanRNN = RNN


class _ExtendedCell(RecurrentCell):
    """Parameter bookkeeping and a validated one-step ``forward`` for the cells written once
    (:class:`rnnkit.nn.SpecCell`)."""

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

    def forward(
        self, input: Tensor, hx: Tensor | State | None = None
    ) -> Tensor | tuple[Tensor, ...]:
        """One step from the raw input.

        Args:
            input: ``(N, H_in)`` or unbatched ``(H_in,)``.
            hx: the state: a bare ``(N, S_0)`` (or ``(S_0,)``) tensor for a one-tensor state
                (a 1-tuple is also taken), a tuple of ``(N, S_k)`` tensors for several;
                zeros when None.

        Returns:
            The new state as torch.nn's cells return it: the bare tensor ``(N, S_0)`` (or
            ``(S_0,)``) for a one-tensor state, as ``nn.GRUCell``; the tuple for several, as
            ``nn.LSTMCell``. Its first tensor is the output.
        """
        x, state, batched = self._step_input(input, hx)
        new_state = self.step(self.project(x.unsqueeze(0))[0], state)
        if not batched:
            new_state = tuple(s.squeeze(0) for s in new_state)
        return new_state[0] if len(new_state) == 1 else new_state

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"
