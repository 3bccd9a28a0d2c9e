"""minLSTM (Feng et al. 2024): a recurrent cell whose gates read only the input.

(minGRU is written once in :mod:`rnnkit.cells.mingru`.)

Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi, "Were RNNs All We
Needed?", arXiv:2410.01201, 2024.

Every gate is a linear map of ``x_t`` alone, so :meth:`project` computes all of them for all
steps in one matrix product, and the state follows the linear recurrence
``h_t = a_t * h_{t-1} + b_t``. The cell overrides :meth:`RecurrentCell.scan` with an exact
parallel scan, :func:`rnnkit.functional.min_lstm_scan` (``parallel=True``, the default);
``parallel=False`` runs the sequential mode, the layer's loop over :meth:`step`, which also
serves streaming one step at a time. Both give the same numbers to rounding. The maths, and
how the scan was chosen, are in :mod:`rnnkit.functional.minimal`.

Layer regularisers: zoneout works (in training and in eval the layer then runs the steps,
the sequential mode). Recurrent dropout is refused by the layer with a clear error: these
gates read no state, so there is no recurrent input to drop (``step`` takes no
``dropout_mask``), and dropping the carried state instead would be another regulariser.

``positive``: the paper's log-space implementation passes the candidate through
``g(x) = x + 0.5`` (``x >= 0``), ``sigmoid(x)`` (``x < 0``) so that every value it takes the
logarithm of is positive. rnnkit's scan needs no logarithm and handles any sign exactly, so
the default is ``positive=False``: the plain equations of the paper's section 3.2, whose
outputs, like a GRU's, take both signs. ``positive=True`` reproduces the log-space models (the
state then stays positive from a non-negative initial state). Unlike the paper's code, ``g`` is
not applied to ``h0``: a state carried over from a previous chunk of the same stream is passed
on unchanged, so running a sequence in pieces equals running it whole.

Shape letters: ``L`` sequence length, ``N`` batch, ``H_in`` input features, ``H`` hidden
size, ``D`` directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import (
    check_bool,
    check_dtype,
    check_int,
)
from rnnkit.functional import State
from rnnkit.functional.minimal import (
    min_lstm_gates,
    min_lstm_scan,
    minimal_recurrence,
)
from rnnkit.nn._cell import RecurrentCell
from rnnkit.nn._recurrent import CellLayer

Gates = Callable[[Tensor, bool], tuple[Tensor, Tensor]]
Scan = Callable[[Tensor, Tensor, Tensor | None, bool, bool], tuple[Tensor, Tensor]]


class _MinimalCell(RecurrentCell):
    """One input projection ``weight_ih`` ``(G*H, H_in)`` and the linear recurrence."""

    gates: int
    gate_function: Gates
    scan_function: Scan

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        positive: bool = False,
        parallel: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        super().__init__(input_size, (hidden_size,))
        self.hidden_size = hidden_size
        self.bias = check_bool("bias", bias)
        self.positive = check_bool("positive", positive)
        self.parallel = check_bool("parallel", parallel)
        factory = {"device": device, "dtype": check_dtype(dtype)}
        size = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(size, input_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(size, **factory))
        else:
            self.register_parameter("bias_ih", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation, as in the paper: ``U(-1/sqrt(H_in), 1/sqrt(H_in))``."""
        bound = 1.0 / math.sqrt(self.input_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        """``(L, N, H_in) -> (L, N, G*H)``: every gate's pre-activation for every step."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, x_t: Tensor, state: State) -> State:
        """One step (the sequential mode): ``(N, G*H)`` and ``(h,)`` -> ``(h',)``.

        No ``dropout_mask``: the state enters no weights (see the module docstring).
        """
        z, candidate = type(self).gate_function(x_t, self.positive)  # (N, H) each
        return (minimal_recurrence(z, candidate, state[0]),)

    def scan(
        self, inputs: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
    ) -> tuple[Tensor, State]:
        """The whole sequence: the parallel scan, or the step loop with ``parallel=False``."""
        if not self.parallel:
            return super().scan(inputs, state, lengths, reverse)
        scan = type(self).scan_function
        outputs, final = scan(inputs, state[0], lengths, reverse, self.positive)  # (L, N, H)
        return outputs, (final,)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """One step from the raw input (streaming; the sequential mode).

        Args:
            input: ``(N, H_in)`` or unbatched ``(H_in,)``.
            hx: ``(N, H)`` or ``(H,)``; zeros when None.

        Returns:
            ``h'``, ``(N, H)`` or ``(H,)``.
        """
        x, (h,), batched = self._step_input(input, hx)
        (h,) = self.step(self.project(x), (h,))
        return h if batched else h.squeeze(0)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("bias", True), ("positive", False), ("parallel", True)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


class MinLSTMCell(_MinimalCell):
    r"""minLSTM (Feng et al. 2024, arXiv:2410.01201, section 3.2): normalised input-only gates.

    .. math::
        f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        \tilde h_t = W_h x_t + b_h,

        f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \quad
        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    with ``positive=True``, ``\tilde h_t = g(W_h x_t + b_h)`` (see the module docstring).
    There is no cell state and no output gate: the state is ``(h,)``.

    Args: as :class:`MinGRUCell`.

    Parameters: ``weight_ih`` ``(3H, H_in)`` with the gate blocks in the order ``(f, i, h)``,
    ``bias_ih`` ``(3H,)`` (None without ``bias``); initialised as ``nn.Linear``.

    Shapes: as :class:`MinGRUCell`.

    Example:
        >>> cell = MinLSTMCell(3, 8, positive=True)
        >>> cell(torch.randn(4, 3)).shape
        torch.Size([4, 8])
    """

    gates = 3
    gate_function = staticmethod(min_lstm_gates)
    scan_function = staticmethod(min_lstm_scan)


class MinLSTM(CellLayer):
    """minLSTM layer: :class:`Recurrent` with :class:`MinLSTMCell`.

    ``**options`` are :class:`Recurrent`'s keyword options and the cell's (``bias``,
    ``positive``, ``parallel``). Returns ``(output, (h_n,))``: unlike an LSTM, no cell state.

    Example:
        >>> layer = MinLSTM(4, 8, batch_first=True)
        >>> output, (h_n,) = layer(torch.randn(3, 100, 4))
        >>> output.shape, h_n.shape
        (torch.Size([3, 100, 8]), torch.Size([1, 3, 8]))
    """

    cell = MinLSTMCell
