r"""SRU, the simple recurrent unit (Lei et al. 2018): a recurrence of element-wise products.

.. math::
    \tilde x_t = W x_t, \quad
    f_t = \sigma(W_f x_t + v_f \odot c_{t-1} + b_f), \quad
    r_t = \sigma(W_r x_t + v_r \odot c_{t-1} + b_r)

    c_t = f_t \odot c_{t-1} + (1 - f_t) \odot \tilde x_t, \quad
    h_t = r_t \odot c_t + (1 - r_t) \odot x'_t

Every matrix product reads the input only, so all steps' products are one ``project``; the
step itself has no matrix product. The highway term ``x'_t`` is the input ``x_t`` when
``H_in = H``, else a fourth projection ``W_s x_t`` (as the authors' code does). The paper's
variance correction of the highway term (its ``alpha``) is not applied.

Reference: T. Lei, Y. Zhang, S. I. Wang, H. Dai and Y. Artzi, "Simple Recurrent Units for
Highly Parallelizable Recurrence", EMNLP 2018.

Parameters: ``weight_ih`` ``(3H, H_in)`` (``(4H, H_in)`` when ``H_in != H``), blocks
``(W, W_f, W_r[, W_s])``; ``weight_cf``, ``weight_cr`` ``(H,)`` (``v_f``, ``v_r``);
``bias_f``, ``bias_r`` ``(H,)`` (None without ``bias``). Initialisation: ``weight_ih`` ~
``U(-sqrt(3 / H_in), sqrt(3 / H_in))`` (the paper's variance ``1 / H_in``), ``v`` ~
``U(-1/sqrt(H), 1/sqrt(H))``, biases 0.

State ``(h, c)``, each ``(N, H)``; recurrent dropout masks the ``c_{t-1}`` that enters the
gates.
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    blocks = 3 if input_size == hidden_size else 4
    vector = Param((hidden_size,), bound=1 / math.sqrt(hidden_size))
    zero = Param((hidden_size,)) if bias else None
    return {
        "weight_ih": Param((blocks * hidden_size, input_size), bound=math.sqrt(3 / input_size)),
        "weight_cf": vector,
        "weight_cr": vector,
        "bias_f": zero,
        "bias_r": zero,
    }


def _project(ops, p, x):
    projected = ops.linear(x, p.weight_ih)  # (L, N, 3H), or (L, N, 4H) with W_s
    if p.input_size == p.hidden_size:
        projected = ops.concat(projected, x)  # the input itself is the highway block
    return projected


def _step(ops, p, x_t, state, mask):
    _, c = state
    x_tilde, a_f, a_r, highway = ops.split(x_t, 4)  # each (N, H)
    c_in = c if mask is None else c * mask
    f = ops.sigmoid(_plus(a_f + p.weight_cf * c_in, p.bias_f))
    r = ops.sigmoid(_plus(a_r + p.weight_cr * c_in, p.bias_r))
    c = f * c + (1 - f) * x_tilde
    h = r * c + (1 - r) * highway
    return h, c


def _plus(v, bias):
    return v if bias is None else v + bias


CELL = CellSpec(
    name="sru",
    layer="SRU",
    doc=__doc__,
    state=("h", "c"),
    parameters=_parameters,
    project=_project,
    step=_step,
)
