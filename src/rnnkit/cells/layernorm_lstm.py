r"""LSTM cell with layer normalisation (Ba, Kiros & Hinton 2016).

.. math::
    (a_i, a_f, a_g, a_o) = \mathrm{LN}_{ih}(W_{ih} x_t) + \mathrm{LN}_{hh}(W_{hh} h_{t-1})

    c_t = \sigma(a_f) \odot c_{t-1} + \sigma(a_i) \odot \tanh(a_g), \quad
    h_t = \sigma(a_o) \odot \tanh(\mathrm{LN}_c(c_t))

with ``LN(a) = gain * (a - mean(a)) / sqrt(var(a) + eps) + shift``. Where LN is applied,
exactly: (1) to the input pre-activations ``W_ih x_t``, all ``4H`` of one step and one
sequence together, in ``project`` (for all steps at once); (2) to the recurrent
pre-activations ``W_hh h_{t-1}``, all ``4H`` together, separately from (1), as in the
paper's ``LN(W_h h; alpha_1, beta_1) + LN(W_x x; alpha_2, beta_2) + b``; (3) to the new
cell state ``c_t`` (``H`` values) before the output ``tanh``. The state keeps the
un-normalised ``c_t``. The paper's separate bias ``b`` is left out: it would only add to the
two LN shifts, which are the gate biases here. The output is therefore unchanged when
``W_ih`` or ``W_hh`` is multiplied by a positive constant, or an input ``x_t`` is.

Reference: J. L. Ba, J. R. Kiros and G. E. Hinton, "Layer Normalization",
arXiv:1607.06450, 2016.

Args:
    input_size: ``H_in``; hidden_size: ``H``.
    bias: learn the LN shifts (without, every LN has a gain only).
    eps: added to the variance in every LN (torch.nn.LayerNorm's default ``1e-5``).
    device, dtype: of the parameters.

Parameters: ``weight_ih`` ``(4H, H_in)`` and ``weight_hh`` ``(4H, H)`` (gate order
``(i, f, g, o)``, no bias), and the LN gains and shifts ``ln_weight_ih``,
``ln_bias_ih``, ``ln_weight_hh``, ``ln_bias_hh`` ``(4H,)``, ``ln_weight_c``,
``ln_bias_c`` ``(H,)`` (shifts None without ``bias``). Initialisation: ``weight_*`` ~
``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn.LSTM's rule (their scale cancels in LN but for
``eps``, so any scale well above ``sqrt(eps)`` works); LN gains 1 and shifts 0, so each
LN starts as a plain standardisation, as in the paper.

Shapes (one step): input ``(N, H_in)``; state ``(h, c)``, each ``(N, H)``; recurrent
dropout masks the ``h_{t-1}`` that enters ``W_hh`` (before LN).
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def norm_parameters(input_size: int, hidden_size: int, bias: bool, gates: int) -> dict:
    """The weights and input/recurrent LN gains and shifts of a layer-normalised cell with
    ``gates`` blocks of ``H`` (also the layer-normalised GRU's)."""
    bound, width = 1 / math.sqrt(hidden_size), gates * hidden_size
    return {
        "weight_ih": Param((width, input_size), bound=bound),
        "weight_hh": Param((width, hidden_size), bound=bound),
        "ln_weight_ih": Param((width,), fill=1.0),
        "ln_bias_ih": Param((width,)) if bias else None,
        "ln_weight_hh": Param((width,), fill=1.0),
        "ln_bias_hh": Param((width,)) if bias else None,
    }


def norm_project(ops, p, x):
    """``LN_ih(x W_ih^T)``: ``(L, N, H_in) -> (L, N, G*H)`` (also the layer-normalised GRU's)."""
    return ops.layer_norm(ops.linear(x, p.weight_ih), p.ln_weight_ih, p.ln_bias_ih, p.eps)


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    return norm_parameters(input_size, hidden_size, bias, 4) | {
        "ln_weight_c": Param((hidden_size,), fill=1.0),
        "ln_bias_c": Param((hidden_size,)) if bias else None,
    }


def _step(ops, p, x_t, state, mask):
    h, c = state
    gh = ops.linear(h if mask is None else h * mask, p.weight_hh)  # (N, 4H)
    gh = ops.layer_norm(gh, p.ln_weight_hh, p.ln_bias_hh, p.eps)
    a_i, a_f, a_g, a_o = ops.split(x_t + gh, 4)
    c = ops.sigmoid(a_f) * c + ops.sigmoid(a_i) * ops.tanh(a_g)
    c_norm = ops.layer_norm(c, p.ln_weight_c, p.ln_bias_c, p.eps)
    return ops.sigmoid(a_o) * ops.tanh(c_norm), c


def _engine_kernel(engine, p):
    # the kernel normalises the projection itself (LN_ih), so it takes the bare weights
    norms = {
        "ln_hh": (p.ln_weight_hh, p.ln_bias_hh),
        "ln_c": (p.ln_weight_c, p.ln_bias_c),
        "ln_ih": (p.ln_weight_ih, p.ln_bias_ih),
    }
    return engine.lstm_kernel(p.weight_ih, None, p.weight_hh, None, {"eps": p.eps}, **norms)


def _runtime_kernel(kernels, p):
    gates, shift = 4 * p.hidden_size, kernels.or_zeros
    norms = (p.ln_weight_ih, shift(p.ln_bias_ih, gates), p.ln_weight_hh)
    norms += (shift(p.ln_bias_hh, gates), p.ln_weight_c, shift(p.ln_bias_c, p.hidden_size))
    weights = kernels.T(p.weight_ih), kernels.T(p.weight_hh), kernels.zeros(gates)
    return kernels.layer_norm_lstm_step, (*weights, *norms, p.eps)


CELL = CellSpec(
    name="layernorm_lstm",
    layer="LayerNormLSTM",
    doc=__doc__,
    state=("h", "c"),
    parameters=_parameters,
    project=norm_project,
    step=_step,
    options={"eps": Option(1e-5, positive=True)},
    positional=("bias", "eps"),
    layer_norm=lambda options: True,
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
)
