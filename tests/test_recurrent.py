"""``Recurrent(cell, ...)``: any cell as a full layer.

* Parity: ``Recurrent(LSTMCell | GRUCell | RNNCell, ...)`` against ``rnnkit.nn.LSTM/GRU/RNN``
  and ``torch.nn.LSTM/GRU/RNN`` holding the same weights (``cells.{layer * D + d}.weight_ih``
  <-> ``weight_ih_l{layer}{_reverse}``) for outputs, final states and the gradients of a
  random weighted sum of both, over stacking, bidirectional, ``batch_first``, unbatched input,
  a given ``hx``, ``lengths`` (including 0, checked against torch.nn run on each sequence
  alone), ``PackedSequence`` and inter-layer dropout in eval; the same seed gives torch.nn's
  weights.
* A user-defined Jordan cell (the state is the previous output) against a plain Python loop
  of its equations, and trained on a linear filter whose target variance has a closed form.
* Bad input and the exact messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit.nn
from rnnkit.nn import GRUCell, LSTMCell, Recurrent, RecurrentCell, RNNCell

F64 = torch.float64
TOL = {"atol": 1e-10, "rtol": 1e-8}
# kind -> (rnnkit cell, rnnkit layer, torch.nn layer, options shared by all three)
KINDS = {
    "lstm": (LSTMCell, rnnkit.nn.LSTM, nn.LSTM, {}),
    "gru": (GRUCell, rnnkit.nn.GRU, nn.GRU, {}),
    "rnn_tanh": (RNNCell, rnnkit.nn.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNNCell, rnnkit.nn.RNN, nn.RNN, {"nonlinearity": "relu"}),
}
INPUT_SIZE, HIDDEN_SIZE, LENGTH, BATCH = 3, 5, 6, 4


def cell_name(torch_name: str, directions: int) -> str:
    """``weight_ih_l1_reverse`` -> ``cells.3.weight_ih`` (for ``D = 2``)."""
    match = re.fullmatch(r"(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?", torch_name)
    assert match is not None, torch_name
    index = int(match[2]) * directions + (1 if match[3] else 0)
    return f"cells.{index}.{match[1]}"


def to_cells(state_dict: dict[str, Tensor], directions: int) -> dict[str, Tensor]:
    return {cell_name(name, directions): value for name, value in state_dict.items()}


def torch_named_parameters(module: nn.Module, directions: int) -> dict[str, Tensor]:
    """Parameters keyed by torch.nn's names (``cells.3.weight_ih`` -> ``weight_ih_l1_reverse``)."""
    if not isinstance(module, Recurrent):
        return dict(module.named_parameters())
    named = {}
    for name, value in module.named_parameters():
        _, index, stem = name.split(".")
        layer, direction = divmod(int(index), directions)
        named[f"{stem}_l{layer}" + ("_reverse" if direction else "")] = value
    return named


# ----------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class Case:
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    form: str = "tensor"  # "tensor", "unbatched", "lengths" or "packed"
    with_hx: bool = False
    dropout: float = 0.0

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


CASES = {
    "single": Case(),
    "stacked": Case(num_layers=3),
    "bidirectional": Case(bidirectional=True),
    "stacked_bidirectional_hx": Case(num_layers=2, bidirectional=True, with_hx=True),
    "batch_first_hx": Case(num_layers=2, batch_first=True, with_hx=True),
    "unbatched_hx": Case(bidirectional=True, form="unbatched", with_hx=True),
    "unbatched": Case(num_layers=2, form="unbatched"),
    "lengths_with_zero": Case(2, True, True, "lengths", with_hx=True),
    "lengths_no_hx": Case(bidirectional=True, form="lengths"),
    "packed": Case(num_layers=2, bidirectional=True, form="packed", with_hx=True),
    "dropout_eval": Case(num_layers=3, bidirectional=True, with_hx=True, dropout=0.5),
}
LENGTHS = {"lengths": [6, 0, 3, 1], "packed": [4, 6, 1, 3]}


def build_three(kind: str, case: Case) -> tuple[nn.Module, nn.Module, Recurrent]:
    """torch.nn, rnnkit.nn and Recurrent layers holding torch.nn's weights."""
    cell, layer, reference, options = KINDS[kind]
    common = {
        "num_layers": case.num_layers,
        "bidirectional": case.bidirectional,
        "batch_first": case.batch_first,
        "dropout": case.dropout,
    }
    expected = reference(INPUT_SIZE, HIDDEN_SIZE, **common, **options, dtype=F64)
    dedicated = layer(INPUT_SIZE, HIDDEN_SIZE, **common, **options, dtype=F64)
    generic = Recurrent(cell, INPUT_SIZE, HIDDEN_SIZE, **common, dtype=F64, **options)
    dedicated.load_state_dict(expected.state_dict())
    generic.load_state_dict(to_cells(expected.state_dict(), case.directions))
    training = case.dropout == 0  # the dropout case checks eval; the others the training path
    return expected.train(training), dedicated.train(training), generic.train(training)


def forward(
    module: nn.Module, case: Case, x: Tensor, hx: tuple[Tensor, ...] | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``x`` (``(L, N, H_in)``, or ``(L, H_in)`` unbatched) in the case's input form.

    Returns the output as ``(L, N, D * H)`` zero-padded (``(L, D * H)`` unbatched) and the
    state as a tuple. torch.nn gets ``lengths`` as one run per sequence, so it is independent.
    """
    generic = isinstance(module, Recurrent)
    hx_arg = hx if hx is None or generic or len(hx) > 1 else hx[0]
    if case.form == "packed":
        packed = pack_padded_sequence(x, torch.tensor(LENGTHS["packed"]), enforce_sorted=False)
        output, state = module(packed, hx_arg)
        assert isinstance(output, PackedSequence)
        assert torch.equal(output.batch_sizes, packed.batch_sizes)
        output, _ = pad_packed_sequence(output, total_length=LENGTH)
    elif case.form == "lengths" and isinstance(module, nn.RNNBase):
        return per_sequence(module, case, x, hx)
    else:
        inputs = x.transpose(0, 1) if case.batch_first and x.dim() == 3 else x
        if case.form == "lengths":
            output, state = module(inputs, hx_arg, lengths=torch.tensor(LENGTHS["lengths"]))
        else:
            output, state = module(inputs, hx_arg)
        output = output.transpose(0, 1) if case.batch_first and x.dim() == 3 else output
    return output, state if isinstance(state, tuple) else (state,)


def per_sequence(
    module: nn.Module, case: Case, x: Tensor, hx: tuple[Tensor, ...] | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """torch.nn on each sequence alone, cut to its length; a length of 0 keeps ``hx``."""
    rows = case.directions * case.num_layers
    if hx is None:
        hx = tuple(x.new_zeros(rows, BATCH, s) for s in state_sizes(module))
    outputs, finals = [], []
    for b, n in enumerate(LENGTHS["lengths"]):
        h_b = tuple(h[:, b : b + 1] for h in hx)
        out_b = x.new_zeros(LENGTH, 1, case.directions * HIDDEN_SIZE)
        if n > 0:
            seq = x[:n, b : b + 1]
            seq = seq.transpose(0, 1) if case.batch_first else seq
            out, state = module(seq, h_b if len(h_b) > 1 else h_b[0])
            out = out.transpose(0, 1) if case.batch_first else out
            out_b = torch.cat([out, out_b[n:]])
            h_b = state if isinstance(state, tuple) else (state,)
        outputs.append(out_b)
        finals.append(h_b)
    return torch.cat(outputs, 1), tuple(torch.cat(f, 1) for f in zip(*finals, strict=True))


def state_sizes(module: nn.Module) -> tuple[int, ...]:
    if isinstance(module, Recurrent):
        return module.state_sizes
    lstm = isinstance(module, nn.LSTM | rnnkit.nn.LSTM)
    return (HIDDEN_SIZE, HIDDEN_SIZE) if lstm else (HIDDEN_SIZE,)


def outputs_and_gradients(
    module: nn.Module, case: Case, seed: int = 1
) -> tuple[Tensor, tuple[Tensor, ...], list[Tensor], dict[str, Tensor]]:
    """Output, state, gradients wrt (x, *hx) and per torch.nn parameter name."""
    g = torch.Generator().manual_seed(seed)
    lead = (LENGTH,) if case.form == "unbatched" else (LENGTH, BATCH)
    x = torch.randn(*lead, INPUT_SIZE, generator=g, dtype=F64, requires_grad=True)
    hx = None
    if case.with_hx:
        rows = (case.directions * case.num_layers, *lead[1:])
        hx = tuple(
            torch.randn(*rows, s, generator=g, dtype=F64, requires_grad=True)
            for s in state_sizes(module)
        )
    output, state = forward(module, case, x, hx)
    loss = (output * torch.randn(output.shape, generator=g, dtype=F64)).sum()
    for s in state:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=F64)).sum()
    params = torch_named_parameters(module, case.directions)
    grads = torch.autograd.grad(loss, [x, *(hx or ()), *params.values()])
    leaves = 1 + len(hx or ())
    return output, state, list(grads[:leaves]), dict(zip(params, grads[leaves:], strict=True))


@pytest.mark.parametrize("case_name", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_recurrent_matches_dedicated_layer_and_torch(kind: str, case_name: str) -> None:
    case = CASES[case_name]
    expected, dedicated, generic = build_three(kind, case)
    want_out, want_state, want_leaf_grads, want_param_grads = outputs_and_gradients(expected, case)
    assert all(g.abs().sum() > 0 for g in want_param_grads.values())  # every weight is used
    for module in (dedicated, generic):
        out, state, leaf_grads, param_grads = outputs_and_gradients(module, case)
        torch.testing.assert_close(out, want_out, **TOL)
        assert len(state) == len(want_state)
        for got, want in zip(state, want_state, strict=True):
            torch.testing.assert_close(got, want, **TOL)
        for got, want in zip(leaf_grads, want_leaf_grads, strict=True):
            torch.testing.assert_close(got, want, **TOL)
        assert param_grads.keys() == want_param_grads.keys()
        for name, want in want_param_grads.items():
            torch.testing.assert_close(param_grads[name], want, **TOL, msg=name)


def test_lengths_zero_keeps_initial_state_and_zero_output() -> None:
    layer = Recurrent(LSTMCell, 2, 3, num_layers=2, bidirectional=True, dtype=F64)
    x = torch.randn(4, 2, 2, dtype=F64)
    hx = (torch.randn(4, 2, 3, dtype=F64), torch.randn(4, 2, 3, dtype=F64))
    output, (h, c) = layer(x, hx, lengths=[4, 0])
    assert torch.equal(output[:, 1], torch.zeros(4, 6, dtype=F64))
    assert torch.equal(h[:, 1], hx[0][:, 1])
    assert torch.equal(c[:, 1], hx[1][:, 1])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        F64,
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_torch_weights(kind: str, dtype: torch.dtype, bias: bool) -> None:
    cell, layer, reference, options = KINDS[kind]
    args = (INPUT_SIZE, HIDDEN_SIZE, 2)
    torch.manual_seed(7)
    expected = reference(*args, bidirectional=True, bias=bias, dtype=dtype, **options)
    torch.manual_seed(7)
    generic = Recurrent(cell, *args, True, dtype=dtype, bias=bias, **options)
    torch.manual_seed(7)
    dedicated = layer(*args, bidirectional=True, bias=bias, dtype=dtype, **options)
    want = expected.state_dict()
    got = generic.state_dict()
    assert got.keys() == to_cells(want, 2).keys()
    for name, value in to_cells(want, 2).items():
        assert got[name].dtype == dtype
        assert torch.equal(got[name], value), name
    for name, value in dedicated.state_dict().items():
        assert torch.equal(value, want[name]), name


# ----------------------------------------------------------------------------- custom cell


class JordanCell(RecurrentCell):
    """Jordan (1986): ``y_t = W_hy tanh(W_ih x_t + b_ih + W_yh y_{t-1}) + b_hy``."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int = 1) -> None:
        super().__init__(input_size, (output_size,))
        self.ih = nn.Linear(input_size, hidden_size)
        self.yh = nn.Linear(output_size, hidden_size, bias=False)
        self.hy = nn.Linear(hidden_size, output_size)

    def project(self, x: Tensor) -> Tensor:
        return self.ih(x)

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        (y,) = state
        return (self.hy(torch.tanh(x_t + self.yh(y))),)


def jordan_loop(cell: JordanCell, xs: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The cell's equations on one sequence ``xs`` ``(n, H_in)`` from ``y`` ``(S,)``."""
    ys = []
    for x_t in xs:
        a = cell.ih.weight @ x_t + cell.ih.bias + cell.yh.weight @ y
        y = cell.hy.weight @ torch.tanh(a) + cell.hy.bias
        ys.append(y)
    return torch.stack(ys), y


def jordan_reference(layer: Recurrent, xs: Tensor, y0: Tensor) -> tuple[Tensor, Tensor]:
    """Two bidirectional layers of Jordan cells on one sequence, written out by hand."""
    finals, layer_input = [], xs
    for k in range(layer.num_layers):
        outs = []
        for d in range(2):
            cell = layer.cells[2 * k + d]
            seq = layer_input if d == 0 else layer_input.flip(0)
            ys, y = jordan_loop(cell, seq, y0[2 * k + d])
            outs.append(ys if d == 0 else ys.flip(0))
            finals.append(y)
        layer_input = torch.cat(outs, -1)
    return layer_input, torch.stack(finals)


def test_user_cell_matches_hand_written_loop() -> None:
    layer = Recurrent(JordanCell, 3, 7, num_layers=2, bidirectional=True, output_size=2)
    layer = layer.to(F64)
    assert layer.cells[2].ih.in_features == 4  # layer 1 reads D * S_0 features
    lengths = [5, 2, 0]
    x = torch.randn(5, 3, 3, dtype=F64)
    y0 = torch.randn(4, 3, 2, dtype=F64)
    output, (y_n,) = layer(x, (y0,), lengths=lengths)
    want_out, want_final = torch.zeros(5, 3, 4, dtype=F64), y0.clone()
    for b, n in enumerate(lengths):
        if n:
            want_out[:n, b], want_final[:, b] = jordan_reference(layer, x[:n, b], y0[:, b])
    torch.testing.assert_close(output, want_out, **TOL)
    torch.testing.assert_close(y_n, want_final, **TOL)
    params = list(layer.parameters())
    got = torch.autograd.grad(output.square().sum() + y_n.sum(), params)
    want = torch.autograd.grad(want_out.square().sum() + want_final.sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, **TOL)


def test_user_cell_learns_a_linear_filter() -> None:
    """Target ``y_t = a y_{t-1} + x_t``, ``x ~ N(0, s^2)``: ``Var(y) = s^2 / (1 - a^2)``.

    Predicting 0 (the best guess without the inputs) costs ``Var(y)``; a Jordan cell can
    represent the filter (tanh is near-linear for small activations), so training must bring
    the loss far below that closed-form value.
    """
    a, s, length, batch = 0.5, 0.5, 20, 32
    x = s * torch.randn(length, batch, 1)
    target = torch.zeros_like(x)
    y = torch.zeros(batch, 1)
    for t in range(length):
        y = a * y + x[t]
        target[t] = y
    variance = s**2 / (1 - a**2)
    assert abs(float(target[length // 2 :].var()) - variance) < 0.3 * variance  # sanity
    layer = Recurrent(JordanCell, 1, 8)
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        output, _ = layer(x)
        loss = (output - target).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert losses[-1] < 0.05 * variance, (losses[0], losses[-1], variance)


def test_user_cell_any_factory_and_options() -> None:
    """A factory (not a class) works; options reach every cell, layer k > 0 reads D * S_0."""
    made: list[tuple[int, int]] = []

    def factory(input_size: int, hidden_size: int, *, output_size: int) -> JordanCell:
        made.append((input_size, hidden_size))
        return JordanCell(input_size, hidden_size, output_size)

    layer = Recurrent(factory, 3, 5, num_layers=3, bidirectional=True, output_size=2)
    assert made == [(3, 5), (3, 5), (4, 5), (4, 5), (4, 5), (4, 5)]
    output, (y,) = layer(torch.randn(6, 2, 3))
    assert output.shape == (6, 2, 4)
    assert y.shape == (6, 2, 2)


def test_cell_without_parameters_runs() -> None:
    class Counter(RecurrentCell):
        def __init__(self, input_size: int, hidden_size: int) -> None:
            super().__init__(input_size, (hidden_size,))

        def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            return (state[0] + x_t,)

    _, (h,) = Recurrent(Counter, 2, 2)(torch.ones(3, 1, 2))
    assert torch.equal(h, torch.full((1, 1, 2), 3.0))


# ----------------------------------------------------------------------------- bad input


class WideFirstCell(RecurrentCell):
    """A cell whose state width depends on its input width (so layer 1 differs)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, (input_size,))
        self.weight = nn.Parameter(torch.zeros(()))


@pytest.mark.parametrize(
    ("cell", "kwargs", "error", "message"),
    [
        (5, {}, TypeError, "cell: expected a RecurrentCell class or factory, got 5"),
        (
            lambda i, h: nn.Linear(i, h),
            {},
            TypeError,
            "cell: expected a factory of RecurrentCell, it returned Linear",
        ),
        (
            lambda i, h: LSTMCell(i, h) if i == 3 else GRUCell(i, h),
            {"num_layers": 2},
            ValueError,
            "cell: every layer's cell must have the state sizes (4, 4) of the first, got (4,)",
        ),
        (
            WideFirstCell,
            {"num_layers": 2, "bidirectional": True},
            ValueError,
            "cell: every layer's cell must have the state sizes (3,) of the first, got (6,)",
        ),
        (LSTMCell, {"nonlinearity": "relu"}, TypeError, "nonlinearity"),
        (GRUCell, {"bais": False}, TypeError, "bais"),
        (RNNCell, {"nonlinearity": "sigmoid"}, ValueError, "nonlinearity: expected one of"),
        (LSTMCell, {"num_layers": 0}, ValueError, "num_layers: expected an int >= 1, got 0"),
        (LSTMCell, {"dropout": 1.0}, ValueError, "dropout: expected a float in [0, 1), got 1.0"),
        (
            LSTMCell,
            {"zoneout": -0.1},
            ValueError,
            "zoneout: expected a float in [0, 1), got -0.1",
        ),
        (
            LSTMCell,
            {"recurrent_dropout": "0.1"},
            TypeError,
            "recurrent_dropout: expected a float in [0, 1), got str",
        ),
        (LSTMCell, {"learn_init": 1}, TypeError, "learn_init: expected a bool, got int 1"),
        (LSTMCell, {"bidirectional": "yes"}, TypeError, "bidirectional: expected a bool"),
    ],
)
def test_bad_construction(cell: object, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        Recurrent(cell, 3, 4, **kwargs)
    assert message in str(info.value)


def test_bad_hidden_size_type() -> None:
    with pytest.raises(TypeError, match=re.escape("hidden_size: expected an int, got float 4.0")):
        Recurrent(LSTMCell, 3, 4.0)


@pytest.mark.parametrize(
    ("cell", "call", "error", "message"),
    [
        (
            LSTMCell,
            lambda m, x: m(x, torch.zeros(2, 3, 4)),
            TypeError,
            "hx: expected a tuple of 2 tensors, got ",
        ),
        (
            LSTMCell,
            lambda m, x: m(x, torch.zeros(2, 3, 4)),
            TypeError,
            "hx: expected a tuple of 2 tensors, got a tensor",
        ),
        (
            LSTMCell,
            lambda m, x: m(x, [torch.zeros(2, 3, 4)] * 3),
            TypeError,
            "hx: expected a tuple of 2 tensors, got a list of 3",
        ),
        (
            GRUCell,
            lambda m, x: m(x, (torch.zeros(2, 3, 4),) * 2),
            TypeError,
            "hx: expected a tensor, got a tuple of 2",
        ),
        (
            LSTMCell,
            lambda m, x: m(x, (torch.zeros(1, 3, 4), torch.zeros(2, 3, 4))),
            ValueError,
            "hx[0]: expected shape (D * num_layers, N, S) = (2, 3, 4), got (1, 3, 4)",
        ),
        (
            GRUCell,
            lambda m, x: m(x[:, 0], torch.zeros(2, 3, 4)),
            ValueError,
            "hx: expected shape (D * num_layers, S) for unbatched input = (2, 4), got (2, 3, 4)",
        ),
        (
            LSTMCell,
            lambda m, x: m(x, (torch.zeros(2, 3, 4, dtype=F64),) * 2),
            TypeError,
            "hx[0]: expected dtype torch.float32 (the module's parameters), got torch.float64",
        ),
        (
            GRUCell,
            lambda m, x: m(x[..., :2]),
            ValueError,
            "input: expected H_in = input_size = 3 features in the last dimension, got shape "
            "(5, 3, 2)",
        ),
        (
            GRUCell,
            lambda m, x: m(x[None]),
            ValueError,
            "input: expected 3 dimensions (L, N, H_in)",
        ),
        (
            GRUCell,
            lambda m, x: m(x, lengths=[5, 6, 1]),
            ValueError,
            "lengths: expected values in [0, L] = [0, 5], got min 1 and max 6",
        ),
        (
            GRUCell,
            lambda m, x: m(x, lengths=torch.tensor([5.0, 1.0, 1.0])),
            TypeError,
            "lengths: expected an integer dtype, got torch.float32",
        ),
        (
            GRUCell,
            lambda m, x: m(pack_padded_sequence(x, [5, 3, 1]), lengths=[5, 3, 1]),
            ValueError,
            "lengths: expected None when input is a PackedSequence",
        ),
    ],
)
def test_bad_forward(cell: type, call: object, error: type, message: str) -> None:
    layer = Recurrent(cell, 3, 4, bidirectional=True)
    x = torch.randn(5, 3, 3)
    with pytest.raises(error) as info:
        call(layer, x)
    assert message in str(info.value)


def test_first_parameter_is_the_first_of_parameters() -> None:
    """The layers check a call's dtype and device against ``first_parameter``: the parameter
    ``next(module.parameters(), None)`` gives, also with a learned initial state registered
    after the cells, a parametrized first weight (its original moves into a child module),
    a parameter set to None, and no parameters at all."""
    from torch.nn.utils import parametrize

    from rnnkit.nn._cell import first_parameter

    plain = Recurrent(LSTMCell, 3, 4, num_layers=2, learn_init=True)
    parametrized = rnnkit.nn.LayerNormLSTM(3, 4)
    parametrize.register_parametrization(parametrized.cells[0], "weight_ih", nn.Identity())
    emptied = nn.Linear(3, 4)
    emptied.weight = None
    for module in (plain, parametrized, emptied, nn.ReLU(), nn.Sequential(nn.ReLU(), plain)):
        assert first_parameter(module) is next(module.parameters(), None)
