"""minGRU and minLSTM: gates that read only the input, and the linear recurrence they feed.

Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?", arXiv:2410.01201
(2024). Dropping the hidden state from the gates of a GRU or an LSTM leaves a first-order
linear recurrence with input-dependent coefficients,

    ``h_t = a_t * h_{t-1} + b_t``,  ``a_t`` in ``(0, 1)``,

so the gates of all steps come from one matrix product and the time loop need not run step
by step. Both cells are interpolations ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``
(``a = 1 - z``, ``b = z * h~``): minGRU's ``z`` is its update gate, minLSTM's is the
normalised input gate ``i' = 1 - f'``.

What is here:

* :func:`min_gru_scan` and :func:`min_lstm_scan`: a whole sequence from the projected input,
  gates, scan and backward fused in one autograd function (what the cells' layers run). Their
  equations are written once, in :mod:`rnnkit.cells.mingru` and :mod:`rnnkit.cells.minlstm`:
  the scan takes its gates from the cells' ``interpolation``, on all steps at once;
* :func:`positive_g`: the paper's positive candidate;
* :func:`linear_scan`: the same exact scan for any ``(a, b)``;
* :func:`linear_scan_log`: the paper's log-space scan (Heinsen 2023), kept to compare with.

The scan (see ``_scan_into``) is exact: it only multiplies and adds the numbers the step loop
would, in another order, in chunks of about ``sqrt(L / 3)`` steps. Its backward is written
out: the gradient of a linear recurrence is the same recurrence run backwards in time,
``dh_t = g_t + a_{t+1} dh_{t+1}``, then ``grad a_t = dh_t h_{t-1}`` and ``grad b_t = dh_t``.

Why this scan (measured in benchmarks/README.md, "Choosing minGRU's scan"): the paper's
log-space scan runs ``exp``, ``log`` and ``logcumsumexp`` with its backward over ``2 (L+1) N H``
values and loses precision as ``L`` grows; a chunked scan traced by autograd (a ``cumprod``
fix-up) keeps every chunk's temporaries in its graph; the step loop pays the interpreter at
every step. On the CPU the cost is passes over memory, so the scan makes five, allocates
nothing of size ``(L, N, H)`` beyond its output, and the fused minGRU/minLSTM functions also
skip materialising ``a`` and ``b``.

On CPU tensors of float32 or float64, at every batch, the fused minGRU/minLSTM functions run
two compiled loops instead (``_fused_numba.min_forward`` and ``min_backward``): one pass over
the projection forwards, keeping only the outputs, and one backwards that recomputes the
gates, step by step in time as the step loop runs. The scan runs everywhere else (another
device, float16 and bfloat16).

Shape letters: ``L`` sequence length, ``N`` batch, ``H`` hidden size. Projected inputs hold
the gate blocks side by side in the last dimension, in the order ``(z, h)`` for minGRU and
``(f, i, h)`` for minLSTM.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from rnnkit.cells import mingru, minlstm
from rnnkit.functional import _numba_calls as calls
from rnnkit.functional.ops import TORCH

_POSITIVE = SimpleNamespace(positive=True)

# ----------------------------------------------------------------------------------- gates


def positive_g(x: Tensor) -> Tensor:
    """The paper's ``g(x) = x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below: continuous, > 0
    (:func:`rnnkit.cells.mingru.candidate` with ``positive``)."""
    return mingru.candidate(TORCH, _POSITIVE, x)


def _positive_g_grad(x: Tensor) -> Tensor:
    """``g'(x)``: 1 for ``x >= 0``, ``sigmoid(x) * (1 - sigmoid(x))`` below."""
    s = torch.sigmoid(x)
    return torch.where(x >= 0, 1.0, s - s * s)


# ------------------------------------------------------------------------ the exact scan


def _chunk_size(length: int) -> int:
    """Steps per chunk: ``sqrt(L / 3)`` minimises the ``3 C + L / C`` operations of a scan."""
    return max(1, round(math.sqrt(length / 3)))


def _scan_into(
    out: Tensor, coef: Tensor, value: Tensor, h0: Tensor, reverse: bool, interpolate: bool
) -> None:
    """Run a linear recurrence over dimension 0, writing every state into ``out``.

    ``interpolate=False``: ``out[t] = coef[t] * out[t-1] + value[t]`` (``a``, ``b`` form);
    ``interpolate=True``: ``out[t] = (1 - coef[t]) * out[t-1] + coef[t] * value[t]``
    (``z``, ``h~`` form, which spares materialising ``a`` and ``b``). ``out[-1]`` means
    ``h0``; with ``reverse`` time runs from the end (``out[t+1]``, ``out[L]`` = ``h0``).

    ``out`` is ``(L, *)`` and contiguous; ``coef`` and ``value`` are ``(L, *)`` views whose
    dimension 0 can be split (any slice of a projection, or a broadcast gradient); ``h0`` is
    ``(*)``.

    Method: cut time into ``K`` chunks of ``C`` steps (the remaining ``< C`` steps run one by
    one at the end). (1) With all chunks side by side, step through the ``C`` positions
    once to get each chunk's map ``h -> A_k h + B_k`` (``A_k`` the product of its ``a``,
    ``B_k`` its end state from 0). (2) Carry the true state across chunks,
    ``s_{k+1} = A_k s_k + B_k``. (3) Step through the positions again, every chunk from its
    true start, writing ``out``. That is ``3 C + K`` vectorised operations instead of ``L``
    and five passes over the data, no division, logarithm or ``(L, *)`` temporary; only the
    order of the products and sums differs from the loop's.
    """
    length = coef.shape[0]
    chunk = _chunk_size(length)
    count = length // chunk
    main = count * chunk if chunk > 1 and count > 1 else 0
    h = h0
    if main:
        shape = (count, chunk, *coef.shape[1:])
        part = slice(length - main, length) if reverse else slice(0, main)
        cv, vv = coef[part].reshape(shape), value[part].reshape(shape)  # views if they can be
        ov = out[part].view(shape)
        first = chunk - 1 if reverse else 0
        positions = range(chunk - 2, -1, -1) if reverse else range(1, chunk)
        # (1) every chunk's affine map h -> product * h + end, (K, *) each
        if interpolate:
            end, product = vv[:, first] * cv[:, first], 1.0 - cv[:, first]
            for j in positions:
                torch.lerp(end, vv[:, j], cv[:, j], out=end)
                product.addcmul_(product, cv[:, j], value=-1.0)
        else:
            end, product = vv[:, first].clone(), cv[:, first].clone()
            for j in positions:
                torch.addcmul(vv[:, j], cv[:, j], end, out=end)
                product.mul_(cv[:, j])
        # (2) the state entering each chunk: starts[k] forwards, starts[k + 1] in reverse
        starts = torch.empty((count + 1, *end.shape[1:]), dtype=end.dtype, device=end.device)
        starts[-1 if reverse else 0] = h0
        for k in range(count - 1, -1, -1) if reverse else range(count):
            into, start = (k, k + 1) if reverse else (k + 1, k)
            torch.addcmul(end[k], product[k], starts[start], out=starts[into])
        # (3) every chunk again from its true start
        previous = starts[1:] if reverse else starts[:-1]
        for j in (first, *positions):
            if interpolate:
                torch.lerp(previous, vv[:, j], cv[:, j], out=ov[:, j])
            else:
                torch.addcmul(vv[:, j], cv[:, j], previous, out=ov[:, j])
            previous = ov[:, j]
        h = out[length - main] if reverse else out[main - 1]  # the last state written
    rest = range(length - main - 1, -1, -1) if reverse else range(main, length)
    for t in rest:
        if interpolate:
            h = torch.lerp(h, value[t], coef[t], out=out[t])
        else:
            h = torch.addcmul(value[t], coef[t], h, out=out[t])


def _state_gradient(coef: Tensor, grad_output: Tensor, grad_final: Tensor, reverse: bool) -> Tensor:
    """``dh_t = g_t + a_{t+1} dh_{t+1}`` (``a_{t-1} dh_{t-1}`` for a reversed scan), ``(L, *)``.

    The final state is the last output, so its gradient joins ``g`` at the last step.
    """
    dh = torch.empty(grad_output.shape, dtype=coef.dtype, device=coef.device)
    if reverse:
        torch.add(grad_output[0], grad_final, out=dh[0])
        _scan_into(dh[1:], coef[:-1], grad_output[1:], dh[0], False, interpolate=False)
    else:
        torch.add(grad_output[-1], grad_final, out=dh[-1])
        _scan_into(dh[:-1], coef[1:], grad_output[:-1], dh[-1], True, interpolate=False)
    return dh


def _previous_states(h: Tensor, h0: Tensor, reverse: bool) -> tuple[int, slice, Tensor]:
    """``(first, others, before)``: the first step's index, the other steps, and their
    previous states, so that ``h_{t-1}`` is ``h0`` at ``first`` and ``before`` at ``others``."""
    if reverse:
        return -1, slice(None, -1), h[1:]
    return 0, slice(1, None), h[:-1]


def _valid_steps(lengths: Tensor, length: int) -> Tensor:
    """``(L, N, 1)`` bool: step ``t`` of sequence ``n`` is before ``lengths[n]``."""
    steps = torch.arange(length, device=lengths.device)
    return (steps.unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1)


class _LinearScan(torch.autograd.Function):
    """:func:`linear_scan`, with its backward written out."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        a: Tensor,
        b: Tensor,
        h0: Tensor,
        lengths: Tensor | None,
        reverse: bool,
    ) -> tuple[Tensor, Tensor]:
        valid = None if lengths is None else _valid_steps(lengths, a.shape[0])
        if valid is not None:  # steps past a length keep the state: a = 1, b = 0
            a, b = torch.where(valid, a, 1.0), torch.where(valid, b, 0.0)
        h = torch.empty(a.shape, dtype=a.dtype, device=a.device)  # (L, N, H)
        _scan_into(h, a, b, h0, reverse, interpolate=False)
        ctx.save_for_backward(a, h, h0, valid)
        ctx.reverse = reverse
        final = h[0 if reverse else -1].clone()  # (N, H)
        return (h if valid is None else h * valid), final

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_output: Tensor, grad_final: Tensor
    ) -> tuple[Tensor | None, ...]:
        a, h, h0, valid = ctx.saved_tensors
        if valid is not None:
            grad_output = grad_output * valid  # outputs past a length are constant zeros
        dh = _state_gradient(a, grad_output, grad_final, ctx.reverse)
        first, others, before = _previous_states(h, h0, ctx.reverse)
        grad_a = grad_b = grad_h0 = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.empty_like(a)  # dh_t * h_{t-1}
            torch.mul(dh[others], before, out=grad_a[others])
            torch.mul(dh[first], h0, out=grad_a[first])
            if valid is not None:
                grad_a.mul_(valid)
        if ctx.needs_input_grad[1]:
            grad_b = dh if valid is None else dh * valid
        if ctx.needs_input_grad[2]:
            grad_h0 = a[first] * dh[first]
        return grad_a, grad_b, grad_h0, None, None


def linear_scan(
    a: Tensor,
    b: Tensor,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """``h_t = a_t * h_{t-1} + b_t`` over a whole sequence, exactly (see the module doc).

    Any real ``a``, ``b`` and ``h0`` work; the result is the step loop's up to the rounding
    of another summation order, whatever ``L``. The backward is written out and keeps
    ``a`` and ``h``; it is first-order only (no double backward).

    Args:
        a, b: ``(L, N, H)``.
        h0: ``(N, H)``, the state before the first step.
        lengths: ``(N,)`` int64 on the device of ``a``, or None. Steps ``t >= lengths[n]``
            leave sequence ``n``'s state unchanged and output zeros.
        reverse: run from ``t = L - 1`` down to 0 (each sequence from its last valid step).

    Returns:
        ``(outputs, final)``: ``(L, N, H)`` and the state after the last valid step ``(N, H)``.
    """
    return _LinearScan.apply(a, b, h0, lengths, reverse)


class _MinimalScan(torch.autograd.Function):
    """:func:`min_gru_scan` / :func:`min_lstm_scan`: gates, scan and backward in one.

    Fusing saves the ``(L, N, H)`` tensors ``a`` and ``b`` and their autograd steps, and
    writes the gradient of the projection in place instead of concatenating its blocks.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        projected: Tensor,
        h0: Tensor,
        lengths: Tensor | None,
        reverse: bool,
        lstm: bool,
        positive: bool,
    ) -> tuple[Tensor, Tensor]:
        ctx.reverse, ctx.lstm, ctx.positive = reverse, lstm, positive
        ctx.compiled = calls.numba_runs(projected)
        if ctx.compiled:  # one pass over the projection, nothing kept but the outputs
            h, final = calls.min_forward(projected, h0, lengths, (reverse, lstm, positive))
            ctx.save_for_backward(projected, h, h0, lengths)
            return h, final
        # the cell's own equations, on all steps at once: (L, N, H) each
        cell, options = (minlstm if lstm else mingru), SimpleNamespace(positive=positive)
        z, candidate = cell.interpolation(TORCH, options, projected)
        valid = None if lengths is None else _valid_steps(lengths, projected.shape[0])
        if valid is not None:  # z = 0 past a length: the state stays
            z.masked_fill_(~valid, 0.0)
        h = torch.empty_like(z)  # (L, N, H)
        _scan_into(h, z, candidate, h0, reverse, interpolate=True)
        ctx.save_for_backward(projected, z, candidate, h, h0, valid)
        final = h[0 if reverse else -1].clone()  # (N, H)
        return (h if valid is None else h * valid), final

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_output: Tensor, grad_final: Tensor
    ) -> tuple[Tensor | None, ...]:
        if not any(ctx.needs_input_grad[:2]):
            return (None,) * 6
        if ctx.compiled:
            projected, h, h0, lengths = ctx.saved_tensors
            flags = ctx.reverse, ctx.lstm, ctx.positive
            grad, grad_h0 = calls.min_backward(
                projected, h0, lengths, flags, h, grad_output, grad_final
            )
            return grad, grad_h0 if ctx.needs_input_grad[1] else None, None, None, None, None
        projected, z, candidate, h, h0, valid = ctx.saved_tensors
        if valid is not None:
            grad_output = grad_output * valid
        a = 1.0 - z
        dh = _state_gradient(a, grad_output, grad_final, ctx.reverse)
        grad = torch.empty_like(projected)  # (L, N, G*H)
        grad_blocks = grad.chunk(3 if ctx.lstm else 2, dim=-1)
        blocks = projected.chunk(3 if ctx.lstm else 2, dim=-1)
        # candidate: dh_t * z_t (0 past a length, where z = 0), times g' with `positive`
        torch.mul(dh, z, out=grad_blocks[-1])
        if ctx.positive:
            grad_blocks[-1].mul_(_positive_g_grad(blocks[-1]))
        # z: dh_t * (candidate_t - h_{t-1}), then through the sigmoid: * z * (1 - z)
        first, others, before = _previous_states(h, h0, ctx.reverse)
        grad_z = torch.empty_like(z)
        torch.sub(candidate[others], before, out=grad_z[others])
        torch.sub(candidate[first], h0, out=grad_z[first])
        grad_z.mul_(dh).mul_(z)  # 0 past a length, where z = 0
        if ctx.lstm:  # dz/dk_f = -z (1 - z) (1 - f), dz/dk_i = z (1 - z) (1 - i)
            f, i = torch.sigmoid(blocks[0]), torch.sigmoid(blocks[1])
            grad_z.mul_(a)
            torch.mul(grad_z, f, out=grad_blocks[0]).sub_(grad_z)
            torch.sub(grad_z, torch.mul(grad_z, i, out=grad_blocks[1]), out=grad_blocks[1])
        else:
            torch.mul(grad_z, a, out=grad_blocks[0])
        grad_h0 = a[first] * dh[first] if ctx.needs_input_grad[1] else None
        return grad, grad_h0, None, None, None, None


def min_gru_scan(
    projected: Tensor,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
    positive: bool = False,
) -> tuple[Tensor, Tensor]:
    """A whole minGRU sequence from its projected input: the parallel mode.

    Equals looping the step of :mod:`rnnkit.cells.mingru` up to rounding.
    First-order gradients only (the backward is written out; no double backward).

    Args:
        projected: ``(L, N, 2H)``, ``Linear(x)`` for every step, blocks ``(k_z, k_h)``.
        h0, lengths, reverse: as :func:`linear_scan`.
        positive: pass ``h~ = k_h`` through :func:`positive_g`.

    Returns:
        ``(outputs, final)``: ``(L, N, H)`` and ``(N, H)``.
    """
    return _MinimalScan.apply(projected, h0, lengths, reverse, False, positive)


def min_lstm_scan(
    projected: Tensor,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
    positive: bool = False,
) -> tuple[Tensor, Tensor]:
    """A whole minLSTM sequence from its projected input: the parallel mode.

    Equals looping the step of :mod:`rnnkit.cells.minlstm` up to rounding.
    First-order gradients only (the backward is written out; no double backward).

    Args:
        projected: ``(L, N, 3H)``, ``Linear(x)`` for every step, blocks ``(k_f, k_i, k_h)``.
        h0, lengths, reverse: as :func:`linear_scan`.
        positive: pass ``h~ = k_h`` through :func:`positive_g`.

    Returns:
        ``(outputs, final)``: ``(L, N, H)`` and ``(N, H)``.
    """
    return _MinimalScan.apply(projected, h0, lengths, reverse, True, positive)


# ------------------------------------------------------------------------- log-space scan


def _signed_log(x: Tensor, sign: float, floor: float) -> Tensor:
    """``log(max(sign * x, 0))``, with ``floor`` (hugely negative, finite) for ``log 0``.

    A finite floor keeps ``logcumsumexp``'s backward finite where a prefix is all empty
    (``-inf`` there gives NaN), and the double ``where`` gives those entries gradient 0.
    """
    part = sign * x
    present = part > 0
    return torch.where(present, torch.log(torch.where(present, part, 1.0)), floor)


def linear_scan_log(
    a: Tensor,
    b: Tensor,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """The paper's log-space scan (Heinsen 2023, arXiv:2311.06281), for ``a > 0``, any sign.

    ``log h_t = A_t + logcumsumexp_{s <= t}(log b_s - A_s)`` with ``A_t = sum_{s <= t} log a_s``
    and ``b_{-1} = h0``. Logarithms need positive values; the recurrence is linear in
    ``(h0, b)`` for fixed ``a``, so it runs on the positive parts and on the negative parts
    of ``(h0, b)`` together (one ``logcumsumexp`` over both, stacked) and
    ``h = scan(b+, h0+) - scan(b-, h0-)``: exact in real arithmetic, whatever the signs.

    In floating point ``|A_t|`` grows like ``L * |log a|`` and ``exp`` turns its absolute
    rounding error into a relative error of ``h_t``: in float32 about ``1e-4`` at ``L = 256``
    and ``1e-3`` at ``L = 4096`` for ``a`` uniform in ``(0.05, 0.95)`` (use float64 where
    that matters). ``a`` below the smallest normal number counts as that number. Gradients
    come from autograd. :func:`linear_scan` is exact and faster; this is kept as the paper's
    method, to compare with.

    Args and returns: as :func:`linear_scan`.
    """
    length = a.shape[0]
    valid = None if lengths is None else _valid_steps(lengths, length)
    if valid is not None:
        a, b = torch.where(valid, a, 1.0), torch.where(valid, b, 0.0)
    if reverse:
        a, b = a.flip(0), b.flip(0)
    info = torch.finfo(a.dtype)
    log_a = torch.cumsum(torch.log(a.clamp_min(info.tiny)), dim=0)  # A_t, (L, N, H)
    log_a = torch.cat([torch.zeros_like(log_a[:1]), log_a])  # A_{-1} = 0, (L + 1, N, H)
    values = torch.cat([h0.unsqueeze(0), b])  # (L + 1, N, H)
    floor = info.min / 4
    parts = torch.stack([_signed_log(values, 1.0, floor), _signed_log(values, -1.0, floor)])
    log_h = log_a + torch.logcumsumexp(parts - log_a, dim=1)  # (2, L + 1, N, H)
    h = log_h.exp()
    h = (h[0] - h[1])[1:]  # (L, N, H)
    final = h[-1]
    if reverse:
        h = h.flip(0)
    return (h if valid is None else h * valid), final
