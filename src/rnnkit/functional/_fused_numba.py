"""The time loops of the fused LSTM family compiled by numba, for small batches.

At a batch of a few sequences a step is microseconds of arithmetic, and the torch loop of
:mod:`rnnkit.functional.fused` spends several microseconds of interpreter time on each of
its ~20 ops per step. These loops do the same work in compiled code on NumPy views of the
same buffers (same layout, same saved quantities), so everything before and after the loop,
the parameter gradients included, is shared with the torch loop. Absent options are passed
as 1-element dummies with a flag (one compiled signature per dtype).

Shapes as in :mod:`rnnkit.functional.fused`: gates in ``(i, f, g, o)`` order, ``G = 4H``;
``stats`` ``(L, N, 2)`` hold each layer norm's mean and ``1/std`` per row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _tanh(x: float) -> float:
    """``tanh`` as a rational function (Eigen's float ``ptanh``, error a few float32 ulp):
    plain arithmetic the compiler vectorises, where ``math.tanh`` is a library call per
    element, and pip's llvmlite has no vector maths library."""
    x = min(max(x, -7.90531110763549805), 7.90531110763549805)
    x2 = x * x
    p = x2 * -2.76076847742355e-16 + 2.00018790482477e-13
    p = x2 * p - 8.60467152213735e-11
    p = x2 * p + 5.12229709037114e-08
    p = x2 * p + 1.48572235717979e-05
    p = x2 * p + 6.37261928875436e-04
    p = x2 * p + 4.89352455891786e-03
    q = x2 * 1.19825839466702e-06 + 1.18534705686654e-04
    q = x2 * q + 2.26843463243900e-03
    q = x2 * q + 4.89352518554385e-03
    return x * p / q


@njit(cache=True, inline="always")
def _tanh_exact(x: float, exact: bool) -> float:
    """``tanh``: the library's when ``exact`` (float64), else :func:`_tanh`."""
    return math.tanh(x) if exact else _tanh(x)


@njit(cache=True, inline="always")
def _sigmoid(x: float, exact: bool) -> float:
    return 0.5 + 0.5 * _tanh_exact(0.5 * x, exact)


@njit(cache=True)
def _matmul(x, w, out):
    """``out = x @ w`` as a loop: at these sizes a BLAS call costs more than it saves."""
    out[:] = 0.0
    for n in range(x.shape[0]):
        for k in range(x.shape[1]):
            xk = x[n, k]
            for j in range(w.shape[1]):
                out[n, j] += xk * w[k, j]


@njit(cache=True)
def lstm_forward(act, w, hs, cs, c_new, tanh_c, ln_w, ln_b, stats_h, w_peep, ln_w_c,
                 ln_b_c, stats_c, h0, c0, mask, keep, rate, eps, rows, reverse, zoned,
                 use_mask, use_keep, peep, ln_hh, ln_c, exact):  # fmt: skip
    """Fill ``act`` (holding ``gi + b_hh`` on entry), the states and the saved buffers;
    ``exact``: the library's ``tanh`` (float64) instead of the rational one."""
    steps, batch, gates = act.shape
    hidden = gates // 4
    h_in = np.empty((batch, hidden), act.dtype)
    g_all = np.empty((batch, gates), act.dtype)
    y = np.empty(hidden, act.dtype)
    for k in range(steps):
        t = steps - 1 - k if reverse else k
        prev, new = (t + 1, t) if reverse else (t, t + 1)
        b = rows[t]
        if b == 0:
            continue
        if reverse and t < steps - 1:  # sequences that start at this step
            for n in range(rows[t + 1], b):
                hs[prev, n] = h0[n]
                cs[prev, n] = c0[n]
        for n in range(b):
            for j in range(hidden):
                h_in[n, j] = hs[prev, n, j] * mask[n, j] if use_mask else hs[prev, n, j]
        g = g_all[:b]  # (b, 4H)
        _matmul(h_in[:b], w, g)
        for n in range(b):
            a = act[t, n]
            c = cs[prev, n]
            if ln_hh:
                mean = g[n].mean()
                var = ((g[n] - mean) ** 2).mean()
                rstd = 1.0 / math.sqrt(var + eps)
                stats_h[t, n, 0], stats_h[t, n, 1] = mean, rstd
                for j in range(gates):
                    a[j] += (g[n, j] - mean) * rstd * ln_w[j] + ln_b[j]
            else:
                for j in range(gates):
                    a[j] += g[n, j]
            if peep:
                for j in range(hidden):
                    a[j] += w_peep[0, j] * c[j]
                    a[hidden + j] += w_peep[1, j] * c[j]
            for j in range(2 * hidden):
                a[j] = _sigmoid(a[j], exact)
            cn = c_new[t, n]
            for j in range(hidden):
                a[2 * hidden + j] = _tanh_exact(a[2 * hidden + j], exact)
                cn[j] = a[hidden + j] * c[j] + a[j] * a[2 * hidden + j]
            for j in range(hidden):  # o, which peeks at c' with peepholes
                peek = w_peep[2, j] * cn[j] if peep else 0.0
                a[3 * hidden + j] = _sigmoid(a[3 * hidden + j] + peek, exact)
            if ln_c:
                mean = cn.mean()
                var = ((cn - mean) ** 2).mean()
                rstd = 1.0 / math.sqrt(var + eps)
                stats_c[t, n, 0], stats_c[t, n, 1] = mean, rstd
                for j in range(hidden):
                    y[j] = (cn[j] - mean) * rstd * ln_w_c[j] + ln_b_c[j]
            else:
                y[:] = cn
            for j in range(hidden):
                tc = _tanh_exact(y[j], exact)
                tanh_c[t, n, j] = tc
                h_t = a[3 * hidden + j] * tc
                if not zoned:
                    hs[new, n, j] = h_t
                elif use_keep:
                    hs[new, n, j] = hs[prev, n, j] if keep[t, 0, n, j] else h_t
                    cs[new, n, j] = c[j] if keep[t, 1, n, j] else cn[j]
                else:  # torch.lerp(new, old, rate)
                    hs[new, n, j] = h_t + rate * (hs[prev, n, j] - h_t)
                    cs[new, n, j] = cn[j] + rate * (c[j] - cn[j])


@njit(cache=True, inline="always")
def _norm_backward(dy, x, mean, rstd, weight, out, d_weight, d_bias):
    """``out`` = d input of ``LN(x)`` (one row) given ``dy`` at its output; adds the gain and
    shift gradients to ``d_weight`` and ``d_bias``."""
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
    m1 /= width
    m2 /= width
    for j in range(width):
        out[j] = rstd * (dy[j] * weight[j] - m1 - (x[j] - mean) * rstd * m2)


@njit(cache=True)
def lstm_backward(grads, dh, dc, act, d_act, d_gh, w_t, cs, c_new, tanh_c, stats_h, ln_w, d_ln_w_hh,
                  d_ln_b_hh, w_peep, ln_w_c, stats_c, d_ln_w_c, d_ln_b_c, mask, keep, rate,
                  rows, reverse, zoned, use_mask, use_keep, peep, ln_hh, ln_c):  # fmt: skip
    """Fill ``d_act`` (d pre-activations = d gi); with ``ln_hh``, overwrite ``d_gh``
    (holding ``h W_hh^T`` on entry) with its gradient (else it is ``d_act``); add the layer
    norms' parameter gradients to ``d_ln_*``; ``dh``, ``dc`` end as d h0, d c0."""
    steps, batch, gates = act.shape
    hidden = gates // 4
    dhn = np.empty(hidden, act.dtype)
    dcn = np.empty(hidden, act.dtype)
    keep_h = np.empty((batch, hidden), act.dtype)
    keep_c = np.empty((batch, hidden), act.dtype)
    dt = np.empty(hidden, act.dtype)
    dx = np.empty(gates, act.dtype)
    dh_all = np.empty((batch, hidden), act.dtype)
    for k in range(steps - 1, -1, -1):
        t = steps - 1 - k if reverse else k
        prev = t + 1 if reverse else t
        b = rows[t]
        if b == 0:
            continue
        for n in range(b):
            a, da = act[t, n], d_act[t, n]
            for j in range(hidden):
                d = dh[n, j] + grads[t, n, j]
                if not zoned:
                    dhn[j], keep_h[n, j] = d, 0.0
                    dcn[j], keep_c[n, j] = dc[n, j], 0.0
                elif use_keep:
                    kh, kc = keep[t, 0, n, j], keep[t, 1, n, j]
                    dhn[j], keep_h[n, j] = (0.0, d) if kh else (d, 0.0)
                    dcn[j], keep_c[n, j] = (0.0, dc[n, j]) if kc else (dc[n, j], 0.0)
                else:
                    dhn[j], keep_h[n, j] = d * (1.0 - rate), d * rate
                    dcn[j], keep_c[n, j] = dc[n, j] * (1.0 - rate), dc[n, j] * rate
            for j in range(hidden):
                tc, o = tanh_c[t, n, j], a[3 * hidden + j]
                da[3 * hidden + j] = dhn[j] * tc
                dt[j] = dhn[j] * o * (1.0 - tc * tc)
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
                da[3 * hidden + j] *= o * (1.0 - o)
                if peep:
                    dcn[j] += da[3 * hidden + j] * w_peep[2, j]
            for j in range(hidden):
                i, f, g = a[j], a[hidden + j], a[2 * hidden + j]
                da[j] = dcn[j] * g * i * (1.0 - i)
                da[hidden + j] = dcn[j] * cs[prev, n, j] * f * (1.0 - f)
                da[2 * hidden + j] = dcn[j] * i * (1.0 - g * g)
                dc_prev = dcn[j] * f + keep_c[n, j]
                if peep:
                    dc_prev += da[j] * w_peep[0, j] + da[hidden + j] * w_peep[1, j]
                dc[n, j] = dc_prev
            if ln_hh:
                _norm_backward(da, d_gh[t, n], stats_h[t, n, 0], stats_h[t, n, 1], ln_w, dx,
                               d_ln_w_hh, d_ln_b_hh)  # fmt: skip
                d_gh[t, n] = dx
        dh_prev = dh_all[:b]  # (b, H)
        _matmul(d_gh[t, :b], w_t, dh_prev)
        for n in range(b):
            for j in range(hidden):
                d = dh_prev[n, j] * mask[n, j] if use_mask else dh_prev[n, j]
                dh[n, j] = d + keep_h[n, j]
