r"""Elman RNN (Elman 1990), torch.nn.RNN's formulation.

.. math::
    h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
    \quad \mathrm{act} = \tanh \text{ or } \mathrm{ReLU}

Reference: J. L. Elman, "Finding structure in time", Cognitive Science 14(2), 1990.

Args:
    input_size: ``H_in``; hidden_size: ``H``; bias: use ``b_ih`` and ``b_hh``.
    nonlinearity: ``act``, ``"tanh"`` or ``"relu"``.

Parameters: torch.nn.RNNCell's ``weight_ih`` ``(H, H_in)``, ``weight_hh`` ``(H, H)``,
``bias_ih`` and ``bias_hh`` ``(H,)`` (None without ``bias``). Initialisation: every
parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn's rule.

The torch classes are the hand-written drop-ins :class:`rnnkit.nn.RNN` and
:class:`rnnkit.nn.RNNCell` (torch.nn's flat parameters and signatures); their reference
path runs this step.

Shapes (one step): input ``(N, H_in)``; state ``(h,)`` with ``h`` ``(N, H)``; recurrent
dropout masks the ``h_{t-1}`` that enters ``W_hh``.
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound = 1 / math.sqrt(hidden_size)
    return {
        "weight_ih": Param((hidden_size, input_size), bound=bound),
        "weight_hh": Param((hidden_size, hidden_size), bound=bound),
        "bias_ih": Param((hidden_size,), bound=bound) if bias else None,
        "bias_hh": Param((hidden_size,), bound=bound) if bias else None,
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, H)


def _step(ops, p, x_t, state, mask):
    (h,) = state
    recurrent = ops.linear(h if mask is None else h * mask, p.weight_hh, p.bias_hh)  # (N, H)
    return (ops.act(x_t + recurrent, p.nonlinearity),)


def _runtime_kernel(kernels, p):
    # the kernel takes the two biases summed, zeros without them
    summed = kernels.zeros(p.hidden_size) if p.bias_ih is None else p.bias_ih + p.bias_hh
    weights = kernels.T(p.weight_ih), kernels.T(p.weight_hh)
    return kernels.rnn_step, (*weights, summed, kernels.activation(p.nonlinearity))


CELL = CellSpec(
    name="rnn",
    layer="RNN",
    doc=__doc__,
    state=("h",),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={"nonlinearity": Option("tanh", choices=("tanh", "relu"))},
    positional=("bias", "nonlinearity"),
    runtime_kernel=_runtime_kernel,
    torch_native=True,
)
