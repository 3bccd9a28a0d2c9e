"""The compiled form of the cells' equations, one row of a batch at a time.

Each cell's equations are written twice: readably, as its spec's ``step``
(:mod:`rnnkit.cells`), and here, as loops the compiler vectorises. Both compiled users inline
these functions: the training engine's time loops (:mod:`rnnkit.functional._fused_numba`),
which add what training needs around them (zoneout, recurrent dropout, the statistics the
backward reads), and the streaming runtime's kernels (:mod:`rnnkit.runtime._kernels`). A
function takes one row of the step's products (``x W_ih^T``, ``h W_hh^T``, made by its
caller) and writes the row of the new state.

Conventions as in the engine's loops: gates in ``(i, f, g, o)`` order (LSTM, ``G = 4H``) or
``(r, z, n)`` (GRU, ``G = 3H``); a layer norm is ``(on, gain, shift, eps, stats)``, of which
these functions read the first four (``stats`` is where the engine keeps the returned
moments); an absent option is a stand-in array beside a flag that says so; ``exact`` takes the
C library's ``tanh`` (float64) instead of the rational one of :mod:`.activations`. Torch-free,
as the runtime must be; without numba these are plain Python functions, which nothing calls
then. numba's cache does not notice a change here in the loops that inline these functions:
after editing this module, delete ``src/rnnkit/runtime/__pycache__/*.nb[ic]`` and
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


def mean_rstd(x, eps):
    """The mean of the row ``x`` and ``1/sqrt(var + eps)``, as loops (no temporary array), in
    the dtype of ``x``. ``reassoc`` lets the sums vectorise (their order differs, in rounding
    only: each is 16 partial sums in float32); it holds only in a function of its own, hence
    a call rather than inlined."""
    width = like(x, x.shape[0])
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
def normalise(x, eps, gain, shift, out, add):
    """``out = LN(x)`` of the row ``x`` with ``gain`` and ``shift`` (``out += LN(x)`` when
    ``add``; ``out`` may be ``x``). Returns the row's mean and ``1/std``."""
    mean, rstd = mean_rstd(x, eps)
    for j in range(x.shape[0]):
        y = (x[j] - mean) * rstd * gain[j] + shift[j]
        out[j] = out[j] + y if add else y
    return mean, rstd


@compiled
def normalise_row(ln, x, out, add):
    """:func:`normalise` by the layer norm ``ln`` ``(on, gain, shift, eps, stats)``; returns
    the row's mean and ``1/std``."""
    _, gain, shift, eps, _ = ln
    return normalise(x, eps, gain, shift, out, add)


@compiled
def lstm_row(a, gh, c, c_new, tanh_c, h_new, peepholes, norms, exact):
    """One row of a step of the LSTM family (LSTM, peephole LSTM, layer-norm LSTM).

    Args:
        a: ``(4H,)`` the input's pre-activations ``x W_ih^T + b``; on return the gates'
            activations ``(i, f, g, o)``.
        gh: ``(4H,)`` the recurrent products ``h W_hh^T`` (``+ b_hh``), added to ``a``
            (through ``LN_hh`` when it is on).
        c, c_new: ``(H,)`` the cell state ``c_{t-1}``, and where ``c_t`` goes (may be ``c``).
        tanh_c, h_new: ``(H,)`` get ``tanh(LN_c(c_t))`` and ``h_t = o * tanh_c``.
        peepholes: ``(w, on)``: ``w`` ``(3, H)`` the peephole weights of ``i``, ``f`` (which
            see ``c_{t-1}``) and ``o`` (which sees ``c_t``), Gers & Schmidhuber 2000.
        norms: the layer norms ``(LN_ih, LN_hh, LN_c)`` (Ba et al. 2016): ``LN_ih`` of ``a``
            before ``gh`` is added, ``LN_hh`` of ``gh``, ``LN_c`` of ``c_t`` inside the
            ``tanh``.

    Returns:
        The ``(mean, 1/std)`` of each layer norm's row, zeros where it is off.
    """
    w_peep, peep = peepholes
    ln_ih, ln_hh, ln_c = norms
    hidden = c.shape[0]
    zero = like(a, 0.0)
    moments_ih = moments_hh = moments_c = (zero, zero)
    # Loops over the gates as views, not offsets into one row, which LLVM cannot tell never
    # meet: only those it vectorises.
    i, f, g, o = a[:hidden], a[hidden : 2 * hidden], a[2 * hidden : 3 * hidden], a[3 * hidden :]
    if ln_ih[0]:
        moments_ih = normalise_row(ln_ih, a, a, False)
    if ln_hh[0]:
        moments_hh = normalise_row(ln_hh, gh, a, True)
    else:
        for j in range(a.shape[0]):
            a[j] += gh[j]
    if peep:
        for j in range(hidden):
            i[j] += w_peep[0, j] * c[j]
            f[j] += w_peep[1, j] * c[j]
    for j in range(2 * hidden):  # i and f
        a[j] = sigmoid(a[j], exact)
    for j in range(hidden):
        g[j] = tanh(g[j], exact)
        c_new[j] = f[j] * c[j] + i[j] * g[j]
    if peep:  # o peeks at c_t
        for j in range(hidden):
            o[j] += w_peep[2, j] * c_new[j]
    for j in range(hidden):
        o[j] = sigmoid(o[j], exact)
    if ln_c[0]:
        moments_c = normalise_row(ln_c, c_new, h_new, False)
    else:
        h_new[:] = c_new
    for j in range(hidden):
        tanh_c[j] = tanh(h_new[j], exact)
        h_new[j] = o[j] * tanh_c[j]
    return moments_ih, moments_hh, moments_c


@compiled
def gru_row(x_t, g, h, a, h_new, b_hh, norms, exact):
    """One row of a step of the GRU family (torch.nn's GRU, layer-norm GRU).

    Args:
        x_t: ``(3H,)`` the input's share ``x W_ih^T + b_ih``; normalised in place by
            ``LN_ih`` when it is on.
        g: ``(3H,)`` the recurrent products ``h W_hh^T``; in place, ``LN_hh`` of them when
            it is on, else ``+ b_hh``: ``b_hn`` stays inside the reset product, as torch.nn
            has it.
        h, h_new: ``(H,)`` the state ``h_{t-1}``, and where ``h_t`` goes (may be ``h``).
        a: ``(3H,)`` gets the gates' activations ``(r, z, n)``.
        norms: ``(LN_ih, LN_hh)``.

    Returns:
        ``LN_hh``'s ``(mean, 1/std)`` of the row, zeros where it is off.
    """
    ln_ih, ln_hh = norms
    hidden = h.shape[0]
    zero = like(a, 0.0)
    moments = (zero, zero)
    if ln_ih[0]:
        normalise_row(ln_ih, x_t, x_t, False)
    if ln_hh[0]:
        moments = normalise_row(ln_hh, g, g, False)
    else:
        for j in range(g.shape[0]):
            g[j] += b_hh[j]
    for j in range(2 * hidden):  # r and z
        a[j] = sigmoid(x_t[j] + g[j], exact)
    # Named views, which LLVM vectorises (see lstm_row)
    r, z, n = a[:hidden], a[hidden : 2 * hidden], a[2 * hidden :]
    x_n, g_n = x_t[2 * hidden :], g[2 * hidden :]
    for j in range(hidden):
        n[j] = tanh(x_n[j] + r[j] * g_n[j], exact)
        h_new[j] = n[j] + z[j] * (h[j] - n[j])
    return moments


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
    for j in range(x.shape[0]):
        if kind == TANH:
            x[j] = tanh(x[j], exact)
        elif kind == SIGMOID:
            x[j] = sigmoid(x[j], exact)
        elif kind == RELU:  # NaN stays NaN, as torch.relu keeps it
            x[j] = like(x, 0.0) if x[j] <= 0.0 else x[j]


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
