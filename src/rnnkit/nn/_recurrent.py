"""``Recurrent``: any cell as a full layer."""

from __future__ import annotations

from collections.abc import Callable
from inspect import signature
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.checks import (
    InputError,
    check_bool,
    check_dtype,
    check_int,
    check_rate,
    check_shape,
    check_width,
)
from rnnkit.functional import State
from rnnkit.nn._base import TORCH_INPUT_SIZE, RecurrentBase
from rnnkit.nn._cell import RecurrentCell


class Recurrent(RecurrentBase):
    """Give any :class:`RecurrentCell` the full layer interface of :class:`rnnkit.nn.LSTM`.

    Stacking, bidirectional, inter-layer dropout, ``lengths`` (including 0),
    ``PackedSequence``, unbatched input, initial and final states, a learnable initial state
    and the recurrent regularisers all come from the layer, so a cell only computes one step.

    Args:
        cell: a cell class (or any callable) called as
            ``cell(layer_input_size, hidden_size, **cell_options)`` once per layer and
            direction; layer ``k > 0`` reads ``D * S_0`` features.
        input_size: ``H_in`` of the first layer.
        hidden_size: passed to every cell.
        num_layers, bidirectional, batch_first, dropout: as in :class:`rnnkit.nn.LSTM`.
        check_finite, learn_init, recurrent_dropout, zoneout: as in :class:`rnnkit.nn.LSTM`.
        backend: ``"auto"`` (the fastest exact path) or ``"reference"`` (a loop over the
            cells' steps); see :data:`rnnkit.nn.BACKENDS`.
        device, dtype: passed to every cell when given.
        **cell_options: passed to every cell (e.g. ``bias=False``).

    Returns from :meth:`forward`: ``(output, state)`` with output ``(L, N, D * S_0)`` and
    ``state`` always a tuple of ``(D * num_layers, N, S_k)`` tensors.

    Example:
        >>> layer = Recurrent(LSTMCell, 4, 8, num_layers=2, bidirectional=True)
        >>> output, (h_n, c_n) = layer(torch.randn(5, 3, 4))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 16]), torch.Size([4, 3, 8]))
    """

    def __init__(
        self,
        cell: Callable[..., RecurrentCell],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        check_finite: bool = False,
        learn_init: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dropout = check_rate("dropout", dropout)
        self.check_finite = check_bool("check_finite", check_finite)
        if not callable(cell):
            raise TypeError(f"cell: expected a RecurrentCell class or factory, got {cell!r}")
        # Built directly in the requested dtype, so a seed gives torch.nn's values.
        factory = {
            k: v for k, v in (("device", device), ("dtype", check_dtype(dtype))) if v is not None
        }
        cells: list[RecurrentCell] = []
        layer_input = input_size
        for _ in range(num_layers):
            for _ in range(self.num_directions):
                made = cell(layer_input, hidden_size, **factory, **cell_options)
                if not isinstance(made, RecurrentCell):
                    raise TypeError(
                        f"cell: expected a factory of RecurrentCell, it returned "
                        f"{type(made).__name__}"
                    )
                if cells and made.state_sizes != cells[0].state_sizes:
                    raise ValueError(
                        f"cell: every layer's cell must have the state sizes "
                        f"{cells[0].state_sizes} of the first, got {made.state_sizes}"
                    )
                cells.append(made)
            layer_input = self.num_directions * cells[0].output_size
        self.cells = nn.ModuleList(cells)
        first = next(self.cells.parameters(), None)
        self._init_options(
            learn_init, recurrent_dropout, zoneout, device, dtype if first is None else first.dtype
        )
        if self.recurrent_dropout > 0 and "dropout_mask" not in signature(cells[0].step).parameters:
            raise ValueError(
                f"recurrent_dropout: {type(cells[0]).__name__}.step does not accept "
                f"dropout_mask, so it cannot apply recurrent dropout; got {recurrent_dropout}"
            )

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.cells[0].state_sizes

    def reset_parameters(self) -> None:
        """Re-initialise every cell that can (``reset_parameters``) and zero the learned h0."""
        for cell in self.cells:
            if hasattr(cell, "reset_parameters"):
                cell.reset_parameters()
        for h0 in self.initial_state or ():
            nn.init.zeros_(h0)

    def recurrence(self, layer: int, direction: int) -> RecurrentCell:
        return self.cells[layer * self.num_directions + direction]

    def forward(
        self,
        input: Tensor | nn.utils.rnn.PackedSequence,
        hx: Tensor | State | None = None,
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor | nn.utils.rnn.PackedSequence, State]:
        """See :meth:`RecurrentBase.forward`; the state is always a tuple."""
        return super().forward(input, hx, lengths)  # type: ignore[return-value]

    # ---------------------------------------- torch.nn.RNNBase's surface, for any cell

    @property
    def mode(self) -> str:
        """The layer's class name (torch.nn's layers say ``"LSTM"``, ``"GRU"``, ...)."""
        return type(self).__name__

    @property
    def proj_size(self) -> int:
        return 0

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters of each (layer, direction)'s cell, as torch.nn groups its own."""
        return [list(cell.parameters()) for cell in self.cells]

    @property
    def _flat_weights(self) -> list[nn.Parameter]:
        return [weight for weights in self.all_weights for weight in weights]

    @property
    def _flat_weights_names(self) -> list[str]:
        return [f"cells.{name}" for name, _ in self.cells.named_parameters()]

    def flatten_parameters(self) -> None:
        """Nothing to do: the cells use their parameters where they are (as torch.nn's
        layers do on the CPU)."""

    def get_expected_hidden_size(
        self, input: Tensor, batch_sizes: Tensor | None
    ) -> tuple[int, int, int]:
        """``(D * num_layers, N, S_0)``, the shape of ``hx``'s first tensor for ``input``."""
        if batch_sizes is not None:
            batch = int(batch_sizes[0])
        else:
            batch = input.size(0) if self.batch_first else input.size(1)
        return (self.num_directions * self.num_layers, batch, self.state_sizes[0])

    def check_input(self, input: Tensor, batch_sizes: Tensor | None) -> None:
        """Raise :class:`InputError` unless ``input`` is ``(L, N, H_in)`` (or packed data
        ``(sum(lengths), H_in)`` with ``batch_sizes``)."""
        dims = 2 if batch_sizes is not None else 3
        if input.dim() != dims:
            raise InputError(
                f"input: expected {dims} dimensions, got shape {tuple(input.shape)} (input "
                f"must have {dims} dimensions, got {input.dim()})"
            )
        torch_says = TORCH_INPUT_SIZE.format(self.input_size, input.size(-1))
        check_width("input", input, self.input_size, "H_in = input_size", torch_says)

    def check_forward_args(
        self, input: Tensor, hidden: Tensor | State, batch_sizes: Tensor | None
    ) -> None:
        """:meth:`check_input`, then each state tensor's shape ``(D * num_layers, N, S_k)``."""
        self.check_input(input, batch_sizes)
        rows, batch, _ = self.get_expected_hidden_size(input, batch_sizes)
        states = (hidden,) if isinstance(hidden, Tensor) else tuple(hidden)
        for k, size in enumerate(self.state_sizes):
            name = "hx" if len(self.state_sizes) == 1 else f"hx[{k}]"
            expected = (rows, batch, size)
            torch_says = f"Expected hidden[{k}] size {expected}, got {list(states[k].shape)}"
            check_shape(name, states[k], expected, "(D * num_layers, N, S)", torch_says)

    def permute_hidden(self, hx: Tensor | State, permutation: Tensor | None) -> Tensor | State:
        """``hx`` with its batch (dimension 1) reordered by ``permutation`` (if not None)."""
        if permutation is None:
            return hx
        if isinstance(hx, Tensor):
            return hx.index_select(1, permutation)
        return tuple(h.index_select(1, permutation) for h in hx)


class CellLayer(Recurrent):
    """:class:`Recurrent` with a fixed cell: ``cell`` is the class attribute."""

    cell: type[RecurrentCell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(
            self.cell,
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            batch_first,
            dropout,
            **options,
        )


def detach_state(state: Tensor | State) -> Tensor | State:
    """Cut the graph behind a carried state, for truncated BPTT over a long stream.

    Example::

        state = None
        for chunk in stream:                       # (L_chunk, N, H_in) pieces of one series
            output, state = layer(chunk, state)
            loss_fn(output).backward()             # gradients stop at the chunk boundary
            state = detach_state(state)
    """
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)
