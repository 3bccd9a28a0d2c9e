"""The time loops of the fused recurrences, compiled by numba.

At a batch of a few sequences a step is microseconds of arithmetic, which torch ops would
spend in interpreter time, several microseconds for each of some 20 ops per step. These loops
run on NumPy views of the buffers :mod:`rnnkit.functional.fused` allocates; the gate
equations of their forwards are :mod:`rnnkit.runtime.gates`', shared with the streaming
runtime. Parameter gradients are left to one batched reduction after the backward, except
the layer norms' gains and shifts, which the loops add up as they go. The LSTM loops also take
the input layer norm and keep ``h W_hh^T`` for the backward; the inference loops project each
step's input themselves (:data:`PROJECT`). A step's matmul is :func:`_dot` or, with a weight
the step multiplies transposed (``h W_hh^T``, ``x W_ih^T``), :func:`_dot_t`, which reads the
weight as the layer holds it: a loop of its own up to ``tuning.LOOP_PRODUCT_ROWS``
(``LOOP_TRANSPOSED_ROWS``) rows, else torch's BLAS (:mod:`rnnkit.functional._gemm`).
``exact`` (float64) takes the C library's ``tanh`` instead of the rational one of
:mod:`rnnkit.runtime.activations`.
Every function compiles with ``error_model="numpy"``: a float division that cannot raise lets
LLVM vectorise the gate loops. Constants and scalars go through
:func:`~rnnkit.runtime.activations.like`, so float32 buffers get float32 arithmetic. Each
loop's scratch buffers are made by a thin public function and passed in as arguments:
allocated in the function of the loop itself, they made its point-wise work slower (why LLVM
does worse beside a local array was not pinned down).

The arrays come in a few tuples, which :mod:`rnnkit.functional.fused` builds; each loop's
docstring gives those of its own (buffers, states, weights, what it saved). An absent option
is a 1-element stand-in beside a flag that says so, in the same tuple (one compiled signature
per dtype). Shared by the loops:

- ``walk`` ``(rows, reverse)``: the sequences still running at each step ``(L,)`` (a prefix
  of the batch sorted by length) and the direction;
- ``reg`` ``(mask, keep, rate, zoned, use_mask, use_keep)``: the regularisers, ``mask``
  ``(N, S)`` the recurrent dropout mask, ``keep`` ``(L, K, N, S)`` training zoneout's,
  ``rate`` eval zoneout's, ``zoned`` either zoneout;
- ``given`` ``(source, x, w_ih, bias)``: where a forward loop finds each step's ``gi``
  (:data:`IN_ACT`, :data:`COPY`, :data:`PROJECT`), ``x`` ``(L, N, G)`` or the inputs
  ``(L, N, I)``, ``w_ih`` ``(G, I)`` as the layer holds it, ``bias`` ``(G,)``;
- a layer norm, in the forward ``(on, gain, shift, eps, stats)``, ``stats`` ``(L, N, 2)``
  holding each row's mean and ``1/std``; in the backward ``(on, x, gain, stats, d_gain,
  d_shift)``, ``x`` what it normalised, ``d_gain`` and ``d_shift`` the gradients the loop adds
  to.

Shapes as in :mod:`rnnkit.functional.fused`: gates in ``(i, f, g, o)`` order (LSTM,
``G = 4H``) or ``(r, z, n)`` (GRU, ``G = 3H``); IndRNN and Jordan name their nonlinearities by
their index in :data:`rnnkit.runtime.gates.ACTIVATIONS`. The equations of a step's rows are
those of :mod:`rnnkit.runtime.gates`, which the runtime's kernels run too; the loops here add
what training needs around them (the walk over steps and lengths, the regularisers, what the
backward reads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rnnkit.functional._gemm import gemm
from rnnkit.functional.tuning import LOOP_PRODUCT_ROWS, LOOP_TRANSPOSED_ROWS
from rnnkit.runtime.activations import like
from rnnkit.runtime.gates import (
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
    activate_row,
    gru_rows,
    indrnn_row,
    lstm_rows,
    min_gates,
    min_row,
)


@njit(cache=True, error_model="numpy", inline="always")
def _dot(x, w, out):
    """``out = x @ w`` for ``x`` ``(M, K)``, ``w`` ``(K, N)``: up to
    ``tuning.LOOP_PRODUCT_ROWS`` rows :func:`_axpy_rows` (which the compiler vectorises for the
    host CPU), above it torch's BLAS (:func:`rnnkit.functional._gemm.gemm`), whose call costs
    more than the loop's work at so few rows."""
    if x.shape[0] > LOOP_PRODUCT_ROWS:
        gemm(x, w, out)
    else:
        _axpy_rows(x, w, out)


@njit(cache=True, error_model="numpy", inline="always")
def _axpy_rows(x, w, out):
    """``out = x @ w`` row by row, each an ``axpy`` over ``w``'s contiguous rows."""
    for n in range(x.shape[0]):
        row = out[n]
        row[:] = like(out, 0.0)
        for k in range(x.shape[1]):
            scale, w_k = x[n, k], w[k]
            for j in range(row.shape[0]):
                row[j] += scale * w_k[j]


@njit(cache=True, error_model="numpy", inline="always")
def _dot_t(x, w, out):
    """``out = x @ w^T`` for ``x`` ``(M, K)``, ``w`` ``(N, K)`` as it lies (a layer's
    ``W_hh``, ``W_ih``): up to ``tuning.LOOP_TRANSPOSED_ROWS`` rows :func:`_row_dots`, above it
    torch's BLAS told to transpose ``w``, so no call copies a weight transposed."""
    if x.shape[0] > LOOP_TRANSPOSED_ROWS:
        gemm(x, w, out, True)
    else:
        _row_dots(x, w, out)


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _row_dots(x, w, out):
    """``out = x @ w^T`` as one dot product per entry, each over a row of ``x`` and a row of
    ``w``, both contiguous; ``reassoc`` lets the sums vectorise (see
    :func:`~rnnkit.runtime.gates.mean_rstd`). The rows of ``w`` go four at a time, each block
    against every row of ``x`` while it is in the cache: ``w`` is read from memory once a step
    whatever the rows, and each load of ``x`` feeds four sums whose reductions overlap."""
    rows = w.shape[0]
    whole = rows - rows % 4
    for j in range(0, whole, 4):
        w_0, w_1, w_2, w_3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        for n in range(x.shape[0]):
            x_n = x[n]
            s_0 = s_1 = s_2 = s_3 = like(out, 0.0)
            for k in range(x_n.shape[0]):
                v = x_n[k]
                s_0 += v * w_0[k]
                s_1 += v * w_1[k]
                s_2 += v * w_2[k]
                s_3 += v * w_3[k]
            out[n, j], out[n, j + 1], out[n, j + 2], out[n, j + 3] = s_0, s_1, s_2, s_3
    for j in range(whole, rows):
        w_j = w[j]
        for n in range(x.shape[0]):
            x_n = x[n]
            total = like(out, 0.0)
            for k in range(x_n.shape[0]):
                total += x_n[k] * w_j[k]
            out[n, j] = total


@njit(cache=True, error_model="numpy", inline="always")
def _record(stats, t, n, moments):
    """Keep a row's ``moments`` ``(2,)``, its layer norm's mean and ``1/std``, in
    ``stats[t, n]`` (slot ``t % len``) for the backward. ``stats`` is an argument of its own,
    not taken out of a layer norm's tuple here: numba (0.68) dropped the writes of an inlined
    function to an array it took out of a tuple."""
    slot = t % stats.shape[0]
    stats[slot, n, 0], stats[slot, n, 1] = moments[0], moments[1]


@njit(cache=True, error_model="numpy", inline="always")
def _narrow(ln):
    """A forward layer norm ``(on, gain, shift, eps, stats)`` as the rows of
    :mod:`rnnkit.runtime.gates` take it: its mean summed in the row's dtype."""
    return ln[0], ln[1], ln[2], ln[3], False


@njit(cache=True, error_model="numpy", inline="always")
def _slots(k, steps, reverse):
    """Iteration ``k`` of a loop in time order: the step ``t`` and the slots of the states
    ``(L + 1, N, S)`` it reads (``prev``) and writes (``new``)."""
    t = steps - 1 - k if reverse else k
    return (t, t + 1, t) if reverse else (t, t, t + 1)


@njit(cache=True, error_model="numpy", inline="always")
def _start(states, initial, rows, t, steps, reverse):
    """Run backwards, the sequences that end (so start) at step ``t`` take their initial
    state: rows ``rows[t + 1]`` to ``rows[t]`` (into slot ``(t + 1) % len`` of a buffer with
    fewer slots than steps)."""
    if reverse and t < steps - 1:
        for n in range(rows[t + 1], rows[t]):
            states[(t + 1) % states.shape[0], n] = initial[n]


@njit(cache=True, error_model="numpy", inline="always")
def _recurrent_input(states, prev, reg, b, out):
    """``out[:b]`` = the states in slot ``prev``, times the recurrent dropout mask of ``reg``."""
    mask, _, _, _, use_mask, _ = reg
    for n in range(b):
        for j in range(out.shape[1]):
            out[n, j] = states[prev, n, j] * mask[n, j] if use_mask else states[prev, n, j]


@njit(cache=True, error_model="numpy", inline="always")
def _zoneout_row(reg, t, k, n, old, new, out):
    """``out`` = row ``n`` of state ``k`` at step ``t`` zoned out: ``where(keep, old, new)``
    or ``lerp(new, old, rate)``."""
    _, keep, rate, zoned, _, use_keep = reg
    if not zoned:
        out[:] = new
    elif use_keep:
        kept = keep[t, k, n]
        for j in range(new.shape[0]):
            out[j] = old[j] if kept[j] else new[j]
    else:
        share = like(new, rate)
        for j in range(new.shape[0]):
            out[j] = new[j] + share * (old[j] - new[j])


@njit(cache=True, error_model="numpy", inline="always")
def _zoneout_row_backward(reg, t, k, n, grad, d_new, d_old):
    """Split the gradient of a zoned-out row (as :func:`_zoneout_row`) into ``d_new`` and
    ``d_old``."""
    _, keep, rate, zoned, _, use_keep = reg
    zero, one = like(grad, 0.0), like(grad, 1.0)
    if not zoned:
        d_new[:] = grad
        d_old[:] = zero
    elif use_keep:
        kept = keep[t, k, n]
        for j in range(grad.shape[0]):
            d_new[j], d_old[j] = (zero, grad[j]) if kept[j] else (grad[j], zero)
    else:
        share = like(grad, rate)
        for j in range(grad.shape[0]):
            d_new[j], d_old[j] = grad[j] * (one - share), grad[j] * share


@njit(cache=True, error_model="numpy", inline="always")
def _add_masked(grad, reg, rest, out):
    """``out = grad * mask + rest`` (``grad`` alone without recurrent dropout), row by row:
    the gradient at the state a step read."""
    mask, _, _, _, use_mask, _ = reg
    for n in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            dm = grad[n, j] * mask[n, j] if use_mask else grad[n, j]
            out[n, j] = dm + rest[n, j]


#: Where the LSTM forward loop finds each step's ``gi``: already in ``act`` (``gi + b_hh``),
#: in ``x`` (``act = x[t] + bias``), or to project from ``x`` (``act = x[t] @ W_ih^T + bias``).
IN_ACT, COPY, PROJECT = 0, 1, 2


@njit(cache=True, error_model="numpy", nogil=True)
def lstm_forward(buffers, states, weights, given, norms, reg, walk, exact):
    """Fill the per-step ``buffers`` ``(act, c_new, tanh_c, gh)``: ``act`` pre-activations,
    then activations; ``c_new`` c' before zoneout (unused without zoneout, where ``cs`` gets
    c' in place); ``tanh_c`` ``tanh(LN_c(c'))``; ``gh`` ``h W_hh^T``. ``states`` ``(hs, cs,
    h0, c0)``; ``weights`` ``(w_hh, w_peep, peep)``, ``w_hh`` ``(4H, H)`` as the layer holds
    it, ``w_peep`` ``(3, H)``; ``given`` says where each step's ``gi`` is (see the module
    docstring); ``norms`` ``(ln_ih, ln_hh, ln_c)``: ``ln_ih`` normalises each row of ``gi``
    first.

    A per-step buffer may have fewer slots than steps, reused in turn (index ``t % len``;
    without ``lengths``): ``act``, ``tanh_c``, ``c_new``, ``gh``, the stats one slot where
    nothing is kept for a backward, ``cs`` two (``hs`` holds the output, all ``L + 1``)."""
    act = buffers[0]
    batch, hidden = act.shape[1], act.shape[2] // 4
    h_in, y = np.empty((batch, hidden), act.dtype), np.empty((batch, hidden), act.dtype)
    moments = np.empty((3, batch, 2), act.dtype)
    _lstm_forward(buffers, states, weights, given, norms, reg, walk, exact, h_in, y, moments)


@njit(cache=True, error_model="numpy")
def _lstm_forward(buffers, states, weights, given, norms, reg, walk, exact, h_in, y, moments):
    """The loop of :func:`lstm_forward`, its scratch buffers allocated by the caller: ``y``
    ``(N, H)`` h' before zoneout, ``moments`` ``(3, N, 2)`` the layer norms' of a step."""
    act, c_new, tanh_c, gh_all = buffers
    hs, cs, h0, c0 = states
    w, w_peep, peep = weights
    source, x, w_ih, bias = given
    ln_ih, ln_hh, ln_c = norms
    stats_ih, stats_hh, stats_c = ln_ih[4], ln_hh[4], ln_c[4]
    peepholes, rows_norms = (w_peep, peep), (_narrow(ln_ih), _narrow(ln_hh), _narrow(ln_c))
    zoned = reg[3]
    rows, reverse = walk
    steps = hs.shape[0] - 1
    gates = act.shape[2]
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(hs, h0, rows, t, steps, reverse)
        _start(cs, c0, rows, t, steps, reverse)
        _recurrent_input(hs, prev, reg, b, h_in)
        gh = gh_all[t % gh_all.shape[0], :b]  # (b, 4H): h W_hh^T
        _dot_t(h_in[:b], w, gh)
        s, c_prev, c_next = t % act.shape[0], prev % cs.shape[0], new % cs.shape[0]
        a = act[s, :b]  # (b, 4H)
        if source == PROJECT:
            _dot_t(x[t, :b], w_ih, a)
        for n in range(b):
            if source == COPY:
                for j in range(gates):
                    a[n, j] = x[t, n, j] + bias[j]
            elif source == PROJECT:
                for j in range(gates):
                    a[n, j] += bias[j]
        cn = c_new[t % c_new.shape[0], :b] if zoned else cs[c_next, :b]
        tc = tanh_c[t % tanh_c.shape[0], :b]
        lstm_rows(a, gh, cs[c_prev, :b], cn, tc, y[:b], peepholes, rows_norms, moments, exact)
        for n in range(b):
            if ln_ih[0]:
                _record(stats_ih, t, n, moments[0, n])
            if ln_hh[0]:
                _record(stats_hh, t, n, moments[1, n])
            if ln_c[0]:
                _record(stats_c, t, n, moments[2, n])
            _zoneout_row(reg, t, 0, n, hs[prev, n], y[n], hs[new, n])
            if zoned:  # else c' is written in place already
                _zoneout_row(reg, t, 1, n, cs[c_prev, n], cn[n], cs[c_next, n])


@njit(cache=True, error_model="numpy", nogil=True)
def recurrent_products(hs, w, reg, walk, out):
    """``out[t]`` = what entered the recurrent weights at step ``t`` times ``W^T`` (``w``
    ``(G, H)``), by the same products as :func:`lstm_forward`'s (so bit for bit the ``gh``
    it kept)."""
    rows, reverse = walk
    steps, batch = hs.shape[0] - 1, hs.shape[1]
    h_in = np.empty((batch, hs.shape[2]), hs.dtype)
    for k in range(steps):
        t, prev, _ = _slots(k, steps, reverse)
        b = rows[t]
        if b > 0:
            _recurrent_input(hs, prev, reg, b, h_in)
            _dot_t(h_in[:b], w, out[t, :b])


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _norm_backward(dy, x, mean, rstd, weight, out, d_weight, d_bias):
    """``out`` = d input of ``LN(x)`` (one row) given ``dy`` at its output; adds the gain and
    shift gradients to ``d_weight`` and ``d_bias`` (``reassoc``: see
    :func:`~rnnkit.runtime.gates.mean_rstd`)."""
    width = dy.shape[0]
    m1 = 0.0
    m2 = 0.0
    for j in range(width):
        x_hat = (x[j] - mean) * rstd
        d_weight[j] += dy[j] * x_hat
        d_bias[j] += dy[j]
        d = dy[j] * weight[j]
        m1 += d
        m2 += d * x_hat
    m1, m2 = like(dy, m1 / width), like(dy, m2 / width)
    for j in range(width):
        out[j] = rstd * (dy[j] * weight[j] - m1 - (x[j] - mean) * rstd * m2)


@njit(cache=True, error_model="numpy", inline="always")
def _norm_row_backward(ln, t, n, dy, out):
    """:func:`_norm_backward` of row ``n`` at step ``t`` by the layer norm ``ln``, as the
    backward loops take it (see the module docstring)."""
    _, x, gain, stats, d_gain, d_shift = ln
    _norm_backward(dy, x[t, n], stats[t, n, 0], stats[t, n, 1], gain, out, d_gain, d_shift)


@njit(cache=True, error_model="numpy", nogil=True)
def lstm_backward(grads, saved, weights, norms, reg, walk, out):
    """Fill ``out`` ``(d_act, d_gh)``: ``d_act`` the d pre-activations (= d gi); ``d_gh`` with
    ``LN_hh`` the gradient of ``gh`` (``h W_hh^T``; else it is ``d_act``). ``grads`` ``(grads,
    dh, dc)``: the output's gradient and the final states', ``dh``, ``dc`` ending as d h0,
    d c0; ``saved`` ``(act, cs, tanh_c)`` as the forward left them; ``weights``
    ``(w_hh, w_peep, peep)``; ``norms`` ``(ln_ih, ln_hh, ln_c)``, whose parameter gradients the
    loop adds up (with ``ln_ih``, ``d_act`` ends as d of the ``gi`` it normalised)."""
    act = saved[0]
    batch, gates = act.shape[1:]
    hidden = gates // 4
    _lstm_backward(
        grads,
        saved,
        weights,
        norms,
        reg,
        walk,
        out,
        np.empty(hidden, act.dtype),
        np.empty(hidden, act.dtype),
        np.empty(hidden, act.dtype),
        np.empty((batch, hidden), act.dtype),
        np.empty((batch, hidden), act.dtype),
        np.empty(hidden, act.dtype),
        np.empty(gates, act.dtype),
        np.empty((batch, hidden), act.dtype),
    )


@njit(cache=True, error_model="numpy")
def _lstm_backward(
    grads, saved, weights, norms, reg, walk, out, d, dhn, dcn, keep_h, keep_c, dt, dx, dh_all
):
    """The loop of :func:`lstm_backward`, its scratch buffers allocated by the caller."""
    grad_out, dh, dc = grads
    act, cs, tanh_c = saved
    w_t, w_peep, peep = weights
    ln_ih, ln_hh, ln_c = norms
    d_act, d_gh = out
    rows, reverse = walk
    steps, _, gates = act.shape
    one = like(act, 1.0)
    hidden = gates // 4
    for k in range(steps - 1, -1, -1):
        t, prev, _ = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            a, da = act[t, n], d_act[t, n]
            for j in range(hidden):
                d[j] = dh[n, j] + grad_out[t, n, j]
            _zoneout_row_backward(reg, t, 0, n, d, dhn, keep_h[n])
            _zoneout_row_backward(reg, t, 1, n, dc[n], dcn, keep_c[n])
            for j in range(hidden):
                tc, o = tanh_c[t, n, j], a[3 * hidden + j]
                da[3 * hidden + j] = dhn[j] * tc
                dt[j] = dhn[j] * o * (one - tc * tc)
            if ln_c[0]:
                _norm_row_backward(ln_c, t, n, dt, dx)
                for j in range(hidden):
                    dcn[j] += dx[j]
            else:
                for j in range(hidden):
                    dcn[j] += dt[j]
            for j in range(hidden):
                o = a[3 * hidden + j]
                da[3 * hidden + j] *= o * (one - o)
                if peep:
                    dcn[j] += da[3 * hidden + j] * w_peep[2, j]
            for j in range(hidden):
                i, f, g = a[j], a[hidden + j], a[2 * hidden + j]
                da[j] = dcn[j] * g * i * (one - i)
                da[hidden + j] = dcn[j] * cs[prev, n, j] * f * (one - f)
                da[2 * hidden + j] = dcn[j] * i * (one - g * g)
                dc_prev = dcn[j] * f + keep_c[n, j]
                if peep:
                    dc_prev += da[j] * w_peep[0, j] + da[hidden + j] * w_peep[1, j]
                dc[n, j] = dc_prev
            if ln_hh[0]:
                _norm_row_backward(ln_hh, t, n, da, d_gh[t, n])
            if ln_ih[0]:
                _norm_row_backward(ln_ih, t, n, da, dx)
                da[:] = dx
        dh_prev = dh_all[:b]  # (b, H)
        _dot(d_gh[t, :b], w_t, dh_prev)
        _add_masked(dh_prev, reg, keep_h, dh)


@njit(cache=True, error_model="numpy", inline="always")
def _activate_row_backward(grad, out, kind, d_in):
    """``d_in`` = the gradient at the input of ``act`` (one row) from ``grad`` at its output
    ``out``."""
    dot = 0.0
    if kind == SOFTMAX:
        for j in range(grad.shape[0]):
            dot += grad[j] * out[j]
    for j in range(grad.shape[0]):
        d, y = grad[j], out[j]
        if kind == TANH:
            d *= like(d, 1.0) - y * y
        elif kind == SIGMOID:
            d *= y * (like(d, 1.0) - y)
        elif kind == RELU:
            d = like(d, 0.0) if y <= 0.0 else d
        elif kind == SOFTMAX:
            d = y * (d - dot)
        d_in[j] = d


@njit(cache=True, error_model="numpy", nogil=True)
def gru_forward(buffers, states, weights, given, norms, reg, walk, exact):
    """Fill the per-step ``buffers`` ``(gi, act, gh_n, gh)``: ``act`` (``r, z, n``), ``gh_n``
    (the recurrent ``n`` part ``r`` multiplies) and, with ``LN_hh``, ``gh`` (``h W_hh^T``) and
    its stats; ``gi`` holds the input projections, or gets them (``given``). ``states`` ``(hs,
    h0)``; ``weights`` ``(w_hh, b_hh)``, ``w_hh`` ``(3H, H)`` as the layer holds it, ``b_hh``
    zeros when absent, unused with ``LN_hh``; ``norms`` ``(ln_ih, ln_hh)``: ``ln_ih`` (inference)
    normalises each row of ``gi`` first, and keeps no stats.

    Inference, as :func:`lstm_forward`: the per-step buffers may have fewer slots than steps."""
    act = buffers[1]
    batch, gates = act.shape[1:]
    hidden = gates // 3
    h_in, g, h_t = (
        np.empty((batch, hidden), act.dtype),
        np.empty((batch, gates), act.dtype),
        np.empty((batch, hidden), act.dtype),
    )
    moments = np.empty((batch, 2), act.dtype)
    _gru_forward(buffers, states, weights, given, norms, reg, walk, exact, h_in, g, h_t, moments)


@njit(cache=True, error_model="numpy")
def _gru_forward(
    buffers, states, weights, given, norms, reg, walk, exact, h_in, g_all, h_t, moments
):
    """The loop of :func:`gru_forward`, its scratch buffers allocated by the caller: ``h_t``
    ``(N, H)`` h' before zoneout, ``moments`` ``(N, 2)`` LN_hh's of a step."""
    gi, act, gh_n, gh = buffers
    hs, h0 = states
    w, bias = weights
    source, x, w_ih, bias_ih = given
    ln_ih, ln_hh = norms
    stats, rows_norms = ln_hh[4], (_narrow(ln_ih), _narrow(ln_hh))
    rows, reverse = walk
    steps = hs.shape[0] - 1
    gates = act.shape[2]
    hidden = gates // 3
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(hs, h0, rows, t, steps, reverse)
        _recurrent_input(hs, prev, reg, b, h_in)
        g = g_all[:b]  # (b, 3H)
        _dot_t(h_in[:b], w, g)
        s, s_in = t % act.shape[0], t % gi.shape[0]
        x_t = gi[s_in, :b]  # (b, 3H)
        if source == PROJECT:
            _dot_t(x[t, :b], w_ih, x_t)
            for n in range(b):
                for j in range(gates):
                    x_t[n, j] += bias_ih[j]
        if ln_hh[0]:  # h W_hh^T, kept for LN_hh's backward
            for n in range(b):
                gh[t % gh.shape[0], n] = g[n]
        gru_rows(x_t, g, hs[prev, :b], act[s, :b], h_t[:b], bias, rows_norms, moments, exact)
        for n in range(b):
            if ln_hh[0]:
                _record(stats, t, n, moments[n])
            gh_n[t % gh_n.shape[0], n] = g[n, 2 * hidden :]  # what r multiplied
            _zoneout_row(reg, t, 0, n, hs[prev, n], h_t[n], hs[new, n])


@njit(cache=True, error_model="numpy", nogil=True)
def gru_backward(grads, saved, w_hh, ln_hh, reg, walk, out):
    """Fill ``out`` ``(d_act, d_g, d_gh)``: ``d_act`` d pre-activations (= d gi), ``d_g`` d of
    the normalised recurrent part (one slot, step after step, where the caller needs only
    ``d_gh``) and, with ``ln_hh``, ``d_gh`` d ``h W_hh^T`` (else it is ``d_g``), adding up
    the layer norm's parameter gradients. ``grads`` ``(grads, dh)``, ``dh`` ending as d h0;
    ``saved`` ``(act, gh_n, hs)`` as the forward left them; ``w_hh`` ``(3H, H)``."""
    act = saved[0]
    batch, gates = act.shape[1:]
    hidden = gates // 3
    _gru_backward(
        grads,
        saved,
        w_hh,
        ln_hh,
        reg,
        walk,
        out,
        np.empty(hidden, act.dtype),
        np.empty(hidden, act.dtype),
        np.empty((batch, hidden), act.dtype),
        np.empty((batch, hidden), act.dtype),
    )


@njit(cache=True, error_model="numpy")
def _gru_backward(grads, saved, w_hh, ln_hh, reg, walk, out, d, dhn, rest, dh_all):
    """The loop of :func:`gru_backward`, its scratch buffers allocated by the caller; ``rest``:
    the d h that skips W_hh: via z and zoneout."""
    grad_out, dh = grads
    act, gh_n, hs = saved
    d_act, d_g, d_gh = out
    rows, reverse = walk
    steps, _, gates = act.shape
    one = like(act, 1.0)
    hidden = gates // 3
    for k in range(steps - 1, -1, -1):
        t, prev, _ = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            a, da, dg = act[t, n], d_act[t, n], d_g[t % d_g.shape[0], n]
            for j in range(hidden):
                d[j] = dh[n, j] + grad_out[t, n, j]
            _zoneout_row_backward(reg, t, 0, n, d, dhn, rest[n])
            for j in range(hidden):  # h' = n + z (h - n)
                r, z, n_t = a[j], a[hidden + j], a[2 * hidden + j]
                rest[n, j] += dhn[j] * z
                d_z = dhn[j] * (hs[prev, n, j] - n_t)
                d_n = dhn[j] * (one - z) * (one - n_t * n_t)
                d_r = d_n * gh_n[t, n, j]
                da[j] = dg[j] = d_r * r * (one - r)
                da[hidden + j] = dg[hidden + j] = d_z * z * (one - z)
                da[2 * hidden + j] = d_n
                dg[2 * hidden + j] = d_n * r
            if ln_hh[0]:
                _norm_row_backward(ln_hh, t, n, dg, d_gh[t, n])
        dh_prev = dh_all[:b]  # (b, H)
        _dot(d_gh[t, :b], w_hh, dh_prev)
        _add_masked(dh_prev, reg, rest, dh)


@njit(cache=True, error_model="numpy", nogil=True)
def indrnn_forward(gi, um, states, h_new, reg, walk, kind, exact):
    """Fill ``h_new`` (``act(gi + u h)`` before zoneout) and the ``states`` ``(hs, h0)``;
    ``um`` ``(N, H)`` (with recurrent dropout: ``u`` times the mask, which the loop does not
    read again) or ``(1, H)``."""
    hs, h0 = states
    rows, reverse = walk
    zoned, use_mask = reg[3], reg[4]  # with use_mask, um is u times the mask
    steps = gi.shape[0]
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(hs, h0, rows, t, steps, reverse)
        for n in range(b):
            h, h_t, u = hs[prev, n], h_new[t, n], um[n if use_mask else 0]
            indrnn_row(gi[t, n], u, h, h_t, kind, exact)
            if zoned:  # else h_t is the state row itself
                _zoneout_row(reg, t, 0, n, h, h_t, hs[new, n])


@njit(cache=True, error_model="numpy", nogil=True)
def indrnn_backward(grads, h_new, um, d_act, reg, walk, kind):
    """Fill ``d_act`` (d pre-activations = d gi); ``grads`` ``(grads, dh)``, ``dh`` ending as
    d h0."""
    hidden = h_new.shape[2]
    dtype = h_new.dtype
    d, dhn, rest = np.empty(hidden, dtype), np.empty(hidden, dtype), np.empty(hidden, dtype)
    _indrnn_backward(grads, h_new, um, d_act, reg, walk, kind, d, dhn, rest)


@njit(cache=True, error_model="numpy")
def _indrnn_backward(grads, h_new, um, d_act, reg, walk, kind, d, dhn, rest):
    """The loop of :func:`indrnn_backward`, its scratch buffers allocated by the caller;
    ``rest``: through zoneout."""
    grad_out, dh = grads
    rows, reverse = walk
    use_mask = reg[4]  # um is u times the mask
    steps, _, hidden = h_new.shape
    for k in range(steps - 1, -1, -1):
        t = _slots(k, steps, reverse)[0]
        for n in range(rows[t]):
            for j in range(hidden):
                d[j] = dh[n, j] + grad_out[t, n, j]
            _zoneout_row_backward(reg, t, 0, n, d, dhn, rest)
            da, u = d_act[t, n], um[n if use_mask else 0]
            _activate_row_backward(dhn, h_new[t, n], kind, da)
            for j in range(hidden):
                dh[n, j] = da[j] * u[j] + rest[j]


@njit(cache=True, error_model="numpy", nogil=True)
def jordan_forward(gi, weights, buffers, states, reg, walk, kinds, exact):
    """Fill the ``buffers`` ``(hid, y_new)``, the hidden layer and the output before zoneout,
    and the ``states`` ``(ys, y0)``; ``weights`` ``(w_yh, w_hy, b_hy)``: ``(H, O)``, ``(O, H)``
    as the layer holds them, ``b_hy`` zeros when absent; ``kinds`` ``(act, out_act)``."""
    batch, out_size = gi.shape[1], states[0].shape[2]
    y_in = np.empty((batch, out_size), gi.dtype)
    _jordan_forward(gi, weights, buffers, states, reg, walk, kinds, exact, y_in)


@njit(cache=True, error_model="numpy")
def _jordan_forward(gi, weights, buffers, states, reg, walk, kinds, exact, y_in):
    """The loop of :func:`jordan_forward`, its scratch buffers allocated by the caller."""
    w_yh, w_hy, bias = weights
    hid, y_new = buffers
    ys, y0 = states
    kind, out_kind = kinds
    rows, reverse = walk
    zoned = reg[3]
    steps, _, hidden = gi.shape
    out_size = ys.shape[2]
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(ys, y0, rows, t, steps, reverse)
        _recurrent_input(ys, prev, reg, b, y_in)
        h = hid[t, :b]  # (b, H)
        _dot_t(y_in[:b], w_yh, h)
        for n in range(b):
            for j in range(hidden):
                h[n, j] += gi[t, n, j]
            activate_row(h[n], kind, exact)
        y_t = y_new[t, :b]  # (b, O)
        _dot_t(h, w_hy, y_t)
        for n in range(b):
            for j in range(out_size):
                y_t[n, j] += bias[j]
            activate_row(y_t[n], out_kind, exact)
            if zoned:  # else y_t is the state rows themselves
                _zoneout_row(reg, t, 0, n, ys[prev, n], y_t[n], ys[new, n])


@njit(cache=True, error_model="numpy", nogil=True)
def jordan_backward(grads, saved, weights, reg, walk, kinds, out):
    """Fill ``out`` ``(d_act, d_z)``: d hidden pre-activations (= d gi) and d output
    pre-activations. ``grads`` ``(grads, dy)``, ``dy`` ending as d y0; ``saved`` ``(hid,
    y_new)`` as the forward left them; ``weights`` ``(w_yh, w_hy)``, ``(H, O)`` and ``(O, H)``
    (as :func:`_dot` takes them)."""
    hid, y_new = saved
    batch, hidden = hid.shape[1:]
    out_size = y_new.shape[2]
    _jordan_backward(
        grads,
        saved,
        weights,
        reg,
        walk,
        kinds,
        out,
        np.empty(out_size, hid.dtype),
        np.empty(out_size, hid.dtype),
        np.empty((batch, out_size), hid.dtype),
        np.empty((batch, hidden), hid.dtype),
        np.empty((batch, out_size), hid.dtype),
    )


@njit(cache=True, error_model="numpy")
def _jordan_backward(grads, saved, weights, reg, walk, kinds, out, d, dyn, rest, d_hid, dy_all):
    """The loop of :func:`jordan_backward`, its scratch buffers allocated by the caller;
    ``rest``: through zoneout."""
    grad_out, dy = grads
    hid, y_new = saved
    w_yh, w_hy = weights
    kind, out_kind = kinds
    d_act, d_z = out
    rows, reverse = walk
    steps = hid.shape[0]
    out_size = y_new.shape[2]
    for k in range(steps - 1, -1, -1):
        t = _slots(k, steps, reverse)[0]
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            for j in range(out_size):
                d[j] = dy[n, j] + grad_out[t, n, j]
            _zoneout_row_backward(reg, t, 0, n, d, dyn, rest[n])
            _activate_row_backward(dyn, y_new[t, n], out_kind, d_z[t, n])
        _dot(d_z[t, :b], w_hy, d_hid[:b])
        for n in range(b):
            _activate_row_backward(d_hid[n], hid[t, n], kind, d_act[t, n])
        dy_prev = dy_all[:b]  # (b, O)
        _dot(d_act[t, :b], w_yh, dy_prev)
        _add_masked(dy_prev, reg, rest, dy)


# ------------------------------------------------------------------- minGRU and minLSTM


@njit(cache=True, error_model="numpy", nogil=True)
def min_forward(projected, h0, lengths, flags, h, final, gates):
    """The minGRU / minLSTM recurrence ``h_t = h_{t-1} + z_t (h~_t - h_{t-1})`` over a whole
    sequence, one pass over ``projected`` ``(L, N, G)`` (blocks ``(k_z, k_h)`` or ``(k_f,
    k_i, k_h)``) from ``h0`` ``(N, H)``: writes the outputs ``h`` ``(L, N, H)``, zero at steps
    ``t >= lengths[n]``, and each sequence's last state into ``final`` ``(N, H)``. ``flags``
    ``(reverse, lstm, positive, tiny, exact)``: time runs backwards; minLSTM; ``h~`` through
    ``g``; the floor of ``f + i``; ``math`` activations. ``gates`` ``(4, H)`` is scratch."""
    reverse = flags[0]
    steps, batch = h.shape[:2]
    final[:] = h0
    for k in range(steps):
        t = steps - 1 - k if reverse else k
        for n in range(batch):
            out = h[t, n]
            if t >= lengths[n]:
                out[:] = like(out, 0.0)
                continue
            min_row(projected[t, n], final[n], out, flags, gates)


@njit(cache=True, error_model="numpy", nogil=True)
def min_backward(projected, h0, lengths, flags, h, grad_h, carry, grad, gates):
    """The gradient of :func:`min_forward`, one pass backwards in time: ``grad_h`` ``(L, N,
    H)`` that of the outputs, ``carry`` ``(N, H)`` that of the final states on entry and of
    ``h0`` on return (``dh_t = g_t + (1 - z_{t+1}) dh_{t+1}``), ``grad`` ``(L, N, G)`` that of
    ``projected`` (zero at steps past a length). ``gates`` ``(4, H)`` is scratch."""
    reverse, lstm, positive = flags[:3]
    steps, batch, hidden = h.shape
    z, candidate, f, i = gates[0], gates[1], gates[2], gates[3]
    one, zero = like(h, 1.0), like(h, 0.0)
    for k in range(steps):
        t = k if reverse else steps - 1 - k
        for n in range(batch):
            d_row = grad[t, n]
            if t >= lengths[n]:
                d_row[:] = zero
                continue
            # the state step t read: h0 where the sequence starts at t
            starts = t + 1 >= lengths[n] if reverse else t == 0
            before = h0[n] if starts else h[t + 1 if reverse else t - 1, n]
            row, g, dh_next = projected[t, n], grad_h[t, n], carry[n]
            min_gates(row, flags, gates)
            d_a, d_b = d_row[:hidden], d_row[hidden : 2 * hidden]
            d_candidate, k_h = d_row[d_row.shape[0] - hidden :], row[row.shape[0] - hidden :]
            # one loop per quantity: loops of few arrays are the ones the compiler vectorises
            for j in range(hidden):
                dh_next[j] += g[j]  # dh_t
            for j in range(hidden):
                d_candidate[j] = dh_next[j] * z[j]
            for j in range(hidden):  # d_a holds dz, through the sigmoid of minGRU's k_z
                d_a[j] = dh_next[j] * (candidate[j] - before[j]) * z[j] * (one - z[j])
            if lstm:  # z = i / (f + i): dz/dk_f = -z (1-z) (1-f), dz/dk_i = z (1-z) (1-i)
                for j in range(hidden):
                    d_b[j] = d_a[j] * (one - i[j])
                for j in range(hidden):
                    d_a[j] *= f[j] - one
            for j in range(hidden):
                dh_next[j] *= one - z[j]
            if positive:  # g'(k) = 1 from 0 up, below sigmoid'(k), h~ being sigmoid(k) there
                for j in range(hidden):
                    s = candidate[j]
                    d_candidate[j] *= one if k_h[j] >= 0 else s * (one - s)
