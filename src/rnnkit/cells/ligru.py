r"""Li-GRU, the light GRU (Ravanelli et al. 2018): no reset gate, a ReLU candidate.

.. math::
    (a_z, a_n) = \mathrm{LN}(W_{ih} x_t) + W_{hh} h_{t-1}

    z_t = \sigma(a_z), \quad \tilde h_t = \mathrm{ReLU}(a_n), \quad
    h_t = z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

The paper normalises the input projection with batch normalisation; here it is layer
normalisation over all ``2H`` values of a step (as SpeechBrain's ``layernorm`` option), which
needs no batch statistics and so streams one step at a time. ``normalization="none"`` drops
it for a plain bias ``b_ih``. The recurrent product has no bias, as in the paper.

Reference: M. Ravanelli, P. Brakel, M. Omologo and Y. Bengio, "Light Gated Recurrent Units
for Speech Recognition", IEEE Transactions on Emerging Topics in Computational Intelligence
2(2), 2018.

Options: ``nonlinearity`` of the candidate, ``"relu"`` (the paper's) or ``"tanh"``;
``normalization``, ``"layernorm"`` or ``"none"``; ``eps``, the layer norm's epsilon.

Parameters: ``weight_ih`` ``(2H, H_in)`` and ``weight_hh`` ``(2H, H)``, gate order
``(z, n)``; with layer norm ``ln_weight_ih`` and ``ln_bias_ih`` ``(2H,)``, else ``bias_ih``
``(2H,)`` (shifts and biases None without ``bias``). Initialisation: weights ~
``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn.GRU's rule; LN gain 1, shifts and biases 0.

State ``(h,)`` with ``h`` ``(N, H)``; recurrent dropout masks the ``h_{t-1}`` that enters
``W_hh`` (the paper drops the candidate instead).
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound = 1 / math.sqrt(hidden_size)
    gates = 2 * hidden_size
    layer_norm = options["normalization"] == "layernorm"
    shift = Param((gates,)) if bias else None
    return {
        "weight_ih": Param((gates, input_size), bound=bound),
        "weight_hh": Param((gates, hidden_size), bound=bound),
        "ln_weight_ih": Param((gates,), fill=1.0) if layer_norm else None,
        "ln_bias_ih": shift if layer_norm else None,
        "bias_ih": None if layer_norm else shift,
    }


def _project(ops, p, x):
    if p.normalization == "layernorm":
        return ops.layer_norm(ops.linear(x, p.weight_ih), p.ln_weight_ih, p.ln_bias_ih, p.eps)
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, 2H)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    a_z, a_n = ops.split(x_t + ops.linear(h if mask is None else h * mask, p.weight_hh), 2)
    z = ops.sigmoid(a_z)
    candidate = ops.act(a_n, p.nonlinearity)
    return (z * h + (1 - z) * candidate,)


CELL = CellSpec(
    name="ligru",
    layer="LiGRU",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={
        "nonlinearity": Option("relu", choices=("relu", "tanh")),
        "normalization": Option("layernorm", choices=("layernorm", "none")),
        "eps": Option(1e-5, positive=True),
    },
    layer_norm=lambda options: options["normalization"] == "layernorm",
)
