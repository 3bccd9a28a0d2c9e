r"""Independently recurrent cell (Li et al. 2018): one recurrent weight per unit.

.. math::
    h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + u \odot h_{t-1})

Units interact only through the next layer, so deep stacks (this is what the paper
builds) carry the mixing. ``recurrent_max_abs = m`` constrains ``|u| <= m``: every
step uses ``clamp(u, -m, m)``, as the paper's reference implementation clips the
recurrent weight where it is used. The stored ``weight_hh`` is left as it is (it is not
clamped in place), and entries beyond the bound get no gradient while they are there.
The paper's guide for ReLU: ``m = 2 ** (1 / T)`` for sequences of ``T`` steps keeps a
unit's growth over the sequence within a factor 2.

Reference: S. Li, W. Li, C. Cook, C. Zhu and Y. Gao, "Independently recurrent neural
network (IndRNN): building a longer and deeper RNN", CVPR 2018.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: use ``b_ih``.
    nonlinearity: ``act``, ``"relu"`` (the paper's) or ``"tanh"``.
    recurrent_max_abs: the bound ``m > 0`` on ``|u|``, or None for none.
    device, dtype: of the parameters.

Parameters: ``weight_ih`` ``(H, H_in)``, ``bias_ih`` ``(H,)`` (None without ``bias``)
and ``weight_hh`` ``(H,)`` (``u``). Initialisation: ``weight_ih`` ~
``U(-1/sqrt(H_in), 1/sqrt(H_in))`` (nn.Linear's fan-in rule: with no recurrent matrix,
the input weights set each layer's scale in a deep stack); ``bias_ih`` = 0 (the paper's
and reference code's: no ReLU unit starts switched off); ``u`` ~ ``U(0, min(1, m))``
(the paper's ``[0, 1]``: every unit starts with a non-growing, non-oscillating memory,
inside the bound).

Shapes (one step): input ``(N, H_in)``; state ``(h,)`` with ``h`` ``(N, H)`` (calling the
cell takes and returns ``h`` itself, as ``nn.GRUCell``); recurrent dropout masks the
``h_{t-1}`` that ``u`` multiplies.
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound = options["recurrent_max_abs"]
    high = 1.0 if bound is None else min(1.0, bound)
    return {
        "weight_ih": Param((hidden_size, input_size), bound=1 / math.sqrt(input_size)),
        "bias_ih": Param((hidden_size,)) if bias else None,
        "weight_hh": Param((hidden_size,), bound=high, low=0.0),
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, H)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    u, bound = p.weight_hh, p.recurrent_max_abs
    u = u if bound is None else ops.clamp(u, -bound, bound)
    return (ops.act(x_t + u * (h if mask is None else h * mask), p.nonlinearity),)


def _engine_kernel(engine, p):
    u, bound = p.weight_hh, p.recurrent_max_abs
    u = u if bound is None else u.clamp(-bound, bound)
    kernel = engine.one_state_kernel(engine.fused_indrnn, u)
    return engine.Fused(kernel, {"nonlinearity": p.nonlinearity}, p.project)


def _runtime_kernel(kernels, p):
    u, bound = p.weight_hh, p.recurrent_max_abs
    u = u if bound is None else kernels.clip(u, -bound, bound)
    bias = kernels.or_zeros(p.bias_ih, p.hidden_size)
    kind = kernels.activation(p.nonlinearity)
    return kernels.indrnn_step, (kernels.T(p.weight_ih), bias, u, kind)


CELL = CellSpec(
    name="indrnn",
    layer="IndRNN",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={
        "nonlinearity": Option("relu", choices=("relu", "tanh")),
        "recurrent_max_abs": Option(None, positive=True, optional=True),
    },
    positional=("bias", "nonlinearity", "recurrent_max_abs"),
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
)
