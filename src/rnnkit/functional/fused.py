"""Fused recurrences: a whole sequence per call, with a hand-written backward.

The reference path records every step on the autograd tape (a dozen nodes per step), which
makes forward+backward many times slower than ``torch.nn.LSTM`` at small batches
(benchmarks/README.md, "Measured"). Here each recurrence is one
:class:`torch.autograd.Function` around two loops compiled by numba
(:mod:`rnnkit.functional._fused_numba`, their gate equations those of
:mod:`rnnkit.runtime.gates`): the forward loops over time into preallocated buffers,
keeping the activations; the backward loops in reverse with the closed-form derivatives and
leaves every parameter gradient to one batched reduction (a GEMM for the recurrent weights)
after the loop. The input projection of all steps stays outside, on the autograd tape, as one
GEMM. The loops' products call torch's own BLAS (:mod:`._gemm`); where they fall back to
SciPy's, each runs with it held to one thread, and a caller running many of them (the layers
do) holds it once around them all with :func:`single_threaded_blas`. How each loop is called
on tensors is :mod:`rnnkit.functional._numba_calls`.

Inference of the LSTM and GRU families have functions of their own, :func:`lstm_inference` and
:func:`gru_inference`: one loop that projects each step's input as it goes and keeps nothing
for a backward.

Variable lengths run on a batch sorted by decreasing length: step ``t`` only touches the
first rows (the sequences still running), as torch's packed kernels do.

The loops take CPU tensors of float32 or float64 (:func:`numba_runs`); the layers call these
functions only there (:func:`rnnkit.nn._engine.runs`), and take their reference path
elsewhere.

Every function takes the regularisers of :class:`rnnkit.nn.RecurrentBase`: ``mask``
``(N, S_0)``, the variational recurrent-dropout mask on the state that enters the recurrent
weights; ``keep`` ``(L, K, N, S)`` bool, training zoneout (state ``k`` keeps its old value at
step ``t`` where ``keep[t, k]``); ``Options.rate``, eval zoneout (``lerp(new, old, rate)``)
when ``keep`` is None.

Shape letters: ``L`` steps, ``N`` batch, ``H`` hidden size, ``O`` Jordan output size, ``K``
state tensors. Gate orders follow ``torch.nn``: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from rnnkit.functional import _numba_calls as calls
from rnnkit.functional import tuning
from rnnkit.functional._numba_calls import (
    numba_runs,
    side_by_side,
    side_by_side_run,
    single_threaded_blas,
)
from rnnkit.functional.linear import weight_grad
from rnnkit.functional.memory import huge_pages

__all__ = [
    "Options",
    "Plan",
    "fused_gru",
    "fused_indrnn",
    "fused_jordan",
    "fused_lstm",
    "gru_inference",
    "lstm_inference",
    # how the engine's dispatch (rnnkit.nn._engine) runs the loops
    "numba_runs",
    "side_by_side",
    "side_by_side_run",
    "single_threaded_blas",
]

try:
    from rnnkit.functional import _fused_numba
except ImportError:  # no numba for this platform: nothing calls these functions
    _fused_numba = None


class Plan:
    """The time loop of one direction: which rows run at each step.

    States live in one ``(L+1, N, S)`` buffer per state tensor, indexed so that step ``t``
    reads ``states[prev]`` and writes ``states[new]``: ``(t, t+1)`` forward, ``(t+1, t)``
    backwards in time; the initial state is at ``states[0]`` (forward) or ``states[L]``.

    Args:
        steps: ``L``.
        batch: ``N``.
        lengths: per-sequence lengths in decreasing order, or None when every sequence has
            all ``L`` steps.
        reverse: run from ``t = L-1`` down to 0.
    """

    def __init__(self, steps: int, batch: int, lengths: list[int] | None, reverse: bool) -> None:
        self.steps, self.batch, self.lengths, self.reverse = steps, batch, lengths, reverse
        # (L,) the sequences still running at step t: a prefix of the sorted batch
        self.rows = np.full(steps, batch, dtype=np.int64)
        if lengths is not None:
            self.rows = (np.arange(steps)[:, None] < np.array(lengths)).sum(1)
        self.first = steps if reverse else 0  # where the initial state sits

    def empty(self, *shape: int, like: Tensor) -> Tensor:
        """A buffer; zeros where lengths leave rows unwritten (they must stay finite)."""
        buffer = huge_pages(like.new_empty(shape))
        return buffer if self.lengths is None else buffer.zero_()

    def valid(self, like: Tensor) -> Tensor | None:
        """``(L, N, 1)``: whether step ``t`` of sequence ``n`` runs."""
        if self.lengths is None:
            return None
        lengths = torch.tensor(self.lengths, device=like.device)
        return (torch.arange(self.steps, device=like.device).unsqueeze(1) < lengths).unsqueeze(-1)

    def inputs(self, states: Tensor) -> Tensor:
        """``(L, N, S)``: the state each step read."""
        return states[1:] if self.reverse else states[:-1]

    def written(self, states: Tensor) -> Tensor:
        """``(L, N, S)``: the state each step wrote."""
        return states[:-1] if self.reverse else states[1:]

    def outputs(self, states: Tensor, copy: bool = True) -> Tensor:
        """``(L, N, S)``: the state each step wrote, zero past each length; a new tensor
        unless ``copy`` is False (then a view of ``states`` when all steps run)."""
        out = self.written(states)
        valid = self.valid(out)
        if valid is None:
            return out.clone() if copy else out
        return out.masked_fill(~valid, 0.0)

    def final(self, states: Tensor) -> Tensor:
        """``(N, S)``: each sequence's last state, from ``(L+1, N, S)`` states or from fewer
        slots used in turn (step ``t``'s state in slot ``t % len``)."""
        slots = states.shape[0]
        if self.lengths is None:
            return states[(0 if self.reverse else self.steps) % slots].clone()
        lengths = torch.tensor(self.lengths, device=states.device)
        last = torch.where(lengths > 0, 0, self.steps) if self.reverse else lengths
        return states[last % slots, torch.arange(self.batch, device=states.device)]

    def grads(self, grad_out: Tensor) -> Tensor:
        """``grad_out`` ``(L, N, S)``, zero past each length."""
        valid = self.valid(grad_out)
        return grad_out.contiguous() if valid is None else grad_out.masked_fill(~valid, 0.0)


@dataclass(frozen=True)
class Options:
    """Non-tensor arguments of the fused functions."""

    plan: Plan
    rate: float = 0.0  # eval zoneout
    eps: float = 1e-5  # layer norm
    nonlinearity: str = "tanh"
    output_nonlinearity: str = "identity"
    #: ``gi`` is the caller's to give up and nothing will be differentiated (inference):
    #: the loop may write over ``gi`` and return views of its buffers rather than copies.
    scratch: bool = False

    def zoned(self, keep: Tensor | None) -> bool:
        return keep is not None or self.rate > 0


def _options(name: str, gi: Tensor, options: Options | None) -> Options:
    """``options``, or all steps forward without zoneout; ``name``'s error where its loops
    cannot take ``gi`` (the layers take their reference path there)."""
    if not calls.numba_runs(gi):
        raise ValueError(
            f"{name}: gi: expected a CPU float32 or float64 tensor, with numba installed, "
            f"got {gi.dtype} on {gi.device}"
        )
    return options or Options(Plan(gi.shape[0], gi.shape[1], None, False))


def _recurrent_inputs(plan: Plan, states: Tensor, mask: Tensor | None) -> Tensor:
    """``(L, N, S)``: what entered the recurrent weights at each step."""
    inputs = plan.inputs(states)
    return inputs if mask is None else inputs * mask


# ----------------------------------------------------------------------------- LSTM family


class _LSTM(torch.autograd.Function):
    """The LSTM family; see :func:`fused_lstm`."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        gi: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        ln_w_hh: Tensor | None,
        ln_b_hh: Tensor | None,
        w_peep: Tensor | None,
        ln_w_c: Tensor | None,
        ln_b_c: Tensor | None,
        ln_w_ih: Tensor | None,
        ln_b_ih: Tensor | None,
        mask: Tensor | None,
        keep: Tensor | None,
        opt: Options,
    ) -> tuple[Tensor, Tensor, Tensor]:
        plan = opt.plan
        zoned = opt.zoned(keep)
        steps, batch, gates = gi.shape
        hidden = gates // 4
        # act (L, N, 4H): pre-activations, then activations. The loop copies gi + b_hh into
        # it row by row, where a pass of its own would be a fresh buffer's page faults.
        act = gi if opt.scratch else plan.empty(*gi.shape, like=gi)
        if b_hh is not None and opt.scratch:
            act += b_hh
        hs = plan.empty(steps + 1, batch, hidden, like=gi)  # states, see Plan
        cs = plan.empty(steps + 1, batch, hidden, like=gi)
        hs[plan.first], cs[plan.first] = h0, c0
        # c' before zoneout (without zoneout, the new cell states themselves)
        c_new = plan.empty(steps, batch, hidden, like=gi) if zoned else plan.written(cs)
        tanh_c = plan.empty(steps, batch, hidden, like=gi)
        # h W_hh^T of every step, kept for LN_hh's backward
        gh = None if ln_w_hh is None or opt.scratch else plan.empty(*gi.shape, like=gi)
        # LN mean and rstd per step and row
        stats_h, stats_c = gi.new_zeros(steps, batch, 2), gi.new_zeros(steps, batch, 2)
        stats_ih = None if ln_w_ih is None else gi.new_zeros(steps, batch, 2)
        norms = (
            (ln_w_ih, ln_b_ih, stats_ih),
            (ln_w_hh, ln_b_hh, stats_h),
            (ln_w_c, ln_b_c, stats_c),
        )
        given = (
            calls.LoopInput(_fused_numba.IN_ACT)
            if opt.scratch
            else calls.LoopInput(_fused_numba.COPY, gi, None, b_hh)
        )
        buffers, states = (act, c_new, tanh_c, gh), (hs, cs, h0, c0)
        calls.lstm_forward(buffers, states, w_hh, w_peep, given, norms, mask, keep, opt)
        # Saved, intermediates too, so autograd frees them once backward has run.
        kept = (gh, gi if ln_w_ih is not None else None, ln_w_ih, ln_w_hh, ln_b_hh)
        ctx.save_for_backward(
            w_hh, w_peep, ln_w_c, ln_b_c, mask, keep, act, hs, cs, tanh_c, c_new, *kept
        )
        ctx.stats = (stats_h, stats_c, stats_ih)
        ctx.extra = (opt, b_hh is not None, ln_b_ih is not None)
        return plan.outputs(hs, not opt.scratch), plan.final(hs), plan.final(cs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor) -> tuple:
        w_hh, w_peep, ln_w_c, ln_b_c, mask, keep, act, hs, cs, tanh_c, c_new, *kept = (
            ctx.saved_tensors
        )
        gh, gi, ln_w_ih, ln_w, ln_b = kept
        stats_h, stats_c, stats_ih = ctx.stats
        opt, has_bias, has_ln_b_ih = ctx.extra
        plan = opt.plan
        hidden = act.shape[-1] // 4
        d_act = plan.empty(*act.shape, like=act)  # d pre-activations = d gi
        h_in = _recurrent_inputs(plan, hs, mask)
        # The backward overwrites the kept h W_hh^T with its gradient: a second backward
        # (retain_graph) makes it again.
        if ln_w is not None and getattr(ctx, "gh_spent", False):
            calls.recurrent_products(hs, w_hh.t(), mask, keep, opt, gh)
        ctx.gh_spent = True
        d_ln_hh = None if ln_w is None else [torch.zeros_like(ln_w), torch.zeros_like(ln_w)]
        d_ln_c = None if ln_w_c is None else [torch.zeros_like(ln_w_c), torch.zeros_like(ln_w_c)]
        d_ln_ih = None if ln_w_ih is None else [torch.zeros_like(ln_w_ih) for _ in range(2)]
        dh, dc = grad_h.clone(), grad_c.clone()  # running gradients of the state
        d_gh = d_act if ln_w is None else gh  # overwritten in place
        norms = (
            (gi, ln_w_ih, stats_ih, d_ln_ih),
            (gh, ln_w, stats_h, d_ln_hh),
            (c_new, ln_w_c, stats_c, d_ln_c),
        )
        incoming, saved = (plan.grads(grad_out), dh, dc), (act, cs, tanh_c)
        calls.lstm_backward(incoming, saved, w_hh, w_peep, norms, (d_act, d_gh), mask, keep, opt)
        d_w_hh = weight_grad(d_gh, h_in)
        d_b_hh = d_act.sum((0, 1)) if has_bias else None
        d_peep = None
        if w_peep is not None:
            d_i, d_f, _, d_o = d_act.split(hidden, dim=-1)
            c_prev = plan.inputs(cs)
            d_peep = torch.stack(
                ((d_i * c_prev).sum((0, 1)), (d_f * c_prev).sum((0, 1)), (d_o * c_new).sum((0, 1)))
            )
        d_ln_w_hh, d_ln_b_hh = d_ln_hh or (None, None)
        d_ln_w_c, d_ln_b_c = d_ln_c or (None, None)
        d_ln_b_hh = d_ln_b_hh if ln_b is not None else None
        d_ln_b_c = d_ln_b_c if ln_b_c is not None else None
        d_ln_w_ih, d_ln_b_ih = d_ln_ih or (None, None)
        d_ln_b_ih = d_ln_b_ih if has_ln_b_ih else None
        d_params = (d_w_hh, d_b_hh, d_ln_w_hh, d_ln_b_hh, d_peep, d_ln_w_c, d_ln_b_c)
        return d_act, dh, dc, *d_params, d_ln_w_ih, d_ln_b_ih, None, None, None


def fused_lstm(
    gi: Tensor,
    state: tuple[Tensor, Tensor],
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    ln_hh: tuple[Tensor, Tensor | None] | None = None,
    peepholes: tuple[Tensor, Tensor, Tensor] | None = None,
    ln_c: tuple[Tensor, Tensor | None] | None = None,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    options: Options | None = None,
    ln_ih: tuple[Tensor, Tensor | None] | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A whole LSTM-family recurrence: plain, peephole or layer-normalised.

    ``a = gi + LN_hh(h W_hh^T)`` (or ``gi + h W_hh^T + b_hh``); with peepholes
    ``i = sigmoid(a_i + w_ci c)``, ``f = sigmoid(a_f + w_cf c)``, ``o = sigmoid(a_o + w_co c')``;
    ``c' = f c + i tanh(a_g)``; ``h' = o tanh(LN_c(c'))`` (or ``o tanh(c')``), as in
    :mod:`rnnkit.functional.cells` and the steps of :mod:`rnnkit.cells`' ``peephole_lstm``
    and ``layernorm_lstm``.

    Args:
        gi: input projections of all steps ``(L, N, 4H)``.
        state: ``(h_0, c_0)``, each ``(N, H)``.
        w_hh: ``(4H, H)``; b_hh: ``(4H,)`` or None.
        ln_hh: ``(gain, shift)`` ``(4H,)`` of the layer norm on ``h W_hh^T``, or None.
        peepholes: ``(w_ci, w_cf, w_co)``, each ``(H,)``, or None.
        ln_c: ``(gain, shift)`` ``(H,)`` of the layer norm on ``c'``, or None.
        mask, keep: the regularisers (module docstring), ``keep`` ``(L, 2, N, H)``.
        options: lengths and direction, eval zoneout rate, LN epsilon; None: all steps
            forward, no zoneout.
        ln_ih: ``(gain, shift)`` ``(4H,)`` of a layer norm over each step's ``gi`` first (the
            input side of a layer-normalised LSTM), or None. With ``ln_hh``, no ``b_hh`` and
            no peepholes, the numba loops apply it row by row as they go, and their backward
            its derivative, which saves two passes over ``(L, N, 4H)`` and lets the forward
            keep ``h W_hh^T`` for the backward in the memory the pass took; otherwise it is
            applied to ``gi`` before the loop.

    Returns:
        ``(output, (h_n, c_n))``: ``(L, N, H)`` and ``(N, H)`` each.
    """
    opt = _options("fused_lstm", gi, options)
    if ln_ih is not None and (ln_hh is None or b_hh is not None or peepholes is not None):
        gi, ln_ih = F.layer_norm(gi, gi.shape[-1:], *ln_ih, opt.eps), None
    ln_w_hh, ln_b_hh = ln_hh or (None, None)
    ln_w_c, ln_b_c = ln_c or (None, None)
    ln_w_ih, ln_b_ih = ln_ih or (None, None)
    w_peep = None if peepholes is None else torch.stack(peepholes)
    args = (w_hh, b_hh, ln_w_hh, ln_b_hh, w_peep, ln_w_c, ln_b_c, ln_w_ih, ln_b_ih, mask, keep)
    out, h_n, c_n = _LSTM.apply(gi, *state, *args, opt)
    return out, (h_n, c_n)


def lstm_inference(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    w_ih: Tensor,
    b_ih: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    ln_hh: tuple[Tensor, Tensor | None] | None = None,
    peepholes: tuple[Tensor, Tensor, Tensor] | None = None,
    ln_c: tuple[Tensor, Tensor | None] | None = None,
    ln_ih: tuple[Tensor, Tensor | None] | None = None,
    options: Options | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]] | None:
    """:func:`fused_lstm` of ``gi = x W_ih^T + b_ih`` for inference, in one numba loop that
    projects each step's input as it goes (below ``tuning.LOOP_PROJECTION_BATCH``, all steps
    first). Nothing is kept for a backward, so the loop needs no ``(L, N, 4H)`` buffer and no
    chunks, and each step's input product costs no more than its share of one product over
    all steps at these sizes, while it stays in the cache for the step's gates (measured in
    benchmarks/README.md).

    Args:
        x: the inputs ``(L, N, I)``.
        w_ih: ``(4H, I)``; b_ih: ``(4H,)`` or None.
        ln_ih: the layer norm over ``gi`` (``b_hh`` must then be None, as in a
            layer-normalised LSTM).
        state, w_hh, b_hh, ln_hh, peepholes, ln_c: as in :func:`fused_lstm`.
        options: direction, eval zoneout rate, LN epsilon, lengths (sorted, as
            :class:`Plan` takes them).

    Returns:
        ``(output, (h_n, c_n))`` as :func:`fused_lstm` (zero past each length); None where it
        does not run: with gradients enabled, or where the loops do not (:func:`numba_runs`).
    """
    opt = options or Options(Plan(x.shape[0], x.shape[1], None, False))
    if not _inference_runs(x):
        return None
    if ln_ih is not None and b_hh is not None:
        raise ValueError(
            "lstm_inference: ln_ih normalises gi, which b_hh must then stay out of; "
            "expected b_hh=None with ln_ih"
        )
    steps, batch, _ = x.shape
    plan, hidden = opt.plan, w_hh.shape[1]
    bias = b_ih if b_hh is None else b_hh if b_ih is None else b_ih + b_hh
    act, given = _input_side(x, w_ih, bias)
    hs = x.new_empty(steps + 1, batch, hidden)  # the output, as in Plan
    cs = x.new_empty(2, batch, hidden)  # two slots, used in turn
    hs[plan.first], cs[plan.first % 2] = state
    w_peep = None if peepholes is None else torch.stack(peepholes)
    slot = functools.partial(_slot, x)
    # (gain, shift, stats) of LN_ih, LN_hh and LN_c; no stats buffer where there is no LN
    norms = tuple(
        (None, None, None) if ln is None else (*ln, slot(2)) for ln in (ln_ih, ln_hh, ln_c)
    )
    buffers = (act, slot(hidden), slot(hidden), None)
    calls.lstm_forward(buffers, (hs, cs, *state), w_hh, w_peep, given, norms, None, None, opt)
    return plan.outputs(hs, copy=False), (plan.final(hs), plan.final(cs))


def _inference_runs(x: Tensor) -> bool:
    """Whether an ``*_inference`` function runs: no gradients, a tensor the loops take."""
    return not torch.is_grad_enabled() and calls.numba_runs(x)


def _input_side(x: Tensor, w_ih: Tensor, bias: Tensor | None) -> tuple[Tensor, calls.LoopInput]:
    """Where an inference loop reads each step's ``gi = x W_ih^T + bias``: all steps
    projected now (below ``tuning.LOOP_PROJECTION_BATCH``, when they fit
    ``tuning.CHUNK_BYTES``), or projected by the loop into a buffer of one step's,
    ``(1, N, G)``. Returns the buffer and the
    :class:`calls.LoopInput` that says which."""
    steps, batch, _ = x.shape
    gates = w_ih.shape[0]
    if (
        batch < tuning.LOOP_PROJECTION_BATCH
        and steps * batch * gates * x.element_size() <= tuning.CHUNK_BYTES
    ):
        return F.linear(x, w_ih, bias), calls.LoopInput(_fused_numba.IN_ACT)
    return _slot(x, gates), calls.LoopInput(_fused_numba.PROJECT, x, w_ih, bias)


def _slot(x: Tensor, width: int) -> Tensor:
    """A per-step buffer of an inference loop with one slot, ``(1, N, width)``."""
    return x.new_empty(1, x.shape[1], width)


# ----------------------------------------------------------------------------- GRU family


class _GRU(torch.autograd.Function):
    """The GRU family; see :func:`fused_gru`."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        gi: Tensor,
        h0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        ln_w: Tensor | None,
        ln_b: Tensor | None,
        mask: Tensor | None,
        keep: Tensor | None,
        opt: Options,
    ) -> tuple[Tensor, Tensor]:
        plan = opt.plan
        steps, batch, gates = gi.shape
        hidden = gates // 3
        act = plan.empty(steps, batch, gates, like=gi)  # r, z, n
        gh_n = plan.empty(steps, batch, hidden, like=gi)  # the recurrent n part r multiplies
        gh = None if ln_w is None else plan.empty(steps, batch, gates, like=gi)  # h W_hh^T
        hs = plan.empty(steps + 1, batch, hidden, like=gi)
        hs[plan.first] = h0
        stats = gi.new_zeros(steps, batch, 2)  # LN mean and rstd per step and row
        norms = ((None, None, None), (ln_w, ln_b, stats))
        buffers = (gi, act, gh_n, gh)
        calls.gru_forward(buffers, (hs, h0), w_hh, b_hh, norms, mask, keep, opt)
        ctx.save_for_backward(w_hh, ln_w, ln_b, mask, keep, act, gh_n, gh, hs, stats)
        ctx.extra = (opt, b_hh is not None)
        return plan.outputs(hs, not opt.scratch), plan.final(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_h: Tensor) -> tuple:
        w_hh, ln_w, ln_b, mask, keep, act, gh_n, gh, hs, stats = ctx.saved_tensors
        opt, has_bias = ctx.extra
        plan = opt.plan
        d_act = plan.empty(*act.shape, like=act)  # d pre-activations = d gi
        # d of the normalised recurrent part: with LN_hh (and no b_hh to sum it for) only
        # d_gh is read after the loop, so one step's slot
        slots = act.shape[0] if gh is None or has_bias else 1
        d_g = plan.empty(slots, *act.shape[1:], like=act)
        d_gh = d_g if gh is None else plan.empty(*act.shape, like=act)
        d_ln = None if gh is None else (torch.zeros_like(ln_w), torch.zeros_like(ln_w))
        dh = grad_h.clone()
        incoming, saved, out = (plan.grads(grad_out), dh), (act, gh_n, hs), (d_act, d_g, d_gh)
        calls.gru_backward(incoming, saved, w_hh, (gh, ln_w, stats, d_ln), out, mask, keep, opt)
        d_w_hh = weight_grad(d_gh, _recurrent_inputs(plan, hs, mask))
        d_b_hh = d_g.sum((0, 1)) if has_bias else None
        d_ln_w, d_ln_b = d_ln or (None, None)
        d_ln_b = d_ln_b if ln_b is not None else None
        return d_act, dh, d_w_hh, d_b_hh, d_ln_w, d_ln_b, None, None, None


def fused_gru(
    gi: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    ln_hh: tuple[Tensor, Tensor | None] | None = None,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    options: Options | None = None,
) -> tuple[Tensor, Tensor]:
    """A whole GRU-family recurrence: torch.nn's GRU or the layer-normalised one.

    ``g = LN_hh(h W_hh^T)`` (or ``h W_hh^T + b_hh``) split into ``(r, z, n)`` parts;
    ``r = sigmoid(gi_r + g_r)``, ``z = sigmoid(gi_z + g_z)``, ``n = tanh(gi_n + r g_n)``,
    ``h' = n + z (h - n)``, as in :func:`rnnkit.functional.gru_recurrence` and
    the step of :mod:`rnnkit.cells`' ``layernorm_gru``.

    Args:
        gi: input projections of all steps ``(L, N, 3H)``.
        h0: ``(N, H)``.
        w_hh: ``(3H, H)``; b_hh: ``(3H,)`` or None.
        ln_hh: ``(gain, shift)`` ``(3H,)`` of the layer norm on ``h W_hh^T``, or None.
        mask, keep, options: as in :func:`fused_lstm`, ``keep`` ``(L, 1, N, H)``.

    Returns:
        ``(output, h_n)``: ``(L, N, H)`` and ``(N, H)``.
    """
    ln_w, ln_b = ln_hh or (None, None)
    return _GRU.apply(
        gi, h0, w_hh, b_hh, ln_w, ln_b, mask, keep, _options("fused_gru", gi, options)
    )


def gru_inference(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    b_ih: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    ln_hh: tuple[Tensor, Tensor | None] | None = None,
    ln_ih: tuple[Tensor, Tensor | None] | None = None,
    options: Options | None = None,
) -> tuple[Tensor, Tensor] | None:
    """:func:`fused_gru` of ``gi = LN_ih(x W_ih^T + b_ih)`` (or without ``LN_ih``) for
    inference, one numba loop that projects each step's input as it goes, as
    :func:`lstm_inference`.

    Args:
        x: the inputs ``(L, N, I)``.
        w_ih: ``(3H, I)``; b_ih: ``(3H,)`` or None.
        ln_ih: ``(gain, shift)`` ``(3H,)`` of the layer norm over ``gi``, or None.
        h0, w_hh, b_hh, ln_hh: as in :func:`fused_gru`.
        options: direction, eval zoneout rate, LN epsilon, lengths (sorted, as
            :class:`Plan` takes them).

    Returns:
        ``(output, h_n)`` as :func:`fused_gru`; None where it does not run (as
        :func:`lstm_inference`).
    """
    opt = options or Options(Plan(x.shape[0], x.shape[1], None, False))
    if not _inference_runs(x):
        return None
    steps, plan, hidden = x.shape[0], opt.plan, w_hh.shape[1]
    gi, given = _input_side(x, w_ih, b_ih)
    hs = x.new_empty(steps + 1, x.shape[1], hidden)  # the output, as in Plan
    hs[plan.first] = h0
    ln_w, ln_b = ln_hh or (None, None)
    slot = functools.partial(_slot, x)
    gh = None if ln_w is None else slot(3 * hidden)
    norms = ((*(ln_ih or (None, None)), None), (ln_w, ln_b, None if ln_w is None else slot(2)))
    buffers = (gi, slot(3 * hidden), slot(hidden), gh)
    calls.gru_forward(buffers, (hs, h0), w_hh, b_hh, norms, None, None, opt, given)
    return plan.outputs(hs, copy=False), plan.final(hs)


# ----------------------------------------------------------------------------- IndRNN


class _IndRNN(torch.autograd.Function):
    """IndRNN; see :func:`fused_indrnn`."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        gi: Tensor,
        h0: Tensor,
        u: Tensor,
        mask: Tensor | None,
        keep: Tensor | None,
        opt: Options,
    ) -> tuple[Tensor, Tensor]:
        plan = opt.plan
        steps, batch, hidden = gi.shape
        um = u if mask is None else u * mask  # (N, H) or (H,)
        hs = plan.empty(steps + 1, batch, hidden, like=gi)
        hs[plan.first] = h0
        h_new = plan.empty(steps, batch, hidden, like=gi) if opt.zoned(keep) else plan.written(hs)
        calls.indrnn_forward(gi, um, hs, h_new, h0, mask, keep, opt)
        ctx.save_for_backward(um, mask, keep, hs, h_new)
        ctx.opt = opt
        return plan.outputs(hs, not opt.scratch), plan.final(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_h: Tensor) -> tuple:
        um, mask, keep, hs, h_new = ctx.saved_tensors
        plan = ctx.opt.plan
        d_act = plan.empty(*h_new.shape, like=h_new)  # = d gi
        dh = grad_h.clone()
        calls.indrnn_backward(plan.grads(grad_out), dh, d_act, h_new, um, mask, keep, ctx.opt)
        d_u = (d_act * _recurrent_inputs(plan, hs, mask)).sum((0, 1))
        return d_act, dh, d_u, None, None, None


def fused_indrnn(
    gi: Tensor,
    h0: Tensor,
    u: Tensor,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    options: Options | None = None,
) -> tuple[Tensor, Tensor]:
    """A whole IndRNN recurrence, ``h' = act(gi + u h)``, as the
    step of :mod:`rnnkit.cells`' ``indrnn``.

    Args:
        gi: input projections of all steps ``(L, N, H)``.
        h0: ``(N, H)``.
        u: the recurrent weights ``(H,)``, already clamped to the bound if there is one.
        mask, keep, options: as in :func:`fused_lstm`, ``keep`` ``(L, 1, N, H)``;
            ``options.nonlinearity`` is ``act`` (``"relu"`` or ``"tanh"``).

    Returns:
        ``(output, h_n)``: ``(L, N, H)`` and ``(N, H)``.
    """
    return _IndRNN.apply(gi, h0, u, mask, keep, _options("fused_indrnn", gi, options))


# ----------------------------------------------------------------------------- Jordan


class _Jordan(torch.autograd.Function):
    """The Jordan network; see :func:`fused_jordan`."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        gi: Tensor,
        y0: Tensor,
        w_yh: Tensor,
        w_hy: Tensor,
        b_hy: Tensor | None,
        mask: Tensor | None,
        keep: Tensor | None,
        opt: Options,
    ) -> tuple[Tensor, Tensor]:
        plan = opt.plan
        steps, batch, hidden = gi.shape
        out_size = w_hy.shape[0]
        hid = plan.empty(steps, batch, hidden, like=gi)  # the hidden layer
        ys = plan.empty(steps + 1, batch, out_size, like=gi)
        ys[plan.first] = y0
        zoned = opt.zoned(keep)
        y_new = plan.empty(steps, batch, out_size, like=gi) if zoned else plan.written(ys)
        calls.jordan_forward(gi, w_yh, w_hy, b_hy, hid, ys, y_new, y0, mask, keep, opt)
        ctx.save_for_backward(w_yh, w_hy, mask, keep, hid, ys, y_new)
        ctx.extra = (opt, b_hy is not None)
        return plan.outputs(ys, not opt.scratch), plan.final(ys)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_y: Tensor) -> tuple:
        w_yh, w_hy, mask, keep, hid, ys, y_new = ctx.saved_tensors
        opt, has_bias = ctx.extra
        plan = opt.plan
        d_act = plan.empty(*hid.shape, like=hid)  # d hidden pre-activation = d gi
        d_z = plan.empty(*y_new.shape, like=y_new)  # d output pre-activation
        dy = grad_y.clone()
        incoming, saved = (plan.grads(grad_out), dy), (hid, y_new)
        calls.jordan_backward(incoming, saved, w_yh, w_hy, (d_act, d_z), mask, keep, opt)
        d_w_yh = weight_grad(d_act, _recurrent_inputs(plan, ys, mask))
        d_w_hy = weight_grad(d_z, hid)
        d_b_hy = d_z.sum((0, 1)) if has_bias else None
        return d_act, dy, d_w_yh, d_w_hy, d_b_hy, None, None, None


def fused_jordan(
    gi: Tensor,
    y0: Tensor,
    w_yh: Tensor,
    w_hy: Tensor,
    b_hy: Tensor | None = None,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    options: Options | None = None,
) -> tuple[Tensor, Tensor]:
    """A whole Jordan recurrence (the step of :mod:`rnnkit.cells`' ``jordan``):
    ``h = act(gi + y W_yh^T)``, ``y' = out_act(h W_hy^T + b_hy)``.

    Args:
        gi: input projections of all steps ``(L, N, H)``.
        y0: ``(N, O)``.
        w_yh: ``(H, O)``; w_hy: ``(O, H)``; b_hy: ``(O,)`` or None.
        mask, keep, options: as in :func:`fused_lstm`, ``keep`` ``(L, 1, N, O)``;
            ``options.nonlinearity`` and ``options.output_nonlinearity`` are ``act`` and
            ``out_act``.

    Returns:
        ``(output, y_n)``: ``(L, N, O)`` and ``(N, O)``.
    """
    return _Jordan.apply(
        gi, y0, w_yh, w_hy, b_hy, mask, keep, _options("fused_jordan", gi, options)
    )
