"""The NumPy backend of the cells' equations, for the torch-free runtime."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from rnnkit.cells import CellSpec

Array = np.ndarray


def _sigmoid(v: Array) -> Array:
    # exp overflows to inf for v << 0, which gives the right 0
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-v))


def _linear(v: Array, w: Array, b: Array | None = None) -> Array:
    out = v @ w.T
    return out if b is None else out + b


def _layer_norm(v: Array, weight: Array, bias: Array | None, eps: float) -> Array:
    # In float64, then back to v's dtype, as the compiled kernels sum: a float32 stream of a
    # scale-free LN step would drift from theirs by the rounding of float32 statistics.
    wide = v.astype(np.float64)
    mean = wide.mean(axis=-1, keepdims=True)
    out = (wide - mean) / np.sqrt(wide.var(axis=-1, keepdims=True) + eps) * weight
    return (out if bias is None else out + bias).astype(v.dtype)


def _softmax(v: Array) -> Array:
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "sigmoid": _sigmoid}

NUMPY = SimpleNamespace(
    linear=_linear,
    sigmoid=_sigmoid,
    tanh=np.tanh,
    relu=_ACTIVATIONS["relu"],
    act=lambda v, name: _ACTIVATIONS[name](v),
    split=lambda v, parts: np.split(v, parts, axis=-1),
    concat=lambda *values: np.concatenate(values, axis=-1),
    layer_norm=_layer_norm,
    softmax=_softmax,
    clamp=np.clip,
    divide=lambda a, b: a / np.maximum(b, np.finfo(b.dtype).tiny),
)


def step_kernel(
    spec: CellSpec,
    weights: dict[str, Array],
    input_size: int,
    hidden_size: int,
    bias: bool,
    options: dict[str, Any],
) -> Callable[..., None]:
    """``kernel(x, *state)``: one step of ``spec`` from the raw input ``x`` ``(N, H_in)``,
    written into the state arrays ``(N, H)`` in place (the runtime's kernel convention)."""
    p = spec.namespace(weights, input_size, hidden_size, bias, options)

    def kernel(x: Array, *state: Array) -> None:
        new = spec.step(NUMPY, p, spec.project(NUMPY, p, x), state, None)
        for old, value in zip(state, new, strict=True):
            old[...] = value

    return kernel
