r"""Gated recurrent unit (Cho et al. 2014), torch.nn.GRU's formulation: ``b_hn`` inside the
reset product.

.. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
    z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})

    n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad
    h' = (1 - z) \odot n + z \odot h

computed as ``h' = n + z (h - n)``.

Reference: K. Cho, B. van Merrienboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk
and Y. Bengio, "Learning phrase representations using RNN encoder-decoder for statistical
machine translation", EMNLP 2014.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: use ``b_ih`` and ``b_hh``.

Parameters: torch.nn.GRUCell's ``weight_ih`` ``(3H, H_in)``, ``weight_hh`` ``(3H, H)``,
``bias_ih`` and ``bias_hh`` ``(3H,)`` (gate order ``(r, z, n)``; None without ``bias``).
Initialisation: every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn's rule.

The torch classes are the hand-written drop-ins :class:`rnnkit.nn.GRU` and
:class:`rnnkit.nn.GRUCell` (torch.nn's flat parameters and signatures); their reference
path runs this step.

Shapes (one step): input ``(N, H_in)``; state ``(h,)`` with ``h`` ``(N, H)``; recurrent
dropout masks the ``h_{t-1}`` that enters ``W_hh``, not the ``h`` carried through ``z``.
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound, gates = 1 / math.sqrt(hidden_size), 3 * hidden_size
    return {
        "weight_ih": Param((gates, input_size), bound=bound),
        "weight_hh": Param((gates, hidden_size), bound=bound),
        "bias_ih": Param((gates,), bound=bound) if bias else None,
        "bias_hh": Param((gates,), bound=bound) if bias else None,
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, 3H)


def update(ops, x_t, gh, h):
    """The new ``h`` ``(N, H)`` from the projected input ``x_t`` and the recurrent side ``gh``
    (each ``(N, 3H)``, blocks ``(r, z, n)``) and the old ``h``: torch.nn's GRU, ``b_hn`` inside
    the reset product (it is part of ``gh``)."""
    gi_r, gi_z, gi_n = ops.split(x_t, 3)
    gh_r, gh_z, gh_n = ops.split(gh, 3)
    r = ops.sigmoid(gi_r + gh_r)
    z = ops.sigmoid(gi_z + gh_z)
    n = ops.tanh(gi_n + r * gh_n)
    return n + z * (h - n)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    gh = ops.linear(h if mask is None else h * mask, p.weight_hh, p.bias_hh)  # (N, 3H)
    return (update(ops, x_t, gh, h),)


def _engine_kernel(engine, p):
    return engine.gru_kernel(p.project, p.weight_ih, p.bias_ih, p.weight_hh, p.bias_hh)


def _runtime_kernel(kernels, p):
    biases = (kernels.or_zeros(b, 3 * p.hidden_size) for b in (p.bias_ih, p.bias_hh))
    return kernels.gru_step, (kernels.T(p.weight_ih), kernels.T(p.weight_hh), *biases)


CELL = CellSpec(
    name="gru",
    layer="GRU",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=_project,
    step=_step,
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
    torch_native=True,
)
