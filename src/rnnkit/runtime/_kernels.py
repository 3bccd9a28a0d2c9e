"""One step of every cell, in NumPy, compiled by numba when it is installed.

Each kernel takes the input of one step ``x`` ``(N, K)``, the state tensors ``(N, S_k)``,
which it updates in place, and the cell's weights as the loader prepared them: transposed to
``(K, G)`` so a matrix-vector product runs along contiguous rows, absent biases as zeros.
After the call ``state[0]`` is the step's output. The equations are those of the cells' steps
in :mod:`rnnkit.cells` (gate orders LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``); the tests hold
the two to 1e-5 over long streams. A cell takes its kernel through its spec's
``runtime_kernel`` and runs its own NumPy step where the compiled kernels do not run.

The kernels are written once against a handful of primitives (``affine``, ``activate_``, ...).
:data:`NUMPY` binds them to vectorised NumPy; :data:`NUMBA` (None without numba) binds the
same source to loop primitives and compiles it, because a step of a small model is a few
microseconds of arithmetic, less than NumPy's interpreter time for its operations.
The numba ``activate_`` calls the compiled ``tanh`` and ``sigmoid`` the engine's loops call
too (:mod:`rnnkit.runtime.activations`), which the compiler vectorises along a row.

Shape letters: ``N`` batch (independent streams), ``K`` input features of the layer, ``H``
hidden size, ``G`` gate width (``gates * H``), ``P`` LSTM projection size, ``O`` Jordan
output size.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable

import numpy as np

from rnnkit.runtime.activations import sigmoid, tanh

_F32 = np.float32

# ------------------------------------------------------------------- NumPy primitives


def _np_affine(x: np.ndarray, w_t: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = x @ w_t + b``: x ``(N, K)``, w_t ``(K, G)``, b ``(G,)``, out ``(N, G)``."""
    np.matmul(x, w_t, out=out)
    out += b


def _np_affine_add(x: np.ndarray, w_t: np.ndarray, out: np.ndarray) -> None:
    """``out += x @ w_t``."""
    out += x @ w_t


def _np_sigmoid_(v: np.ndarray) -> None:
    """``v = 1 / (1 + exp(-v))`` in place (``-v`` clipped where exp would overflow)."""
    np.clip(v, -88.3, 87.3, out=v)
    np.negative(v, out=v)
    np.exp(v, out=v)
    v += 1
    np.reciprocal(v, out=v)


def _np_tanh_(v: np.ndarray) -> None:
    np.tanh(v, out=v)


def _np_activate_(v: np.ndarray, start: int, stop: int) -> None:
    """``tanh`` on the columns ``[start, stop)`` of ``v`` ``(N, G)``, ``sigmoid`` on the rest."""
    _np_sigmoid_(v[:, :start])
    _np_tanh_(v[:, start:stop])
    _np_sigmoid_(v[:, stop:])


def _np_relu_(v: np.ndarray) -> None:
    np.maximum(v, 0, out=v)


def _np_layer_norm_(v: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    """Each row ``v[r]`` ``(G,)`` -> ``weight * (v - mean) / sqrt(var + eps) + bias``."""
    mean = v.mean(axis=1, keepdims=True, dtype=np.float64)
    centred = v - mean
    var = np.mean(centred * centred, axis=1, keepdims=True)
    v[...] = centred / np.sqrt(var + eps) * weight + bias


def _np_softmax_(v: np.ndarray) -> None:
    """Row-wise softmax in place."""
    v -= v.max(axis=1, keepdims=True)
    np.exp(v, out=v)
    v /= v.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------- loop primitives


def _loop_affine(x: np.ndarray, w_t: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for r in range(x.shape[0]):
        out[r] = b
    _loop_affine_add(x, w_t, out)


def _loop_affine_add(x: np.ndarray, w_t: np.ndarray, out: np.ndarray) -> None:
    # Four rows of w_t per pass over the output row, which each pass loads and stores: a
    # quarter of that traffic beside the weights' (measured in benchmarks/README).
    inputs = x.shape[1]
    for r in range(x.shape[0]):
        row = out[r]
        j = 0
        while j + 4 <= inputs:
            x0, x1, x2, x3 = x[r, j], x[r, j + 1], x[r, j + 2], x[r, j + 3]
            w0, w1, w2, w3 = w_t[j], w_t[j + 1], w_t[j + 2], w_t[j + 3]
            for o in range(row.shape[0]):
                row[o] += x0 * w0[o] + x1 * w1[o] + x2 * w2[o] + x3 * w3[o]
            j += 4
        for k in range(j, inputs):
            xk, w = x[r, k], w_t[k]
            for o in range(row.shape[0]):
                row[o] += xk * w[o]


def _loop_activate_(v: np.ndarray, start: int, stop: int) -> None:
    for r in range(v.shape[0]):
        # a loop over each slice, not over index ranges of the row: only these vectorise
        low, middle, high = v[r, :start], v[r, start:stop], v[r, stop:]
        for k in range(low.shape[0]):
            low[k] = sigmoid(low[k], False)
        for k in range(middle.shape[0]):
            middle[k] = tanh(middle[k], False)
        for k in range(high.shape[0]):
            high[k] = sigmoid(high[k], False)


def _loop_sigmoid_(v: np.ndarray) -> None:
    _loop_activate_(v, 0, 0)


def _loop_tanh_(v: np.ndarray) -> None:
    _loop_activate_(v, 0, v.shape[1])


def _loop_relu_(v: np.ndarray) -> None:
    for r in range(v.shape[0]):
        for k in range(v.shape[1]):
            v[r, k] = max(v[r, k], _F32(0))


def _loop_layer_norm_(v: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    width = v.shape[1]
    for r in range(v.shape[0]):
        row = v[r]
        total = 0.0
        for k in range(width):
            total += row[k]
        mean = total / width
        squares = 0.0
        for k in range(width):
            squares += (row[k] - mean) ** 2
        inv = 1.0 / math.sqrt(squares / width + eps)
        for k in range(width):
            row[k] = (row[k] - mean) * inv * weight[k] + bias[k]


def _loop_softmax_(v: np.ndarray) -> None:
    for r in range(v.shape[0]):
        row = v[r]
        top = row.max()
        total = 0.0
        for k in range(row.shape[0]):
            row[k] = math.exp(row[k] - top)
            total += row[k]
        for k in range(row.shape[0]):
            row[k] /= total


# ---------------------------------------------------------------------------- kernels
# Written against the primitive names below; :func:`_bind` supplies them.

affine: Callable[..., None] = _np_affine
affine_add: Callable[..., None] = _np_affine_add
activate_: Callable[..., None] = _np_activate_
sigmoid_: Callable[..., None] = _np_sigmoid_
tanh_: Callable[..., None] = _np_tanh_
relu_: Callable[..., None] = _np_relu_
layer_norm_: Callable[..., None] = _np_layer_norm_
softmax_: Callable[..., None] = _np_softmax_


def rnn_step(x, h, w_ih_t, w_hh_t, b, relu):
    """Elman: ``h = act(x W_ih^T + h W_hh^T + b_ih + b_hh)``; ``b`` is the summed bias."""
    a = np.empty_like(h)  # (N, H)
    affine(x, w_ih_t, b, a)
    affine_add(h, w_hh_t, a)
    if relu:
        relu_(a)
    else:
        tanh_(a)
    h[:] = a


def lstm_step(x, h, c, w_ih_t, w_hh_t, b, w_hr_t):
    """LSTM, ``(i, f, g, o)``; ``w_hr_t`` ``(H, P)``, or ``(0, 0)`` without a projection."""
    size = c.shape[1]
    a = np.empty((x.shape[0], 4 * size), dtype=c.dtype)  # (N, 4H)
    affine(x, w_ih_t, b, a)
    affine_add(h, w_hh_t, a)
    activate_(a, 2 * size, 3 * size)
    c[:] = a[:, size : 2 * size] * c + a[:, :size] * a[:, 2 * size : 3 * size]
    out = c.copy()
    tanh_(out)
    out *= a[:, 3 * size :]  # (N, H)
    if w_hr_t.shape[0] == 0:
        h[:] = out
    else:
        h[:] = 0
        affine_add(out, w_hr_t, h)  # (N, P)


def gru_step(x, h, w_ih_t, w_hh_t, b_ih, b_hh):
    """GRU, ``(r, z, n)``, ``b_hn`` inside the reset product as in torch.nn."""
    size = h.shape[1]
    gi = np.empty((x.shape[0], 3 * size), dtype=h.dtype)  # (N, 3H)
    gh = np.empty_like(gi)
    affine(x, w_ih_t, b_ih, gi)
    affine(h, w_hh_t, b_hh, gh)
    _gru_update(gi, gh, h)


def _gru_update(gi, gh, h):
    size = h.shape[1]
    rz = gi[:, : 2 * size] + gh[:, : 2 * size]  # (N, 2H)
    sigmoid_(rz)
    n = gi[:, 2 * size :] + rz[:, :size] * gh[:, 2 * size :]
    tanh_(n)
    h[:] = n + rz[:, size:] * (h - n)


def peephole_lstm_step(x, h, c, w_ih_t, w_hh_t, b, w_ci, w_cf, w_co):
    """LSTM whose input and forget gates see ``c_{t-1}`` and output gate ``c_t``."""
    size = c.shape[1]
    a = np.empty((x.shape[0], 4 * size), dtype=c.dtype)  # (N, 4H)
    affine(x, w_ih_t, b, a)
    affine_add(h, w_hh_t, a)
    a[:, :size] += w_ci * c
    a[:, size : 2 * size] += w_cf * c
    sigmoid_(a[:, : 2 * size])
    tanh_(a[:, 2 * size : 3 * size])
    c[:] = a[:, size : 2 * size] * c + a[:, :size] * a[:, 2 * size : 3 * size]
    a[:, 3 * size :] += w_co * c
    sigmoid_(a[:, 3 * size :])
    out = c.copy()
    tanh_(out)
    h[:] = a[:, 3 * size :] * out


def layer_norm_lstm_step(
    x, h, c, w_ih_t, w_hh_t, zeros, ln_w_ih, ln_b_ih, ln_w_hh, ln_b_hh, ln_w_c, ln_b_c, eps
):
    """``a = LN_ih(x W_ih^T) + LN_hh(h W_hh^T)``, LSTM gates, ``h = o * tanh(LN_c(c))``."""
    size = c.shape[1]
    gi = np.empty((x.shape[0], 4 * size), dtype=c.dtype)  # (N, 4H)
    gh = np.empty_like(gi)
    affine(x, w_ih_t, zeros, gi)
    layer_norm_(gi, ln_w_ih, ln_b_ih, eps)
    affine(h, w_hh_t, zeros, gh)
    layer_norm_(gh, ln_w_hh, ln_b_hh, eps)
    gi += gh
    activate_(gi, 2 * size, 3 * size)
    c[:] = gi[:, size : 2 * size] * c + gi[:, :size] * gi[:, 2 * size : 3 * size]
    out = c.copy()
    layer_norm_(out, ln_w_c, ln_b_c, eps)
    tanh_(out)
    h[:] = gi[:, 3 * size :] * out


def layer_norm_gru_step(x, h, w_ih_t, w_hh_t, zeros, ln_w_ih, ln_b_ih, ln_w_hh, ln_b_hh, eps):
    """GRU with ``gi = LN_ih(x W_ih^T)`` and ``gh = LN_hh(h W_hh^T)``."""
    size = h.shape[1]
    gi = np.empty((x.shape[0], 3 * size), dtype=h.dtype)  # (N, 3H)
    gh = np.empty_like(gi)
    affine(x, w_ih_t, zeros, gi)
    layer_norm_(gi, ln_w_ih, ln_b_ih, eps)
    affine(h, w_hh_t, zeros, gh)
    layer_norm_(gh, ln_w_hh, ln_b_hh, eps)
    _gru_update(gi, gh, h)


def indrnn_step(x, h, w_ih_t, b, u, relu):
    """IndRNN: ``h = act(x W_ih^T + b + u * h)``; ``u`` already clamped to its bound."""
    a = np.empty_like(h)  # (N, H)
    affine(x, w_ih_t, b, a)
    a += u * h
    if relu:
        relu_(a)
    else:
        tanh_(a)
    h[:] = a


def min_gru_step(x, h, w_ih_t, b, positive, lstm):
    """minGRU (``lstm`` False, blocks ``(z, h~)``) or minLSTM (blocks ``(f, i, h~)``):
    ``h = h + z * (h~ - h)``, gates from ``x`` alone."""
    size = h.shape[1]
    k = np.empty((x.shape[0], (3 if lstm else 2) * size), dtype=h.dtype)  # (N, G)
    affine(x, w_ih_t, b, k)
    candidate = k[:, -size:].copy()  # (N, H)
    if positive:
        # g(v) = v + 0.5 for v >= 0, sigmoid(v) below (the paper's log-space candidate).
        below = candidate.copy()
        sigmoid_(below)
        candidate[:] = np.where(candidate >= 0, candidate + _F32(0.5), below)
    gates = k[:, : k.shape[1] - size]
    sigmoid_(gates)
    if lstm:
        total = np.maximum(gates[:, :size] + gates[:, size:], _F32(1.1754944e-38))
        z = gates[:, size:] / total
    else:
        z = gates
    h[:] = h + z * (candidate - h)


def jordan_step(x, y, w_ih_t, b_ih, w_yh_t, w_hy_t, b_hy, relu, output):
    """Jordan: ``h = act(x W_ih^T + b_ih + y W_yh^T)``, ``y = out_act(h W_hy^T + b_hy)``."""
    hidden = np.empty((x.shape[0], w_ih_t.shape[1]), dtype=y.dtype)  # (N, H)
    affine(x, w_ih_t, b_ih, hidden)
    affine_add(y, w_yh_t, hidden)
    if relu:
        relu_(hidden)
    else:
        tanh_(hidden)
    affine(hidden, w_hy_t, b_hy, y)  # (N, O)
    if output == 1:
        tanh_(y)
    elif output == 2:
        sigmoid_(y)
    elif output == 3:
        relu_(y)
    elif output == 4:
        softmax_(y)


KERNELS = (
    rnn_step,
    lstm_step,
    gru_step,
    peephole_lstm_step,
    layer_norm_lstm_step,
    layer_norm_gru_step,
    indrnn_step,
    min_gru_step,
    jordan_step,
)


_PRIMITIVES = (
    "affine",
    "affine_add",
    "activate_",
    "sigmoid_",
    "tanh_",
    "relu_",
    "layer_norm_",
    "softmax_",
)


def _bind(compile: Callable[[Callable], Callable]) -> dict[str, Callable]:
    """The kernels bound to the loop primitives, all compiled, in a namespace of their own."""
    namespace = dict(globals())

    def rebind(function: Callable) -> Callable:
        code = function.__code__
        return compile(types.FunctionType(code, namespace, code.co_name))

    for name in _PRIMITIVES:
        namespace[f"_loop_{name}"] = namespace[name] = rebind(namespace[f"_loop_{name}"])
    for function in (_gru_update, *KERNELS):
        namespace[function.__name__] = rebind(function)
    return {f.__name__: namespace[f.__name__] for f in KERNELS}


NUMPY: dict[str, Callable] = {f.__name__: f for f in KERNELS}

try:
    import numba
except ImportError:  # the runtime works without it, slower
    NUMBA: dict[str, Callable] | None = None
else:
    NUMBA = _bind(numba.njit(cache=True, nogil=True, error_model="numpy"))
