r"""minLSTM (Feng et al. 2024, section 3.2): normalised input-only gates.

.. math::
    f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
    \tilde h_t = W_h x_t + b_h,

    f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \quad
    h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

with ``positive=True``, ``\tilde h_t = g(W_h x_t + b_h)`` (see :mod:`rnnkit.cells.mingru`).
There is no cell state and no output gate: the state is ``(h,)``. As ``f' = 1 - i'``, the step
is minGRU's interpolation with ``z = i'``; where ``f + i`` underflows to 0 (both
pre-activations below about -88 in float32, -745 in float64) ``z`` is 0, not NaN: the state
is kept.

Whole sequences run as the exact parallel scan :func:`rnnkit.functional.min_lstm_scan`
(``parallel=True``, the default) or the step loop (``parallel=False``); ``positive``, the
regularisers and streaming are as minGRU's (:mod:`rnnkit.cells.mingru`): zoneout runs the
steps, recurrent dropout is refused (the gates read no state).

Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi, "Were RNNs All We
Needed?", arXiv:2410.01201, 2024.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: learn ``b_f``, ``b_i`` and ``b_h``.
    positive: apply the paper's ``g`` to the candidate; default False (the plain equations).
    parallel: run whole sequences with the parallel scan (True) or the step loop (False).
    device, dtype: of the parameters.

Parameters: ``weight_ih`` ``(3H, H_in)`` with the gate blocks in the order ``(f, i, h)``,
``bias_ih`` ``(3H,)`` (None without ``bias``); initialised as ``nn.Linear``:
``U(-1/sqrt(H_in), 1/sqrt(H_in))``.

Shapes (one step): input ``(N, H_in)`` or ``(H_in,)``; state ``(h,)`` with ``h`` ``(N, H)``
(calling the cell takes and returns ``h`` itself, as ``nn.GRUCell``).
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param
from rnnkit.cells.mingru import candidate


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound = 1 / math.sqrt(input_size)
    return {
        "weight_ih": Param((3 * hidden_size, input_size), bound=bound),
        "bias_ih": Param((3 * hidden_size,), bound=bound) if bias else None,
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, 3H)


def interpolation(ops, p, x_t):
    """``(z, h~)`` from the projection ``x_t`` ``(..., 3H)``: ``z = i' = i / (f + i)``
    (``f' = 1 - i'``), the share of the candidate ``h~`` in ``h' = h + z (h~ - h)``, element-wise
    as minGRU's (:func:`rnnkit.cells.mingru.interpolation`)."""
    k_f, k_i, k_h = ops.split(x_t, 3)
    f, i = ops.sigmoid(k_f), ops.sigmoid(k_i)
    return ops.divide(i, f + i), candidate(ops, p, k_h)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    z, h_tilde = interpolation(ops, p, x_t)
    return (h + z * (h_tilde - h),)


def _engine_kernel(engine, p):
    if not p.parallel:
        return None
    return engine.scan_kernel(engine.min_lstm_scan, p.project, positive=p.positive)


def _runtime_kernel(kernels, p):
    bias = kernels.or_zeros(p.bias_ih, 3 * p.hidden_size)
    flags = kernels.min_flags(True, p.positive)
    return kernels.min_step, (kernels.T(p.weight_ih), bias, flags)


CELL = CellSpec(
    name="minlstm",
    layer="MinLSTM",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={
        "positive": Option(False, boolean=True),
        "parallel": Option(True, boolean=True),
    },
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
    recurrent_dropout=False,
)
