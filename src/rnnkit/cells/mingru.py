r"""minGRU (Feng et al. 2024, section 3.1): a GRU whose gates read only the input.

.. math::
    z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = W_h x_t + b_h, \quad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

Every gate is a linear map of ``x_t`` alone, so the projection computes all of them for all
steps in one matrix product, and the state follows the linear recurrence
``h_t = a_t * h_{t-1} + b_t``: a whole sequence runs as the exact parallel scan
:func:`rnnkit.functional.min_gru_scan` (``parallel=True``, the default; the maths, and how
the scan was chosen, are in :mod:`rnnkit.functional.minimal`). ``parallel=False`` runs the
sequential mode, the layer's loop over the steps, which also serves streaming one step at a
time. Both give the same numbers to rounding.

``positive``: the paper's log-space implementation passes the candidate through
``g(x) = x + 0.5`` (``x >= 0``), ``sigmoid(x)`` (``x < 0``) so that every value it takes the
logarithm of is positive. rnnkit's scan needs no logarithm and handles any sign exactly, so
the default is ``positive=False``: the plain equations, whose outputs, like a GRU's, take both
signs. ``positive=True`` reproduces the log-space models (the state then stays positive from a
non-negative initial state). Unlike the paper's code, ``g`` is not applied to ``h0``: a state
carried over from a previous chunk of the same stream is passed on unchanged, so running a
sequence in pieces equals running it whole.

Layer regularisers: zoneout works (the layer then runs the steps, the sequential mode).
Recurrent dropout is refused by the layer with a clear error: these gates read no state, so
there is no recurrent input to drop (``step`` takes no ``dropout_mask``), and dropping the
carried state instead would be another regulariser.

Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi, "Were RNNs All We
Needed?", arXiv:2410.01201, 2024.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: learn ``b_z`` and ``b_h``.
    positive: apply the paper's ``g`` to the candidate; default False (the plain equations).
    parallel: run whole sequences with the parallel scan (True) or the step loop (False);
        the two agree to rounding, the scan is faster for long sequences.
    device, dtype: of the parameters.

Parameters: ``weight_ih`` ``(2H, H_in)`` with the gate blocks in the order ``(z, h)``,
``bias_ih`` ``(2H,)`` (None without ``bias``); initialised as ``nn.Linear``, as in the paper:
``U(-1/sqrt(H_in), 1/sqrt(H_in))``.

Shapes (one step): input ``(N, H_in)`` or ``(H_in,)``; state ``(h,)`` with ``h`` ``(N, H)``
(calling the cell takes and returns ``h`` itself, as ``nn.GRUCell``).
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound = 1 / math.sqrt(input_size)
    return {
        "weight_ih": Param((2 * hidden_size, input_size), bound=bound),
        "bias_ih": Param((2 * hidden_size,), bound=bound) if bias else None,
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, 2H)


def candidate(ops, p, k_h):
    """``k_h``, or with ``positive`` the paper's ``g(k_h)``: ``k_h + 0.5`` where ``k_h >= 0``,
    ``sigmoid(k_h)`` below, written as ``relu(k_h) + sigmoid(-relu(-k_h))`` (each term is 0
    or 0.5 exactly on the other side), which every backend's ops can say."""
    if not p.positive:
        return k_h
    return ops.relu(k_h) + ops.sigmoid(0.0 - ops.relu(0.0 - k_h))


def interpolation(ops, p, x_t):
    """``(z, h~)`` from the projection ``x_t`` ``(..., 2H)``: ``z = sigmoid(k_z)``, the share
    of the candidate ``h~`` in ``h' = h + z (h~ - h)``. Every op is element-wise, so ``x_t``
    may hold one step or all of them (the parallel scan)."""
    k_z, k_h = ops.split(x_t, 2)
    return ops.sigmoid(k_z), candidate(ops, p, k_h)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    z, h_tilde = interpolation(ops, p, x_t)
    return (h + z * (h_tilde - h),)


def _engine_kernel(engine, p):
    if not p.parallel:
        return None
    return engine.scan_kernel(engine.min_gru_scan, p.project, positive=p.positive)


def _runtime_kernel(kernels, p):
    bias = kernels.or_zeros(p.bias_ih, 2 * p.hidden_size)
    flags = kernels.min_flags(False, p.positive)
    return kernels.min_step, (kernels.T(p.weight_ih), bias, flags)


CELL = CellSpec(
    name="mingru",
    layer="MinGRU",
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
