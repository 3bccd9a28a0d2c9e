r"""Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
2000), torch.nn.LSTM's formulation, with its optional projection (Sak et al. 2014).

.. math::
    a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \quad
    (i, f, g, o) = (\sigma, \sigma, \tanh, \sigma)(\mathrm{split}_4(a_t))

    c_t = f \odot c_{t-1} + i \odot g, \quad h_t = o \odot \tanh(c_t)

With ``proj_size = P > 0``, ``h_t = W_{hr} (o \odot \tanh(c_t))``; otherwise ``P = H``.

Reference: S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation
9(8), 1997; F. A. Gers, J. Schmidhuber and F. Cummins, "Learning to forget: continual
prediction with LSTM", Neural Computation 12(10), 2000; H. Sak, A. Senior and F. Beaufays,
"Long short-term memory recurrent neural network architectures for large scale acoustic
modeling", Interspeech 2014.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: use ``b_ih`` and ``b_hh``.
    proj_size: ``P``, the width of the projected ``h``; 0 for no projection.

Parameters: torch.nn.LSTM's ``weight_ih`` ``(4H, H_in)``, ``weight_hh`` ``(4H, P)``,
``bias_ih`` and ``bias_hh`` ``(4H,)`` (gate order ``(i, f, g, o)``; None without
``bias``), and ``weight_hr`` ``(P, H)`` with a projection (None without).
Initialisation: every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn's rule.

The torch classes are the hand-written drop-ins :class:`rnnkit.nn.LSTM` and
:class:`rnnkit.nn.LSTMCell` (torch.nn's flat parameters and signatures); their reference
path runs this step.

Shapes (one step): input ``(N, H_in)``; state ``(h, c)``, ``h`` ``(N, P)`` and ``c``
``(N, H)``; recurrent dropout masks the ``h_{t-1}`` that enters ``W_hh``.
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound, gates = 1 / math.sqrt(hidden_size), 4 * hidden_size
    projected = options["proj_size"] or hidden_size
    return {
        "weight_ih": Param((gates, input_size), bound=bound),
        "weight_hh": Param((gates, projected), bound=bound),
        "bias_ih": Param((gates,), bound=bound) if bias else None,
        "bias_hh": Param((gates,), bound=bound) if bias else None,
        "weight_hr": Param((projected, hidden_size), bound=bound) if options["proj_size"] else None,
    }


def _widths(hidden_size: int, options: dict) -> tuple[int, int]:
    return options["proj_size"] or hidden_size, hidden_size


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, 4H)


def gates(ops, p, x_t, h):
    """The gate activations ``(i, f, g, o)``, each ``(N, H)``: sigmoid, sigmoid, tanh,
    sigmoid of ``split_4(x_t + h W_hh^T + b_hh)``, from the projected input ``x_t``
    ``(N, 4H)`` and the (masked) ``h`` ``(N, P)``."""
    i, f, g, o = ops.split(x_t + ops.linear(h, p.weight_hh, p.bias_hh), 4)
    return ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)


def _step(ops, p, x_t, state, mask):
    h, c = state
    i, f, g, o = gates(ops, p, x_t, h if mask is None else h * mask)
    c = f * c + i * g
    h = o * ops.tanh(c)
    return (h if p.weight_hr is None else ops.linear(h, p.weight_hr)), c


def _engine_kernel(engine, p):
    if p.weight_hr is not None:  # the engine's kernel has no projection
        return None
    return engine.lstm_kernel(p.weight_ih, p.bias_ih, p.weight_hh, p.bias_hh)


def _runtime_kernel(kernels, p):
    # the kernel takes the two biases summed (zeros without them) and an empty projection
    # without one
    summed = kernels.zeros(4 * p.hidden_size) if p.bias_ih is None else p.bias_ih + p.bias_hh
    projection = kernels.zeros((0, 0)) if p.weight_hr is None else kernels.T(p.weight_hr)
    weights = kernels.T(p.weight_ih), kernels.T(p.weight_hh)
    return kernels.lstm_step, (*weights, summed, projection)


CELL = CellSpec(
    name="lstm",
    layer="LSTM",
    doc=__doc__,
    state=("h", "c"),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={"proj_size": Option(0, integer=True, minimum=0)},
    widths=_widths,
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
    torch_native=True,
)
