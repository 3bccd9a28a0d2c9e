"""Recurrent layers that ONNX has no operator for, exported as ``Scan`` loops.

:func:`rnnkit.export.onnx.export_onnx` uses this for every rnnkit layer that ONNX's own ``RNN``,
``LSTM`` and ``GRU`` operators cannot express: the cells of :mod:`rnnkit.cells`, and
RNN/LSTM/GRU with ``zoneout``, ``fused=False`` or ``proj_size``. Every body is written by
its cell's own step (RNN, LSTM and GRU are cells of :mod:`rnnkit.cells` too), on
:class:`_Ops`.

How, in two passes:

1. Trace. While torch's exporter traces the model, :func:`placeholders` replaces the time
   loop of each such layer (:meth:`RecurrentBase._run`, after the input layout, the initial
   state and ``lengths`` are prepared) by :class:`_Placeholder`, an autograd Function whose
   ``forward`` runs the real loop (so the trace sees true shapes and values) and whose
   ``symbolic`` writes one ``rnnkit::Recurrent`` node. A trace alone would unroll the
   Python loop to the example's length; the node keeps the length open.
2. Rewrite. :func:`rewrite` replaces each placeholder by standard ONNX: per layer and
   direction, the input projection for all steps (``MatMul``), then a ``Scan`` whose body
   is one step of the cell (``MatMul``, ``Sigmoid``, ``Tanh``, ``LayerNormalization``, ...)
   reading the weights as initializers of the main graph. The backward direction is the
   same ``Scan`` with ``scan_input_directions = scan_output_directions = [1]``. With
   ``lengths``, a ``(L, N, 1)`` mask enters the body: steps past a sequence's length keep
   its state and output zeros, as :func:`rnnkit.functional.scan` does.

The steps are the equations of :mod:`rnnkit.cells` in eval mode (export runs the model
in eval): no dropout, and zoneout as its expectation ``new + zoneout * (old - new)`` on every
state tensor. ``LayerNormalization`` needs opset 17.

Why not a pure ``onnx.helper`` graph for the whole model: task models wrap the layers in
embeddings, heads, pooling and masks that torch's exporter already writes; only the time
loop needs replacing.

Shape letters: ``L`` sequence length, ``N`` batch, ``G`` the width of a step's projected
input, ``S_k`` the width of state tensor ``k``, ``D`` directions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.cells import CellSpec
from rnnkit.nn import GRU, LSTM, RNN, RecurrentBase

DOMAIN = "rnnkit"  # the placeholders' private ONNX domain
LAYER_NORM_OPSET = 17  # the first opset with LayerNormalization

_ONNX_NATIVE = (RNN, LSTM, GRU)  # the layers ONNX's own RNN, LSTM and GRU can express


def needs_scan(module: nn.Module) -> bool:
    """Whether ``module`` is an rnnkit layer that ONNX's recurrent operators cannot express."""
    if not isinstance(module, RecurrentBase):
        return False
    native = isinstance(module, _ONNX_NATIVE) and module.fused and module.zoneout == 0
    return not (native and not module.proj_size)


def unknown_cell(layer: RecurrentBase) -> str | None:
    """The class name of a cell of ``layer`` whose step this module cannot write (one without
    a :class:`rnnkit.cells.CellSpec`), or None."""
    if isinstance(layer, _ONNX_NATIVE):
        return None
    for index in range(layer.num_layers):
        for direction in range(layer.num_directions):
            cell = layer.recurrence(index, direction)
            if getattr(type(cell), "spec", None) is None:
                return type(cell).__name__
    return None


def needs_layer_norm(layer: RecurrentBase) -> bool:
    """Whether the Scan of ``layer`` uses ``LayerNormalization`` (opset >= 17)."""
    if not needs_scan(layer):
        return False
    spec, p = _parts(layer, 0, 0)
    return spec.layer_norm(spec.options_of(p))


# ----------------------------------------------------------------------------- trace


class _Placeholder(torch.autograd.Function):
    """``(x, *state[, lengths]) -> (output, *final)`` of one layer's time loop: runs the loop,
    exports as an ``rnnkit::Recurrent`` node naming the layer by ``index``."""

    @staticmethod
    def forward(
        ctx: Any, layer: RecurrentBase, index: int, x: Tensor, *tensors: Tensor
    ) -> tuple[Tensor, ...]:
        count = len(layer.state_sizes)
        lengths = tensors[count] if len(tensors) > count else None
        # The loop runs untraced: its own autograd Functions (the fused kernels) fail inside
        # a trace, and this node's symbolic replaces whatever the trace would record.
        tracing = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            output, final = RecurrentBase._run(layer, x, tensors[:count], lengths)
        finally:
            torch._C._set_tracing_state(tracing)
        return (output, *final)

    @staticmethod
    def symbolic(g: Any, layer: RecurrentBase, index: int, x: Any, *tensors: Any) -> Any:
        count = len(layer.state_sizes)
        nodes = g.op(f"{DOMAIN}::Recurrent", x, *tensors, index_i=index, outputs=1 + count)
        width = layer.num_directions * layer.state_sizes[0]
        nodes[0].setType(x.type().with_sizes([None, None, width]))
        for node, state in zip(nodes[1:], tensors, strict=False):
            node.setType(state.type())
        return nodes


def _run_placeholder(
    layer: RecurrentBase, index: int, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """:meth:`RecurrentBase._run` through :class:`_Placeholder`: ``x`` ``(L, N, H_in)``."""
    extra = () if lengths is None else (lengths,)
    output, *final = _Placeholder.apply(layer, index, x, *state, *extra)
    return output, tuple(final)


@contextmanager
def placeholders(module: nn.Module) -> Iterator[dict[int, RecurrentBase]]:
    """While open, each layer of ``module`` that :func:`needs_scan` runs its time loop
    through the placeholder; yields those layers by their placeholders' ``index``."""
    layers = {i: m for i, m in enumerate(m for m in module.modules() if needs_scan(m))}
    for index, layer in layers.items():
        layer._run = partial(_run_placeholder, layer, index)  # type: ignore[method-assign]
    try:
        yield layers
    finally:
        for layer in layers.values():
            del layer._run


# ----------------------------------------------------------------------------- rewrite


def rewrite(model: Any, layers: dict[int, RecurrentBase]) -> None:
    """Replace, in the ``onnx.ModelProto`` ``model``, each placeholder by its Scan loops."""
    graph = model.graph
    nodes, replaced = [], set()
    for node in graph.node:
        if node.domain != DOMAIN:
            nodes.append(node)
            continue
        index = next(a.i for a in node.attribute if a.name == "index")
        builder = _Builder(f"rnnkit_scan{index}/", graph.initializer)
        _layer(builder, layers[index], list(node.input), list(node.output))
        nodes += builder.nodes
        replaced |= set(node.output)
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [v for v in graph.value_info if v.name not in replaced]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    imports = [o for o in model.opset_import if o.domain != DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(imports)


class _Builder:
    """Nodes of one graph (the main graph or a Scan body) with fresh, unique value names;
    constants become initializers of the main graph, which a body reads from outer scope."""

    def __init__(self, prefix: str, initializers: Any, dtype: np.dtype | None = None) -> None:
        self.prefix, self.initializers, self.dtype = prefix, initializers, dtype
        self.nodes: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes: Any) -> Any:
        """Add a node; returns its output name (a list of them when ``outputs > 1``)."""
        from onnx import helper

        names = [self.name(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names

    def const(self, value: Any, dtype: Any = None) -> str:
        """An initializer holding ``value`` (in the layer's float dtype unless ``dtype``)."""
        from onnx import numpy_helper

        array = np.asarray(value, dtype=dtype or self.dtype)
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, tensor: Tensor | None, transpose: bool = False) -> str | None:
        """A parameter as an initializer (``(K, G)`` for ``transpose``), None for None."""
        if tensor is None:
            return None
        array = tensor.detach().cpu().numpy()
        return self.const(array.T if transpose else array)

    def body(self) -> _Builder:
        return _Builder(self.name("body") + "/", self.initializers, self.dtype)

    # -- arithmetic on (N, *) or (L, N, *) values

    def linear(self, v: str, weight: Tensor, bias: Tensor | None = None) -> str:
        """``v @ weight.T + bias``."""
        out = self.op("MatMul", v, self.weight(weight, transpose=True))
        return out if bias is None else self.op("Add", out, self.weight(bias))

    def layer_norm(self, v: str, weight: Tensor, bias: Tensor | None, eps: float) -> str:
        """``LN(v)`` over the last dimension, as ``F.layer_norm``."""
        inputs = [v, self.weight(weight)] + ([self.weight(bias)] if bias is not None else [])
        return self.op("LayerNormalization", *inputs, axis=-1, epsilon=eps)

    def split(self, v: str, parts: int, width: int) -> list[str]:
        """``v.chunk(parts, dim=-1)`` of a ``(..., parts * width)`` value."""
        sizes = self.const([width] * parts, np.int64)
        return self.op("Split", v, sizes, axis=-1, outputs=parts)

    def act(self, v: str, name: str) -> str:
        """``tanh``, ``relu``, ``sigmoid``, ``softmax`` (last dimension) or ``identity``."""
        if name == "identity":
            return v
        ops = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "softmax": "Softmax"}
        return self.op(ops[name], v)

    def lerp(self, start: str, end: str, weight: str) -> str:
        """``start + weight * (end - start)``."""
        return self.op("Add", start, self.op("Mul", weight, self.op("Sub", end, start)))


def _parts(layer: RecurrentBase, index: int, direction: int) -> tuple[CellSpec, SimpleNamespace]:
    """The cell of one recurrence and its ``p``: its weights (tensors), options and sizes."""
    if isinstance(layer, _ONNX_NATIVE):  # flat weights
        return layer.spec, layer._namespace(index, direction)
    cell = layer.recurrence(index, direction)
    weights = dict(cell.named_parameters(recurse=False))
    p = cell.spec.namespace(weights, cell.input_size, cell.hidden_size, cell.bias, cell.options)
    return cell.spec, p


def _layer(b: _Builder, layer: RecurrentBase, inputs: list[str], outputs: list[str]) -> None:
    """The nodes of a placeholder: ``(x, *state[, lengths]) -> (output, *final)``."""
    from onnx import helper

    b.dtype = next(layer.parameters()).detach().cpu().numpy().dtype
    count = len(layer.state_sizes)
    x, states = inputs[0], inputs[1 : 1 + count]
    mask = None
    if len(inputs) > 1 + count:  # lengths: mask (L, N, 1), True where t < lengths[n]
        zero, one = b.const(0, np.int64), b.const(1, np.int64)
        steps = b.op("Range", zero, b.op("Gather", b.op("Shape", x), zero, axis=0), one)
        lengths = b.op("Cast", inputs[1 + count], to=helper.TensorProto.INT64)
        below = b.op(
            "Less",
            b.op("Unsqueeze", steps, b.const([1], np.int64)),
            b.op("Unsqueeze", lengths, b.const([0], np.int64)),
        )
        mask = b.op("Unsqueeze", below, b.const([2], np.int64))
    finals: list[list[str]] = [[] for _ in states]
    for index in range(layer.num_layers):
        outs = []
        for direction in range(layer.num_directions):
            row = b.const(index * layer.num_directions + direction, np.int64)
            initial = [b.op("Gather", s, row, axis=0) for s in states]  # (N, S_k)
            spec, p = _parts(layer, index, direction)
            *final, out = _scan(b, layer, spec, p, x, initial, mask, direction == 1)
            outs.append(out)
            for k, s in enumerate(final):
                finals[k].append(s)
        x = outs[0] if len(outs) == 1 else b.op("Concat", *outs, axis=-1)  # (L, N, D * S_0)
    b.nodes.append(helper.make_node("Identity", [x], [outputs[0]]))
    axis = b.const([0], np.int64)
    for k, rows in enumerate(finals):  # (D * num_layers, N, S_k)
        stacked = [b.op("Unsqueeze", s, axis) for s in rows]
        b.nodes.append(helper.make_node("Concat", stacked, [outputs[1 + k]], axis=0))


def _scan(
    b: _Builder,
    layer: RecurrentBase,
    spec: CellSpec,
    p: SimpleNamespace,
    x: str,
    initial: list[str],
    mask: str | None,
    reverse: bool,
) -> list[str]:
    """One recurrence of ``spec`` with the weights and options ``p`` over ``x``
    ``(L, N, H_in)`` from ``initial`` ``(N, S_k)`` each: returns the final states and the
    outputs ``(L, N, S_0)``."""
    from onnx import helper

    ops = _Ops(b)
    value = spec.project(ops, ops.parameters(p), _Value(b, x, p.input_size))  # (L, N, G)
    projected, width = value.name, value.width

    body = b.body()
    element = helper.np_dtype_to_tensor_dtype(b.dtype)
    sizes = layer.state_sizes
    old = [body.name("state") for _ in sizes]
    x_t = body.name("x_t")
    graph_inputs = [
        helper.make_tensor_value_info(n, element, [None, s])
        for n, s in zip(old, sizes, strict=True)
    ]
    graph_inputs.append(helper.make_tensor_value_info(x_t, element, [None, None]))
    ops = _Ops(body)
    values = [_Value(body, v, size) for v, size in zip(old, sizes, strict=True)]
    step = spec.step(ops, ops.parameters(p), _Value(body, x_t, width), values, None)
    new = [v.name for v in step]
    if layer.zoneout > 0:  # eval zoneout: the expectation lerp(new, old, zoneout)
        rate = body.const(layer.zoneout)
        new = [body.lerp(n, o, rate) for n, o in zip(new, old, strict=True)]
    output = new[0]
    if mask is not None:
        m_t = body.name("mask_t")
        graph_inputs.append(helper.make_tensor_value_info(m_t, helper.TensorProto.BOOL, None))
        new = [body.op("Where", m_t, n, o) for n, o in zip(new, old, strict=True)]
        output = body.op("Where", m_t, output, body.const(0))
    results = [body.op("Identity", v) for v in (*new, output)]
    graph_outputs = [helper.make_tensor_value_info(n, element, None) for n in results]
    step = helper.make_graph(body.nodes, body.prefix + "step", graph_inputs, graph_outputs)
    scanned = [projected] + ([mask] if mask is not None else [])
    direction = [int(reverse)] * len(scanned)
    return b.op(
        "Scan",
        *initial,
        *scanned,
        outputs=len(sizes) + 1,
        body=step,
        num_scan_inputs=len(scanned),
        scan_input_directions=direction,
        scan_output_directions=[int(reverse)],
    )


# ----------------------------------------------------------------------------- the cells'
# own equations, on values that write graph nodes


class _Value:
    """A value of the graph being built, with the arithmetic of :mod:`rnnkit.cells`' ops;
    ``width``: its last dimension where known. A parameter (``tensor``) becomes an
    initializer when first used."""

    def __init__(
        self, b: _Builder, name: str | None, width: int | None, tensor: Tensor | None = None
    ) -> None:
        self.b, self._name, self.width, self.tensor = b, name, width, tensor

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self.b.weight(self.tensor)
        return self._name

    def _binary(self, op: str, other: _Value | float, reverse: bool = False) -> _Value:
        if isinstance(other, _Value):
            named, width = other.name, self.width or other.width
        else:
            named, width = self.b.const(other), self.width
        left, right = (named, self.name) if reverse else (self.name, named)
        return _Value(self.b, self.b.op(op, left, right), width)

    def __add__(self, other: _Value | float) -> _Value:
        return self._binary("Add", other)

    def __radd__(self, other: float) -> _Value:
        return self._binary("Add", other, reverse=True)

    def __sub__(self, other: _Value | float) -> _Value:
        return self._binary("Sub", other)

    def __rsub__(self, other: float) -> _Value:
        return self._binary("Sub", other, reverse=True)

    def __mul__(self, other: _Value | float) -> _Value:
        return self._binary("Mul", other)

    def __rmul__(self, other: float) -> _Value:
        return self._binary("Mul", other, reverse=True)


class _Ops:
    """The ops of :mod:`rnnkit.cells._spec`, writing nodes into ``b``."""

    def __init__(self, b: _Builder) -> None:
        self.b = b

    def parameters(self, p: SimpleNamespace) -> SimpleNamespace:
        """``p`` with its tensors as values of this graph, the rest as it is."""
        return SimpleNamespace(
            **{
                name: _Value(self.b, None, v.shape[0], v) if isinstance(v, Tensor) else v
                for name, v in vars(p).items()
            }
        )

    def _unary(self, v: _Value, activation: str) -> _Value:
        return _Value(self.b, self.b.act(v.name, activation), v.width)

    def sigmoid(self, v: _Value) -> _Value:
        return self._unary(v, "sigmoid")

    def tanh(self, v: _Value) -> _Value:
        return self._unary(v, "tanh")

    def relu(self, v: _Value) -> _Value:
        return self._unary(v, "relu")

    def act(self, v: _Value, name: str) -> _Value:
        return self._unary(v, name)

    def linear(self, v: _Value, w: _Value, bias: _Value | None = None) -> _Value:
        out = _Value(self.b, self.b.linear(v.name, w.tensor), w.tensor.shape[0])
        return out if bias is None else out + bias

    def split(self, v: _Value, parts: int) -> list[_Value]:
        width = v.width // parts
        return [_Value(self.b, n, width) for n in self.b.split(v.name, parts, width)]

    def concat(self, *values: _Value) -> _Value:
        name = self.b.op("Concat", *(v.name for v in values), axis=-1)
        return _Value(self.b, name, sum(v.width for v in values))

    def layer_norm(self, v: _Value, weight: _Value, bias: _Value | None, eps: float) -> _Value:
        tensor = None if bias is None else bias.tensor
        return _Value(self.b, self.b.layer_norm(v.name, weight.tensor, tensor, eps), v.width)

    def softmax(self, v: _Value) -> _Value:
        return self._unary(v, "softmax")

    def clamp(self, v: _Value, low: float, high: float) -> _Value:
        bounds = self.b.const(low), self.b.const(high)
        return _Value(self.b, self.b.op("Clip", v.name, *bounds), v.width)

    def divide(self, a: _Value, b: _Value) -> _Value:
        floor = self.b.op("Max", b.name, self.b.const(np.finfo(self.b.dtype).tiny))
        return _Value(self.b, self.b.op("Div", a.name, floor), a.width or b.width)
