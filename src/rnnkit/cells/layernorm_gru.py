r"""GRU cell with layer normalisation (Ba, Kiros & Hinton 2016), torch.nn's GRU otherwise.

.. math::
    g^x = \mathrm{LN}_{ih}(W_{ih} x_t), \quad g^h = \mathrm{LN}_{hh}(W_{hh} h_{t-1})
    \quad \text{(each split into } r, z, n \text{ parts)}

    r = \sigma(g^x_r + g^h_r), \quad z = \sigma(g^x_z + g^h_z), \quad
    n = \tanh(g^x_n + r \odot g^h_n), \quad h_t = (1 - z) \odot n + z \odot h_{t-1}

Where LN is applied, exactly: (1) to the input pre-activations ``W_ih x_t``, all ``3H``
together, in ``project``; (2) to the recurrent pre-activations ``W_hh h_{t-1}``, all ``3H``
together, separately. As in torch.nn.GRU (where ``b_hn`` sits inside the reset product),
``r`` multiplies the whole normalised recurrent ``n`` part, its LN shift included; the LN
shifts take the place of torch.nn's ``b_ih`` and ``b_hh``. The state is not normalised (it
is a convex mix of ``tanh`` values already).

Reference: J. L. Ba, J. R. Kiros and G. E. Hinton, "Layer Normalization",
arXiv:1607.06450, 2016; K. Cho et al., "Learning phrase representations using RNN
encoder-decoder for statistical machine translation", EMNLP 2014.

Args:
    input_size: ``H_in``; hidden_size: ``H``.
    bias: learn the LN shifts (without, every LN has a gain only).
    eps: added to the variance in every LN (default ``1e-5``).
    device, dtype: of the parameters.

Parameters: ``weight_ih`` ``(3H, H_in)``, ``weight_hh`` ``(3H, H)`` (gate order
``(r, z, n)``, no bias), ``ln_weight_ih``, ``ln_bias_ih``, ``ln_weight_hh``,
``ln_bias_hh`` ``(3H,)``. Initialisation as :class:`LayerNormLSTMCell`.

Shapes (one step): input ``(N, H_in)``; state ``(h,)`` with ``h`` ``(N, H)`` (calling the
cell takes and returns ``h`` itself, as ``nn.GRUCell``); recurrent dropout masks the
``h_{t-1}`` that enters ``W_hh`` (before LN), not the one carried through ``z``.
"""

from __future__ import annotations

from rnnkit.cells._spec import CellSpec, Option
from rnnkit.cells.gru import update
from rnnkit.cells.layernorm_lstm import norm_parameters, norm_project


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    return norm_parameters(input_size, hidden_size, bias, 3)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    gh = ops.linear(h if mask is None else h * mask, p.weight_hh)  # (N, 3H)
    gh = ops.layer_norm(gh, p.ln_weight_hh, p.ln_bias_hh, p.eps)
    return (update(ops, x_t, gh, h),)


def _engine_kernel(engine, p):
    # the kernel takes the cell's projection (LN_ih included) and the bare weights
    norms = {"ln_hh": (p.ln_weight_hh, p.ln_bias_hh), "ln_ih": (p.ln_weight_ih, p.ln_bias_ih)}
    return engine.gru_kernel(
        p.project, p.weight_ih, None, p.weight_hh, None, {"eps": p.eps}, **norms
    )


def _runtime_kernel(kernels, p):
    gates, shift = 3 * p.hidden_size, kernels.or_zeros
    norms = (p.ln_weight_ih, shift(p.ln_bias_ih, gates), p.ln_weight_hh)
    norms += (shift(p.ln_bias_hh, gates),)
    weights = kernels.T(p.weight_ih), kernels.T(p.weight_hh), kernels.zeros(gates)
    return kernels.layer_norm_gru_step, (*weights, *norms, p.eps)


CELL = CellSpec(
    name="layernorm_gru",
    layer="LayerNormGRU",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=norm_project,
    step=_step,
    options={"eps": Option(1e-5, positive=True)},
    positional=("bias", "eps"),
    layer_norm=lambda options: True,
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
)
