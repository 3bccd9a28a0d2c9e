r"""LSTM cell with diagonal peephole connections (Gers & Schmidhuber 2000).

.. math::
    a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \quad
    (a_i, a_f, a_g, a_o) = \mathrm{split}_4(a_t)

    i_t = \sigma(a_i + w_{ci} \odot c_{t-1}), \quad f_t = \sigma(a_f + w_{cf} \odot c_{t-1})

    c_t = f_t \odot c_{t-1} + i_t \odot \tanh(a_g), \quad
    o_t = \sigma(a_o + w_{co} \odot c_t), \quad h_t = o_t \odot \tanh(c_t)

The input and forget gates peek at the previous cell state, the output gate at the new
one. With zero peephole weights this is :class:`rnnkit.nn.LSTM`.

Reference: F. A. Gers and J. Schmidhuber, "Recurrent nets that time and count", IJCNN
2000; F. A. Gers, N. N. Schraudolph and J. Schmidhuber, "Learning precise timing with
LSTM recurrent networks", JMLR 3, 2002.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: use ``b_ih`` and ``b_hh``;
    device, dtype: of the parameters.

Parameters: torch.nn.LSTMCell's ``weight_ih`` ``(4H, H_in)``, ``weight_hh`` ``(4H, H)``,
``bias_ih`` and ``bias_hh`` ``(4H,)`` (gate order ``(i, f, g, o)``; None without
``bias``), plus the peepholes ``weight_ci``, ``weight_cf``, ``weight_co`` ``(H,)``.
Initialisation: every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn.LSTM's rule,
peepholes included: they are per-unit gains as small as the biases, so training starts
near a plain LSTM without the peepholes being exactly zero.

Shapes (one step): input ``(N, H_in)``; state ``(h, c)``, each ``(N, H)``; recurrent
dropout masks the ``h_{t-1}`` that enters ``W_hh`` (the peepholes read the unmasked ``c``).
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound, gates = 1 / math.sqrt(hidden_size), 4 * hidden_size
    return {
        "weight_ih": Param((gates, input_size), bound=bound),
        "weight_hh": Param((gates, hidden_size), bound=bound),
        "bias_ih": Param((gates,), bound=bound) if bias else None,
        "bias_hh": Param((gates,), bound=bound) if bias else None,
        "weight_ci": Param((hidden_size,), bound=bound),
        "weight_cf": Param((hidden_size,), bound=bound),
        "weight_co": Param((hidden_size,), bound=bound),
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, 4H)


def _step(ops, p, x_t, state, mask):
    h, c = state
    a = x_t + ops.linear(h if mask is None else h * mask, p.weight_hh, p.bias_hh)  # (N, 4H)
    a_i, a_f, a_g, a_o = ops.split(a, 4)
    i = ops.sigmoid(a_i + p.weight_ci * c)
    f = ops.sigmoid(a_f + p.weight_cf * c)
    c = f * c + i * ops.tanh(a_g)
    o = ops.sigmoid(a_o + p.weight_co * c)
    return o * ops.tanh(c), c


def _engine_kernel(engine, p):
    peepholes = (p.weight_ci, p.weight_cf, p.weight_co)
    return engine.lstm_kernel(p.weight_ih, p.bias_ih, p.weight_hh, p.bias_hh, peepholes=peepholes)


def _runtime_kernel(kernels, p):
    # the kernel takes the two biases summed, zeros without them
    summed = kernels.zeros(4 * p.hidden_size) if p.bias_ih is None else p.bias_ih + p.bias_hh
    peepholes = (p.weight_ci, p.weight_cf, p.weight_co)
    weights = kernels.T(p.weight_ih), kernels.T(p.weight_hh)
    return kernels.peephole_lstm_step, (*weights, summed, kernels.stack(peepholes))


CELL = CellSpec(
    name="peephole_lstm",
    layer="PeepholeLSTM",
    doc=__doc__,
    state=("h", "c"),
    parameters=_parameters,
    project=_project,
    step=_step,
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
)
