"""The time loops of the fused recurrences compiled by numba, for small batches.

At a batch of a few sequences a step is microseconds of arithmetic, and the torch loop of
:mod:`rnnkit.functional.fused` spends several microseconds of interpreter time on each of
its ~20 ops per step. These loops do the same work in compiled code on NumPy views of the
same buffers (same layout, same saved quantities), so everything before and after the loop,
the parameter gradients included, is shared with the torch loop. The exceptions: the layer
norms' gains and shifts, whose gradients the loops add up as they go; the LSTM loops, which
also take the input layer norm and keep ``h W_hh^T`` for the backward; and the inference
loops, which project each step's input themselves (:data:`PROJECT`). Absent options are passed
as 1-element dummies with a flag (one compiled signature per dtype). A step's matmul is
:func:`_dot` or, with a weight the step multiplies transposed (``h W_hh^T``, ``x W_ih^T``),
:func:`_dot_t`, which reads the weight as the layer holds it: a loop of its own up to
``tuning.LOOP_PRODUCT_ROWS`` (``LOOP_TRANSPOSED_ROWS``) rows, else torch's BLAS
(:mod:`rnnkit.functional._gemm`). Every
function compiles with ``error_model="numpy"``: a float division that cannot raise lets LLVM
vectorise the gate loops (about 6x on the point-wise work). Constants and scalars go through
:func:`_like`, so float32 buffers get float32 arithmetic. Each loop's scratch buffers are made
by a thin public function and passed in as arguments: allocated in the function of the loop
itself, they made its point-wise work about twice as slow (why LLVM does worse beside a local
array was not pinned down).

Shapes as in :mod:`rnnkit.functional.fused`: gates in ``(i, f, g, o)`` order (LSTM,
``G = 4H``) or ``(r, z, n)`` (GRU, ``G = 3H``); ``stats`` ``(L, N, 2)`` hold each layer norm's
mean and ``1/std`` per row; IndRNN and Jordan name their nonlinearities by their index in
:data:`ACTIVATIONS`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from rnnkit.functional._gemm import gemm
from rnnkit.functional.tuning import LOOP_PRODUCT_ROWS, LOOP_TRANSPOSED_ROWS


def _like(x, value):
    """``value`` as a scalar of the dtype of ``x`` (a scalar or an array). NumPy's rules make
    a Python float turn float32 arithmetic into float64: half as many lanes per vector
    instruction, plus the conversions."""
    return np.asarray(x).dtype.type(value)


@overload(_like, inline="always")
def _like_compiled(x, value):
    cast = as_dtype(x.dtype if isinstance(x, types.Array) else x).type
    return lambda x, value: cast(value)


@njit(cache=True, error_model="numpy", inline="always")
def _tanh(x: float) -> float:
    """``tanh`` as a rational function (Eigen's float ``ptanh``, error a few float32 ulp):
    plain arithmetic the compiler vectorises, where ``math.tanh`` is a library call per
    element, and pip's llvmlite has no vector maths library."""
    bound = _like(x, 7.90531110763549805)
    x = min(max(x, -bound), bound)
    x2 = x * x
    p = x2 * _like(x, -2.76076847742355e-16) + _like(x, 2.00018790482477e-13)
    p = x2 * p + _like(x, -8.60467152213735e-11)
    p = x2 * p + _like(x, 5.12229709037114e-08)
    p = x2 * p + _like(x, 1.48572235717979e-05)
    p = x2 * p + _like(x, 6.37261928875436e-04)
    p = x2 * p + _like(x, 4.89352455891786e-03)
    q = x2 * _like(x, 1.19825839466702e-06) + _like(x, 1.18534705686654e-04)
    q = x2 * q + _like(x, 2.26843463243900e-03)
    q = x2 * q + _like(x, 4.89352518554385e-03)
    return x * p / q


@njit(cache=True, error_model="numpy", inline="always")
def _tanh_exact(x: float, exact: bool) -> float:
    """``tanh``: the library's when ``exact`` (float64), else :func:`_tanh`."""
    return math.tanh(x) if exact else _tanh(x)


@njit(cache=True, error_model="numpy", inline="always")
def _sigmoid(x: float, exact: bool) -> float:
    half = _like(x, 0.5)
    return half + half * _tanh_exact(half * x, exact)


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
        row[:] = _like(out, 0.0)
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
    ``w``, both contiguous; ``reassoc`` lets the sums vectorise (see :func:`_mean_rstd`). The
    rows of ``w`` go four at a time, each block against every row of ``x`` while it is in the
    cache: ``w`` is read from memory once a step whatever the rows, and each load of ``x``
    feeds four sums whose reductions overlap."""
    rows = w.shape[0]
    whole = rows - rows % 4
    for j in range(0, whole, 4):
        w_0, w_1, w_2, w_3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        for n in range(x.shape[0]):
            x_n = x[n]
            s_0 = s_1 = s_2 = s_3 = _like(out, 0.0)
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
            total = _like(out, 0.0)
            for k in range(x_n.shape[0]):
                total += x_n[k] * w_j[k]
            out[n, j] = total


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _mean_rstd(x, eps):
    """The mean of the row ``x`` and ``1/sqrt(var + eps)``, as loops (no temporary array), in
    the dtype of ``x``. ``reassoc`` lets the sums vectorise (their order differs, in rounding
    only: each is 16 partial sums in float32); it holds only in a function of its own, hence
    a call rather than inlined."""
    width = _like(x, x.shape[0])
    mean = _like(x, 0.0)
    for j in range(x.shape[0]):
        mean += x[j]
    mean /= width
    var = _like(x, 0.0)
    for j in range(x.shape[0]):
        var += (x[j] - mean) ** 2
    return mean, _like(x, 1.0) / np.sqrt(var / width + _like(x, eps))


@njit(cache=True, error_model="numpy", inline="always")
def _normalise(x, eps, gain, shift, out, add):
    """``out = LN(x)`` of the row ``x`` with ``gain`` and ``shift`` (``out += LN(x)`` when
    ``add``; ``out`` may be ``x``). Returns the row's mean and ``1/std``."""
    mean, rstd = _mean_rstd(x, eps)
    for j in range(x.shape[0]):
        y = (x[j] - mean) * rstd * gain[j] + shift[j]
        out[j] = out[j] + y if add else y
    return mean, rstd


@njit(cache=True, error_model="numpy", inline="always")
def _record(stats, t, n, moments):
    """Keep a row's ``(mean, 1/std)`` in ``stats[t, n]`` (slot ``t % len``) for the backward."""
    stats[t % stats.shape[0], n, 0], stats[t % stats.shape[0], n, 1] = moments


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
def _recurrent_input(states, prev, mask, use_mask, b, out):
    """``out[:b]`` = the states in slot ``prev``, times the recurrent dropout ``mask``."""
    for n in range(b):
        for j in range(out.shape[1]):
            out[n, j] = states[prev, n, j] * mask[n, j] if use_mask else states[prev, n, j]


#: Where the LSTM forward loop finds each step's ``gi``: already in ``act`` (``gi + b_hh``),
#: in ``x`` (``act = x[t] + bias``), or to project from ``x`` (``act = x[t] @ W_ih^T + bias``).
IN_ACT, COPY, PROJECT = 0, 1, 2


@njit(cache=True, error_model="numpy", nogil=True)
def lstm_forward(act, w, hs, cs, c_new, tanh_c, gh, ln_w, ln_b, stats_h, w_peep, ln_w_c,
                 ln_b_c, stats_c, h0, c0, mask, keep, ln_w_ih, ln_b_ih, stats_ih, x, w_ih, bias,
                 rate, eps, rows, reverse, zoned, use_mask, use_keep, peep, ln_hh, ln_c, ln_ih,
                 source, exact):  # fmt: skip
    """Fill ``act`` (pre-activations, then activations), the states and the saved buffers,
    taking each step's ``gi`` as ``source`` says (:data:`IN_ACT`, :data:`COPY`,
    :data:`PROJECT`; ``x`` ``(L, N, 4H)`` or ``(L, N, I)``, ``w_ih`` ``(4H, I)``); ``w`` is
    ``W_hh`` ``(4H, H)``, both as the layer holds them; ``gh`` gets ``h W_hh^T``; ``ln_ih``:
    first normalise each row of ``gi`` (``ln_w_ih``, ``ln_b_ih``, its mean and ``1/std`` to
    ``stats_ih``); ``exact``: the library's ``tanh`` (float64) instead of the rational one.

    A per-step buffer may have fewer slots than steps, reused in turn (index ``t % len``;
    without ``lengths``): ``act``, ``tanh_c``, ``c_new``, ``gh``, ``stats_*`` one slot where
    nothing is kept for a backward, ``cs`` two (``hs`` holds the output, all ``L + 1``)."""
    batch = act.shape[1]
    hidden = act.shape[2] // 4
    _lstm_forward(act, w, hs, cs, c_new, tanh_c, gh, ln_w, ln_b, stats_h, w_peep, ln_w_c, ln_b_c,
                  stats_c, h0, c0, mask, keep, ln_w_ih, ln_b_ih, stats_ih, x, w_ih, bias, rate,
                  eps, rows, reverse, zoned, use_mask, use_keep, peep, ln_hh, ln_c, ln_ih, source,
                  exact, np.empty((batch, hidden), act.dtype),
                  np.empty(hidden, act.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _lstm_forward(act, w, hs, cs, c_new, tanh_c, gh_all, ln_w, ln_b, stats_h, w_peep, ln_w_c,
                  ln_b_c, stats_c, h0, c0, mask, keep, ln_w_ih, ln_b_ih, stats_ih, x, w_ih, bias,
                  rate, eps, rows, reverse, zoned, use_mask, use_keep, peep, ln_hh, ln_c, ln_ih,
                  source, exact, h_in, y):  # fmt: skip
    """The loop of :func:`lstm_forward`, its scratch buffers allocated by the caller."""
    steps = hs.shape[0] - 1
    gates = act.shape[2]
    rate = _like(act, rate)
    hidden = gates // 4
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(hs, h0, rows, t, steps, reverse)
        _start(cs, c0, rows, t, steps, reverse)
        _recurrent_input(hs, prev, mask, use_mask, b, h_in)
        gh = gh_all[t % gh_all.shape[0], :b]  # (b, 4H): h W_hh^T
        _dot_t(h_in[:b], w, gh)
        s, c_prev, c_next = t % act.shape[0], prev % cs.shape[0], new % cs.shape[0]
        if source == PROJECT:
            _dot_t(x[t, :b], w_ih, act[s, :b])
        for n in range(b):
            a, c, tc = act[s, n], cs[c_prev, n], tanh_c[t % tanh_c.shape[0], n]
            cn = c_new[t % c_new.shape[0], n] if zoned else cs[c_next, n]
            # Loops over the gates as views, not offsets into one row, which LLVM cannot
            # tell never meet: only those it vectorises (cell update: 5.1 -> 1.1 ns a unit).
            i, f, g, o = (
                a[:hidden],
                a[hidden : 2 * hidden],
                a[2 * hidden : 3 * hidden],
                a[3 * hidden :],
            )
            if source == COPY:
                for j in range(gates):
                    a[j] = x[t, n, j] + bias[j]
            elif source == PROJECT:
                for j in range(gates):
                    a[j] += bias[j]
            if ln_ih:
                _record(stats_ih, t, n, _normalise(a, eps, ln_w_ih, ln_b_ih, a, False))
            if ln_hh:
                _record(stats_h, t, n, _normalise(gh[n], eps, ln_w, ln_b, a, True))
            else:
                for j in range(gates):
                    a[j] += gh[n, j]
            if peep:
                for j in range(hidden):
                    i[j] += w_peep[0, j] * c[j]
                    f[j] += w_peep[1, j] * c[j]
            for j in range(2 * hidden):  # i and f
                a[j] = _sigmoid(a[j], exact)
            for j in range(hidden):
                g[j] = _tanh_exact(g[j], exact)
                cn[j] = f[j] * c[j] + i[j] * g[j]
            if peep:  # o peeks at c'
                for j in range(hidden):
                    o[j] += w_peep[2, j] * cn[j]
            for j in range(hidden):
                o[j] = _sigmoid(o[j], exact)
            if ln_c:
                _record(stats_c, t, n, _normalise(cn, eps, ln_w_c, ln_b_c, y, False))
            else:
                y[:] = cn
            for j in range(hidden):
                tc[j] = _tanh_exact(y[j], exact)
                y[j] = o[j] * tc[j]  # h' before zoneout
            _zoneout_row(hs[prev, n], y, _keep_row(keep, t, 0, n, use_keep), rate, zoned,
                         use_keep, hs[new, n])  # fmt: skip
            if zoned:  # else c' is written in place already
                _zoneout_row(c, cn, _keep_row(keep, t, 1, n, use_keep), rate, zoned, use_keep,
                             cs[c_next, n])  # fmt: skip


@njit(cache=True, error_model="numpy", nogil=True)
def recurrent_products(hs, w, mask, rows, reverse, use_mask, out):
    """``out[t]`` = what entered the recurrent weights at step ``t`` times ``W^T`` (``w``
    ``(G, H)``), by the same products as :func:`lstm_forward`'s (so bit for bit the ``gh``
    it kept)."""
    steps, batch = hs.shape[0] - 1, hs.shape[1]
    h_in = np.empty((batch, hs.shape[2]), hs.dtype)
    for k in range(steps):
        t, prev, _ = _slots(k, steps, reverse)
        b = rows[t]
        if b > 0:
            _recurrent_input(hs, prev, mask, use_mask, b, h_in)
            _dot_t(h_in[:b], w, out[t, :b])


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _norm_backward(dy, x, mean, rstd, weight, out, d_weight, d_bias):
    """``out`` = d input of ``LN(x)`` (one row) given ``dy`` at its output; adds the gain and
    shift gradients to ``d_weight`` and ``d_bias`` (``reassoc``: see :func:`_mean_rstd`)."""
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
    m1, m2 = _like(dy, m1 / width), _like(dy, m2 / width)
    for j in range(width):
        out[j] = rstd * (dy[j] * weight[j] - m1 - (x[j] - mean) * rstd * m2)


@njit(cache=True, error_model="numpy", nogil=True)
def lstm_backward(grads, dh, dc, act, d_act, gh, d_gh, w_t, cs, c_new, tanh_c, stats_h, ln_w,
                  d_ln_w_hh,
                  d_ln_b_hh, w_peep, ln_w_c, stats_c, d_ln_w_c, d_ln_b_c, gi, ln_w_ih, stats_ih,
                  d_ln_w_ih, d_ln_b_ih, mask, keep, rate, rows, reverse, zoned, use_mask,
                  use_keep, peep, ln_hh, ln_c, ln_ih):  # fmt: skip
    """Fill ``d_act`` (d pre-activations = d gi); with ``ln_hh``, ``d_gh`` with the gradient of
    ``gh`` (``h W_hh^T``; else ``d_gh`` is ``d_act``); with ``ln_ih``
    (and ``ln_hh``), ``d_act`` ends as d of the ``gi`` it normalised; add the layer norms'
    parameter gradients to ``d_ln_*``; ``dh``, ``dc`` end as d h0, d c0."""
    batch, gates = act.shape[1:]
    hidden = gates // 4
    _lstm_backward(grads, dh, dc, act, d_act, gh, d_gh, w_t, cs, c_new, tanh_c, stats_h, ln_w,
                   d_ln_w_hh, d_ln_b_hh, w_peep, ln_w_c, stats_c, d_ln_w_c, d_ln_b_c, gi, ln_w_ih,
                   stats_ih, d_ln_w_ih, d_ln_b_ih, mask, keep, rate, rows, reverse, zoned,
                   use_mask, use_keep, peep, ln_hh, ln_c, ln_ih,
                   np.empty(hidden, act.dtype), np.empty(hidden, act.dtype),
                   np.empty(hidden, act.dtype), np.empty((batch, hidden), act.dtype),
                   np.empty((batch, hidden), act.dtype), np.empty(hidden, act.dtype),
                   np.empty(gates, act.dtype), np.empty((batch, hidden), act.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _lstm_backward(grads, dh, dc, act, d_act, gh, d_gh, w_t, cs, c_new, tanh_c, stats_h, ln_w,
                   d_ln_w_hh, d_ln_b_hh, w_peep, ln_w_c, stats_c, d_ln_w_c, d_ln_b_c, gi, ln_w_ih,
                   stats_ih, d_ln_w_ih, d_ln_b_ih, mask, keep, rate, rows, reverse, zoned,
                   use_mask, use_keep, peep, ln_hh, ln_c, ln_ih, d, dhn, dcn, keep_h, keep_c, dt,
                   dx, dh_all):  # fmt: skip
    """The loop of :func:`lstm_backward`, its scratch buffers allocated by the caller."""
    steps, _, gates = act.shape
    rate, one = _like(act, rate), _like(act, 1.0)
    hidden = gates // 4
    for k in range(steps - 1, -1, -1):
        t, prev, _ = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            a, da = act[t, n], d_act[t, n]
            for j in range(hidden):
                d[j] = dh[n, j] + grads[t, n, j]
            _zoneout_row_backward(d, _keep_row(keep, t, 0, n, use_keep), rate, zoned, use_keep,
                                  dhn, keep_h[n])  # fmt: skip
            _zoneout_row_backward(dc[n], _keep_row(keep, t, 1, n, use_keep), rate, zoned,
                                  use_keep, dcn, keep_c[n])  # fmt: skip
            for j in range(hidden):
                tc, o = tanh_c[t, n, j], a[3 * hidden + j]
                da[3 * hidden + j] = dhn[j] * tc
                dt[j] = dhn[j] * o * (one - tc * tc)
            if ln_c:
                _norm_backward(dt, c_new[t, n], stats_c[t, n, 0], stats_c[t, n, 1], ln_w_c, dx,
                               d_ln_w_c, d_ln_b_c)  # fmt: skip
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
            if ln_hh:
                _norm_backward(da, gh[t, n], stats_h[t, n, 0], stats_h[t, n, 1], ln_w, d_gh[t, n],
                               d_ln_w_hh, d_ln_b_hh)  # fmt: skip
            if ln_ih:
                _norm_backward(da, gi[t, n], stats_ih[t, n, 0], stats_ih[t, n, 1], ln_w_ih, dx,
                               d_ln_w_ih, d_ln_b_ih)  # fmt: skip
                da[:] = dx
        dh_prev = dh_all[:b]  # (b, H)
        _dot(d_gh[t, :b], w_t, dh_prev)
        for n in range(b):
            for j in range(hidden):
                dm = dh_prev[n, j] * mask[n, j] if use_mask else dh_prev[n, j]
                dh[n, j] = dm + keep_h[n, j]


#: The point-wise nonlinearities of IndRNN and Jordan, passed to the loops as their index.
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu", "softmax")
_TANH, _SIGMOID, _RELU, _SOFTMAX = 1, 2, 3, 4


@njit(cache=True, error_model="numpy", inline="always")
def _activate_row(x, kind, exact):
    """In place ``x = act(x)`` on one row, ``act`` the :data:`ACTIVATIONS` entry ``kind``."""
    if kind == _SOFTMAX:  # math.exp: rows are a few outputs wide
        top = x.max()
        total = 0.0
        for j in range(x.shape[0]):
            x[j] = math.exp(x[j] - top)
            total += x[j]
        for j in range(x.shape[0]):
            x[j] /= total
        return
    for j in range(x.shape[0]):
        if kind == _TANH:
            x[j] = _tanh_exact(x[j], exact)
        elif kind == _SIGMOID:
            x[j] = _sigmoid(x[j], exact)
        elif kind == _RELU:  # NaN stays NaN, as torch.relu keeps it
            x[j] = _like(x, 0.0) if x[j] <= 0.0 else x[j]


@njit(cache=True, error_model="numpy", inline="always")
def _activate_row_backward(grad, out, kind, d_in):
    """``d_in`` = the gradient at the input of ``act`` (one row) from ``grad`` at its output
    ``out``."""
    dot = 0.0
    if kind == _SOFTMAX:
        for j in range(grad.shape[0]):
            dot += grad[j] * out[j]
    for j in range(grad.shape[0]):
        d, y = grad[j], out[j]
        if kind == _TANH:
            d *= _like(d, 1.0) - y * y
        elif kind == _SIGMOID:
            d *= y * (_like(d, 1.0) - y)
        elif kind == _RELU:
            d = _like(d, 0.0) if y <= 0.0 else d
        elif kind == _SOFTMAX:
            d = y * (d - dot)
        d_in[j] = d


@njit(cache=True, error_model="numpy", inline="always")
def _keep_row(keep, t, k, n, use_keep):
    """``keep[t, k, n]``, or the 1-element stand-in when there is no ``keep``."""
    return keep[t, k, n] if use_keep else keep[0, 0, 0]


@njit(cache=True, error_model="numpy", inline="always")
def _zoneout_row(old, new, keep, rate, zoned, use_keep, out):
    """``out`` = the zoned-out row: ``where(keep, old, new)`` or ``lerp(new, old, rate)``."""
    if not zoned:
        out[:] = new
    elif use_keep:
        for j in range(new.shape[0]):
            out[j] = old[j] if keep[j] else new[j]
    else:
        for j in range(new.shape[0]):
            out[j] = new[j] + rate * (old[j] - new[j])


@njit(cache=True, error_model="numpy", inline="always")
def _zoneout_row_backward(grad, keep, rate, zoned, use_keep, d_new, d_old):
    """Split the gradient of a zoned-out row into ``d_new`` and ``d_old``."""
    zero, one = _like(grad, 0.0), _like(grad, 1.0)
    if not zoned:
        d_new[:] = grad
        d_old[:] = zero
    elif use_keep:
        for j in range(grad.shape[0]):
            d_new[j], d_old[j] = (zero, grad[j]) if keep[j] else (grad[j], zero)
    else:
        for j in range(grad.shape[0]):
            d_new[j], d_old[j] = grad[j] * (one - rate), grad[j] * rate


@njit(cache=True, error_model="numpy", nogil=True)
def gru_forward(gi, w, bias, act, gh_n, gh, ln_w, ln_b, stats, hs, h0, mask, keep, x, w_ih,
                bias_ih, ln_w_ih, ln_b_ih, rate, eps, rows, reverse, zoned, use_mask, use_keep,
                ln, project, ln_ih, exact):  # fmt: skip
    """Fill ``act`` (``r, z, n``), ``gh_n`` (the recurrent ``n`` part ``r`` multiplies), the
    states and, with ``ln``, ``gh`` (``h W_hh^T``) and ``stats``; ``w`` is ``W_hh``
    ``(3H, H)`` and ``w_ih`` ``(3H, I)``, as the layer holds them; ``bias`` is ``b_hh`` (zeros
    when absent), unused with ``ln``.

    Inference, as :func:`lstm_forward`: ``project`` writes ``x[t] @ W_ih^T + bias_ih`` into
    ``gi`` first and ``ln_ih`` then normalises it (``ln_w_ih``, ``ln_b_ih``); the per-step
    buffers (``gi``, ``act``, ``gh_n``, ``gh``, ``stats``) may have fewer slots than steps."""
    batch, gates = act.shape[1:]
    hidden = gates // 3
    _gru_forward(gi, w, bias, act, gh_n, gh, ln_w, ln_b, stats, hs, h0, mask, keep, x, w_ih,
                 bias_ih, ln_w_ih, ln_b_ih, rate, eps, rows, reverse, zoned, use_mask, use_keep,
                 ln, project, ln_ih, exact,
                 np.empty((batch, hidden), act.dtype), np.empty((batch, gates), act.dtype),
                 np.empty(hidden, act.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _gru_forward(gi, w, bias, act, gh_n, gh, ln_w, ln_b, stats, hs, h0, mask, keep, x, w_ih,
                 bias_ih, ln_w_ih, ln_b_ih, rate, eps, rows, reverse, zoned, use_mask, use_keep,
                 ln, project, ln_ih, exact, h_in, g_all, h_t):  # fmt: skip
    """The loop of :func:`gru_forward`, its scratch buffers allocated by the caller; ``h_t``: h'
    before zoneout."""
    steps = hs.shape[0] - 1
    gates = act.shape[2]
    rate = _like(act, rate)
    hidden = gates // 3
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(hs, h0, rows, t, steps, reverse)
        _recurrent_input(hs, prev, mask, use_mask, b, h_in)
        g = g_all[:b]  # (b, 3H)
        _dot_t(h_in[:b], w, g)
        s, s_in = t % act.shape[0], t % gi.shape[0]
        if project:
            _dot_t(x[t, :b], w_ih, gi[s_in, :b])
        for n in range(b):
            a, x_t = act[s, n], gi[s_in, n]
            if project:
                for j in range(gates):
                    x_t[j] += bias_ih[j]
            if ln_ih:
                _normalise(x_t, eps, ln_w_ih, ln_b_ih, x_t, False)
            if ln:
                gh[t % gh.shape[0], n] = g[n]
                _record(stats, t, n, _normalise(g[n], eps, ln_w, ln_b, g[n], False))
            else:
                for j in range(gates):
                    g[n, j] += bias[j]
            for j in range(2 * hidden):  # r and z
                a[j] = _sigmoid(x_t[j] + g[n, j], exact)
            # Named views, which LLVM vectorises (see lstm_forward)
            r, z, n_new = a[:hidden], a[hidden : 2 * hidden], a[2 * hidden :]
            h, x_n, g_n = hs[prev, n], x_t[2 * hidden :], gh_n[t % gh_n.shape[0], n]
            g_n[:] = g[n, 2 * hidden :]
            for j in range(hidden):
                n_new[j] = _tanh_exact(x_n[j] + r[j] * g_n[j], exact)
                h_t[j] = n_new[j] + z[j] * (h[j] - n_new[j])
            keep_t = _keep_row(keep, t, 0, n, use_keep)
            _zoneout_row(hs[prev, n], h_t, keep_t, rate, zoned, use_keep, hs[new, n])


@njit(cache=True, error_model="numpy", nogil=True)
def gru_backward(grads, dh, act, d_act, d_g, d_gh, gh_n, gh, stats, ln_w, d_ln_w, d_ln_b, w_hh,
                 hs, mask, keep, rate, rows, reverse, zoned, use_mask, use_keep,
                 ln):  # fmt: skip
    """Fill ``d_act`` (d pre-activations = d gi) and ``d_g`` (d of the normalised recurrent
    part); with ``ln``, ``d_gh`` (d ``h W_hh^T``; else it is ``d_g``) and add the layer
    norm's parameter gradients to ``d_ln_*``; ``dh`` ends as d h0."""
    batch, gates = act.shape[1:]
    hidden = gates // 3
    _gru_backward(grads, dh, act, d_act, d_g, d_gh, gh_n, gh, stats, ln_w, d_ln_w, d_ln_b, w_hh, hs,
                  mask, keep, rate, rows, reverse, zoned, use_mask, use_keep, ln,
                  np.empty(hidden, act.dtype), np.empty(hidden, act.dtype),
                  np.empty((batch, hidden), act.dtype),
                  np.empty((batch, hidden), act.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _gru_backward(grads, dh, act, d_act, d_g, d_gh, gh_n, gh, stats, ln_w, d_ln_w, d_ln_b, w_hh, hs,
                  mask, keep, rate, rows, reverse, zoned, use_mask, use_keep, ln, d, dhn, rest,
                  dh_all):  # fmt: skip
    """The loop of :func:`gru_backward`, its scratch buffers allocated by the caller; ``rest``:
    the d h that skips W_hh: via z and zoneout."""
    steps, _, gates = act.shape
    rate, one = _like(act, rate), _like(act, 1.0)
    hidden = gates // 3
    for k in range(steps - 1, -1, -1):
        t, prev, _ = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            a, da, dg = act[t, n], d_act[t, n], d_g[t, n]
            for j in range(hidden):
                d[j] = dh[n, j] + grads[t, n, j]
            keep_t = _keep_row(keep, t, 0, n, use_keep)
            _zoneout_row_backward(d, keep_t, rate, zoned, use_keep, dhn, rest[n])
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
            if ln:
                _norm_backward(dg, gh[t, n], stats[t, n, 0], stats[t, n, 1], ln_w, d_gh[t, n],
                               d_ln_w, d_ln_b)  # fmt: skip
        dh_prev = dh_all[:b]  # (b, H)
        _dot(d_gh[t, :b], w_hh, dh_prev)
        for n in range(b):
            for j in range(hidden):
                dm = dh_prev[n, j] * mask[n, j] if use_mask else dh_prev[n, j]
                dh[n, j] = dm + rest[n, j]


@njit(cache=True, error_model="numpy", nogil=True)
def indrnn_forward(gi, um, hs, h_new, h0, keep, rate, rows, reverse, zoned, use_mask, use_keep,
                   kind, exact):  # fmt: skip
    """Fill ``h_new`` (``act(gi + u h)`` before zoneout) and the states; ``um`` ``(N, H)``
    (``use_mask``: ``u`` times the dropout mask) or ``(1, H)``."""
    steps, _, hidden = gi.shape
    rate = _like(gi, rate)
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(hs, h0, rows, t, steps, reverse)
        for n in range(b):
            h, h_t, u = hs[prev, n], h_new[t, n], um[n if use_mask else 0]
            for j in range(hidden):
                h_t[j] = gi[t, n, j] + u[j] * h[j]
            _activate_row(h_t, kind, exact)
            keep_t = _keep_row(keep, t, 0, n, use_keep)
            _zoneout_row(h, h_t, keep_t, rate, zoned, use_keep, hs[new, n])


@njit(cache=True, error_model="numpy", nogil=True)
def indrnn_backward(grads, dh, d_act, h_new, um, keep, rate, rows, reverse, zoned, use_mask,
                    use_keep, kind):  # fmt: skip
    """Fill ``d_act`` (d pre-activations = d gi); ``dh`` ends as d h0."""
    hidden = h_new.shape[2]
    _indrnn_backward(grads, dh, d_act, h_new, um, keep, rate, rows, reverse, zoned, use_mask,
                     use_keep, kind, np.empty(hidden, h_new.dtype), np.empty(hidden, h_new.dtype),
                     np.empty(hidden, h_new.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _indrnn_backward(grads, dh, d_act, h_new, um, keep, rate, rows, reverse, zoned, use_mask,
                     use_keep, kind, d, dhn, rest):  # fmt: skip
    """The loop of :func:`indrnn_backward`, its scratch buffers allocated by the caller;
    ``rest``: through zoneout."""
    steps, _, hidden = h_new.shape
    rate = _like(h_new, rate)
    for k in range(steps - 1, -1, -1):
        t = _slots(k, steps, reverse)[0]
        for n in range(rows[t]):
            for j in range(hidden):
                d[j] = dh[n, j] + grads[t, n, j]
            keep_t = _keep_row(keep, t, 0, n, use_keep)
            _zoneout_row_backward(d, keep_t, rate, zoned, use_keep, dhn, rest)
            da, u = d_act[t, n], um[n if use_mask else 0]
            _activate_row_backward(dhn, h_new[t, n], kind, da)
            for j in range(hidden):
                dh[n, j] = da[j] * u[j] + rest[j]


@njit(cache=True, error_model="numpy", nogil=True)
def jordan_forward(gi, w_yh, w_hy, bias, hid, ys, y_new, y0, mask, keep, rate, rows, reverse,
                   zoned, use_mask, use_keep, kind, out_kind, exact):  # fmt: skip
    """Fill ``hid`` (the hidden layer), ``y_new`` (the output before zoneout) and the states;
    ``w_yh`` ``(H, O)``, ``w_hy`` ``(O, H)`` as the layer holds them, ``bias`` ``b_hy``
    (zeros when absent)."""
    batch, out_size = gi.shape[1], ys.shape[2]
    _jordan_forward(gi, w_yh, w_hy, bias, hid, ys, y_new, y0, mask, keep, rate, rows, reverse,
                    zoned, use_mask, use_keep, kind, out_kind, exact,
                    np.empty((batch, out_size), gi.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _jordan_forward(gi, w_yh, w_hy, bias, hid, ys, y_new, y0, mask, keep, rate, rows, reverse,
                    zoned, use_mask, use_keep, kind, out_kind, exact, y_in):  # fmt: skip
    """The loop of :func:`jordan_forward`, its scratch buffers allocated by the caller."""
    steps, _, hidden = gi.shape
    rate = _like(gi, rate)
    out_size = ys.shape[2]
    for k in range(steps):
        t, prev, new = _slots(k, steps, reverse)
        b = rows[t]
        if b == 0:
            continue
        _start(ys, y0, rows, t, steps, reverse)
        _recurrent_input(ys, prev, mask, use_mask, b, y_in)
        h = hid[t, :b]  # (b, H)
        _dot_t(y_in[:b], w_yh, h)
        for n in range(b):
            for j in range(hidden):
                h[n, j] += gi[t, n, j]
            _activate_row(h[n], kind, exact)
        y_t = y_new[t, :b]  # (b, O)
        _dot_t(h, w_hy, y_t)
        for n in range(b):
            for j in range(out_size):
                y_t[n, j] += bias[j]
            _activate_row(y_t[n], out_kind, exact)
            keep_t = _keep_row(keep, t, 0, n, use_keep)
            _zoneout_row(ys[prev, n], y_t[n], keep_t, rate, zoned, use_keep, ys[new, n])


@njit(cache=True, error_model="numpy", nogil=True)
def jordan_backward(grads, dy, d_act, d_z, hid, y_new, w_yh, w_hy, mask, keep, rate, rows,
                    reverse, zoned, use_mask, use_keep, kind, out_kind):  # fmt: skip
    """Fill ``d_act`` (d hidden pre-activations = d gi) and ``d_z`` (d output
    pre-activations); ``w_yh`` ``(H, O)``, ``w_hy`` ``(O, H)`` (as :func:`_dot` takes them);
    ``dy`` ends as d y0."""
    batch, hidden = hid.shape[1:]
    out_size = y_new.shape[2]
    _jordan_backward(grads, dy, d_act, d_z, hid, y_new, w_yh, w_hy, mask, keep, rate, rows, reverse,
                     zoned, use_mask, use_keep, kind, out_kind, np.empty(out_size, hid.dtype),
                     np.empty(out_size, hid.dtype), np.empty((batch, out_size), hid.dtype),
                     np.empty((batch, hidden), hid.dtype),
                     np.empty((batch, out_size), hid.dtype))  # fmt: skip


@njit(cache=True, error_model="numpy")
def _jordan_backward(grads, dy, d_act, d_z, hid, y_new, w_yh, w_hy, mask, keep, rate, rows, reverse,
                     zoned, use_mask, use_keep, kind, out_kind, d, dyn, rest, d_hid,
                     dy_all):  # fmt: skip
    """The loop of :func:`jordan_backward`, its scratch buffers allocated by the caller;
    ``rest``: through zoneout."""
    steps = hid.shape[0]
    rate = _like(hid, rate)
    out_size = y_new.shape[2]
    for k in range(steps - 1, -1, -1):
        t = _slots(k, steps, reverse)[0]
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            for j in range(out_size):
                d[j] = dy[n, j] + grads[t, n, j]
            keep_t = _keep_row(keep, t, 0, n, use_keep)
            _zoneout_row_backward(d, keep_t, rate, zoned, use_keep, dyn, rest[n])
            _activate_row_backward(dyn, y_new[t, n], out_kind, d_z[t, n])
        _dot(d_z[t, :b], w_hy, d_hid[:b])
        for n in range(b):
            _activate_row_backward(d_hid[n], hid[t, n], kind, d_act[t, n])
        dy_prev = dy_all[:b]  # (b, O)
        _dot(d_act[t, :b], w_yh, dy_prev)
        for n in range(b):
            for j in range(out_size):
                dm = dy_prev[n, j] * mask[n, j] if use_mask else dy_prev[n, j]
                dy[n, j] = dm + rest[n, j]
