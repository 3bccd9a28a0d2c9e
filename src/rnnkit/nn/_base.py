"""The layer contract every rnnkit recurrent layer shares.

A layer is a stack of ``num_layers`` x ``D`` recurrences (``D = 2`` when bidirectional).
:class:`RecurrentBase` owns everything that is not the cell maths: the accepted input forms
(batched, unbatched, ``batch_first``, ``PackedSequence``, ``lengths``), the initial and final
states, validation at the boundary, stacking, direction and inter-layer dropout. Subclasses
only say what one recurrence computes (:meth:`RecurrentBase.recurrence`) and may offer a
fused kernel (:meth:`RecurrentBase._fused`).

Shape letters: ``L`` sequence length, ``N`` batch, ``H_in`` input features, ``H_out`` the
output width of one direction, ``D`` directions, ``S_k`` the width of state tensor ``k``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.functional import State, Step, scan
from rnnkit.nn._checks import check_finite, check_lengths, check_shape, check_tensor_like

Projection = Callable[[Tensor], Tensor]
FusedResult = tuple[Tensor, State]


class RecurrentBase(nn.Module):
    """Base class of the layers: see the module docstring for what it owns.

    Subclasses set ``input_size``, ``num_layers``, ``batch_first``, ``dropout``,
    ``bidirectional``, ``check_finite`` and implement :attr:`state_sizes` and
    :meth:`recurrence`.
    """

    input_size: int
    num_layers: int
    batch_first: bool
    dropout: float
    bidirectional: bool
    check_finite: bool

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Widths ``S_k`` of the state tensors of one recurrence; ``S_0`` is ``H_out``."""
        raise NotImplementedError

    def recurrence(self, layer: int, direction: int) -> tuple[Projection, Step]:
        """The maths of one recurrence as ``(project, step)``.

        ``project(x)`` maps ``(L, N, H_in_layer)`` to the per-step inputs of ``step`` for all
        steps at once; ``step(x_t, state) -> (y_t, new_state)`` as in
        :func:`rnnkit.functional.scan`.
        """
        raise NotImplementedError

    def _fused(self, x: Tensor, hx: State, batch_sizes: Tensor | None) -> FusedResult | None:
        """Run a fused kernel if one computes exactly this configuration, else return None.

        ``x`` is ``(L, N, H_in)``, or packed data ``(sum(lengths), H_in)`` when
        ``batch_sizes`` is given (then ``hx`` is in the packed, sorted batch order).
        """
        return None

    def _wrap_state(self, state: State) -> Tensor | State:
        """The final state as users receive it (torch.nn returns a bare tensor for one state)."""
        return state

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | State | None = None,
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor | PackedSequence, Tensor | State]:
        """Run the stack over a sequence.

        Args:
            input: ``(L, N, H_in)``, ``(N, L, H_in)`` with ``batch_first``, unbatched
                ``(L, H_in)``, or a ``PackedSequence``.
            hx: initial state, ``(D * num_layers, N, S_k)`` per state tensor
                (``(D * num_layers, S_k)`` for unbatched input); zeros when None.
            lengths: ``(N,)`` valid lengths of a padded batch, each in ``[0, L]``. Outputs
                past a sequence's length are zero and its final state is the state after its
                last valid step (the initial state for a length of 0).

        Returns:
            ``(output, h_n)``: output ``(L, N, D * H_out)`` in the input's layout (or a
            ``PackedSequence``), final state shaped like ``hx``.
        """
        weight = next(self.parameters())
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths: must be None when input is a PackedSequence")
            return self._forward_packed(input, hx, weight)
        check_tensor_like("input", input, weight)
        if input.dim() not in (2, 3):
            raise ValueError(
                "input: expected 3 dimensions (L, N, H_in) (or (N, L, H_in) with "
                "batch_first) or 2 for an unbatched sequence (L, H_in), got shape "
                f"{tuple(input.shape)}"
            )
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        length, batch, features = x.shape
        if features != self.input_size:
            raise ValueError(
                f"input: expected H_in = input_size = {self.input_size} features in the last "
                f"dimension, got shape {tuple(input.shape)}"
            )
        if length == 0:
            raise ValueError(f"input: expected a sequence length L >= 1, got {tuple(input.shape)}")
        if self.check_finite:
            check_finite("input", x)
        state = self._initial_state(hx, batch, weight, batched)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, length, x.device)
        output, state = self._run(x, state, lengths)
        if not batched:
            return output.squeeze(1), self._wrap_state(tuple(s.squeeze(1) for s in state))
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, self._wrap_state(state)

    def _forward_packed(
        self, packed: PackedSequence, hx: Tensor | State | None, weight: Tensor
    ) -> tuple[PackedSequence, Tensor | State]:
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        check_tensor_like("input", data, weight)
        if data.dim() != 2 or data.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected packed data of shape (sum(lengths), input_size = "
                f"{self.input_size}), got {tuple(data.shape)}"
            )
        if self.check_finite:
            check_finite("input", data)
        state = self._initial_state(hx, int(batch_sizes[0]), weight, batched=True)
        if sorted_indices is not None:
            state = tuple(s.index_select(1, sorted_indices) for s in state)
        fused = self._fused(data, state, batch_sizes)
        if fused is not None:
            out_data, state = fused
        else:
            # Reference path: pad (in the packed, sorted order), scan with lengths, re-pack.
            sorted_packed = PackedSequence(data, batch_sizes)
            padded, lengths = pad_packed_sequence(sorted_packed)
            output, state = self._run_reference(padded, state, lengths.to(data.device))
            out_data = pack_padded_sequence(output, lengths).data
        if unsorted_indices is not None:
            state = tuple(s.index_select(1, unsorted_indices) for s in state)
        output = PackedSequence(out_data, batch_sizes, sorted_indices, unsorted_indices)
        return output, self._wrap_state(state)

    def _initial_state(
        self, hx: Tensor | State | None, batch: int, weight: Tensor, batched: bool
    ) -> State:
        """Validate ``hx`` (or make zeros) as a tuple of ``(D * num_layers, N, S_k)``."""
        rows = self.num_directions * self.num_layers
        if hx is None:
            return tuple(weight.new_zeros(rows, batch, size) for size in self.state_sizes)
        if isinstance(hx, Tensor):
            hx = (hx,)
        if not isinstance(hx, tuple) or len(hx) != len(self.state_sizes):
            expected = (
                "a tensor"
                if len(self.state_sizes) == 1
                else (f"a tuple of {len(self.state_sizes)} tensors")
            )
            raise TypeError(f"hx: expected {expected}, got {type(hx).__name__}")
        state = []
        for k, (h, size) in enumerate(zip(hx, self.state_sizes, strict=True)):
            name = "hx" if len(hx) == 1 else f"hx[{k}]"
            check_tensor_like(name, h, weight)
            if batched:
                check_shape(name, h, (rows, batch, size), "(D * num_layers, N, S)")
            else:
                check_shape(name, h, (rows, size), "(D * num_layers, S) for unbatched input")
                h = h.unsqueeze(1)
            if self.check_finite:
                check_finite(name, h)
            state.append(h)
        return tuple(state)

    def _run(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        """``x`` ``(L, N, H_in)`` -> ``(L, N, D * H_out)`` and the final state."""
        if lengths is None:
            fused = self._fused(x, state, None)
            if fused is not None:
                return fused
            return self._run_reference(x, state, None)
        fused = self._fused_with_lengths(x, state, lengths)
        if fused is not None:
            return fused
        return self._run_reference(x, state, lengths)

    def _fused_with_lengths(self, x: Tensor, state: State, lengths: Tensor) -> FusedResult | None:
        """Feed a padded batch to the packed fused kernel; handle length 0 around it."""
        lengths_cpu = lengths.cpu()
        # Packing rejects empty sequences: run them for one step, then restore them below.
        packed = pack_padded_sequence(x, lengths_cpu.clamp(min=1), enforce_sorted=False)
        sorted_state = tuple(s.index_select(1, packed.sorted_indices) for s in state)
        fused = self._fused(packed.data, sorted_state, packed.batch_sizes)
        if fused is None:
            return None
        out_data, final = fused
        output, _ = pad_packed_sequence(
            PackedSequence(
                out_data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
            ),
            total_length=x.shape[0],
        )
        final = tuple(s.index_select(1, packed.unsorted_indices) for s in final)
        if bool((lengths_cpu == 0).any()):
            empty = (lengths == 0).view(1, -1, 1)
            output = output.masked_fill(empty, 0.0)
            final = tuple(torch.where(empty, s0, s) for s0, s in zip(state, final, strict=True))
        return output, final

    def _run_reference(
        self, x: Tensor, state: State, lengths: Tensor | None
    ) -> tuple[Tensor, State]:
        """The plain path: every recurrence through :func:`rnnkit.functional.scan`."""
        finals: list[list[Tensor]] = [[] for _ in self.state_sizes]
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                row = layer * self.num_directions + direction
                project, step = self.recurrence(layer, direction)
                out, final = scan(
                    step,
                    project(layer_input),
                    tuple(s[row] for s in state),
                    lengths,
                    reverse=direction == 1,
                )
                outputs.append(out)
                for k, s in enumerate(final):
                    finals[k].append(s)
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, tuple(torch.stack(f) for f in finals)
