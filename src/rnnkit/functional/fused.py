"""Fused recurrences: a whole sequence per call, with a hand-written backward.

The reference path records every step on the autograd tape (a dozen nodes per step), which
makes forward+backward many times slower than ``torch.nn.LSTM`` (benchmarks/README.md,
"Measured"). Here each recurrence is
one :class:`torch.autograd.Function`: the forward loops over time with in-place torch ops
into preallocated buffers, keeping the activations; the backward loops in reverse with the
closed-form derivatives and leaves every parameter gradient to one batched reduction (a GEMM
for the recurrent weights) after the loop. The input projection of all steps stays outside,
on the autograd tape, as one GEMM.

Inference of the LSTM and GRU families have functions of their own, :func:`lstm_inference` and
:func:`gru_inference`: one numba loop that projects each step's input as it goes and keeps
nothing for a backward.

Variable lengths run on a batch sorted by decreasing length: step ``t`` only touches the
first rows (the sequences still running), as torch's packed kernels do.

Up to ``tuning.NUMBA_MAX_BATCH`` every family runs the same loops compiled by numba
(:mod:`rnnkit.functional._fused_numba`) when it is installed: at small batches a step is a
few microseconds of arithmetic and the torch loop is interpreter time, and up to 512 rows the
compiled loops still win (their products on torch's own BLAS, see :mod:`._gemm`). Larger
batches, and every batch without numba (logged once on the ``rnnkit`` logger), run the torch
loop. Where the loops fall back to SciPy's BLAS, each runs with it held to one thread; a caller
running many of them (the layers do) holds it once around them all with
:func:`single_threaded_blas`. How each loop is called on tensors is
:mod:`rnnkit.functional._numba_calls`.

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
except ImportError:  # numba is optional: the torch loop runs every batch size
    _fused_numba = None

_layer_norm = torch.native_layer_norm
_layer_norm_backward = torch.ops.aten.native_layer_norm_backward.default
_INPUT_ONLY = [True, False, False]  # native_layer_norm_backward: d input, not d gain/shift


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

    @functools.cached_property
    def order(self) -> list[tuple[int, int, int, int]]:
        """``(t, prev, new, rows)`` per step, in the order the steps run; made when first
        asked for, as only the torch loop walks it."""
        times = range(self.steps - 1, -1, -1) if self.reverse else range(self.steps)
        rows = self.rows.tolist()
        if self.reverse:
            return [(t, t + 1, t, rows[t]) for t in times]
        return [(t, t, t + 1, rows[t]) for t in times]

    def empty(self, *shape: int, like: Tensor) -> Tensor:
        """A buffer; zeros where lengths leave rows unwritten (they must stay finite)."""
        if self.lengths is None:
            return like.new_empty(shape)
        return like.new_zeros(shape)

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

    def start(self, t: int, states: tuple[Tensor, ...], initial: tuple[Tensor, ...]) -> None:
        """Backwards in time, sequences join as ``t`` falls: give the rows that join at
        step ``t`` their initial state."""
        if not self.reverse or t == self.steps - 1 or self.rows[t] == self.rows[t + 1]:
            return
        start, stop = self.rows[t + 1], self.rows[t]
        for s, s0 in zip(states, initial, strict=True):
            s[t + 1, start:stop] = s0[start:stop]


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


def _options(gi: Tensor, options: Options | None) -> Options:
    return options or Options(Plan(gi.shape[0], gi.shape[1], None, False))


def _cut(b: int, views: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The first ``b`` rows of each view (the views themselves when all rows run)."""
    if b == views[0].shape[0]:
        return views
    return tuple(v[:b] for v in views)


def _per_step(*tensors: Tensor) -> list[tuple[Tensor, ...]]:
    """Views of each step ``t`` of ``(L, ...)`` tensors, made once (a view costs as much as
    a small op)."""
    return list(zip(*(x.unbind(0) for x in tensors), strict=True))


def _zoneout(old: Tensor, new: Tensor, keep: Tensor | None, rate: float, out: Tensor) -> None:
    """``out = where(keep, old, new)`` (training) or ``lerp(new, old, rate)`` (eval)."""
    if keep is not None:
        torch.where(keep, old, new, out=out)
    else:
        torch.lerp(new, old, rate, out=out)


def _zoneout_backward(grad: Tensor, keep: Tensor | None, rate: float) -> tuple[Tensor, Tensor]:
    """Split the gradient of a zoned-out state into (to the new value, to the old one)."""
    if keep is not None:
        return grad.masked_fill(keep, 0.0), grad.masked_fill(~keep, 0.0)
    return grad * (1.0 - rate), grad * rate


def _keep(keep: Tensor | None, t: int, k: int, b: int) -> Tensor | None:
    return None if keep is None else keep[t, k, :b]


def _activate(x: Tensor, name: str) -> None:
    """In place ``x = act(x)``, ``act`` one of tanh, relu, sigmoid, softmax, identity."""
    if name == "softmax":
        x.copy_(torch.softmax(x, dim=-1))
    elif name != "identity":
        getattr(x, name + "_")()


def _activate_backward(grad: Tensor, out: Tensor, name: str) -> Tensor:
    """The gradient at the input of ``act`` from ``grad`` at its output ``out``."""
    if name == "tanh":  # grad * (1 - out^2)
        return torch.addcmul(grad, grad * out, out, value=-1.0)
    if name == "sigmoid":  # grad * out * (1 - out)
        return torch.addcmul(grad, grad, out, value=-1.0).mul_(out)
    if name == "relu":
        return grad.masked_fill(out <= 0, 0.0)
    if name == "softmax":
        return torch._softmax_backward_data(grad, out, -1, out.dtype)
    return grad


def _norm_backward(
    grad: Tensor,
    x: Tensor,
    shape: tuple[int],
    mean: Tensor,
    rstd: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    mask: list[bool],
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``native_layer_norm_backward`` of ``x`` ``(R, W)`` (input, gain, shift as ``mask``
    asks), its gain and shift sums taken row by row here: torch's kernel sums them in one
    buffer per thread, so they would change with the thread count."""
    dx = _layer_norm_backward(grad, x, shape, mean, rstd, weight, bias, [mask[0], False, False])[0]
    d_weight = (grad * ((x - mean) * rstd)).sum(0) if mask[1] else None
    d_bias = grad.sum(0) if mask[2] else None
    return dx, d_weight, d_bias


def _norm_grads(
    grad: Tensor, x: Tensor, eps: float, weight: Tensor, bias: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Gain and shift gradients of a layer norm over the last dimension, all steps at once."""
    width = x.shape[-1]
    x, grad = x.reshape(-1, width), grad.reshape(-1, width)
    _, mean, rstd = _layer_norm(x, (width,), None, None, eps)
    mask = [False, True, bias is not None]
    _, d_weight, d_bias = _norm_backward(grad, x, (width,), mean, rstd, weight, bias, mask)
    return d_weight, d_bias


def _weight_grad(d_out: Tensor, inputs: Tensor) -> Tensor:
    """``sum_t d_out[t]^T inputs[t]``: ``(L, N, A)``, ``(L, N, B)`` -> ``(A, B)``."""
    return d_out.reshape(-1, d_out.shape[-1]).t() @ inputs.reshape(-1, inputs.shape[-1])


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
        plan, eps, rate = opt.plan, opt.eps, opt.rate
        steps, batch, gates = gi.shape
        hidden = gates // 4
        zoned = opt.zoned(keep)
        w, ln_w, ln_b = w_hh.t(), ln_w_hh, ln_b_hh  # w: (H, 4H)
        numba = calls.numba_runs(gi)
        # act (L, N, 4H): pre-activations, then activations. The numba loop copies gi + b_hh
        # into it row by row, where a pass of its own would be a fresh buffer's page faults.
        copy = numba and not opt.scratch
        act = plan.empty(*gi.shape, like=gi) if copy else gi if opt.scratch else gi.clone()
        if b_hh is not None and not copy:
            act += b_hh
        hs = plan.empty(steps + 1, batch, hidden, like=gi)  # states, see Plan
        cs = plan.empty(steps + 1, batch, hidden, like=gi)
        hs[plan.first], cs[plan.first] = h0, c0
        # c' before zoneout (without zoneout, the new cell states themselves)
        c_new = plan.empty(steps, batch, hidden, like=gi) if zoned else plan.written(cs)
        h_new = gi.new_empty(batch, hidden)
        tanh_c = plan.empty(steps, batch, hidden, like=gi)
        gh = None  # h W_hh^T: this step's (torch loop), every step's kept for LN_hh's backward
        if ln_w is not None and not numba:
            gh = gi.new_empty(batch, gates)
        elif ln_w is not None and not opt.scratch:
            gh = plan.empty(*gi.shape, like=gi)
        stats_h: list[Any] = [None] * steps  # LN mean and rstd per step
        stats_c: list[Any] = [None] * steps
        stats_ih = None
        if numba:
            stats_h, stats_c = gi.new_zeros(steps, batch, 2), gi.new_zeros(steps, batch, 2)
            stats_ih = None if ln_w_ih is None else gi.new_zeros(steps, batch, 2)
            norms = ((ln_w_ih, ln_b_ih, stats_ih), (ln_w, ln_b, stats_h), (ln_w_c, ln_b_c, stats_c))
            given = (
                calls.LoopInput(_fused_numba.COPY, gi, None, b_hh)
                if copy
                else calls.LoopInput(_fused_numba.IN_ACT)
            )
            buffers, states = (act, c_new, tanh_c, gh), (hs, cs, h0, c0)
            calls.lstm_forward(buffers, states, w_hh, w_peep, given, norms, mask, keep, opt)
        if not numba:
            gate_views = (act, *act.split(hidden, dim=-1), act[..., : 2 * hidden])
            peep_views = act[..., : 2 * hidden].unflatten(-1, (2, hidden))
            per_step = _per_step(*gate_views, peep_views, c_new, tanh_c)
            h_s, c_s = hs.unbind(0), cs.unbind(0)
        for t, prev, new, b in [] if numba else plan.order:
            if b == 0:
                continue
            plan.start(t, (hs, cs), (h0, c0))
            h, c, hn = _cut(b, (h_s[prev], c_s[prev], h_s[new]))
            a, i, f, g, o, a_if, a_if2, cn, tc = _cut(b, per_step[t])
            h_in = h if mask is None else h * mask[:b]
            if gh is None:
                a.addmm_(h_in, w)
            else:
                torch.mm(h_in, w, out=gh[:b])
                y, *stats_h[t] = _layer_norm(gh[:b], (gates,), ln_w, ln_b, eps)
                a += y
            if w_peep is not None:  # i and f peek at c
                a_if2.addcmul_(w_peep[:2], c.unsqueeze(1))
            a_if.sigmoid_()
            g.tanh_()
            torch.mul(f, c, out=cn).addcmul_(i, g)
            if w_peep is not None:  # o peeks at c'
                o.addcmul_(w_peep[2], cn)
            o.sigmoid_()
            if ln_w_c is None:
                torch.tanh(cn, out=tc)
            else:
                y, *stats_c[t] = _layer_norm(cn, (hidden,), ln_w_c, ln_b_c, eps)
                torch.tanh(y, out=tc)
            if zoned:
                torch.mul(o, tc, out=h_new[:b])
                _zoneout(h, h_new[:b], _keep(keep, t, 0, b), rate, hn)
                _zoneout(c, cn, _keep(keep, t, 1, b), rate, c_s[new][:b])
            else:
                torch.mul(o, tc, out=hn)
        # Saved, intermediates too, so autograd frees them once backward has run.
        kept = (gh if numba else None, gi if ln_w_ih is not None else None, ln_w_ih)
        ctx.save_for_backward(w_peep, ln_w_c, ln_b_c, mask, keep, act, hs, cs, tanh_c, c_new, *kept)
        ctx.stats = (stats_h, stats_c, stats_ih)
        ctx.extra = (w, ln_w, ln_b, opt, b_hh is not None, numba, ln_b_ih is not None)
        return plan.outputs(hs, not opt.scratch), plan.final(hs), plan.final(cs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor) -> tuple:
        w_peep, ln_w_c, ln_b_c, mask, keep, act, hs, cs, tanh_c, c_new, *kept = ctx.saved_tensors
        gh_kept, gi, ln_w_ih = kept
        stats_h, stats_c, stats_ih = ctx.stats
        w, ln_w, ln_b, opt, has_bias, numba, has_ln_b_ih = ctx.extra
        plan, rate = opt.plan, opt.rate
        hidden = act.shape[-1] // 4
        zoned = opt.zoned(keep)
        d_act = plan.empty(*act.shape, like=act)  # d pre-activations = d gi
        h_in = _recurrent_inputs(plan, hs, mask)
        # With LN_hh, the torch loop recomputes h W_hh^T, 32 steps at a time, rather than keep it
        # since the forward (peak memory); the numba loop kept it, its gi needing no LN pass,
        # and overwrites it with its gradient: a second backward (retain_graph) makes it again.
        gh = None if ln_w is None or numba else _Recomputed(h_in, w, plan.valid(act), 32)
        if ln_w is not None and numba and getattr(ctx, "gh_spent", False):
            calls.recurrent_products(hs, w, mask, keep, opt, gh_kept)
        ctx.gh_spent = True
        d_ln_hh = None if ln_w is None else [torch.zeros_like(ln_w), torch.zeros_like(ln_w)]
        d_ln_c = (
            [torch.zeros_like(ln_w_c), torch.zeros_like(ln_w_c)] if ln_w_c is not None else None
        )
        d_ln_ih = None if ln_w_ih is None else [torch.zeros_like(ln_w_ih) for _ in range(2)]
        w_t = w.t()  # (4H, H)
        dh, dc = grad_h.clone(), grad_c.clone()  # running gradients of the state
        if numba:
            d_gh = d_act if ln_w is None else gh_kept  # overwritten in place
            norms = (
                (gi, ln_w_ih, stats_ih, d_ln_ih),
                (gh_kept, ln_w, stats_h, d_ln_hh),
                (c_new, ln_w_c, stats_c, d_ln_c),
            )
            incoming, saved = (plan.grads(grad_out), dh, dc), (act, cs, tanh_c)
            out = (d_act, d_gh)
            calls.lstm_backward(incoming, saved, w_t, w_peep, norms, out, mask, keep, opt)
        else:
            grads = plan.grads(grad_out).unbind(0)
            views = (*act.split(hidden, dim=-1), act[..., : 2 * hidden], d_act)
            d_views = (*d_act.split(hidden, dim=-1), d_act[..., : 2 * hidden], tanh_c)
            per_step = _per_step(*views, *d_views)
            c_s = cs.unbind(0)
        for t, prev, _, b in [] if numba else reversed(plan.order):
            if b == 0:
                continue
            i, f, g, o, a_if, da, da_i, da_f, da_g, da_o, da_if, tc = _cut(b, per_step[t])
            c_prev = c_s[prev][:b]
            dh[:b] += grads[t][:b]
            if zoned:
                dhn, dh_keep = _zoneout_backward(dh[:b], _keep(keep, t, 0, b), rate)
                dcn, dc_keep = _zoneout_backward(dc[:b], _keep(keep, t, 1, b), rate)
            else:
                dhn, dcn = dh[:b], dc[:b]
            torch.mul(dhn, tc, out=da_o)
            d_tanh = _activate_backward(dhn * o, tc, "tanh")
            if d_ln_c is None:
                dcn += d_tanh
            else:
                mask_c = [True, True, ln_b_c is not None]
                args = (c_new[t, :b], (hidden,), *stats_c[t], ln_w_c, ln_b_c, mask_c)
                dx, *d_params = _norm_backward(d_tanh, *args)
                dcn += dx
                _accumulate(d_ln_c, d_params)
            da_o.addcmul_(da_o, o, value=-1.0).mul_(o)  # through the sigmoid
            if w_peep is not None:
                dcn.addcmul_(da_o, w_peep[2])
            torch.mul(dcn, g, out=da_i)
            torch.mul(dcn, c_prev, out=da_f)
            torch.mul(dcn, i, out=da_g)
            da_g.addcmul_(da_g * g, g, value=-1.0)  # through the tanh
            da_if.addcmul_(da_if, a_if, value=-1.0).mul_(a_if)  # through the sigmoids
            dcn.mul_(f)
            if w_peep is not None:
                dcn.addcmul_(da_i, w_peep[0]).addcmul_(da_f, w_peep[1])
            if gh is None:
                dg = da
            else:
                mask_h = [True, True, ln_b is not None]
                g_t = gh.at(t)[:b]
                args = (g_t, (4 * hidden,), *stats_h[t], ln_w, ln_b, mask_h)
                dg, *d_params = _norm_backward(da, *args)
                _accumulate(d_ln_hh, d_params)
                g_t.copy_(dg)
            if zoned:
                if mask is None:
                    dh[:b] = torch.addmm(dh_keep, dg, w_t)
                else:
                    dh[:b] = torch.mm(dg, w_t).mul_(mask[:b]).add_(dh_keep)
                dc[:b] = dcn + dc_keep
            else:
                torch.mm(dg, w_t, out=dh[:b])
                if mask is not None:
                    dh[:b] *= mask[:b]
        if numba:
            d_w_hh = _weight_grad(d_gh, h_in)
        else:
            d_w_hh = _weight_grad(d_act, h_in) if gh is None else gh.weight_grad()
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


class _Recomputed:
    """``h_in W`` of the steps, recomputed for the backward ``steps`` at a time; the
    backward overwrites each step's rows with their gradient, and :meth:`weight_grad` adds
    up ``d^T h_in`` chunk by chunk.

    Args:
        h_in: ``(L, N, H)``, what entered the recurrent weights.
        w: ``(H, G)``.
        valid: ``(L, N, 1)`` from :meth:`Plan.valid` (rows past a length get no gradient).
        steps: the chunk length.
    """

    def __init__(self, h_in: Tensor, w: Tensor, valid: Tensor | None, steps: int) -> None:
        self.h_in, self.w, self.valid, self.steps = h_in, w, valid, steps
        self.start = self.stop = 0
        self.chunk: Tensor | None = None
        self.d_w = w.new_zeros(w.shape[1], w.shape[0])  # (G, H)

    def at(self, t: int, whole: bool = False) -> Tensor:
        """Step ``t``'s rows ``(N, G)`` (``whole``: all steps, ``(L, N, G)``)."""
        if not self.start <= t < self.stop:
            self._flush()
            self.start = t // self.steps * self.steps
            self.stop = min(self.start + self.steps, self.h_in.shape[0])
            self.chunk = self.h_in[self.start : self.stop] @ self.w
        return self.chunk if whole else self.chunk[t - self.start]

    def _flush(self) -> None:
        if self.chunk is None:
            return
        if self.valid is not None:  # rows no step wrote still hold h_in W
            self.chunk.masked_fill_(~self.valid[self.start : self.stop], 0.0)
        self.d_w += _weight_grad(self.chunk, self.h_in[self.start : self.stop])
        self.chunk = None

    def weight_grad(self) -> Tensor:
        """``sum_t d[t]^T h_in[t]`` ``(G, H)``, once every step has written its gradient."""
        self._flush()
        return self.d_w


def _accumulate(totals: list[Tensor], parts: list[Tensor | None]) -> None:
    """``totals[k] += parts[k]`` for the parts computed."""
    for total, part in zip(totals, parts, strict=True):
        if part is not None:
            total += part


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
    opt = _options(gi, options)
    in_loop = ln_hh is not None and b_hh is None and peepholes is None and calls.numba_runs(gi)
    if ln_ih is not None and not in_loop:
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
        does not run: with gradients enabled, or where the numba loops do not (see
        ``tuning.NUMBA_MAX_BATCH``).
    """
    opt = options or Options(Plan(x.shape[0], x.shape[1], None, False))
    if not _inference_runs(x, opt):
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


def _inference_runs(x: Tensor, opt: Options) -> bool:
    """Whether an ``*_inference`` function runs: no gradients, numba's batch."""
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
        plan, eps, rate = opt.plan, opt.eps, opt.rate
        steps, batch, gates = gi.shape
        hidden = gates // 3
        zoned = opt.zoned(keep)
        w = w_hh.t()  # (H, 3H)
        act = plan.empty(steps, batch, gates, like=gi)  # r, z, n
        gh_n = plan.empty(steps, batch, hidden, like=gi)  # the recurrent n part r multiplies
        gh = None if ln_w is None else plan.empty(steps, batch, gates, like=gi)  # h W_hh^T
        stats: list[Any] = [None] * steps
        hs = plan.empty(steps + 1, batch, hidden, like=gi)
        hs[plan.first] = h0
        numba = calls.numba_runs(gi)
        if numba:
            stats = gi.new_zeros(steps, batch, 2)
            norms = ((None, None, None), (ln_w, ln_b, stats))
            buffers = (gi, act, gh_n, gh)
            calls.gru_forward(buffers, (hs, h0), w_hh, b_hh, norms, mask, keep, opt)
        else:
            h_new = plan.empty(steps, batch, hidden, like=gi) if zoned else plan.written(hs)
            r_z, n = act[..., : 2 * hidden], act[..., 2 * hidden :]
            r, z, _ = act.split(hidden, dim=-1)
            gi_rz, gi_n = gi[..., : 2 * hidden], gi[..., 2 * hidden :]
            per_step = _per_step(gi_rz, gi_n, r, z, r_z, n, gh_n, h_new)
            h_s = hs.unbind(0)
        for t, prev, new, b in [] if numba else plan.order:
            if b == 0:
                continue
            plan.start(t, (hs,), (h0,))
            h, hn = _cut(b, (h_s[prev], h_s[new]))
            gi_rz, gi_n, r, z, a_rz, a_n, g_n, h_t = _cut(b, per_step[t])
            h_in = h if mask is None else h * mask[:b]
            if gh is None:
                g = torch.mm(h_in, w) if b_hh is None else torch.addmm(b_hh, h_in, w)
            else:
                torch.mm(h_in, w, out=gh[t, :b])
                g, *stats[t] = _layer_norm(gh[t, :b], (gates,), ln_w, ln_b, eps)
            torch.add(gi_rz, g[:, : 2 * hidden], out=a_rz).sigmoid_()
            g_n.copy_(g[:, 2 * hidden :])
            torch.addcmul(gi_n, r, g_n, out=a_n).tanh_()
            torch.lerp(a_n, h, z, out=h_t)  # n + z (h - n)
            if zoned:
                _zoneout(h, h_t, _keep(keep, t, 0, b), rate, hn)
        ctx.save_for_backward(w_hh, ln_w, ln_b, mask, keep, act, gh_n, gh, hs)
        ctx.extra = (stats, opt, b_hh is not None, numba)
        return plan.outputs(hs, not opt.scratch), plan.final(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_h: Tensor) -> tuple:
        w_hh, ln_w, ln_b, mask, keep, act, gh_n, gh, hs = ctx.saved_tensors
        stats, opt, has_bias, numba = ctx.extra
        plan, eps, rate = opt.plan, opt.eps, opt.rate
        steps, batch, gates = act.shape
        hidden = gates // 3
        zoned = opt.zoned(keep)
        d_act = plan.empty(steps, batch, gates, like=act)  # d pre-activations = d gi
        d_g = plan.empty(steps, batch, gates, like=act)  # d of the normalised recurrent part
        d_gh = d_g if gh is None else plan.empty(steps, batch, gates, like=act)
        d_ln = (
            (torch.zeros_like(ln_w), torch.zeros_like(ln_w)) if numba and gh is not None else None
        )
        dh = grad_h.clone()
        if numba:
            incoming, saved, out = (plan.grads(grad_out), dh), (act, gh_n, hs), (d_act, d_g, d_gh)
            ln_hh = (gh, ln_w, stats, d_ln)
            calls.gru_backward(incoming, saved, w_hh, ln_hh, out, mask, keep, opt)
        else:
            grads = plan.grads(grad_out).unbind(0)
            views = (*act.split(hidden, dim=-1), act[..., : 2 * hidden])
            d_views = (*d_act.split(hidden, dim=-1), d_act[..., : 2 * hidden])
            dg_views = (d_g[..., : 2 * hidden], d_g[..., 2 * hidden :], d_g)
            per_step = _per_step(*views, *d_views, *dg_views, gh_n)
            h_s = hs.unbind(0)
        for t, prev, _, b in [] if numba else reversed(plan.order):
            if b == 0:
                continue
            r, z, n, a_rz, da_r, da_z, da_n, da_rz, dg_rz, dg_n, dg, g_n = _cut(b, per_step[t])
            h = h_s[prev][:b]
            dh[:b] += grads[t][:b]
            if zoned:
                dhn, dh_keep = _zoneout_backward(dh[:b], _keep(keep, t, 0, b), rate)
            else:
                dhn = dh[:b]
            dh_direct = dhn * z  # h' = n + z (h - n)
            torch.mul(dhn, torch.sub(h, n), out=da_z)
            torch.sub(dhn, dh_direct, out=da_n)
            da_n.addcmul_(da_n * n, n, value=-1.0)  # through the tanh
            torch.mul(da_n, g_n, out=da_r)
            da_rz.addcmul_(da_rz, a_rz, value=-1.0).mul_(a_rz)  # through the sigmoids
            dg_rz.copy_(da_rz)
            torch.mul(da_n, r, out=dg_n)
            if gh is None:
                d_raw = dg
            else:
                args = (gh[t, :b], (gates,), *stats[t], ln_w, ln_b, _INPUT_ONLY)
                d_raw = _layer_norm_backward(dg, *args)[0]
                d_gh[t, :b] = d_raw
            dh_prev = d_raw @ w_hh  # (b, H)
            if mask is not None:
                dh_prev *= mask[:b]
            dh_prev += dh_direct
            if zoned:
                dh_prev += dh_keep
            dh[:b] = dh_prev
        d_w_hh = _weight_grad(d_gh, _recurrent_inputs(plan, hs, mask))
        d_b_hh = d_g.sum((0, 1)) if has_bias else None
        d_ln_w = d_ln_b = None
        if gh is not None:  # the numba loop adds them up as it goes
            d_ln_w, d_ln_b = d_ln if numba else _norm_grads(d_g, gh, eps, ln_w, ln_b)
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
    return _GRU.apply(gi, h0, w_hh, b_hh, ln_w, ln_b, mask, keep, _options(gi, options))


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
    if not _inference_runs(x, opt):
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
        plan, rate = opt.plan, opt.rate
        steps, batch, hidden = gi.shape
        zoned = opt.zoned(keep)
        um = u if mask is None else u * mask  # (N, H) or (H,)
        hs = plan.empty(steps + 1, batch, hidden, like=gi)
        hs[plan.first] = h0
        h_new = plan.empty(steps, batch, hidden, like=gi) if zoned else plan.written(hs)
        numba = calls.numba_runs(gi)
        if numba:
            calls.indrnn_forward(gi, um, hs, h_new, h0, mask, keep, opt)
        else:
            per_step = _per_step(gi, h_new)
            h_s = hs.unbind(0)
        for t, prev, new, b in [] if numba else plan.order:
            if b == 0:
                continue
            plan.start(t, (hs,), (h0,))
            h, hn = _cut(b, (h_s[prev], h_s[new]))
            g, h_t = _cut(b, per_step[t])
            weight = um if mask is None else um[:b]
            _activate(torch.addcmul(g, h, weight, out=h_t), opt.nonlinearity)
            if zoned:
                _zoneout(h, h_t, _keep(keep, t, 0, b), rate, hn)
        ctx.save_for_backward(um, mask, keep, hs, h_new)
        ctx.extra = (opt, numba)
        return plan.outputs(hs, not opt.scratch), plan.final(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_h: Tensor) -> tuple:
        um, mask, keep, hs, h_new = ctx.saved_tensors
        opt, numba = ctx.extra
        plan, rate = opt.plan, opt.rate
        zoned = opt.zoned(keep)
        d_act = plan.empty(*h_new.shape, like=h_new)  # = d gi
        dh = grad_h.clone()
        if numba:
            calls.indrnn_backward(plan.grads(grad_out), dh, d_act, h_new, um, mask, keep, opt)
        else:
            grads = plan.grads(grad_out).unbind(0)
            per_step = _per_step(h_new, d_act)
        for t, _, _, b in [] if numba else reversed(plan.order):
            if b == 0:
                continue
            h_t, da = _cut(b, per_step[t])
            dh[:b] += grads[t][:b]
            if zoned:
                dhn, dh_keep = _zoneout_backward(dh[:b], _keep(keep, t, 0, b), rate)
            else:
                dhn = dh[:b]
            da.copy_(_activate_backward(dhn, h_t, opt.nonlinearity))
            dh_prev = da * (um if mask is None else um[:b])
            dh[:b] = dh_prev + dh_keep if zoned else dh_prev
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
    return _IndRNN.apply(gi, h0, u, mask, keep, _options(gi, options))


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
        plan, rate = opt.plan, opt.rate
        steps, batch, hidden = gi.shape
        out_size = w_hy.shape[0]
        zoned = opt.zoned(keep)
        w_in, w_out = w_yh.t(), w_hy.t()  # (O, H), (H, O)
        hid = plan.empty(steps, batch, hidden, like=gi)  # the hidden layer
        ys = plan.empty(steps + 1, batch, out_size, like=gi)
        ys[plan.first] = y0
        y_new = plan.empty(steps, batch, out_size, like=gi) if zoned else plan.written(ys)
        numba = calls.numba_runs(gi)
        if numba:
            calls.jordan_forward(gi, w_yh, w_hy, b_hy, hid, ys, y_new, y0, mask, keep, opt)
        else:
            per_step = _per_step(gi, hid, y_new)
            y_s = ys.unbind(0)
        for t, prev, new, b in [] if numba else plan.order:
            if b == 0:
                continue
            plan.start(t, (ys,), (y0,))
            y, yn = _cut(b, (y_s[prev], y_s[new]))
            g, h, y_t = _cut(b, per_step[t])
            y_in = y if mask is None else y * mask[:b]
            _activate(torch.addmm(g, y_in, w_in, out=h), opt.nonlinearity)
            if b_hy is None:
                torch.mm(h, w_out, out=y_t)
            else:
                torch.addmm(b_hy, h, w_out, out=y_t)
            _activate(y_t, opt.output_nonlinearity)
            if zoned:
                _zoneout(y, y_t, _keep(keep, t, 0, b), rate, yn)
        ctx.save_for_backward(w_yh, w_hy, mask, keep, hid, ys, y_new)
        ctx.extra = (opt, b_hy is not None, numba)
        return plan.outputs(ys, not opt.scratch), plan.final(ys)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_y: Tensor) -> tuple:
        w_yh, w_hy, mask, keep, hid, ys, y_new = ctx.saved_tensors
        opt, has_bias, numba = ctx.extra
        plan, rate = opt.plan, opt.rate
        zoned = opt.zoned(keep)
        d_act = plan.empty(*hid.shape, like=hid)  # d hidden pre-activation = d gi
        d_z = plan.empty(*y_new.shape, like=y_new)  # d output pre-activation
        dy = grad_y.clone()
        if numba:
            incoming, saved = (plan.grads(grad_out), dy), (hid, y_new)
            calls.jordan_backward(incoming, saved, w_yh, w_hy, (d_act, d_z), mask, keep, opt)
        else:
            grads = plan.grads(grad_out).unbind(0)
            per_step = _per_step(hid, y_new, d_act, d_z)
        for t, _, _, b in [] if numba else reversed(plan.order):
            if b == 0:
                continue
            h, y_t, da, dz = _cut(b, per_step[t])
            dy[:b] += grads[t][:b]
            if zoned:
                dyn, dy_keep = _zoneout_backward(dy[:b], _keep(keep, t, 0, b), rate)
            else:
                dyn = dy[:b]
            dz.copy_(_activate_backward(dyn, y_t, opt.output_nonlinearity))
            da.copy_(_activate_backward(dz @ w_hy, h, opt.nonlinearity))
            dy_prev = da @ w_yh  # (b, O)
            if mask is not None:
                dy_prev *= mask[:b]
            dy[:b] = dy_prev + dy_keep if zoned else dy_prev
        d_w_yh = _weight_grad(d_act, _recurrent_inputs(plan, ys, mask))
        d_w_hy = _weight_grad(d_z, hid)
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
    return _Jordan.apply(gi, y0, w_yh, w_hy, b_hy, mask, keep, _options(gi, options))
