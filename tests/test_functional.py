"""rnnkit's gate equations against an independent NumPy float64 implementation.

The NumPy reference below is written from the textbook equations, in torch.nn's gate order
(LSTM ``i, f, g, o``; GRU ``r, z, n`` with ``b_hn`` inside the reset product) and imports
nothing from rnnkit. Stacks, directions and lengths are handled by running every sequence
on its own valid prefix, with no masking at all. Also here: ``gradcheck`` of the reference
path and of every functional cell, and ``scan`` with lengths in both directions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.func import functional_call

import rnnkit.functional as RF
import rnnkit.nn

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
CLASS_NAMES = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
TOLERANCE = {"atol": 1e-12, "rtol": 1e-10}
Arrays = dict[str, np.ndarray | None]  # w_ih, w_hh, b_ih, b_hh, w_hr (None when absent)
State = tuple[np.ndarray, ...]
TORCH_NAMES = {
    "w_ih": "weight_ih",
    "w_hh": "weight_hh",
    "b_ih": "bias_ih",
    "b_hh": "bias_hh",
    "w_hr": "weight_hr",
}

# ----------------------------------------------------------------------------- NumPy reference


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def affine(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x W^T + b`` for a batch of row vectors ``x`` ``(N, in)``."""
    return x @ weight.T + (0.0 if bias is None else bias)


def np_elman(x: np.ndarray, state: State, w: Arrays, nonlinearity: str) -> State:
    """``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` (Elman 1990)."""
    (h,) = state
    a = affine(x, w["w_ih"], w["b_ih"]) + affine(h, w["w_hh"], w["b_hh"])
    return (np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0),)


def np_lstm(x: np.ndarray, state: State, w: Arrays) -> State:
    """LSTM with forget gate; optional projection ``h' = W_hr h'`` (Sak et al. 2014)."""
    h, c = state
    a = affine(x, w["w_ih"], w["b_ih"]) + affine(h, w["w_hh"], w["b_hh"])
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
    c = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_g)
    h = sigmoid(a_o) * np.tanh(c)
    if w["w_hr"] is not None:
        h = h @ w["w_hr"].T
    return h, c


def np_gru(x: np.ndarray, state: State, w: Arrays) -> State:
    """GRU (Cho et al. 2014) as in the torch.nn.GRU docs."""
    (h,) = state
    i_r, i_z, i_n = np.split(affine(x, w["w_ih"], w["b_ih"]), 3, axis=-1)
    h_r, h_z, h_n = np.split(affine(h, w["w_hh"], w["b_hh"]), 3, axis=-1)
    r = sigmoid(i_r + h_r)
    z = sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return ((1.0 - z) * n + z * h,)


def np_step(kind: str) -> Callable[[np.ndarray, State, Arrays], State]:
    if kind == "lstm":
        return np_lstm
    if kind == "gru":
        return np_gru
    nonlinearity = kind.removeprefix("rnn_")
    return lambda x, state, w: np_elman(x, state, w, nonlinearity)


def np_layer(
    kind: str,
    x: np.ndarray,
    lengths: list[int],
    state0: State,
    weights: list[list[Arrays]],
) -> tuple[np.ndarray, State]:
    """A stack of recurrences, one sequence at a time on its valid prefix.

    Args:
        x: ``(L, N, H_in)``; state0: ``(layers * D, N, S_k)`` per state tensor.
        weights: ``weights[layer][direction]``.

    Returns:
        Output ``(L, N, D * P)`` (zeros past each length) and the final states.
    """
    step = np_step(kind)
    directions = len(weights[0])
    width = directions * state0[0].shape[-1]
    output = np.zeros((x.shape[0], x.shape[1], width))
    finals = tuple(s.copy() for s in state0)
    for b, n in enumerate(lengths):
        sequence = x[:n, b]
        for layer, per_direction in enumerate(weights):
            outputs = []
            for direction, w in enumerate(per_direction):
                row = layer * directions + direction
                state = tuple(s[row, b][None] for s in state0)
                ys = np.zeros((n, state0[0].shape[-1]))
                for t in range(n) if direction == 0 else reversed(range(n)):
                    state = step(sequence[t][None], state, w)
                    ys[t] = state[0][0]
                outputs.append(ys)
                for final, s in zip(finals, state, strict=True):
                    final[row, b] = s[0]
            sequence = np.concatenate(outputs, axis=1)
        output[:n, b] = sequence
    return output, finals


def layer_arrays(module: torch.nn.Module) -> list[list[Arrays]]:
    """The module's parameters, found by torch.nn's names, as ``[layer][direction]`` arrays."""
    params = {name: p.detach().numpy() for name, p in module.named_parameters()}

    def arrays(layer: int, direction: int) -> Arrays:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return {key: params.get(name + suffix) for key, name in TORCH_NAMES.items()}

    directions = 2 if module.bidirectional else 1
    return [[arrays(layer, d) for d in range(directions)] for layer in range(module.num_layers)]


# ----------------------------------------------------------------------------- helpers


def build_layer(kind: str, **kwargs: object) -> rnnkit.nn.RecurrentBase:
    if kind.startswith("rnn"):
        kwargs["nonlinearity"] = kind.removeprefix("rnn_")
    return getattr(rnnkit.nn, CLASS_NAMES[kind])(dtype=torch.float64, fused=False, **kwargs)


def state_sizes(kind: str, hidden_size: int, proj_size: int) -> tuple[int, ...]:
    return (proj_size or hidden_size, hidden_size) if kind == "lstm" else (hidden_size,)


def cell_weights(
    kind: str, input_size: int, hidden_size: int, bias: bool, proj_size: int, g: torch.Generator
) -> dict[str, Tensor | None]:
    """Random float64 weights for one functional cell, named as its keyword arguments."""
    gates = {"lstm": 4, "gru": 3}.get(kind, 1)
    out = proj_size or hidden_size

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5

    weights = {
        "w_ih": rand(gates * hidden_size, input_size),
        "w_hh": rand(gates * hidden_size, out),
        "b_ih": rand(gates * hidden_size) if bias else None,
        "b_hh": rand(gates * hidden_size) if bias else None,
    }
    if kind == "lstm":
        weights["w_hr"] = rand(proj_size, hidden_size) if proj_size else None
    return weights


def functional_cell(kind: str, x: Tensor, state: tuple[Tensor, ...], w: dict) -> tuple:
    """rnnkit.functional's cell for ``kind``, always returning a tuple of states."""
    if kind == "lstm":
        return RF.lstm_cell(x, state, **w)
    if kind == "gru":
        return (RF.gru_cell(x, state[0], **w),)
    return (RF.rnn_cell(x, state[0], **w, nonlinearity=kind.removeprefix("rnn_")),)


@st.composite
def cell_cases(draw: st.DrawFn, kind: str) -> tuple[Tensor, tuple[Tensor, ...], dict]:
    input_size, hidden_size = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    proj_size = draw(st.integers(0, hidden_size - 1)) if kind == "lstm" else 0
    batch = draw(st.integers(1, 4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    w = cell_weights(kind, input_size, hidden_size, draw(st.booleans()), proj_size, g)
    x = torch.randn(batch, input_size, generator=g, dtype=torch.float64)
    sizes = state_sizes(kind, hidden_size, proj_size)
    state = tuple(torch.randn(batch, s, generator=g, dtype=torch.float64) for s in sizes)
    return x, state, w


def to_numpy(w: dict[str, Tensor | None]) -> Arrays:
    return {k: None if v is None else v.numpy() for k, v in w.items()}


# ----------------------------------------------------------------------------- cells


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_functional_cells_match_numpy(kind: str, data: st.DataObject) -> None:
    x, state, w = data.draw(cell_cases(kind))
    got = functional_cell(kind, x, state, w)
    want = np_step(kind)(x.numpy(), tuple(s.numpy() for s in state), to_numpy(w))
    for a, e in zip(got, want, strict=True):
        np.testing.assert_allclose(a.numpy(), e, **TOLERANCE)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", [*KINDS, "lstm_proj"])
def test_functional_cells_gradcheck(kind: str, bias: bool) -> None:
    base, proj_size = kind.removesuffix("_proj"), 2 if kind.endswith("_proj") else 0
    g = torch.Generator().manual_seed(1)
    w = cell_weights(base, 3, 4, bias, proj_size, g)
    x = torch.randn(2, 3, generator=g, dtype=torch.float64)
    state = tuple(
        torch.randn(2, s, generator=g, dtype=torch.float64) for s in state_sizes(base, 4, proj_size)
    )
    names = [k for k, v in w.items() if v is not None]
    inputs = tuple(t.requires_grad_() for t in (x, *state, *(w[k] for k in names)))
    count = len(state)

    def cell(x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        params = dict(zip(names, rest[count:], strict=True))
        return functional_cell(base, x, rest[:count], {k: params.get(k) for k in w})

    assert torch.autograd.gradcheck(cell, inputs)


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_reference_layers_match_numpy(kind: str, data: st.DataObject) -> None:
    """``fused=False`` layers against the per-sequence NumPy stack, with lengths (0 too)."""
    hidden_size = data.draw(st.integers(1, 6))
    kwargs = {
        "input_size": data.draw(st.integers(1, 6)),
        "hidden_size": hidden_size,
        "num_layers": data.draw(st.integers(1, 3)),
        "bias": data.draw(st.booleans()),
        "bidirectional": data.draw(st.booleans()),
    }
    proj_size = data.draw(st.integers(0, hidden_size - 1)) if kind == "lstm" else 0
    if kind == "lstm":
        kwargs["proj_size"] = proj_size
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    layer = build_layer(kind, **kwargs)
    length, batch = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    lengths = data.draw(st.lists(st.integers(0, length), min_size=batch, max_size=batch))
    x = torch.randn(length, batch, kwargs["input_size"], dtype=torch.float64)
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    hx = tuple(
        torch.randn(rows, batch, s, dtype=torch.float64)
        for s in state_sizes(kind, hidden_size, proj_size)
    )

    output, state = layer(x, hx if kind == "lstm" else hx[0], lengths=torch.tensor(lengths))
    want_output, want_state = np_layer(
        kind, x.numpy(), lengths, tuple(h.numpy() for h in hx), layer_arrays(layer)
    )
    np.testing.assert_allclose(output.detach().numpy(), want_output, **TOLERANCE)
    state = state if isinstance(state, tuple) else (state,)
    for a, e in zip(state, want_state, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), e, **TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_layers_gradcheck(kind: str) -> None:
    """Gradients of the reference path w.r.t. input, ``hx`` and every parameter, with a
    ragged batch (lengths 3, 0, 1) through two bidirectional layers."""
    proj_size = 2 if kind == "lstm" else 0
    kwargs = {"proj_size": proj_size} if kind == "lstm" else {}
    layer = build_layer(
        kind, **kwargs, input_size=2, hidden_size=3, num_layers=2, bidirectional=True
    )
    x = torch.randn(3, 3, 2, dtype=torch.float64)
    hx = tuple(torch.randn(4, 3, s, dtype=torch.float64) for s in state_sizes(kind, 3, proj_size))
    names = [name for name, _ in layer.named_parameters()]
    inputs = tuple(t.detach().clone().requires_grad_() for t in (x, *hx, *layer.parameters()))
    lengths = torch.tensor([3, 0, 1])

    def run(x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        state, params = rest[: len(hx)], dict(zip(names, rest[len(hx) :], strict=True))
        output, final = functional_call(
            layer, params, (x, state if kind == "lstm" else state[0]), {"lengths": lengths}
        )
        return (output, *(final if isinstance(final, tuple) else (final,)))

    # fast_mode checks v^T J u for random u, v instead of every entry of J: still fails for
    # any wrong gradient, in a second instead of a minute.
    assert torch.autograd.gradcheck(run, inputs, fast_mode=True)


# ----------------------------------------------------------------------------- scan


def toy_step(x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """A two-state step whose output ``state[0]`` is never zero by accident."""
    h, c = state
    c = 0.5 * c + torch.tanh(x[:, :1] + h)
    return torch.sin(c) * x[:, 1:] + 3.0, c


@given(data=st.data(), reverse=st.booleans())
def test_scan_with_lengths_equals_each_sequence_alone(data: st.DataObject, reverse: bool) -> None:
    """Each sequence run alone on its valid prefix (reversed for ``reverse=True``) by a plain
    loop gives the same outputs and final state; outputs past the length are zero."""
    length, batch = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    lengths = data.draw(st.lists(st.integers(0, length), min_size=batch, max_size=batch))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    inputs = torch.randn(length, batch, 2, generator=g, dtype=torch.float64)
    state = tuple(torch.randn(batch, 1, generator=g, dtype=torch.float64) for _ in range(2))

    output, final = RF.scan(toy_step, inputs, state, torch.tensor(lengths), reverse=reverse)
    assert output.shape == (length, batch, 1)
    for b, n in enumerate(lengths):
        own = tuple(s[b : b + 1] for s in state)
        expected = torch.zeros(length, 1, dtype=torch.float64)
        for t in reversed(range(n)) if reverse else range(n):
            own = toy_step(inputs[t, b : b + 1], own)
            expected[t] = own[0][0]
        torch.testing.assert_close(output[:, b], expected, rtol=0, atol=1e-14)
        for s, o in zip(final, own, strict=True):
            torch.testing.assert_close(s[b : b + 1], o, rtol=0, atol=1e-14)
