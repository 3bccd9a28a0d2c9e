"""The extended cells against independent NumPy float64 references, and their gradients.

Each reference below is written from its paper's equations for one sequence and one step
at a time (no batching, no precomputed projections, nothing imported from rnnkit), and a
plain loop runs it over layers, directions and lengths. A step's optional ``mask`` is the
variational recurrent-dropout mask: it multiplies the ``state[0]`` that enters the recurrent
weights only. The layers run in float64 with
randomised parameters (LN gains and IndRNN weights beyond the bound included) through
every input form :class:`rnnkit.nn.Recurrent` accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from rnnkit import nn

Params = dict[str, np.ndarray]
Vector = np.ndarray
RefState = tuple[Vector, ...]

L, N, H_IN, H = 5, 3, 4, 3  # sequence length, batch, input features, hidden size
F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these tiny problems on one thread.

    torch's CPU ``layer_norm`` and ``softmax`` split even two rows over the threads, and on
    a busy two-core machine every split waits for a descheduled thread: milliseconds per
    call, a gradcheck of LayerNormLSTM took 26 s instead of 2 s.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------- NumPy references


def sigmoid(a: Vector) -> Vector:
    return 1.0 / (1.0 + np.exp(-a))


def softmax(a: Vector) -> Vector:
    e = np.exp(a - a.max())
    return e / e.sum()


ACTIVATIONS: dict[str, Callable[[Vector], Vector]] = {
    "identity": lambda a: a,
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "relu": lambda a: np.maximum(a, 0.0),
    "softmax": softmax,
}


def bias(p: Params, name: str) -> Vector | float:
    return p.get(name, 0.0)


def layer_norm(a: Vector, gain: Vector, shift: Vector | None, eps: float) -> Vector:
    """Ba et al. (2016): standardise over the units of one step, then gain and shift."""
    mean = a.mean()
    var = ((a - mean) ** 2).mean()
    return gain * (a - mean) / np.sqrt(var + eps) + (0.0 if shift is None else shift)


def masked(v: Vector, mask: Vector | None) -> Vector:
    return v if mask is None else v * mask


def jordan_step(p: Params, o: dict, x: Vector, state: RefState, mask=None) -> RefState:
    """Jordan (1986): h_t = act(W x_t + b + W_yh y_{t-1}), y_t = out_act(W_hy h_t + b_hy)."""
    (y,) = state
    h = ACTIVATIONS[o.get("nonlinearity", "tanh")](
        p["weight_ih"] @ x + bias(p, "bias_ih") + p["weight_yh"] @ masked(y, mask)
    )
    out = ACTIVATIONS[o.get("output_nonlinearity", "identity")]
    return (out(p["weight_hy"] @ h + bias(p, "bias_hy")),)


def peephole_step(p: Params, o: dict, x: Vector, state: RefState, mask=None) -> RefState:
    """Gers & Schmidhuber (2000): i, f peek at c_{t-1}; o peeks at c_t."""
    h, c = state
    a = p["weight_ih"] @ x + bias(p, "bias_ih") + p["weight_hh"] @ masked(h, mask)
    a = a + bias(p, "bias_hh")
    a_i, a_f, a_g, a_o = np.split(a, 4)
    i = sigmoid(a_i + p["weight_ci"] * c)
    f = sigmoid(a_f + p["weight_cf"] * c)
    c_new = f * c + i * np.tanh(a_g)
    o_gate = sigmoid(a_o + p["weight_co"] * c_new)
    return o_gate * np.tanh(c_new), c_new


def ln_lstm_step(p: Params, o: dict, x: Vector, state: RefState, mask=None) -> RefState:
    """Ba et al. (2016): a = LN(W_h h) + LN(W_x x); h = sigma(o) tanh(LN(c))."""
    eps = o.get("eps", 1e-5)
    h, c = state
    a = layer_norm(p["weight_ih"] @ x, p["ln_weight_ih"], p.get("ln_bias_ih"), eps)
    a = a + layer_norm(
        p["weight_hh"] @ masked(h, mask), p["ln_weight_hh"], p.get("ln_bias_hh"), eps
    )
    a_i, a_f, a_g, a_o = np.split(a, 4)
    c_new = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_g)
    c_norm = layer_norm(c_new, p["ln_weight_c"], p.get("ln_bias_c"), eps)
    return sigmoid(a_o) * np.tanh(c_norm), c_new


def ln_gru_step(p: Params, o: dict, x: Vector, state: RefState, mask=None) -> RefState:
    """GRU (Cho et al. 2014) with LN(W_x x) and LN(W_h h); r multiplies LN(W_h h)_n."""
    eps = o.get("eps", 1e-5)
    (h,) = state
    gx = layer_norm(p["weight_ih"] @ x, p["ln_weight_ih"], p.get("ln_bias_ih"), eps)
    gh = layer_norm(p["weight_hh"] @ masked(h, mask), p["ln_weight_hh"], p.get("ln_bias_hh"), eps)
    gx_r, gx_z, gx_n = np.split(gx, 3)
    gh_r, gh_z, gh_n = np.split(gh, 3)
    r = sigmoid(gx_r + gh_r)
    z = sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    return ((1.0 - z) * n + z * h,)


def indrnn_step(p: Params, o: dict, x: Vector, state: RefState, mask=None) -> RefState:
    """Li et al. (2018): h_t = act(W x_t + b + u * h_{t-1}) with |u| <= recurrent_max_abs."""
    (h,) = state
    u = p["weight_hh"]
    bound = o.get("recurrent_max_abs")
    if bound is not None:
        u = np.clip(u, -bound, bound)
    act = ACTIVATIONS[o.get("nonlinearity", "relu")]
    return (act(p["weight_ih"] @ x + bias(p, "bias_ih") + u * masked(h, mask)),)


def reference_layer(
    step: Callable[[Params, dict, Vector, RefState], RefState],
    options: dict,
    params: list[Params],
    x: np.ndarray,
    h0: tuple[np.ndarray, ...],
    lengths: list[int],
    num_layers: int,
    directions: int,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Run a stack sequence by sequence: ``x`` ``(L, N, H_in)``, ``h0`` ``(D*layers, N, S)``.

    The backward direction of sequence ``n`` starts at its last valid step; outputs past a
    length are zero; the final state is the state after the last valid step.
    """
    length, batch, _ = x.shape
    finals = tuple(s.copy() for s in h0)
    layer_input = x
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            row = layer * directions + direction
            out = np.zeros((length, batch, h0[0].shape[-1]))
            for n in range(batch):
                state = tuple(s[row, n] for s in h0)
                steps = range(lengths[n])
                for t in reversed(steps) if direction == 1 else steps:
                    state = step(params[row], options, layer_input[t, n], state)
                    out[t, n] = state[0]
                for final, s in zip(finals, state, strict=True):
                    final[row, n] = s
            outputs.append(out)
        layer_input = np.concatenate(outputs, axis=-1)
    return layer_input, finals


# ------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    layer: type[nn.Recurrent]
    step: Callable[[Params, dict, Vector, RefState], RefState]
    options: dict = field(default_factory=dict)


CASES = {
    "jordan": Case(nn.JordanRNN, jordan_step),
    "jordan-O2-relu-sigmoid": Case(
        nn.JordanRNN,
        jordan_step,
        {"output_size": 2, "nonlinearity": "relu", "output_nonlinearity": "sigmoid"},
    ),
    "jordan-nobias-softmax": Case(
        nn.JordanRNN, jordan_step, {"bias": False, "output_nonlinearity": "softmax"}
    ),
    "jordan-O4-tanh-relu": Case(
        nn.JordanRNN, jordan_step, {"output_size": 4, "output_nonlinearity": "relu"}
    ),
    "peephole": Case(nn.PeepholeLSTM, peephole_step),
    "peephole-nobias": Case(nn.PeepholeLSTM, peephole_step, {"bias": False}),
    "ln-lstm": Case(nn.LayerNormLSTM, ln_lstm_step),
    "ln-lstm-nobias-eps": Case(nn.LayerNormLSTM, ln_lstm_step, {"bias": False, "eps": 0.3}),
    "ln-gru": Case(nn.LayerNormGRU, ln_gru_step),
    "ln-gru-nobias-eps": Case(nn.LayerNormGRU, ln_gru_step, {"bias": False, "eps": 0.3}),
    "indrnn": Case(nn.IndRNN, indrnn_step),
    "indrnn-bound": Case(nn.IndRNN, indrnn_step, {"recurrent_max_abs": 0.6}),
    "indrnn-tanh-nobias": Case(
        nn.IndRNN,
        indrnn_step,
        {"nonlinearity": "tanh", "bias": False, "recurrent_max_abs": 0.4},
    ),
}


def make_layer(case: Case, input_size: int = H_IN, hidden_size: int = H, **layer_options):
    """The case's layer in float64 with every parameter ~ U(-1, 1) (no init left as is)."""
    layer = case.layer(input_size, hidden_size, dtype=F64, **case.options, **layer_options)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-1.0, 1.0)
    return layer


def numpy_params(layer: nn.Recurrent) -> list[Params]:
    return [
        {name: p.detach().numpy() for name, p in cell.named_parameters()} for cell in layer.cells
    ]


def reference(case, layer, x, h0, lengths):
    """The reference for ``layer`` on ``x`` ``(L, N, H_in)`` and ``h0`` (torch tensors)."""
    return reference_layer(
        case.step,
        case.options,
        numpy_params(layer),
        x.numpy(),
        tuple(s.numpy() for s in h0),
        lengths,
        layer.num_layers,
        layer.num_directions,
    )


def random_state(layer: nn.Recurrent, batch: int) -> tuple[torch.Tensor, ...]:
    rows = layer.num_layers * layer.num_directions
    return tuple(torch.rand(rows, batch, size, dtype=F64) * 2 - 1 for size in layer.state_sizes)


def assert_close(got: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------ parity tests

STACK = {"num_layers": 2, "bidirectional": True}


@pytest.mark.parametrize("name", CASES)
def test_single_layer_from_zero_state(name):
    case = CASES[name]
    layer = make_layer(case)
    x = torch.randn(L, N, H_IN, dtype=F64)
    output, state = layer(x)
    zeros = tuple(torch.zeros(1, N, s, dtype=F64) for s in layer.state_sizes)
    expected, expected_state = reference(case, layer, x, zeros, [L] * N)
    assert_close(output, expected)
    for s, e in zip(state, expected_state, strict=True):
        assert_close(s, e)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked_bidirectional_batched(name, batch_first):
    case = CASES[name]
    layer = make_layer(case, batch_first=batch_first, **STACK)
    x = torch.randn(L, N, H_IN, dtype=F64)
    h0 = random_state(layer, N)
    output, state = layer(x.transpose(0, 1) if batch_first else x, h0)
    expected, expected_state = reference(case, layer, x, h0, [L] * N)
    assert_close(output.transpose(0, 1) if batch_first else output, expected)
    assert len(state) == len(expected_state)
    for s, e in zip(state, expected_state, strict=True):
        assert_close(s, e)


@pytest.mark.parametrize("name", CASES)
def test_stacked_bidirectional_unbatched(name):
    case = CASES[name]
    layer = make_layer(case, **STACK)
    x = torch.randn(L, H_IN, dtype=F64)
    h0 = random_state(layer, 1)
    output, state = layer(x, tuple(s.squeeze(1) for s in h0))
    expected, expected_state = reference(case, layer, x.unsqueeze(1), h0, [L])
    assert output.shape == (L, expected.shape[-1])
    assert_close(output, expected[:, 0])
    for s, e in zip(state, expected_state, strict=True):
        assert_close(s, e[:, 0])


@pytest.mark.parametrize("name", CASES)
def test_stacked_bidirectional_lengths_including_zero(name):
    case = CASES[name]
    layer = make_layer(case, **STACK)
    lengths = [L, 0, 2]
    x = torch.randn(L, N, H_IN, dtype=F64)
    h0 = random_state(layer, N)
    output, state = layer(x, h0, lengths=torch.tensor(lengths))
    expected, expected_state = reference(case, layer, x, h0, lengths)
    assert_close(output, expected)
    for s, e, s0 in zip(state, expected_state, h0, strict=True):
        assert_close(s, e)
        assert torch.equal(s[:, 1], s0[:, 1])  # length 0: the initial state, untouched


@pytest.mark.parametrize("name", CASES)
def test_stacked_bidirectional_packed_sequence(name):
    case = CASES[name]
    layer = make_layer(case, **STACK)
    lengths = [2, L, 3]  # unsorted on purpose
    sequences = [torch.randn(n, H_IN, dtype=F64) for n in lengths]
    h0 = random_state(layer, N)
    packed_output, state = layer(pack_sequence(sequences, enforce_sorted=False), h0)
    output, _ = pad_packed_sequence(packed_output, total_length=L)
    x = torch.zeros(L, N, H_IN, dtype=F64)
    for n, seq in enumerate(sequences):
        x[: len(seq), n] = seq
    expected, expected_state = reference(case, layer, x, h0, lengths)
    assert_close(output, expected)
    for s, e in zip(state, expected_state, strict=True):
        assert_close(s, e)


@pytest.mark.parametrize("name", CASES)
def test_cell_called_step_by_step_matches_the_layer(name):
    """The cell's own one-step ``forward`` (the streaming use) gives the layer's outputs."""
    case = CASES[name]
    layer = make_layer(case)
    cell = layer.cells[0]
    x = torch.randn(L, N, H_IN, dtype=F64)
    h0 = random_state(layer, N)
    output, final = layer(x, h0)
    state = tuple(s[0] for s in h0)
    one = len(layer.state_sizes) == 1  # torch.nn's rule: a one-tensor state comes bare
    for t in range(L):
        state = cell(x[t], state)
        assert isinstance(state, torch.Tensor) == one
        state = (state,) if one else state
        torch.testing.assert_close(state[0], output[t], rtol=0, atol=1e-12)
    for s, f in zip(state, final, strict=True):
        torch.testing.assert_close(s, f[0], rtol=0, atol=1e-12)
    unbatched = cell(x[0, 0], tuple(s[0, 0] for s in h0))
    unbatched = (unbatched,) if one else unbatched
    assert len(unbatched) == len(layer.state_sizes)
    torch.testing.assert_close(unbatched[0], output[0, 0], rtol=0, atol=1e-12)  # shape (S,)


@pytest.mark.parametrize("name", CASES)
def test_dropout_mask_only_touches_the_recurrent_input(name):
    """``step(..., dropout_mask)``: the mask scales the state[0] read by the recurrent
    weights; what is carried (a GRU's ``z * h``, the LSTM's ``c``) stays unmasked."""
    case = CASES[name]
    layer = make_layer(case)
    cell = layer.cells[0]
    x = torch.randn(N, H_IN, dtype=F64)
    state = tuple(torch.randn(N, size, dtype=F64) for size in cell.state_sizes)
    mask = torch.bernoulli(torch.full((N, cell.state_sizes[0]), 0.5, dtype=F64)) * 2
    got = cell.step(cell.project(x.unsqueeze(0))[0], state, dropout_mask=mask)
    params = numpy_params(layer)[0]
    for n in range(N):
        inputs = (x[n].numpy(), tuple(s[n].numpy() for s in state), mask[n].numpy())
        expected = case.step(params, case.options, *inputs)
        for g, e in zip(got, expected, strict=True):
            assert_close(g[n], e)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", CASES)
def test_gradcheck_float64(name):
    """Input, initial state and every parameter, through two bidirectional layers."""
    case = CASES[name]
    layer = make_layer(case, input_size=2, hidden_size=2, **STACK)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)
    h0 = tuple(s.requires_grad_() for s in random_state(layer, 2))
    lengths = torch.tensor([3, 1])
    k = len(h0)

    def run(x, *rest):
        values = dict(zip(names, rest[k:], strict=True))
        output, state = torch.func.functional_call(layer, values, (x, rest[:k], lengths))
        return output, *state

    assert torch.autograd.gradcheck(run, (x, *h0, *params), fast_mode=True)
