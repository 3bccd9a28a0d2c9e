"""The compiled form of the cells' equations, a step's rows at a time.

Each cell's equations are written twice: readably, as its spec's ``step``
(:mod:`rnnkit.cells`), and here, as loops the compiler vectorises. Both compiled users inline
these functions: the training engine's time loops (:mod:`rnnkit.functional._fused_numba`),
which add what training needs around them (the walk over steps and lengths, zoneout,
recurrent dropout, what the backward reads), and the streaming runtime's kernels
(:mod:`rnnkit.runtime._kernels`). A function takes the step's products (``x W_ih^T``,
``h W_hh^T``, made by its caller, which knows the best way for its shapes) and writes the new
state.

Conventions as in the engine's loops: gates in ``(i, f, g, o)`` order (LSTM, ``G = 4H``) or
``(r, z, n)`` (GRU, ``G = 3H``); a layer norm is ``(on, gain, shift, eps, wide)``, ``wide``
summing each row's mean in float64 (the runtime's, whose single steps are held to torch's
float32 accuracy; the engine's loops sum in float32, which costs them less); an absent option
is a stand-in array beside a flag that says so; ``exact`` takes the C library's ``tanh``
(float64) instead of the rational one of :mod:`.activations`. Torch-free, as the runtime must
be; without numba these are plain Python functions, which nothing calls then. numba's cache
does not notice a change here in the loops that inline these functions: after editing this
module, delete ``src/rnnkit/runtime/__pycache__/*.nb[ic]`` and
``src/rnnkit/functional/__pycache__/*.nb[ic]``.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.runtime.activations import compiled, like, sigmoid, tanh

try:
    from numba import njit
except ImportError:  # nothing calls these without numba
    njit = None


def mean_rstd(x, eps, wide):
    """The mean of the row ``x`` and ``1/sqrt(var + eps)``, as loops (no temporary array), in
    the dtype of ``x``; ``wide`` sums the mean in float64. ``reassoc`` lets the sums vectorise
    (their order differs, in rounding only: each is 16 partial sums in float32); it holds
    only in a function of its own, hence a call rather than inlined."""
    width = like(x, x.shape[0])
    if wide:
        total = 0.0
        for j in range(x.shape[0]):
            total += x[j]
        mean = like(x, total / x.shape[0])
    else:
        mean = like(x, 0.0)
        for j in range(x.shape[0]):
            mean += x[j]
        mean /= width
    var = like(x, 0.0)
    for j in range(x.shape[0]):
        var += (x[j] - mean) ** 2
    return mean, like(x, 1.0) / np.sqrt(var / width + like(x, eps))


if njit is not None:
    mean_rstd = njit(cache=True, error_model="numpy", fastmath={"reassoc"})(mean_rstd)


@compiled
def normalise_row(ln, x, out, add):
    """``out = LN(x)`` of the row ``x`` by the layer norm ``ln`` (``out += LN(x)`` when
    ``add``; ``out`` may be ``x``). Returns the row's mean and ``1/std``."""
    _, gain, shift, eps, wide = ln
    mean, rstd = mean_rstd(x, eps, wide)
    for j in range(x.shape[0]):
        y = (x[j] - mean) * rstd * gain[j] + shift[j]
        out[j] = out[j] + y if add else y
    return mean, rstd


@compiled
def lstm_rows(a, gh, c, c_new, tanh_c, h_new, peepholes, norms, moments, exact):
    """The rows of a step of the LSTM family (LSTM, peephole LSTM, layer-norm LSTM).

    Args:
        a: ``(B, 4H)`` the input's pre-activations ``x W_ih^T + b``; on return the gates'
            activations ``(i, f, g, o)``.
        gh: ``(B, 4H)`` the recurrent products ``h W_hh^T`` (``+ b_hh``), added to ``a``
            (through ``LN_hh`` when it is on).
        c, c_new: ``(B, H)`` the cell state ``c_{t-1}``, and where ``c_t`` goes (may be ``c``).
        tanh_c, h_new: ``(B, H)`` get ``tanh(LN_c(c_t))`` and ``h_t = o * tanh_c``.
        peepholes: ``(w, on)``: ``w`` ``(3, H)`` the peephole weights of ``i``, ``f`` (which
            see ``c_{t-1}``) and ``o`` (which sees ``c_t``), Gers & Schmidhuber 2000.
        norms: the layer norms ``(LN_ih, LN_hh, LN_c)`` (Ba et al. 2016): ``LN_ih`` of ``a``
            before ``gh`` is added, ``LN_hh`` of ``gh``, ``LN_c`` of ``c_t`` inside the
            ``tanh``.
        moments: ``(3, B, 2)`` gets each layer norm's ``(mean, 1/std)`` of each row, where it
            is on.
    """
    # One call a step, not a row: the arrays a call takes out of its tuples cost it a
    # reference count each.
    w_peep, peep = peepholes
    ln_ih, ln_hh, ln_c = norms
    hidden = c.shape[1]
    for n in range(a.shape[0]):
        row, c_row, c_next, tc, h = a[n], c[n], c_new[n], tanh_c[n], h_new[n]
        # Loops over the gates as views, not offsets into one row, which LLVM cannot tell
        # never meet: only those it vectorises.
        i, f, g, o = (
            row[:hidden],
            row[hidden : 2 * hidden],
            row[2 * hidden : 3 * hidden],
            row[3 * hidden :],
        )
        if ln_ih[0]:
            moments[0, n, 0], moments[0, n, 1] = normalise_row(ln_ih, row, row, False)
        if ln_hh[0]:
            moments[1, n, 0], moments[1, n, 1] = normalise_row(ln_hh, gh[n], row, True)
        else:
            for j in range(row.shape[0]):
                row[j] += gh[n, j]
        if peep:
            for j in range(hidden):
                i[j] += w_peep[0, j] * c_row[j]
                f[j] += w_peep[1, j] * c_row[j]
        for j in range(2 * hidden):  # i and f
            row[j] = sigmoid(row[j], exact)
        for j in range(hidden):
            g[j] = tanh(g[j], exact)
            c_next[j] = f[j] * c_row[j] + i[j] * g[j]
        if peep:  # o peeks at c_t
            for j in range(hidden):
                o[j] += w_peep[2, j] * c_next[j]
        for j in range(hidden):
            o[j] = sigmoid(o[j], exact)
        if ln_c[0]:
            moments[2, n, 0], moments[2, n, 1] = normalise_row(ln_c, c_next, h, False)
        else:
            h[:] = c_next
        for j in range(hidden):
            tc[j] = tanh(h[j], exact)
            h[j] = o[j] * tc[j]


@compiled
def gru_rows(x_t, g, h, a, h_new, b_hh, norms, moments, exact):
    """The rows of a step of the GRU family (torch.nn's GRU, layer-norm GRU).

    Args:
        x_t: ``(B, 3H)`` the input's share ``x W_ih^T + b_ih``; normalised in place by
            ``LN_ih`` when it is on.
        g: ``(B, 3H)`` the recurrent products ``h W_hh^T``; in place, ``LN_hh`` of them when
            it is on, else ``+ b_hh``: ``b_hn`` stays inside the reset product, as torch.nn
            has it.
        h, h_new: ``(B, H)`` the state ``h_{t-1}``, and where ``h_t`` goes (may be ``h``).
        a: ``(B, 3H)`` gets the gates' activations ``(r, z, n)``.
        norms: ``(LN_ih, LN_hh)``.
        moments: ``(B, 2)`` gets ``LN_hh``'s ``(mean, 1/std)`` of each row, where it is on.
    """
    ln_ih, ln_hh = norms  # once a step: see lstm_rows
    hidden = h.shape[1]
    for n in range(x_t.shape[0]):
        x_n, g_n, act = x_t[n], g[n], a[n]
        if ln_ih[0]:
            normalise_row(ln_ih, x_n, x_n, False)
        if ln_hh[0]:
            moments[n, 0], moments[n, 1] = normalise_row(ln_hh, g_n, g_n, False)
        else:
            for j in range(g_n.shape[0]):
                g_n[j] += b_hh[j]
        for j in range(2 * hidden):  # r and z
            act[j] = sigmoid(x_n[j] + g_n[j], exact)
        # Named views, which LLVM vectorises (see lstm_rows)
        r, z, candidate = act[:hidden], act[hidden : 2 * hidden], act[2 * hidden :]
        x_c, g_c, h_n, h_t = x_n[2 * hidden :], g_n[2 * hidden :], h[n], h_new[n]
        for j in range(hidden):
            candidate[j] = tanh(x_c[j] + r[j] * g_c[j], exact)
            h_t[j] = candidate[j] + z[j] * (h_n[j] - candidate[j])


#: The point-wise nonlinearities of Elman, IndRNN and Jordan, passed to the loops as their
#: index.
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu", "softmax")
TANH, SIGMOID, RELU, SOFTMAX = 1, 2, 3, 4


@compiled
def activate_row(x, kind, exact):
    """In place ``x = act(x)`` on one row, ``act`` the :data:`ACTIVATIONS` entry ``kind``."""
    if kind == SOFTMAX:  # math.exp: rows are a few outputs wide
        top = x.max()
        total = 0.0
        for j in range(x.shape[0]):
            x[j] = math.exp(x[j] - top)
            total += x[j]
        for j in range(x.shape[0]):
            x[j] /= total
        return
    # one loop per kind, without branches, so that the compiler vectorises it
    if kind == TANH:
        for j in range(x.shape[0]):
            x[j] = tanh(x[j], exact)
    elif kind == SIGMOID:
        for j in range(x.shape[0]):
            x[j] = sigmoid(x[j], exact)
    elif kind == RELU:  # NaN stays NaN, as torch.relu keeps it
        zero = like(x, 0.0)
        for j in range(x.shape[0]):
            x[j] = zero if x[j] <= zero else x[j]


@compiled
def indrnn_row(gi, u, h, h_new, kind, exact):
    """One row of an IndRNN step (Li et al. 2018): ``h_new = act(gi + u * h)``, ``gi``
    ``(H,)`` the input's share ``x W_ih^T + b``, ``u`` ``(H,)`` the recurrent weights (times
    the dropout mask), ``h`` ``(H,)`` (``h_new`` may be ``h``), ``act`` the
    :data:`ACTIVATIONS` entry ``kind``."""
    for j in range(h.shape[0]):
        h_new[j] = gi[j] + u[j] * h[j]
    activate_row(h_new, kind, exact)


@compiled
def min_gates(row, flags, gates):
    """The gates of one step of one sequence from its projection ``row`` ``(G,)`` into the
    rows of ``gates`` ``(4, H)``: ``z``, the share of ``h~`` in the new state (minLSTM's
    ``i / (f + i)``, minGRU's ``sigmoid(k_z)``), ``h~`` (through the paper's ``g`` when
    ``positive``), and minLSTM's ``f`` and ``i``. One loop per row, each without branches,
    so that the compiler vectorises it."""
    _, lstm, positive, tiny, exact = flags
    hidden = gates.shape[1]
    z, candidate, f, i = gates[0], gates[1], gates[2], gates[3]
    half = like(row, 0.5)
    if lstm:
        k_f, k_i = row[:hidden], row[hidden : 2 * hidden]
        for j in range(hidden):
            f[j] = sigmoid(k_f[j], exact)
        for j in range(hidden):
            i[j] = sigmoid(k_i[j], exact)
        for j in range(hidden):
            z[j] = i[j] / max(f[j] + i[j], tiny)
    else:
        k_z = row[:hidden]
        for j in range(hidden):
            z[j] = sigmoid(k_z[j], exact)
    k_h = row[row.shape[0] - hidden :]
    if positive:
        for j in range(hidden):
            below = sigmoid(k_h[j], exact)
            candidate[j] = k_h[j] + half if k_h[j] >= 0 else below
    else:
        candidate[:] = k_h


@compiled
def min_row(row, h, out, flags, gates):
    """One row of a minGRU / minLSTM step (Feng et al. 2024): ``h = h + z (h~ - h)`` in
    place from the projection ``row`` ``(G,)``, and ``out`` ``(H,)`` a copy of the new ``h``
    (may be ``h``). ``flags`` ``(reverse, lstm, positive, tiny, exact)``; ``gates`` ``(4,
    H)`` gets :func:`min_gates`'s rows."""
    min_gates(row, flags, gates)
    z, candidate = gates[0], gates[1]
    for j in range(h.shape[0]):
        h[j] = h[j] + z[j] * (candidate[j] - h[j])
        out[j] = h[j]
