"""The fast path of the layers: whole recurrences in :mod:`rnnkit.functional.fused`.

:func:`run` computes what :meth:`RecurrentBase._run_reference` computes, the recurrent
regularisers and their random draws included, but each recurrence is one fused call with a
hand-written backward instead of an autograd record per step. A cell offers its kernel
through its ``engine_kernel()`` (built with :func:`lstm_kernel`, :func:`gru_kernel` or
:func:`one_state_kernel`), a layer through :meth:`RecurrentBase.engine_kernel`. Where a
recurrence has none (or a subclass changed the maths it was written for, see
:func:`computes`), and where the loops do not run (:func:`runs`: another device, float16 or
bfloat16, a large training batch), :func:`run` returns None and the layer takes the
reference path.
Inference (no gradient, no lengths) runs the LSTM and GRU families from the raw inputs
(:func:`lstm_inference`, :func:`gru_inference`) and the others in chunks of steps. With two
torch threads or more a bidirectional layer runs its two directions at once
(:func:`rnnkit.functional.fused.side_by_side`), and a one-direction stack's inference the two
halves of its batch (:func:`_in_halves`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.functional import State, in_chunks, tuning
from rnnkit.functional.fused import (
    Options,
    Plan,
    fused_gru,
    fused_indrnn,
    fused_jordan,
    fused_lstm,
    gru_inference,
    lstm_inference,
    numba_runs,
    side_by_side,
    side_by_side_run,
    single_threaded_blas,
)
from rnnkit.functional.linear import linear
from rnnkit.functional.minimal import min_gru_scan, min_lstm_scan
from rnnkit.nn._cell import Projection

if TYPE_CHECKING:
    from rnnkit.nn._base import RecurrentBase, RunResult

# kernel(gi, state, mask, keep, options) -> (output, final state)
Kernel = Callable[[Tensor, State, Tensor | None, Tensor | None, Options], tuple[Tensor, State]]
# infer(x, state, options=...) -> (output, final state), or None where it does not run
Inference = Callable[..., tuple[Tensor, State] | None]


class Fused(NamedTuple):
    """How one recurrence runs fused."""

    kernel: Kernel
    fields: dict  # the kernel's Options fields
    project: Projection  # the input projection the kernel takes
    #: inference from the raw inputs, the projection included (see :func:`lstm_inference`)
    infer: Inference | None = None
    #: whether the kernel takes the recurrent regularisers (``mask``, ``keep``, ``rate``);
    #: where not, a regularised layer takes the reference path
    regularised: bool = True


def _lstm(
    gi: Tensor,
    state: State,
    mask: Tensor | None,
    keep: Tensor | None,
    options: Options,
    **weights: object,
) -> tuple[Tensor, State]:
    out, final = fused_lstm(
        gi, (state[0], state[1]), mask=mask, keep=keep, options=options, **weights
    )
    return out, final


def one_state_kernel(
    fused: Callable[..., tuple[Tensor, Tensor]], *weights: Tensor | None
) -> Kernel:
    """The kernel of a one-tensor-state recurrence run by ``fused`` (e.g. ``fused_indrnn``)."""

    def kernel(
        gi: Tensor, state: State, mask: Tensor | None, keep: Tensor | None, options: Options
    ) -> tuple[Tensor, State]:
        out, final = fused(gi, state[0], *weights, mask=mask, keep=keep, options=options)
        return out, (final,)

    return kernel


def scan_kernel(scan: Callable[..., tuple[Tensor, Tensor]], project: Projection, **fields) -> Fused:
    """A one-tensor-state recurrence that runs whole as ``scan(gi, h0, lengths, reverse,
    **fields)`` (minGRU's parallel scan), in training and inference alike; it takes no
    recurrent regularisers."""

    def kernel(
        gi: Tensor, state: State, mask: Tensor | None, keep: Tensor | None, options: Options
    ) -> tuple[Tensor, State]:
        plan = options.plan
        lengths = None if plan.lengths is None else torch.tensor(plan.lengths, device=gi.device)
        out, final = scan(gi, state[0], lengths, plan.reverse, **fields)
        return out, (final,)

    def infer(x: Tensor, state: State, options: Options) -> tuple[Tensor, State]:
        return kernel(project(x), state, None, None, options)

    return Fused(kernel, {}, project, infer, regularised=False)


def lstm_kernel(
    w_ih: Tensor,
    b_ih: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None,
    fields: dict | None = None,
    **weights: object,
) -> Fused:
    """An LSTM-family recurrence whose input projection also adds ``b_hh``: one add of a
    ``(4H,)`` vector instead of one over ``(L, N, 4H)`` (in the LSTM, ``b_hh`` only adds)."""
    bias = None if b_ih is None else b_ih + b_hh  # these cells have both biases or neither
    return Fused(
        partial(_lstm, w_hh=w_hh, **weights),
        fields or {},
        partial(linear, weight=w_ih, bias=bias),
        partial(lstm_inference, w_ih=w_ih, b_ih=bias, w_hh=w_hh, **weights),
    )


def gru_kernel(
    project: Projection,
    w_ih: Tensor,
    b_ih: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None,
    fields: dict | None = None,
    **norms: tuple[Tensor, Tensor | None],
) -> Fused:
    """A GRU-family recurrence; ``project`` is the input projection its kernel takes (the
    cell's, ``LN_ih`` included), ``norms`` its ``ln_hh`` and ``ln_ih``."""
    ln_hh, ln_ih = norms.get("ln_hh"), norms.get("ln_ih")

    def infer(x: Tensor, state: State, options: Options) -> tuple[Tensor, State] | None:
        result = gru_inference(x, state[0], w_ih, b_ih, w_hh, b_hh, ln_hh, ln_ih, options)
        return None if result is None else (result[0], (result[1],))

    kernel = one_state_kernel(partial(fused_gru, ln_hh=ln_hh), w_hh, b_hh)
    return Fused(kernel, fields or {}, project, infer)


#: What the cells' ``engine_kernel`` hooks build from (see :mod:`rnnkit.cells._spec`).
HOOKS = SimpleNamespace(
    Fused=Fused,
    lstm_kernel=lstm_kernel,
    gru_kernel=gru_kernel,
    one_state_kernel=one_state_kernel,
    scan_kernel=scan_kernel,
    fused_indrnn=fused_indrnn,
    fused_jordan=fused_jordan,
    min_gru_scan=min_gru_scan,
    min_lstm_scan=min_lstm_scan,
)


def computes(cell: object) -> bool:
    """Whether ``cell.engine_kernel()`` computes ``cell``'s maths: a subclass that changes
    ``step`` or ``project`` after the class that wrote its kernel keeps the reference path."""
    kind = type(cell)
    owner = next((k for k in kind.__mro__ if "engine_kernel" in vars(k)), None)
    return owner is not None and all(
        getattr(kind, name) is getattr(owner, name) for name in ("step", "project")
    )


def _inference(
    fused: Fused, x: Tensor, state: State, plan: Plan, rate: float
) -> tuple[Tensor, State] | None:
    """Inference: the recurrence over ``x`` ``(L, N, H_in)`` from ``state``, by ``fused.infer``
    where it runs, else (without lengths) in chunks of steps
    (:func:`rnnkit.functional.in_chunks`). No gradient, no random regularisers; ``rate``:
    eval zoneout.

    Returns:
        The output ``(L, N, H_out)`` and the final state; None with lengths where
        ``fused.infer`` does not run (the caller's general path takes them).
    """
    if fused.infer is not None:
        result = fused.infer(x, state, options=Options(plan, rate=rate, **fused.fields))
        if result is not None:
            return result
    if plan.lengths is not None:
        return None

    def run(gi: Tensor, state: State, lengths: None) -> tuple[Tensor, State]:
        chunk = Plan(gi.shape[0], gi.shape[1], None, plan.reverse)
        return fused.kernel(
            gi, state, None, None, Options(chunk, rate=rate, scratch=True, **fused.fields)
        )

    return in_chunks(run, fused.project, x, state, None, plan.reverse)


def runs(x: Tensor) -> bool:
    """Whether the engine runs over ``x`` ``(L, N, H_in)``: where its compiled loops take ``x``
    (:func:`numba_runs`), in training up to ``tuning.MAX_TRAINING_BATCH`` rows."""
    training = torch.is_grad_enabled() and x.shape[1] > tuning.MAX_TRAINING_BATCH
    return not training and numba_runs(x)


def takes_lengths(x: Tensor, state: State) -> bool:
    """Whether a layer that runs torch's own kernel takes ``lengths=`` here instead: inference
    (no gradient, no trace or export to record torch ops for) where the numba loops run and a
    step's work, batch x state width^2, is at most ``tuning.ENGINE_LENGTHS_WORK``."""
    width = state[0].shape[-1]
    return (
        not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_exporting()
        and numba_runs(x)
        and x.shape[1] * width * width <= tuning.ENGINE_LENGTHS_WORK
    )


def run(
    layer: RecurrentBase, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State] | None:
    """The stack over ``x`` ``(L, N, H_in)`` from ``state`` (tuple of ``(D * layers, N, S_k)``),
    as :meth:`RecurrentBase._run_reference`; None where the loops do not run (see
    :func:`runs`) or a recurrence has no fused kernel."""
    if not runs(x):
        return None
    with single_threaded_blas():  # once for all the loops of the stack
        if _halves(layer, x, state):
            return _in_halves(layer, x, state, lengths)
        return _run(layer, x, state, lengths)


def _halves(layer: RecurrentBase, x: Tensor, state: State) -> bool:
    """Whether :func:`_in_halves` runs the stack: inference (no gradient, no random draws) of
    a one-direction stack (a bidirectional one runs its directions side by side instead)
    whose steps x rows x state width reach ``tuning.SPLIT_WORK``, where :func:`side_by_side`
    would run two loops at once."""
    steps, batch, _ = x.shape
    return (
        layer.num_directions == 1
        and not layer.training
        and not torch.is_grad_enabled()
        and batch >= 2
        and steps * batch * state[0].shape[-1] >= tuning.SPLIT_WORK
        and side_by_side(x)
    )


def _in_halves(
    layer: RecurrentBase, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State] | None:
    """:func:`_run` over the two halves of the batch at once, on two of torch's OpenMP threads
    (:func:`side_by_side_run`). The rows of a batch are independent, so each half runs the
    whole stack, input projections and layer norms included."""
    half = x.shape[1] // 2

    def rows(part: slice) -> Callable[[], tuple[Tensor, State] | None]:
        initial = tuple(s[:, part] for s in state)
        return partial(_run, layer, x[:, part], initial, None if lengths is None else lengths[part])

    first, second = side_by_side_run(rows(slice(None, half)), rows(slice(half, None)))
    if first is None or second is None:
        return None
    final = tuple(torch.cat(pair, 1) for pair in zip(first[1], second[1], strict=True))
    return torch.cat((first[0], second[0]), 1), final


def _run(
    layer: RecurrentBase, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State] | None:
    directions = range(layer.num_directions)
    kernels = [layer.engine_kernel(i, d) for i in range(layer.num_layers) for d in directions]
    if any(k is None or not (k.regularised or layer._plain()) for k in kernels):
        return None
    steps, batch, _ = x.shape
    order = None
    if lengths is not None:
        # Sorted by decreasing length, the sequences still running are a prefix of the batch.
        lengths, order = lengths.sort(descending=True, stable=True)
        x = x.index_select(1, order)
        state = tuple(s.index_select(1, order) for s in state)
    plans = [
        Plan(steps, batch, None if order is None else lengths.tolist(), d == 1) for d in directions
    ]
    drop = layer.recurrent_dropout if layer.training else 0.0
    zoneout_rate = 0.0 if layer.training else layer.zoneout
    draw_keep = layer.training and layer.zoneout > 0
    scratch = not torch.is_grad_enabled()  # gi is this function's own

    def rows(noise: Tensor, dim: int) -> Tensor:
        """Random draws made in the caller's batch order, in the sorted one."""
        return noise if order is None else noise.index_select(dim, order)

    def prepare(
        index: int, direction: int, inputs: Tensor, initial: State
    ) -> Callable[[], RunResult]:
        """Make the recurrence's random draws now and return what runs it."""
        fused = kernels[index * layer.num_directions + direction]
        # The reference path's draws, in its order: the dropout mask at the first step,
        # then at each step (in running order) one zoneout draw per state tensor.
        mask = keep = None
        if drop > 0:
            mask = rows(F.dropout(torch.ones_like(initial[0]), drop, training=True), 0)
        if draw_keep:
            shape = (steps, len(initial), batch, initial[0].shape[-1])
            keep = rows(torch.rand(shape, dtype=x.dtype, device=x.device) < layer.zoneout, 2)
            keep = keep.flip(0) if direction == 1 else keep

        def compute() -> RunResult:
            if scratch and mask is None and keep is None:
                result = _inference(fused, inputs, initial, plans[direction], zoneout_rate)
                if result is not None:
                    return result
            options = Options(plans[direction], rate=zoneout_rate, scratch=scratch, **fused.fields)
            return fused.kernel(fused.project(inputs), initial, mask, keep, options)

        return compute

    # With two directions side by side, both run at the forward direction's turn (draws in the
    # reference path's order first); the backward one's turn collects its result.
    pending: dict[int, RunResult] = {}
    both = layer.num_directions == 2 and side_by_side(x)

    def recurrence(index: int, direction: int, inputs: Tensor, initial: State) -> RunResult:
        if not both:
            return prepare(index, direction, inputs, initial)()
        if direction == 1:
            return pending.pop(index)
        here = prepare(index, 0, inputs, initial)
        there = prepare(index, 1, inputs, tuple(s[2 * index + 1] for s in state))
        result, pending[index] = side_by_side_run(here, there)
        return result

    def dropout(output: Tensor) -> Tensor:
        noise = F.dropout(torch.ones_like(output), layer.dropout, training=True)
        return output * rows(noise, 1)

    layer_input, final_state = layer.run_stack(x, state, recurrence, dropout)
    if order is not None:
        inverse = torch.argsort(order)
        layer_input = layer_input.index_select(1, inverse)
        final_state = tuple(s.index_select(1, inverse) for s in final_state)
    return layer_input, final_state
