r"""JANET, "just another network" (van der Westhuizen & Lasenby 2018): an LSTM with only its
forget gate.

.. math::
    s_t = W_f x_t + U_f h_{t-1} + b_f, \quad
    \tilde c_t = \tanh(W_c x_t + U_c h_{t-1} + b_c)

    h_t = c_t = \sigma(s_t) \odot c_{t-1} + (1 - \sigma(s_t - \beta)) \odot \tilde c_t

The input gate is tied to the forget gate (``1 - forget``), shifted by ``beta`` so that a unit
can keep its memory and still take in some input; there is no output gate, so the state is
the output. The paper initialises ``b_f`` with the chrono initialisation; here it starts at
1, the common forget-gate bias (Jozefowicz et al. 2015).

Reference: J. van der Westhuizen and J. Lasenby, "The unreasonable effectiveness of the
forget gate", arXiv:1804.04849, 2018.

Options: ``beta``, the shift of the input gate (the paper's 1).

Parameters: ``weight_ih`` ``(2H, H_in)`` and ``weight_hh`` ``(2H, H)``, gate order
``(f, c)``; ``bias_f``, ``bias_c`` ``(H,)`` (None without ``bias``). Initialisation: weights
~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn.LSTM's rule; ``bias_f`` 1, ``bias_c`` 0.

State ``(h,)`` with ``h`` ``(N, H)``; recurrent dropout masks the ``h_{t-1}`` that enters
``U``.
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound = 1 / math.sqrt(hidden_size)
    return {
        "weight_ih": Param((2 * hidden_size, input_size), bound=bound),
        "weight_hh": Param((2 * hidden_size, hidden_size), bound=bound),
        "bias_f": Param((hidden_size,), fill=1.0) if bias else None,
        "bias_c": Param((hidden_size,)) if bias else None,
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih)  # (L, N, 2H)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    s, a_c = ops.split(x_t + ops.linear(h if mask is None else h * mask, p.weight_hh), 2)
    if p.bias_f is not None:
        s, a_c = s + p.bias_f, a_c + p.bias_c
    candidate = ops.tanh(a_c)
    return (ops.sigmoid(s) * h + (1 - ops.sigmoid(s - p.beta)) * candidate,)


CELL = CellSpec(
    name="janet",
    layer="JANET",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={"beta": Option(1.0, positive=True)},
)
