"""One step of each cell family, compiled by numba: the streaming runtime's fast path.

Each kernel takes the input of one step ``x`` ``(N, K)``, the state tensors ``(N, S_k)``,
which it updates in place, and the weights as its cell's ``runtime_kernel`` hook prepared
them (:mod:`rnnkit.cells._spec`): transposed to ``(K, G)`` so that a product runs along
contiguous rows, absent biases as zeros, absent options as stand-ins beside a flag. After the
call ``state[0]`` is the step's output. A kernel makes the step's products, then runs the
cell's equations row by row through :mod:`rnnkit.runtime.gates`, the compiled functions the
training engine's loops run too. The tests hold both to the cells' reference steps.

Without numba :data:`NUMBA` is None, and every cell runs its spec's step on NumPy.

Shape letters: ``N`` batch (independent streams), ``K`` input features of the layer, ``H``
hidden size, ``G`` gate width (``gates * H``), ``P`` LSTM projection size, ``O`` Jordan
output size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnkit.runtime.activations import compiled
from rnnkit.runtime.gates import activate_row, gru_rows, indrnn_row, lstm_rows, min_row


@compiled
def _add_product(x, w_t, out):
    """``out += x @ w_t``: x ``(N, K)``, w_t ``(K, G)``, out ``(N, G)``."""
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


@compiled
def _affine(x, w_t, b, out):
    """``out = x @ w_t + b``, ``b`` ``(G,)``."""
    for r in range(x.shape[0]):
        out[r] = b
    _add_product(x, w_t, out)


@compiled
def _product(x, w_t, out):
    """``out = x @ w_t``."""
    out[:] = 0
    _add_product(x, w_t, out)


def rnn_step(x, h, w_ih_t, w_hh_t, b, kind):
    """Elman: ``h = act(x W_ih^T + h W_hh^T + b)``, ``b`` the summed biases, ``act`` the
    :data:`~rnnkit.runtime.gates.ACTIVATIONS` entry ``kind``."""
    a = np.empty_like(h)  # (N, H)
    _affine(x, w_ih_t, b, a)
    _add_product(h, w_hh_t, a)
    for n in range(h.shape[0]):
        activate_row(a[n], kind, False)
    h[:] = a


# Stand-ins for what a cell has not, which the rows read only where a flag says it has:
# constants of the compiled code rather than arguments, as every array a call passes costs it
# the unboxing.
_ABSENT = np.zeros(1, np.float32)
_NO_PEEPHOLES = np.zeros((1, 1), np.float32)
_NO_PROJECTION = np.zeros((0, 0), np.float32)


@compiled
def _no_norm():
    """A layer norm that is off (see :mod:`rnnkit.runtime.gates`)."""
    return False, _ABSENT, _ABSENT, 0.0, True


@compiled
def _lstm(x, h, c, w_ih_t, w_hh_t, b, w_hr_t, peepholes, norms):
    """The LSTM family (:func:`~rnnkit.runtime.gates.lstm_rows`): ``b`` the summed biases,
    ``w_hr_t`` ``(H, P)`` the projection or ``(0, 0)``, ``peepholes`` and ``norms`` as
    ``lstm_rows`` takes them."""
    a = np.empty((x.shape[0], 4 * c.shape[1]), c.dtype)  # (N, 4H)
    gh = np.empty_like(a)
    tanh_c, out = np.empty_like(c), np.empty_like(c)  # (N, H)
    moments = np.empty((3, x.shape[0], 2), c.dtype)
    _affine(x, w_ih_t, b, a)
    _product(h, w_hh_t, gh)
    lstm_rows(a, gh, c, c, tanh_c, out, peepholes, norms, moments, False)
    if w_hr_t.shape[0] == 0:
        h[:] = out
    else:
        _product(out, w_hr_t, h)  # (N, P)


def lstm_step(x, h, c, w_ih_t, w_hh_t, b, w_hr_t):
    """torch.nn's LSTM, its projection ``w_hr_t`` ``(H, P)`` or ``(0, 0)``."""
    off = _no_norm()
    _lstm(x, h, c, w_ih_t, w_hh_t, b, w_hr_t, (_NO_PEEPHOLES, False), (off, off, off))


def peephole_lstm_step(x, h, c, w_ih_t, w_hh_t, b, w_peep):
    """The peephole LSTM, ``w_peep`` ``(3, H)`` the peepholes of ``i``, ``f`` and ``o``."""
    off = _no_norm()
    _lstm(x, h, c, w_ih_t, w_hh_t, b, _NO_PROJECTION, (w_peep, True), (off, off, off))


def layer_norm_lstm_step(
    x, h, c, w_ih_t, w_hh_t, b, gain_ih, shift_ih, gain_hh, shift_hh, gain_c, shift_c, eps
):
    """The layer-norm LSTM: ``LN_ih``, ``LN_hh`` and ``LN_c`` by their gains and shifts."""
    norms = (
        (True, gain_ih, shift_ih, eps, True),
        (True, gain_hh, shift_hh, eps, True),
        (True, gain_c, shift_c, eps, True),
    )
    _lstm(x, h, c, w_ih_t, w_hh_t, b, _NO_PROJECTION, (_NO_PEEPHOLES, False), norms)


@compiled
def _gru(x, h, w_ih_t, w_hh_t, b_ih, b_hh, norms):
    """The GRU family (:func:`~rnnkit.runtime.gates.gru_rows`): ``norms`` ``(LN_ih, LN_hh)``."""
    gi = np.empty((x.shape[0], 3 * h.shape[1]), h.dtype)  # (N, 3H)
    g, a = np.empty_like(gi), np.empty_like(gi)
    moments = np.empty((x.shape[0], 2), h.dtype)
    _affine(x, w_ih_t, b_ih, gi)
    _product(h, w_hh_t, g)
    gru_rows(gi, g, h, a, h, b_hh, norms, moments, False)


def gru_step(x, h, w_ih_t, w_hh_t, b_ih, b_hh):
    """torch.nn's GRU."""
    off = _no_norm()
    _gru(x, h, w_ih_t, w_hh_t, b_ih, b_hh, (off, off))


def layer_norm_gru_step(x, h, w_ih_t, w_hh_t, zeros, gain_ih, shift_ih, gain_hh, shift_hh, eps):
    """The layer-norm GRU: ``LN_ih`` and ``LN_hh`` by their gains and shifts; ``zeros``
    ``(3H,)`` for the biases it has not."""
    norms = (True, gain_ih, shift_ih, eps, True), (True, gain_hh, shift_hh, eps, True)
    _gru(x, h, w_ih_t, w_hh_t, zeros, zeros, norms)


def indrnn_step(x, h, w_ih_t, b, u, kind):
    """IndRNN (:func:`~rnnkit.runtime.gates.indrnn_row`); ``u`` already clamped to its
    bound."""
    gi = np.empty_like(h)  # (N, H)
    _affine(x, w_ih_t, b, gi)
    for n in range(h.shape[0]):
        indrnn_row(gi[n], u, h[n], h[n], kind, False)


def min_step(x, h, w_ih_t, b, flags):
    """minGRU and minLSTM (:func:`~rnnkit.runtime.gates.min_row`): gates from ``x`` alone."""
    k = np.empty((x.shape[0], w_ih_t.shape[1]), h.dtype)  # (N, G)
    gates = np.empty((4, h.shape[1]), h.dtype)
    _affine(x, w_ih_t, b, k)
    for n in range(h.shape[0]):
        min_row(k[n], h[n], h[n], flags, gates)


def jordan_step(x, y, w_ih_t, b_ih, w_yh_t, w_hy_t, b_hy, kind, out_kind):
    """Jordan: ``h = act(x W_ih^T + b_ih + y W_yh^T)``, ``y = out_act(h W_hy^T + b_hy)``, the
    two activations by their :data:`~rnnkit.runtime.gates.ACTIVATIONS` index."""
    hidden = np.empty((x.shape[0], w_ih_t.shape[1]), y.dtype)  # (N, H)
    _affine(x, w_ih_t, b_ih, hidden)
    _add_product(y, w_yh_t, hidden)
    for n in range(x.shape[0]):
        activate_row(hidden[n], kind, False)
    _affine(hidden, w_hy_t, b_hy, y)  # (N, O)
    for n in range(x.shape[0]):
        activate_row(y[n], out_kind, False)


KERNELS = (
    rnn_step,
    lstm_step,
    peephole_lstm_step,
    layer_norm_lstm_step,
    gru_step,
    layer_norm_gru_step,
    indrnn_step,
    min_step,
    jordan_step,
)

try:
    from numba import njit
except ImportError:  # the runtime works without it, on the cells' NumPy steps
    NUMBA: dict[str, Callable[..., None]] | None = None
else:
    NUMBA = {f.__name__: njit(cache=True, nogil=True, error_model="numpy")(f) for f in KERNELS}
