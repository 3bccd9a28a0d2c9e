"""Properties of the extended cells that follow from their papers, and their bad inputs.

Each property is one that a plausible mistake breaks: an Elman network hidden inside the
Jordan network, peepholes wired to the wrong cell state, LN over the sum of both sides
instead of each, a state that keeps the normalised cell, an IndRNN bound applied in place.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import Tensor

import rnnkit
from rnnkit import nn

F64 = torch.float64
L, N, H_IN, H = 6, 3, 4, 5
PACKAGE = Path(rnnkit.__file__).resolve().parent
CELLS = [
    nn.JordanCell,
    nn.PeepholeLSTMCell,
    nn.LayerNormLSTMCell,
    nn.LayerNormGRUCell,
    nn.IndRNNCell,
]
LAYERS = [nn.JordanRNN, nn.PeepholeLSTM, nn.LayerNormLSTM, nn.LayerNormGRU, nn.IndRNN]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one thread (see tests/test_extended_cells.py for why)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise(module: torch.nn.Module, low: float = -1.0, high: float = 1.0) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(low, high)


def random_state(layer: nn.Recurrent, batch: int = N) -> tuple[Tensor, ...]:
    rows = layer.num_layers * layer.num_directions
    return tuple(torch.randn(rows, batch, size, dtype=F64) for size in layer.state_sizes)


def assert_same(a: tuple[Tensor, ...] | Tensor, b: tuple[Tensor, ...] | Tensor, atol=1e-12):
    a, b = (a,) if isinstance(a, Tensor) else a, (b,) if isinstance(b, Tensor) else b
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=0, atol=atol)


# ------------------------------------------------------------------------------ Jordan


def test_elman_rnn_is_the_rnn_layer():
    assert nn.ElmanRNN is nn.RNN


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_jordan_with_an_identity_readout_is_an_elman_rnn(nonlinearity):
    """``W_hy = I``, ``b_hy = 0``, identity output: ``y_t = h_t``, fed back through W_yh."""
    jordan = nn.JordanRNN(
        H_IN, H, num_layers=2, bidirectional=True, nonlinearity=nonlinearity, dtype=F64
    )
    elman = nn.RNN(H_IN, H, num_layers=2, bidirectional=True, nonlinearity=nonlinearity, dtype=F64)
    randomise(jordan)
    with torch.no_grad():
        for k, cell in enumerate(jordan.cells):
            suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
            cell.weight_hy.copy_(torch.eye(H))
            cell.bias_hy.zero_()
            getattr(elman, "weight_ih" + suffix).copy_(cell.weight_ih)
            getattr(elman, "bias_ih" + suffix).copy_(cell.bias_ih)
            getattr(elman, "weight_hh" + suffix).copy_(cell.weight_yh)
            getattr(elman, "bias_hh" + suffix).zero_()
    x, lengths = torch.randn(L, N, H_IN, dtype=F64), torch.tensor([L, 0, 3])
    (h0,) = random_state(jordan)
    out_j, (y_n,) = jordan(x, h0, lengths=lengths)
    out_e, h_n = elman(x, h0, lengths=lengths)
    assert_same((out_j, y_n), (out_e, h_n))


def test_jordan_without_feedback_is_feed_forward():
    """With ``W_yh = 0`` step ``t`` depends on ``x_t`` alone: no other recurrence hides inside."""
    layer = nn.JordanRNN(H_IN, H, output_size=2, output_nonlinearity="tanh", dtype=F64)
    randomise(layer)
    with torch.no_grad():
        layer.cells[0].weight_yh.zero_()
    x = torch.randn(L, N, H_IN, dtype=F64)
    whole, _ = layer(x, (torch.randn(1, N, 2, dtype=F64),))
    one_by_one = torch.cat([layer(x[t : t + 1])[0] for t in range(L)])
    assert_same(whole, one_by_one)


def test_jordan_output_size_sets_the_state_and_the_next_layer_input():
    layer = nn.JordanRNN(3, 8, num_layers=2, bidirectional=True, output_size=2, learn_init=True)
    output, (y_n,) = layer(torch.randn(L, N, 3))
    assert output.shape == (L, N, 4) and y_n.shape == (4, N, 2)
    assert layer.state_sizes == (2,)
    assert [cell.input_size for cell in layer.cells] == [3, 3, 4, 4]
    assert layer.initial_state[0].shape == (4, 2)


# ---------------------------------------------------------------------- peephole LSTM


def peephole_and_lstm(bias: bool) -> tuple[nn.PeepholeLSTM, nn.LSTM]:
    """A random peephole LSTM (2 layers, bidirectional) and an LSTM with the same weights."""
    peephole = nn.PeepholeLSTM(H_IN, H, num_layers=2, bidirectional=True, bias=bias, dtype=F64)
    lstm = nn.LSTM(H_IN, H, num_layers=2, bidirectional=True, bias=bias, dtype=F64)
    randomise(peephole)
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ())
    with torch.no_grad():
        for k, cell in enumerate(peephole.cells):
            suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
            for name in names:
                getattr(lstm, name + suffix).copy_(getattr(cell, name))
    return peephole, lstm


@pytest.mark.parametrize("bias", [True, False])
def test_peephole_lstm_with_zero_peepholes_is_the_lstm(bias):
    peephole, lstm = peephole_and_lstm(bias)
    with torch.no_grad():
        for cell in peephole.cells:
            for name in ("weight_ci", "weight_cf", "weight_co"):
                getattr(cell, name).zero_()
    x, lengths = torch.randn(L, N, H_IN, dtype=F64), torch.tensor([2, L, 0])
    hx = random_state(peephole)
    out_p, state_p = peephole(x, hx, lengths=lengths)
    out_l, state_l = lstm(x, hx, lengths=lengths)
    assert_same((out_p, *state_p), (out_l, *state_l))


@pytest.mark.parametrize("peephole_name", ["weight_ci", "weight_cf", "weight_co"])
def test_each_peephole_changes_the_output(peephole_name):
    peephole, lstm = peephole_and_lstm(bias=True)
    with torch.no_grad():
        for cell in peephole.cells:
            for name in ("weight_ci", "weight_cf", "weight_co"):
                getattr(cell, name).fill_(0.5 if name == peephole_name else 0.0)
    x, hx = torch.randn(L, N, H_IN, dtype=F64), random_state(peephole)
    difference = (peephole(x, hx)[0] - lstm(x, hx)[0]).abs().max()
    assert difference > 1e-3


def test_peepholes_read_the_old_cell_for_i_f_and_the_new_cell_for_o():
    """One unit, one step, all weights zero: the gates are their biases and the peepholes."""
    cell = nn.PeepholeLSTMCell(1, 1, dtype=F64)
    b_i, b_f, b_g, b_o, w_ci, w_cf, w_co, c0, h0 = 0.3, -0.2, 0.8, 0.1, 0.7, -1.1, 1.3, 0.9, 0.4
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih.copy_(torch.tensor([b_i, b_f, b_g, b_o], dtype=F64))
        cell.weight_ci.fill_(w_ci)
        cell.weight_cf.fill_(w_cf)
        cell.weight_co.fill_(w_co)
    state = (torch.tensor([h0], dtype=F64), torch.tensor([c0], dtype=F64))
    h, c = cell(torch.zeros(1, dtype=F64), state)

    def sigmoid(a: float) -> float:
        return 1 / (1 + math.exp(-a))

    c1 = sigmoid(b_f + w_cf * c0) * c0 + sigmoid(b_i + w_ci * c0) * math.tanh(b_g)
    h1 = sigmoid(b_o + w_co * c1) * math.tanh(c1)
    assert c.item() == pytest.approx(c1, abs=1e-14)
    assert h.item() == pytest.approx(h1, abs=1e-14)


# ---------------------------------------------------------------------- layer norm

LN_LAYERS = [nn.LayerNormLSTM, nn.LayerNormGRU]


def ln_layer(layer_type, **options) -> nn.Recurrent:
    """A random layer-normalised stack with a negligible ``eps`` (exact invariances)."""
    layer = layer_type(H_IN, H, num_layers=2, bidirectional=True, eps=1e-30, dtype=F64, **options)
    randomise(layer)
    return layer


@pytest.mark.parametrize("layer_type", LN_LAYERS)
@pytest.mark.parametrize("weight", ["weight_ih", "weight_hh"])
@pytest.mark.parametrize("scale", [1e-3, 25.0])
def test_layer_norm_makes_each_side_invariant_to_its_weight_scale(layer_type, weight, scale):
    """``LN(k W a) = LN(W a)`` for ``k > 0``; LN over the sum of both sides would not be."""
    layer = ln_layer(layer_type)
    x, hx = torch.randn(L, N, H_IN, dtype=F64), random_state(layer)
    output, state = layer(x, hx)
    with torch.no_grad():
        for cell in layer.cells:
            getattr(cell, weight).mul_(scale)
    scaled_output, scaled_state = layer(x, hx)
    assert_same((scaled_output, *scaled_state), (output, *state), atol=1e-12)


@pytest.mark.parametrize("layer_type", LN_LAYERS)
def test_layer_norm_makes_the_output_invariant_to_each_input_vector_scale(layer_type):
    """Each ``x_t`` of each sequence may be rescaled on its own: LN is per step and sequence."""
    layer = ln_layer(layer_type)
    x, hx = torch.randn(L, N, H_IN, dtype=F64), random_state(layer)
    scales = torch.rand(L, N, 1, dtype=F64) * 10 + 0.01
    assert_same(layer(x * scales, hx)[0], layer(x, hx)[0], atol=1e-12)


def test_layer_norm_lstm_normalises_the_cell_for_the_output_but_keeps_it_raw():
    """All gates 0 (zero gains): ``c' = c/2`` and ``h' = tanh(LN_c(c'))/2 = tanh(z(c))/2``."""
    cell = nn.LayerNormLSTMCell(H_IN, H, eps=1e-30, dtype=F64)
    randomise(cell)
    with torch.no_grad():
        for name in ("ln_weight_ih", "ln_bias_ih", "ln_weight_hh", "ln_bias_hh", "ln_bias_c"):
            getattr(cell, name).zero_()
        cell.ln_weight_c.fill_(1.0)
    h0, c0 = torch.randn(N, H, dtype=F64), torch.randn(N, H, dtype=F64)
    standardised = (c0 - c0.mean(-1, keepdim=True)) / c0.std(-1, correction=0, keepdim=True)
    for scale in (1.0, 40.0):
        h, c = cell(torch.randn(N, H_IN, dtype=F64), (h0, scale * c0))
        assert_same(c, scale * c0 / 2)
        assert_same(h, torch.tanh(standardised) / 2, atol=1e-10)


@pytest.mark.parametrize("cell_type", [nn.LayerNormLSTMCell, nn.LayerNormGRUCell])
def test_layer_norm_cells_start_as_plain_standardisation(cell_type):
    cell = cell_type(H_IN, H)
    gates = 4 if cell_type is nn.LayerNormLSTMCell else 3
    ln = {name: p for name, p in cell.named_parameters() if name.startswith("ln_")}
    expected = {"ln_weight_ih", "ln_bias_ih", "ln_weight_hh", "ln_bias_hh"}
    if gates == 4:
        expected |= {"ln_weight_c", "ln_bias_c"}
    assert set(ln) == expected
    for name, p in ln.items():
        assert torch.equal(p, torch.ones_like(p) if "weight" in name else torch.zeros_like(p))
    assert cell.weight_ih.shape == (gates * H, H_IN) and cell.weight_hh.shape == (gates * H, H)
    no_bias = cell_type(H_IN, H, bias=False)
    assert all(getattr(no_bias, n) is None for n in expected if "bias" in n)


# ------------------------------------------------------------------------------ IndRNN


def decaying_indrnn(recurrent_max_abs: float | None, nonlinearity: str = "relu") -> nn.IndRNN:
    """No input, no bias, ``u = (5, -5, 0.3, -0.3)``: ``h_t`` is ``h_0`` times powers of u."""
    layer = nn.IndRNN(
        1, 4, nonlinearity=nonlinearity, recurrent_max_abs=recurrent_max_abs, dtype=F64
    )
    with torch.no_grad():
        layer.cells[0].weight_ih.zero_()
        layer.cells[0].bias_ih.zero_()
        layer.cells[0].weight_hh.copy_(torch.tensor([5.0, -5.0, 0.3, -0.3], dtype=F64))
    return layer


def test_indrnn_recurrent_max_abs_bounds_the_recurrent_weight():
    layer = decaying_indrnn(recurrent_max_abs=0.5)
    output, _ = layer(torch.zeros(L, 1, 1, dtype=F64), torch.ones(1, 1, 4, dtype=F64))
    t = torch.arange(1, L + 1, dtype=F64)
    # relu(u * h) with the clamped u = (0.5, -0.5, 0.3, -0.3): negative u kill the unit.
    expected = torch.stack([0.5**t, 0 * t, 0.3**t, 0 * t], dim=-1)
    assert_same(output[:, 0], expected)
    ones = torch.ones(1, 1, 4, dtype=F64)
    unbounded, _ = decaying_indrnn(None)(torch.zeros(L, 1, 1, dtype=F64), ones)
    assert_same(unbounded[:, 0, 0], 5.0**t)  # the same layer without the bound explodes


def test_indrnn_bound_with_tanh_keeps_the_sign_of_the_clamped_weight():
    layer = decaying_indrnn(recurrent_max_abs=0.5, nonlinearity="tanh")
    output, _ = layer(torch.zeros(2, 1, 1, dtype=F64), torch.ones(1, 1, 4, dtype=F64))
    u = torch.tensor([0.5, -0.5, 0.3, -0.3], dtype=F64)  # clamped
    assert_same(output[0, 0], torch.tanh(u))
    assert_same(output[1, 0], torch.tanh(u * torch.tanh(u)))


def test_indrnn_bound_is_applied_where_used_not_stored():
    """The parameter keeps its value; entries past the bound get no gradient."""
    layer = decaying_indrnn(recurrent_max_abs=0.5)
    x = torch.randn(L, 2, 1, dtype=F64)
    output, _ = layer(x, torch.ones(1, 2, 4, dtype=F64))
    output.sum().backward()
    u = layer.cells[0].weight_hh
    assert torch.equal(u.detach(), torch.tensor([5.0, -5.0, 0.3, -0.3], dtype=F64))
    assert u.grad[0] == 0 and u.grad[1] == 0 and u.grad[2] != 0


def test_indrnn_units_only_see_their_own_past():
    """``d h_T / d h_0`` is diagonal: no unit reads another unit's state."""
    layer = nn.IndRNN(H_IN, H, nonlinearity="tanh", dtype=F64)
    randomise(layer)
    x = torch.randn(L, 1, H_IN, dtype=F64)
    jacobian = torch.autograd.functional.jacobian(
        lambda h0: layer(x, h0.view(1, 1, H))[1][0].view(H), torch.randn(H, dtype=F64)
    )
    assert torch.count_nonzero(jacobian - torch.diag(torch.diagonal(jacobian))) == 0
    assert torch.all(torch.diagonal(jacobian) != 0)


@pytest.mark.parametrize(("bound", "high"), [(None, 1.0), (0.25, 0.25), (3.0, 1.0)])
def test_indrnn_init_recurrent_weights_in_zero_to_min_one_bound(bound, high):
    cell = nn.IndRNNCell(H_IN, 500, recurrent_max_abs=bound)
    assert cell.weight_hh.min() >= 0 and cell.weight_hh.max() <= high
    assert cell.weight_hh.max() > 0.9 * high  # the whole range is used
    assert torch.equal(cell.bias_ih, torch.zeros(500))
    assert cell.weight_ih.abs().max() <= 1 / math.sqrt(H_IN)


# ------------------------------------------------------------------------- all cells


PARAMETER_SHAPES = {
    nn.JordanCell: {
        "weight_ih": (H, H_IN),
        "bias_ih": (H,),
        "weight_yh": (H, 2),
        "weight_hy": (2, H),
        "bias_hy": (2,),
    },
    nn.PeepholeLSTMCell: {
        "weight_ih": (4 * H, H_IN),
        "weight_hh": (4 * H, H),
        "bias_ih": (4 * H,),
        "bias_hh": (4 * H,),
        "weight_ci": (H,),
        "weight_cf": (H,),
        "weight_co": (H,),
    },
    nn.IndRNNCell: {"weight_ih": (H, H_IN), "bias_ih": (H,), "weight_hh": (H,)},
}


@pytest.mark.parametrize("cell_type", list(PARAMETER_SHAPES))
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_shapes_and_absent_biases(cell_type, bias):
    options = {"output_size": 2} if cell_type is nn.JordanCell else {}
    cell = cell_type(H_IN, H, bias=bias, **options)
    expected = {
        name: shape
        for name, shape in PARAMETER_SHAPES[cell_type].items()
        if bias or not name.startswith("bias")
    }
    assert {name: tuple(p.shape) for name, p in cell.named_parameters()} == expected
    for name in PARAMETER_SHAPES[cell_type]:
        assert hasattr(cell, name)  # absent biases are registered as None


@pytest.mark.parametrize("cell_type", [nn.JordanCell, nn.PeepholeLSTMCell])
def test_torch_style_init_bound(cell_type):
    cell = cell_type(H_IN, 400)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= 1 / math.sqrt(400), name
        assert p.abs().max() > 0.9 / math.sqrt(400), name


@pytest.mark.parametrize("layer_type", LAYERS)
def test_layers_are_recurrent_with_their_cell_and_pass_options(layer_type):
    layer = layer_type(H_IN, H, 2, True, True, 0.0, learn_init=True, dtype=F64)
    assert isinstance(layer, nn.Recurrent)
    assert len(layer.cells) == 4 and all(type(c) is layer_type.cell for c in layer.cells)
    assert layer.batch_first and layer.bidirectional and layer.learn_init
    assert all(p.dtype == F64 for p in layer.parameters())


@pytest.mark.parametrize("layer_type", LAYERS)
def test_layers_train_with_recurrent_dropout_and_zoneout(layer_type):
    layer = layer_type(H_IN, H, num_layers=2, recurrent_dropout=0.3, zoneout=0.2, dropout=0.1)
    x = torch.randn(L, N, H_IN)
    output, _ = layer(x, lengths=torch.tensor([L, 1, 0]))
    output.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    layer.eval()
    assert_same(layer(x)[0], layer(x)[0], atol=0)  # eval: expectation, no sampling


# ------------------------------------------------------------------------------ errors


def rejects(exc: type[Exception], argument: str, received: str):
    """``exc("<argument>: expected ..., got ...<received>")``, raised inside rnnkit."""
    pattern = rf"^{re.escape(argument)}: expected .+, got (?:.*\W)?{re.escape(received)}(?![\w.])"
    return _Rejects(exc, pattern)


class _Rejects:
    def __init__(self, exc: type[Exception], pattern: str) -> None:
        self.raises = pytest.raises(exc, match=pattern)

    def __enter__(self) -> None:
        self.info = self.raises.__enter__()

    def __exit__(self, *exc_info: object) -> bool:
        suppressed = self.raises.__exit__(*exc_info)
        raised_in = Path(str(self.info.traceback[-1].path)).resolve()
        assert raised_in.is_relative_to(PACKAGE), f"raised by {raised_in}, not rnnkit"
        return suppressed


BAD_OPTIONS = [
    (nn.JordanCell, "output_size", 0, ValueError, "0"),
    (nn.JordanCell, "output_size", 2.5, TypeError, "float 2.5"),
    (nn.JordanCell, "output_size", True, TypeError, "bool True"),
    (nn.JordanCell, "nonlinearity", "sigmoid", ValueError, "'sigmoid'"),
    (nn.JordanCell, "output_nonlinearity", "softplus", ValueError, "'softplus'"),
    (nn.JordanCell, "output_nonlinearity", None, ValueError, "None"),
    (nn.IndRNNCell, "nonlinearity", "Tanh", ValueError, "'Tanh'"),
    (nn.IndRNNCell, "recurrent_max_abs", 0, ValueError, "0"),
    (nn.IndRNNCell, "recurrent_max_abs", -1.0, ValueError, "-1.0"),
    (nn.IndRNNCell, "recurrent_max_abs", math.inf, ValueError, "inf"),
    (nn.IndRNNCell, "recurrent_max_abs", math.nan, ValueError, "nan"),
    (nn.IndRNNCell, "recurrent_max_abs", "1", TypeError, "str '1'"),
    (nn.IndRNNCell, "recurrent_max_abs", True, TypeError, "bool True"),
    *[
        (cell_type, "eps", value, exc, received)
        for cell_type in (nn.LayerNormLSTMCell, nn.LayerNormGRUCell)
        for value, exc, received in [
            (0.0, ValueError, "0.0"),
            (-1e-5, ValueError, "-1e-05"),
            (math.nan, ValueError, "nan"),
            ("1e-5", TypeError, "str '1e-5'"),
            (None, TypeError, "NoneType None"),
        ]
    ],
    *[(cell_type, "bias", "yes", TypeError, "str 'yes'") for cell_type in CELLS],
    *[(cell_type, "bias", 1, TypeError, "int 1") for cell_type in CELLS],
    *[(cell_type, "hidden_size", 0, ValueError, "0") for cell_type in CELLS],
    *[(cell_type, "input_size", 1.0, TypeError, "float 1.0") for cell_type in CELLS],
]


@pytest.mark.parametrize(
    ("cell_type", "argument", "value", "exc", "received"),
    BAD_OPTIONS,
    ids=[f"{c.__name__}-{a}-{v!r}" for c, a, v, _, _ in BAD_OPTIONS],
)
def test_bad_cell_option_names_the_argument(cell_type, argument, value, exc, received):
    arguments = {"input_size": H_IN, "hidden_size": H, argument: value}
    with rejects(exc, argument, received):
        cell_type(**arguments)


@pytest.mark.parametrize(
    ("layer_type", "argument", "value", "received"),
    [
        (nn.JordanRNN, "output_size", -2, "-2"),
        (nn.IndRNN, "recurrent_max_abs", -0.5, "-0.5"),
        (nn.LayerNormLSTM, "eps", 0, "0"),
        (nn.LayerNormGRU, "eps", -1, "-1"),
    ],
)
def test_bad_cell_option_through_the_layer(layer_type, argument, value, received):
    with rejects(ValueError, argument, received):
        layer_type(H_IN, H, num_layers=2, **{argument: value})


@pytest.mark.parametrize("layer_type", LAYERS)
def test_unknown_option_is_rejected(layer_type):
    with pytest.raises(TypeError, match="unexpected keyword argument 'hiden_size'"):
        layer_type(H_IN, H, hiden_size=3)


@pytest.mark.parametrize("cell_type", CELLS)
def test_cell_step_checks_its_input_and_state(cell_type):
    cell = cell_type(H_IN, H)
    with rejects(ValueError, "input", f"({N}, {H_IN + 1})"):
        cell(torch.randn(N, H_IN + 1))
    with rejects(TypeError, "input", "torch.float64"):
        cell(torch.randn(N, H_IN, dtype=F64))
    state = tuple(torch.zeros(N, s) for s in cell.state_sizes)
    name = "hx" if len(state) == 1 else "hx[0]"  # as rnnkit's own cells name it
    with rejects(ValueError, name, f"({N + 1}, {cell.state_sizes[0]})"):
        cell(torch.randn(N, H_IN), (torch.zeros(N + 1, cell.state_sizes[0]), *state[1:]))
    with rejects(TypeError, "hx", f"tuple of {len(state) + 1}"):
        cell(torch.randn(N, H_IN), (*state, state[0]))
