r"""Jordan network cell (Jordan 1986): the hidden layer is fed the previous *output*.

.. math::
    h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + W_{yh} y_{t-1}), \qquad
    y_t = \mathrm{out\_act}(W_{hy} h_t + b_{hy})

The state is ``(y,)`` (``S_0 = O``), so a layer built on this cell outputs ``y`` and
layer ``k > 0`` reads ``D * O`` features. This is the textbook form; in Jordan's network
the fed-back "state units" also decay, ``s_t = mu s_{t-1} + y_{t-1}``; here ``mu = 0``.

Reference: M. I. Jordan, "Serial order: a parallel distributed processing approach",
ICS Report 8604, Institute for Cognitive Science, UC San Diego, 1986.

Args:
    input_size: ``H_in``.
    hidden_size: ``H``, the hidden layer (not fed back).
    output_size: ``O``, the output fed back; defaults to ``hidden_size``.
    bias: use ``b_ih`` and ``b_hy``.
    nonlinearity: ``act``, ``"tanh"`` or ``"relu"``.
    output_nonlinearity: ``out_act``: ``"identity"``, ``"tanh"``, ``"sigmoid"``,
        ``"relu"`` or ``"softmax"`` (over the ``O`` outputs).
    device, dtype: of the parameters.

Parameters: ``weight_ih`` ``(H, H_in)``, ``bias_ih`` ``(H,)``, ``weight_yh`` ``(H, O)``,
``weight_hy`` ``(O, H)``, ``bias_hy`` ``(O,)``; the biases are None without ``bias``.
Initialisation: every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, torch.nn.RNN's rule (and
nn.Linear's for ``weight_hy``, which reads ``H`` features), so with ``O = H`` the cell
starts at the scale of an Elman RNN of the same size.

Shapes (one step): input ``(N, H_in)``; state ``(y,)`` with ``y`` ``(N, O)`` (calling the
cell takes and returns ``y`` itself, as ``nn.GRUCell`` its ``h``); recurrent dropout masks the
``y_{t-1}`` that enters ``W_yh``.

Example:
    >>> cell = JordanCell(3, 8, output_size=2, output_nonlinearity="sigmoid")
    >>> y = cell(torch.randn(4, 3))
    >>> y.shape
    torch.Size([4, 2])
"""

from __future__ import annotations

import math

from rnnkit.cells._spec import CellSpec, Option, Param

#: ``out_act`` by name; ``softmax`` is over the ``O`` outputs.
OUTPUT_NONLINEARITIES = ("identity", "tanh", "sigmoid", "relu", "softmax")


def _parameters(input_size: int, hidden_size: int, bias: bool, options: dict) -> dict:
    bound, out = 1 / math.sqrt(hidden_size), options["output_size"]
    return {
        "weight_ih": Param((hidden_size, input_size), bound=bound),
        "bias_ih": Param((hidden_size,), bound=bound) if bias else None,
        "weight_yh": Param((hidden_size, out), bound=bound),
        "weight_hy": Param((out, hidden_size), bound=bound),
        "bias_hy": Param((out,), bound=bound) if bias else None,
    }


def _project(ops, p, x):
    return ops.linear(x, p.weight_ih, p.bias_ih)  # (L, N, H)


def _step(ops, p, x_t, state, mask):
    (y,) = state
    fed_back = ops.linear(y if mask is None else y * mask, p.weight_yh)  # (N, H)
    out = ops.linear(ops.act(x_t + fed_back, p.nonlinearity), p.weight_hy, p.bias_hy)
    if p.output_nonlinearity == "identity":
        return (out,)
    if p.output_nonlinearity == "softmax":
        return (ops.softmax(out),)
    return (ops.act(out, p.output_nonlinearity),)


def _engine_kernel(engine, p):
    options = {"nonlinearity": p.nonlinearity, "output_nonlinearity": p.output_nonlinearity}
    kernel = engine.one_state_kernel(engine.fused_jordan, p.weight_yh, p.weight_hy, p.bias_hy)
    return engine.Fused(kernel, options, p.project)


def _runtime_kernel(kernels, p):
    biases = kernels.or_zeros(p.bias_ih, p.hidden_size), kernels.or_zeros(p.bias_hy, p.output_size)
    weights = kernels.T(p.weight_ih), biases[0], kernels.T(p.weight_yh), kernels.T(p.weight_hy)
    kinds = kernels.activation(p.nonlinearity), kernels.activation(p.output_nonlinearity)
    return kernels.jordan_step, (*weights, biases[1], *kinds)


CELL = CellSpec(
    name="jordan",
    layer="JordanRNN",
    doc=__doc__,
    state=("y",),
    parameters=_parameters,
    project=_project,
    step=_step,
    options={
        "output_size": Option(None, integer=True, none_is_hidden_size=True),
        "nonlinearity": Option("tanh", choices=("tanh", "relu")),
        "output_nonlinearity": Option("identity", choices=OUTPUT_NONLINEARITIES),
    },
    positional=("output_size", "bias", "nonlinearity", "output_nonlinearity"),
    widths=lambda hidden_size, options: (options["output_size"],),
    engine_kernel=_engine_kernel,
    runtime_kernel=_runtime_kernel,
    cell_class="JordanCell",
)
