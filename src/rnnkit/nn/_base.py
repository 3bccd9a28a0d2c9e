"""The layer contract every rnnkit recurrent layer shares.

A layer is a stack of ``num_layers`` x ``D`` recurrences (``D = 2`` when bidirectional).
:class:`RecurrentBase` owns everything that is not the cell maths: the accepted input forms
(batched, unbatched, ``batch_first``, ``PackedSequence``, ``lengths``), the initial and final
states, validation at the boundary, stacking, direction and inter-layer dropout. Subclasses
only say what one recurrence computes (:meth:`RecurrentBase.recurrence`) and may offer a
fused kernel (:meth:`RecurrentBase._fused`). It also owns the options every layer has:
a learnable initial state and the recurrent regularisers (variational recurrent dropout and
zoneout), which wrap any cell's step.

Shape letters: ``L`` sequence length, ``N`` batch, ``H_in`` input features, ``H_out`` the
output width of one direction, ``D`` directions, ``S_k`` the width of state tensor ``k``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.checks import (
    InputError,
    autocast_dtype,
    check_bool,
    check_finite,
    check_lengths,
    check_rate,
    check_shape,
    check_state_structure,
    check_tensor_like,
    check_width,
)
from rnnkit.functional import State, Step, in_chunks, scan
from rnnkit.nn import _engine
from rnnkit.nn._cell import Recurrence, RecurrentCell, first_parameter

RunResult = tuple[Tensor, State]  # an output (L, N, *) and a final state
#: How a layer runs: ``"auto"`` takes the fastest path that computes exactly its
#: configuration (torch's fused kernel, rnnkit's engine, a cell's own scan); ``"reference"``
#: always loops over the cells' steps, the equations as written.
BACKENDS = ("auto", "reference")
#: torch.nn's layers' message for input of the wrong width (``.format(input_size, width)``)
TORCH_INPUT_SIZE = "input.size(-1) must be equal to input_size. Expected {}, got {}"
# The cells' scans that are a loop over their steps, which may run in chunks of steps.
_STEP_LOOPS = (RecurrentCell.scan, Recurrence.scan)


class RecurrentBase(nn.Module):
    """Base class of the layers: see the module docstring for what it owns.

    Subclasses set ``input_size``, ``num_layers``, ``batch_first``, ``dropout``,
    ``bidirectional``, ``check_finite``, implement :attr:`state_sizes` and
    :meth:`recurrence`, and call :meth:`_init_options` at the end of ``__init__``.
    """

    input_size: int
    num_layers: int
    batch_first: bool
    dropout: float
    bidirectional: bool
    check_finite: bool
    learn_init: bool
    recurrent_dropout: float
    zoneout: float

    _backend = "auto"

    @property
    def backend(self) -> str:
        """``"auto"`` or ``"reference"`` (see :data:`BACKENDS`); assign to switch."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {value!r}")
        self._backend = value

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Widths ``S_k`` of the state tensors of one recurrence; ``S_0`` is ``H_out``."""
        raise NotImplementedError

    def recurrence(self, layer: int, direction: int) -> RecurrentCell | Recurrence:
        """The maths of one recurrence: an object with ``project``, ``step`` and ``scan``.

        See :mod:`rnnkit.nn._cell` for the contract of the three.
        """
        raise NotImplementedError

    def _init_options(
        self,
        learn_init: bool,
        recurrent_dropout: float,
        zoneout: float,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        """Check and set up the options every layer has (call once the sizes are set).

        Args:
            learn_init: learn the initial state (one vector per layer, direction and state
                tensor, zeros at first) instead of starting from zeros when ``hx`` is None.
            recurrent_dropout: variational dropout on the recurrent input (Gal & Ghahramani
                2016): in training, the ``state[0]`` (e.g. ``h``) that enters the recurrent
                weights is multiplied by one dropout mask per sequence, the same at every
                step (the cell's ``step`` receives it as ``dropout_mask``).
            zoneout: zoneout (Krueger et al. 2016): in training, each unit of each state
                tensor keeps its previous value with this probability at every step; in
                eval, as in the paper, the state is the expectation
                ``zoneout * old + (1 - zoneout) * new``.
        """
        self.learn_init = check_bool("learn_init", learn_init)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.zoneout = check_rate("zoneout", zoneout)
        rows = self.num_directions * self.num_layers
        self.initial_state = (
            nn.ParameterList(
                nn.Parameter(torch.zeros(rows, size, device=device, dtype=dtype))
                for size in self.state_sizes
            )
            if learn_init
            else None
        )

    def _plain(self) -> bool:
        """True when no regulariser changes the cell's steps (so a fused kernel may run)."""
        return self.zoneout == 0 and not (self.training and self.recurrent_dropout > 0)

    def engine_kernel(self, layer: int, direction: int) -> _engine.Fused | None:
        """How one recurrence runs on rnnkit's engine (:mod:`rnnkit.nn._engine`): its cell's
        ``engine_kernel()``, or None where it has none."""
        cell = self.recurrence(layer, direction)
        if not hasattr(cell, "engine_kernel") or not _engine.computes(cell):
            return None
        return cell.engine_kernel()

    def _can_fuse(self) -> bool:
        """Whether :meth:`_fused` computes exactly the current configuration."""
        return False

    def _fused(self, x: Tensor, hx: State, batch_sizes: Tensor | None) -> RunResult:
        """Run the fused kernel (only called when :meth:`_can_fuse`).

        ``x`` is ``(L, N, H_in)``, or packed data ``(sum(lengths), H_in)`` when
        ``batch_sizes`` is given (then ``hx`` is in the packed, sorted batch order).
        """
        raise NotImplementedError

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
        """Run the stack over a sequence (:meth:`_forward`).

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
        if torch.compiler.is_compiling():
            return self._outside_the_graph(input, hx, lengths)
        return self._forward(input, hx, lengths)

    # torch.compile runs the layers eagerly between its graphs, as it does torch.nn's RNN
    # modules: the engine's numba loops and hand-written backward are not traceable. Only a
    # call being compiled goes through the wrapper, which costs an eager call microseconds.
    @torch.compiler.disable
    def _outside_the_graph(self, *args: object) -> tuple[Tensor | PackedSequence, Tensor | State]:
        return self._forward(*args)

    def _forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | State | None = None,
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor | PackedSequence, Tensor | State]:
        """:meth:`forward`, eagerly."""
        # Inputs must match the parameters' dtype and device (the input's own, if none).
        weight = first_parameter(self)
        if weight is None:
            weight = input.data if isinstance(input, PackedSequence) else input
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError(
                    "lengths: expected None when input is a PackedSequence (it carries its "
                    f"own lengths), got {lengths!r}"
                )
            return self._forward_packed(input, hx, weight)
        check_tensor_like("input", input, weight)
        if input.dim() not in (2, 3):
            raise InputError(
                "input: expected 3 dimensions (L, N, H_in) (or (N, L, H_in) with "
                "batch_first) or 2 for an unbatched sequence (L, H_in), got shape "
                f"{tuple(input.shape)} ({type(self).__name__}: Expected input to be 2D or 3D, "
                f"got {input.dim()}D{' tensor' * isinstance(self, nn.RNN)} instead)"
            )
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        length, batch, features = x.shape
        torch_says = TORCH_INPUT_SIZE.format(self.input_size, features)
        check_width("input", input, self.input_size, "H_in = input_size", torch_says)
        if length == 0:
            raise InputError(
                f"input: expected a sequence length L >= 1, got {tuple(input.shape)} (Expected "
                "sequence length to be larger than 0 in RNN)"
            )
        if self.check_finite:
            check_finite("input", x)
        state = self._initial_state(hx, batch, weight, batched)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, length, x.device)
            if batch == 0 or int(lengths.min()) == length:
                lengths = None  # nothing to mask: skip packing (and it rejects empty batches)
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
            torch_says = (
                f"input must have 2 dimensions, got {data.dim()}"
                if data.dim() != 2
                else TORCH_INPUT_SIZE.format(self.input_size, data.shape[-1])
            )
            raise InputError(
                f"input: expected packed data of shape (sum(lengths), input_size = "
                f"{self.input_size}), got {tuple(data.shape)} ({torch_says})"
            )
        if self.check_finite:
            check_finite("input", data)
        state = self._initial_state(hx, int(batch_sizes[0]), weight, batched=True)
        if sorted_indices is not None:
            state = tuple(s.index_select(1, sorted_indices) for s in state)
        if self.backend == "auto" and self._can_fuse():
            out_data, state = self._fused(data, state, batch_sizes)
        else:
            # Pad (in the packed, sorted order), run with lengths, re-pack.
            sorted_packed = PackedSequence(data, batch_sizes)
            padded, lengths = pad_packed_sequence(sorted_packed)
            output, state = self._run(padded, state, lengths.to(data.device))
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
            if self.initial_state is not None:
                return tuple(h0.unsqueeze(1).expand(-1, batch, -1) for h0 in self.initial_state)
            return tuple(weight.new_zeros(rows, batch, size) for size in self.state_sizes)
        hx = check_state_structure(hx, len(self.state_sizes))
        for k, h in enumerate(hx):
            check_tensor_like("hx" if len(hx) == 1 else f"hx[{k}]", h, weight)
        dims = 3 if batched else 2
        # torch.nn's words for state tensors of the wrong number of dimensions
        wrong_dims = f"For {'batched 3-D' if batched else 'unbatched 2-D'} input, hx " + (
            f"should also be {dims}-D but got {hx[0].dim()}-D tensor"
            if len(hx) == 1
            else f"and cx should also be {dims}-D but got "
            f"({', '.join(f'{h.dim()}-D' for h in hx)}) tensors"
        )
        state = []
        for k, (h, size) in enumerate(zip(hx, self.state_sizes, strict=True)):
            name = "hx" if len(hx) == 1 else f"hx[{k}]"
            expected = (rows, batch, size) if batched else (rows, size)
            torch_name = "hidden" if len(hx) == 1 else f"hidden[{k}]"
            if any(other.dim() != dims for other in hx):
                torch_says = wrong_dims
            else:
                torch_says = f"Expected {torch_name} size {expected}, got {list(h.shape)}"
            if batched:
                check_shape(name, h, expected, "(D * num_layers, N, S)", torch_says)
            else:
                check_shape(
                    name, h, expected, "(D * num_layers, S) for unbatched input", torch_says
                )
                h = h.unsqueeze(1)
            if self.check_finite:
                check_finite(name, h)
            state.append(h)
        return tuple(state)

    def _run(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        """``x`` ``(L, N, H_in)`` -> ``(L, N, D * H_out)`` and the final state."""
        if self.backend == "reference" or not self._can_fuse():
            if autocast_dtype(x.device) is not None:
                # rnnkit's own loops have no reduced-precision kernels: like the ops on
                # autocast's float32 list, they run in the parameters' dtype
                dtype = first_parameter(self).dtype
                with torch.autocast(x.device.type, enabled=False):
                    return self._run(x.to(dtype), tuple(s.to(dtype) for s in state), lengths)
            # exporting: torch ops only (no numba, no hand-written backward)
            if self.backend == "reference" or torch.compiler.is_exporting():
                return self._run_reference(x, state, lengths)
            result = self._on_engine(x, state, lengths)
            return self._run_reference(x, state, lengths) if result is None else result
        if lengths is None:
            return self._fused(x, state, None)
        if _engine.takes_lengths(x, state):  # no packing, no steps past the lengths
            result = self._on_engine(x, state, lengths)
            if result is not None:
                return result
        return self._fused_with_lengths(x, state, lengths)

    def _on_engine(self, x: Tensor, state: State, lengths: Tensor | None) -> RunResult | None:
        """:func:`rnnkit.nn._engine.run` of this layer (None where a recurrence has no kernel)."""
        return _engine.run(self, x, state, lengths)

    def _fused_with_lengths(self, x: Tensor, state: State, lengths: Tensor) -> RunResult:
        """Feed a padded batch to the packed fused kernel; handle length 0 around it."""
        lengths_cpu = lengths.cpu()
        # Packing rejects empty sequences: run them for one step, then restore them below.
        packed = pack_padded_sequence(x, lengths_cpu.clamp(min=1), enforce_sorted=False)
        sorted_state = tuple(s.index_select(1, packed.sorted_indices) for s in state)
        out_data, final = self._fused(packed.data, sorted_state, packed.batch_sizes)
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
        """The plain path: each recurrence's ``scan`` (or a regularised loop of its steps)."""

        def recurrence(index: int, direction: int, inputs: Tensor, initial: State) -> RunResult:
            cell = self.recurrence(index, direction)
            reverse = direction == 1
            # a scan of the cell's own (e.g. a parallel scan), but not in an exported graph
            if (
                self._plain()
                and self.backend == "auto"
                and type(cell).scan not in _STEP_LOOPS
                and not torch.compiler.is_exporting()
            ):
                return cell.scan(cell.project(inputs), initial, lengths, reverse)
            step = cell.step if self._plain() else self._regularised(cell.step)
            run = partial(scan, step, reverse=reverse)
            return in_chunks(run, cell.project, inputs, initial, lengths, reverse)

        return self.run_stack(x, state, recurrence, partial(F.dropout, p=self.dropout))

    def run_stack(
        self,
        x: Tensor,
        state: State,
        recurrence: Callable[[int, int, Tensor, State], RunResult],
        dropout: Callable[[Tensor], Tensor],
    ) -> RunResult:
        """The stack's loop over layers and directions, for every path that runs one.

        Args:
            x: ``(L, N, H_in)``; state: ``(D * num_layers, N, S_k)`` per state tensor.
            recurrence: ``(layer, direction, inputs (L, N, *), initial ((N, S_k), ...))
                -> (output (L, N, S_0), final state)``.
            dropout: inter-layer dropout of an ``(L, N, D * S_0)`` output (only called in
                training, when ``self.dropout > 0``, between layers).

        Returns:
            The top layer's output ``(L, N, D * S_0)`` and the final state, as ``state``.
        """
        finals: list[list[Tensor]] = [[] for _ in state]
        layer_input = x
        for index in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                row = index * self.num_directions + direction
                initial = tuple(s[row] for s in state)
                out, final = recurrence(index, direction, layer_input, initial)
                outputs.append(out)
                for k, s in enumerate(final):
                    finals[k].append(s)
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
            if self.dropout > 0 and self.training and index < self.num_layers - 1:
                layer_input = dropout(layer_input)
        return layer_input, tuple(torch.stack(f) for f in finals)

    def _regularised(self, step: Step) -> Step:
        """``step`` with recurrent dropout and zoneout applied (see :meth:`_init_options`)."""
        drop = self.recurrent_dropout if self.training else 0.0
        zoneout, training = self.zoneout, self.training
        masks: list[Tensor] = []  # the one recurrent-dropout mask of this sequence

        def regularised(x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
            if drop > 0:
                if not masks:
                    masks.append(F.dropout(torch.ones_like(state[0]), drop, training=True))
                new_state = step(x_t, state, dropout_mask=masks[0])
            else:
                new_state = step(x_t, state)
            if zoneout == 0:
                return new_state
            if training:
                return tuple(
                    torch.where(torch.rand_like(new) < zoneout, old, new)
                    for old, new in zip(state, new_state, strict=True)
                )
            return tuple(
                torch.lerp(new, old, zoneout) for old, new in zip(state, new_state, strict=True)
            )

        return regularised
