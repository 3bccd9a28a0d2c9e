"""minGRU and minLSTM (Feng et al. 2024): both modes against NumPy, each other and gradcheck.

The NumPy reference below is written from the paper's equations alone (float64, one sequence
and one step at a time, lengths and direction handled by choosing the steps), so it shares no
code with rnnkit. The parallel mode (the chunked scan with its written-out backward) is also
compared with the sequential mode (the layer's loop over ``step``) for outputs and gradients,
at lengths up to 4096.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.functional import (
    linear_scan,
    linear_scan_log,
    min_gru_scan,
    min_lstm_scan,
    minimal,
    scan,
)
from rnnkit.nn import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell

KINDS = ("gru", "lstm")
LAYERS = {"gru": MinGRU, "lstm": MinLSTM}
CELLS = {"gru": MinGRUCell, "lstm": MinLSTMCell}
SCANS = {"gru": min_gru_scan, "lstm": min_lstm_scan}
F64 = torch.float64


def cell_run(kind, cell, projected, h0, lengths=None, reverse=False, parallel=True):
    """The cell's recurrence over ``projected``: the parallel scan its layer runs, or the
    sequential mode (the loop over its ``step``)."""
    if parallel:
        out, final = SCANS[kind](projected, h0, lengths, reverse, cell.positive)
        return out, (final,)
    return scan(cell.step, projected, (h0,), lengths, reverse)


# ------------------------------------------------------------------------ NumPy reference


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def np_g(x: np.ndarray) -> np.ndarray:
    """The paper's g: x + 0.5 for x >= 0, sigmoid(x) below."""
    return np.where(x >= 0, x + 0.5, np_sigmoid(x))


def np_step(kind: str, k: np.ndarray, h: np.ndarray, positive: bool) -> np.ndarray:
    """One step from the pre-activations ``k`` of one sequence, (G*H,)."""
    size = h.shape[0]
    if kind == "gru":  # z, h~
        z = np_sigmoid(k[:size])
        candidate = k[size:]
        candidate = np_g(candidate) if positive else candidate
        return (1.0 - z) * h + z * candidate
    f, i = np_sigmoid(k[:size]), np_sigmoid(k[size : 2 * size])  # f, i, h~
    candidate = k[2 * size :]
    candidate = np_g(candidate) if positive else candidate
    return f / (f + i) * h + i / (f + i) * candidate


def np_direction(kind, x, weight, bias, h0, lengths, reverse, positive):
    """One direction of one layer: x (L, N, H_in) -> outputs (L, N, H), final (N, H)."""
    k = x @ weight.T + (0.0 if bias is None else bias)
    outputs = np.zeros((x.shape[0], x.shape[1], h0.shape[1]))
    final = h0.copy()
    for n, length in enumerate(lengths):
        h = h0[n]
        for t in reversed(range(length)) if reverse else range(length):
            h = np_step(kind, k[t, n], h, positive)
            outputs[t, n] = h
        final[n] = h
    return outputs, final


def np_layer(layer, kind, x, h0, lengths, positive):
    """The whole stack of ``layer`` with its weights, in NumPy."""
    directions = layer.num_directions
    finals = []
    layer_input = x
    for index in range(layer.num_layers):
        outputs = []
        for direction in range(directions):
            cell = layer.cells[index * directions + direction]
            bias = None if cell.bias_ih is None else cell.bias_ih.detach().numpy()
            out, final = np_direction(
                kind,
                layer_input,
                cell.weight_ih.detach().numpy(),
                bias,
                h0[index * directions + direction],
                lengths,
                direction == 1,
                positive,
            )
            outputs.append(out)
            finals.append(final)
        layer_input = np.concatenate(outputs, axis=-1)
    return layer_input, np.stack(finals)


def np_linear_scan(a, b, h0, lengths, reverse):
    """h_t = a_t h_{t-1} + b_t per sequence, in NumPy."""
    outputs = np.zeros_like(b)
    final = h0.copy()
    for n, length in enumerate(lengths):
        h = h0[n]
        for t in reversed(range(length)) if reverse else range(length):
            h = a[t, n] * h + b[t, n]
            outputs[t, n] = h
        final[n] = h
    return outputs, final


# -------------------------------------------------------------------------------- helpers


def both_modes(kind: str, *args, **options) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The parallel layer and a sequential copy with the same weights."""
    parallel = LAYERS[kind](*args, parallel=True, **options)
    sequential = LAYERS[kind](*args, parallel=False, **options)
    sequential.load_state_dict(parallel.state_dict())
    return parallel, sequential


def run_with_grads(layer, x, h0, lengths, seed=1):
    """Outputs, final state and the gradients of a random weighted sum of both."""
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_()
    layer.zero_grad(set_to_none=True)
    out, (h_n,) = layer(x, h0, lengths)
    generator = torch.Generator().manual_seed(seed)
    w_out = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    w_h = torch.randn(h_n.shape, generator=generator, dtype=out.dtype)
    ((out * w_out).sum() + (h_n * w_h).sum()).backward()
    grads = [x.grad, h0.grad, *(p.grad for p in layer.parameters())]
    return [out, h_n, *grads]


def assert_all_close(got, expected, **tolerance):
    assert len(got) == len(expected)
    for index, (g, e) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(g, e, msg=lambda m, i=index: f"item {i}: {m}", **tolerance)


# ------------------------------------------------------------------ equations vs NumPy


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("lengths", [None, [19, 0, 7, 1]])
def test_layer_matches_numpy_reference(kind, parallel, positive, lengths, scan_path):
    """2 layers, both directions, a signed initial state, ragged lengths including 0."""
    layer = LAYERS[kind](3, 5, 2, True, positive=positive, parallel=parallel, dtype=F64)
    x = 2.0 * torch.randn(19, 4, 3, dtype=F64)
    h0 = 3.0 * torch.randn(4, 4, 5, dtype=F64)  # negative entries too, in both modes
    with torch.no_grad():
        out, (h_n,) = layer(x, h0, lengths)
    full = [19] * 4 if lengths is None else lengths
    expected_out, expected_h = np_layer(layer, kind, x.numpy(), h0.numpy(), full, positive)
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), expected_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_matches_numpy_reference(kind, scan_path):
    layer = LAYERS[kind](6, 16, bias=False)
    x = torch.randn(300, 2, 6)
    with torch.no_grad():
        out, (h_n,) = layer(x)
    h0 = np.zeros((1, 2, 16))
    expected, expected_h = np_layer(layer, kind, x.double().numpy(), h0, [300, 300], False)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), expected_h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_packed_sequence_matches_padded_and_numpy(kind):
    layer = LAYERS[kind](3, 5, 2, True, dtype=F64)
    x = torch.randn(12, 4, 3, dtype=F64)
    lengths = [12, 5, 9, 1]
    with torch.no_grad():
        packed, (h_packed,) = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
        padded, (h_padded,) = layer(x, lengths=lengths)
    unpacked, _ = pad_packed_sequence(packed, total_length=12)
    torch.testing.assert_close(unpacked, padded, rtol=0, atol=0)
    torch.testing.assert_close(h_packed, h_padded, rtol=0, atol=0)
    expected, expected_h = np_layer(layer, kind, x.numpy(), np.zeros((4, 4, 5)), lengths, False)
    np.testing.assert_allclose(unpacked.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_packed.numpy(), expected_h, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------- parallel mode == sequential mode


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length", [1, 7, 256, 4096])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_scan_equals_sequential(kind, length, ragged, reverse):
    """Outputs, final state and all gradients, float32, the cell's two modes."""
    cell = CELLS[kind](4, 8)
    x = torch.randn(length, 3, 4)
    h0 = torch.randn(3, 8, requires_grad=True)
    lengths = torch.tensor([length, 0, (length + 1) // 2]) if ragged else None
    weights = torch.randn(length, 3, 8), torch.randn(3, 8)
    results = []
    for parallel in (True, False):
        out, (final,) = cell_run(kind, cell, cell.project(x), h0, lengths, reverse, parallel)
        loss = (out * weights[0]).sum() + (final * weights[1]).sum()
        grads = torch.autograd.grad(loss, [h0, cell.weight_ih, cell.bias_ih])
        results.append([out, final, *grads])
    assert_all_close(results[0], results[1], rtol=1e-4, atol=2e-5)
    if ragged:  # outputs past a length are exactly zero; a length of 0 keeps h0
        assert torch.all(results[0][0][:, 1] == 0)
        torch.testing.assert_close(results[0][1][1], h0[1], rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("positive", [False, True])
def test_stacked_bidirectional_gradients_equal_sequential(kind, positive):
    """Every gradient (input, initial state, all parameters) of the two modes, float64."""
    parallel, sequential = both_modes(kind, 3, 6, 2, True, positive=positive, dtype=F64)
    x = torch.randn(50, 4, 3, dtype=F64)
    h0 = torch.randn(4, 4, 6, dtype=F64)
    lengths = torch.tensor([50, 0, 17, 49])
    got = run_with_grads(parallel, x, h0, lengths)
    expected = run_with_grads(sequential, x, h0, lengths)
    assert_all_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_and_unbatched_agree_with_sequential(kind):
    parallel, sequential = both_modes(kind, 3, 4, batch_first=True)
    x = torch.randn(2, 33, 3)
    with torch.no_grad():
        assert_all_close(parallel(x), sequential(x), rtol=1e-5, atol=1e-6)
        out, (h_n,) = parallel(x[0])  # unbatched (L, H_in)
        torch.testing.assert_close(out, parallel(x)[0][0], rtol=1e-6, atol=1e-7)
        assert h_n.shape == (1, 4)


# ------------------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("parallel", [True, False])
def test_layer_gradcheck(kind, parallel):
    layer = LAYERS[kind](2, 3, bidirectional=True, parallel=parallel, dtype=F64)
    x = torch.randn(6, 3, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 3, 3, dtype=F64, requires_grad=True)
    lengths = torch.tensor([6, 0, 4])

    def run(x, h0):
        out, (h_n,) = layer(x, h0, lengths)
        return out, h_n

    assert torch.autograd.gradcheck(run, (x, h0))


@pytest.fixture(params=["numba", "torch"])
def scan_path(request, monkeypatch) -> str:
    """The fused scans' two paths: the compiled loops (CPU float32/float64) and the chunked
    scan in torch ops (every other case: another device, float16, bfloat16)."""
    if request.param == "torch":
        monkeypatch.setattr(minimal.calls, "numba_runs", lambda x: False)
    elif minimal.calls._fused_numba is None:
        pytest.skip("numba is not installed")
    return request.param


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_scan_gradcheck(kind, positive, reverse, scan_path):
    """The written-out backward, w.r.t. every pre-activation and h0, long enough to chunk."""
    gates = 3 if kind == "lstm" else 2
    projected = 2 * torch.randn(12, 3, gates * 2, dtype=F64)  # 6 chunks of 2 steps
    projected[0, 0, -2:] = torch.tensor([0.3, -0.3])  # both branches of g
    projected.requires_grad_()
    h0 = torch.randn(3, 2, dtype=F64, requires_grad=True)
    lengths = torch.tensor([12, 0, 7])
    scan = SCANS[kind]
    assert torch.autograd.gradcheck(
        lambda p, h: scan(p, h, lengths, reverse, positive), (projected, h0)
    )
    assert torch.autograd.gradcheck(
        lambda p, h: scan(p, h, None, reverse, positive), (projected, h0)
    )


@pytest.mark.parametrize("scan", [linear_scan, linear_scan_log])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_gradcheck(scan, reverse):
    a = (0.05 + 0.9 * torch.rand(13, 3, 2, dtype=F64)).requires_grad_()
    b = torch.randn(13, 3, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(3, 2, dtype=F64, requires_grad=True)
    lengths = torch.tensor([13, 0, 5])
    assert torch.autograd.gradcheck(lambda *t: scan(*t, lengths, reverse), (a, b, h0))


# ---------------------------------------------------------- exactness with signed values


@pytest.mark.parametrize("scan", [linear_scan, linear_scan_log])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scans_exact_for_negative_values(scan, reverse):
    """Plain mode: negative h0 and b, which a log-space scan must split by sign."""
    a = 0.05 + 0.9 * torch.rand(300, 4, 5, dtype=F64)
    b = torch.randn(300, 4, 5, dtype=F64)
    h0 = -3.0 - torch.rand(4, 5, dtype=F64)  # all negative
    lengths = [300, 0, 150, 299]
    out, final = scan(a, b, h0, torch.tensor(lengths), reverse)
    expected, expected_final = np_linear_scan(a.numpy(), b.numpy(), h0.numpy(), lengths, reverse)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(final.numpy(), expected_final, rtol=1e-9, atol=1e-11)


def test_chunked_scan_has_no_drift_in_float32():
    """4096 steps with strongly decaying gates: no error growth, unlike a log-space scan."""
    a = 0.01 + 0.1 * torch.rand(4096, 2, 8, dtype=F64)
    b = torch.randn(4096, 2, 8, dtype=F64)
    h0 = -torch.ones(2, 8, dtype=F64)
    expected, _ = np_linear_scan(a.numpy(), b.numpy(), h0.numpy(), [4096, 4096], False)
    out, _ = linear_scan(a.float(), b.float(), h0.float())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("parallel", [True, False])
def test_min_lstm_gates_underflow_keeps_state(parallel, scan_path):
    """Both gates underflowing to 0 (pre-activations -200 in float32): z = 0, not NaN."""
    cell = MinLSTMCell(1, 2)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.bias_ih.copy_(torch.tensor([-200.0, -200.0, -200.0, -200.0, 1.0, 1.0]))
    h0 = torch.tensor([[0.5, -2.0]], requires_grad=True)
    projected = cell.project(torch.randn(40, 1, 1))
    out, (final,) = cell_run("lstm", cell, projected, h0, parallel=parallel)
    torch.testing.assert_close(out, h0.expand(40, 1, 2), rtol=0, atol=0)
    final.sum().backward()
    torch.testing.assert_close(h0.grad, torch.ones(1, 2))
    assert torch.isfinite(cell.bias_ih.grad).all()


# ------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("positive", [False, True])
def test_streaming_equals_whole_sequence(kind, positive):
    """In pieces with the carried state, or one step at a time: the same as whole."""
    layer = LAYERS[kind](3, 6, positive=positive)
    x = torch.randn(40, 2, 3)
    with torch.no_grad():
        whole, (h_n,) = layer(x)
        first, state = layer(x[:17])
        second, (h_pieces,) = layer(x[17:], state)
        torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(h_pieces, h_n, rtol=1e-5, atol=1e-6)
        cell, h = layer.cells[0], torch.zeros(2, 6)
        for t in range(40):
            h = cell(x[t], h)
            torch.testing.assert_close(h, whole[t], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(cell(x[0, 0]), whole[0, 0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- parameters, errors


@pytest.mark.parametrize(("kind", "gates"), [("gru", 2), ("lstm", 3)])
def test_parameters_and_state_dict(kind, gates):
    layer = LAYERS[kind](3, 5, num_layers=2, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in layer.state_dict().items()}
    assert shapes["cells.0.weight_ih"] == (gates * 5, 3)
    assert shapes["cells.2.weight_ih"] == (gates * 5, 10)
    assert shapes["cells.3.bias_ih"] == (gates * 5,)
    cell = CELLS[kind](3, 5, bias=False)
    assert cell.bias_ih is None and list(cell.state_dict()) == ["weight_ih"]
    assert repr(cell) == f"{type(cell).__name__}(3, 5, bias=False)"
    assert CELLS[kind](3, 5).positive is False  # the plain equations by default
    assert CELLS[kind](3, 5).parallel is True


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_is_nn_linear(kind):
    """U(-1/sqrt(H_in), 1/sqrt(H_in)), as nn.Linear (the paper's layers)."""
    cell = CELLS[kind](16, 64)
    for weight in (cell.weight_ih, cell.bias_ih):
        assert 0.23 < weight.abs().max().item() <= 0.25


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"positive": "yes"}, TypeError, "positive: expected a bool, got str 'yes'"),
        ({"parallel": 1}, TypeError, "parallel: expected a bool, got int 1"),
        ({"bias": None}, TypeError, "bias: expected a bool, got NoneType None"),
        ({"hidden_size": 0}, ValueError, "hidden_size: expected an int >= 1, got 0"),
        ({"input_size": 2.5}, TypeError, "input_size: expected an int, got float 2.5"),
        ({"mode": "log"}, TypeError, "got an unexpected keyword argument 'mode'"),
    ],
)
def test_bad_options(kind, options, error, message):
    arguments = {"input_size": 3, "hidden_size": 4, **options}
    for factory in (LAYERS[kind], CELLS[kind]):
        with pytest.raises(error, match=re.escape(message)):
            factory(**arguments)


@pytest.mark.parametrize("kind", KINDS)
def test_regularisers(kind):
    """Zoneout runs (through the steps); recurrent dropout has no recurrent input to drop."""
    layer = LAYERS[kind](3, 4, zoneout=0.3)
    x = torch.randn(9, 2, 3)
    out, (h_n,) = layer(x)
    (out.sum() + h_n.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    layer.eval()
    plain = LAYERS[kind](3, 4)
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():  # eval: h' = 0.3 h + 0.7 step(h), a different sequence
        assert not torch.allclose(layer(x)[0], plain(x)[0])
    message = f"recurrent_dropout: {CELLS[kind].__name__}.step does not accept dropout_mask"
    with pytest.raises(ValueError, match=re.escape(message)):
        LAYERS[kind](3, 4, recurrent_dropout=0.2)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_cell_inputs(kind):
    cell = CELLS[kind](3, 4)
    with pytest.raises(ValueError, match=re.escape("input: expected shape (N, H_in) or unbatched")):
        cell(torch.randn(2, 5))
    message = "hx: expected shape (N, H) = (2, 4), got (2, 3)"
    with pytest.raises(ValueError, match=re.escape(message)):
        cell(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(TypeError, match=re.escape("input: expected dtype torch.float32")):
        cell(torch.randn(2, 3, dtype=F64))
