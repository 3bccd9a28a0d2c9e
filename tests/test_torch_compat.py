"""Code written for torch.nn does not notice rnnkit's layers and cells.

Each test holds rnnkit to torch.nn itself as the reference: the exception torch raises for
the same bad input, torch's own methods and results, and the tools around torch.nn
(``torch.compile``, ``torch.export``, ``torch.load(weights_only=True)``, dynamic
quantization). PyTorch's own test suite, run with rnnkit swapped in, is in
``tests/torch_suite``.
"""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

from rnnkit import nn
from rnnkit.nn import LAYERS, make_layer

PAIRS = [
    (nn.RNN, torch.nn.RNN),
    (nn.LSTM, torch.nn.LSTM),
    (nn.GRU, torch.nn.GRU),
    (nn.RNNCell, torch.nn.RNNCell),
    (nn.LSTMCell, torch.nn.LSTMCell),
    (nn.GRUCell, torch.nn.GRUCell),
]
LAYER_PAIRS, CELL_PAIRS = PAIRS[:3], PAIRS[3:]
L, N, H_IN, H = 5, 3, 4, 6


def twins(pair: tuple[type, type], **options: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    """rnnkit's module and torch.nn's with the same parameters."""
    ours_type, torch_type = pair
    torch.manual_seed(0)
    ours = ours_type(H_IN, H, **options)
    theirs = torch_type(H_IN, H, **options)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def state(pair: tuple[type, type], *shape: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
    h = torch.randn(*shape)
    return (h, torch.randn(*shape)) if pair[1] in (torch.nn.LSTM, torch.nn.LSTMCell) else h


# ------------------------------------------------------------------------------ the surface


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_each_is_an_instance_of_its_torch_namesake(pair):
    ours, theirs = twins(pair)
    assert isinstance(ours, pair[1])
    assert [name for name, _ in ours.named_parameters()] == [
        name for name, _ in theirs.named_parameters()
    ]


@pytest.mark.parametrize("pair", LAYER_PAIRS, ids=lambda p: p[0].__name__)
def test_layers_have_torchs_methods_with_torchs_results(pair):
    ours, theirs = twins(pair, num_layers=2, bidirectional=True)
    assert ours.mode == theirs.mode
    x = torch.randn(L, N, H_IN)
    hx = state(pair, 4, N, H)
    assert ours.get_expected_hidden_size(x, None) == theirs.get_expected_hidden_size(x, None)
    ours.check_forward_args(x, hx, None)  # a valid call passes
    permutation = torch.tensor([2, 0, 1])
    for a, b in zip(torch.utils._pytree.tree_leaves(ours.permute_hidden(hx, permutation)),
                    torch.utils._pytree.tree_leaves(theirs.permute_hidden(hx, permutation)),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ours.flatten_parameters()
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [
        [w.shape for w in ws] for ws in theirs.all_weights
    ]
    torch.testing.assert_close(ours(x, hx)[0], theirs(x, hx)[0], rtol=0, atol=0)
    ours.double()
    assert all(w.dtype == torch.float64 for w in ours._flat_weights)


@pytest.mark.parametrize("pair", LAYER_PAIRS, ids=lambda p: p[0].__name__)
def test_functional_call_uses_the_weights_it_is_given(pair):
    ours, theirs = twins(pair)
    x = torch.randn(L, N, H_IN)
    other = {name: torch.randn_like(p) for name, p in ours.named_parameters()}
    expected = torch.func.functional_call(theirs, other, (x,))[0]
    torch.testing.assert_close(torch.func.functional_call(ours, other, (x,))[0], expected)


EXTENDED = sorted(set(LAYERS) - {"rnn", "lstm", "gru"})


@pytest.mark.parametrize("name", EXTENDED)
def test_extended_layers_have_the_same_surface(name):
    torch.manual_seed(0)
    layer = make_layer(name, H_IN, H, num_layers=2, bidirectional=True)
    x = torch.randn(L, N, H_IN)
    output, final = layer(x)
    layer.flatten_parameters()
    torch.testing.assert_close(layer(x)[0], output, rtol=0, atol=0)
    assert layer.get_expected_hidden_size(x, None) == tuple(final[0].shape)
    layer.check_forward_args(x, final, None)  # the state it returned is valid
    for bad in [(torch.randn(L, N, H_IN + 1), final), (x, tuple(s[:, :2] for s in final))]:
        with pytest.raises(RuntimeError):
            layer.check_forward_args(*bad, None)
        with pytest.raises(ValueError):
            layer.check_forward_args(*bad, None)
    order = torch.tensor([2, 0, 1])
    for permuted, s in zip(layer.permute_hidden(final, order), final, strict=True):
        torch.testing.assert_close(permuted, s[:, order], rtol=0, atol=0)
    assert {id(w) for w in layer._flat_weights} == {id(p) for p in layer.parameters()}
    assert len(layer.all_weights) == 4 and layer.mode == type(layer).__name__


def test_rnn_and_gru_take_proj_size_zero_and_refuse_the_rest():
    assert nn.GRU(H_IN, H, proj_size=0).proj_size == 0
    with pytest.raises(ValueError, match="only supported for LSTM, not RNN or GRU"):
        nn.RNN(H_IN, H, proj_size=2)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_a_module_without_training_reports_training_as_torch_does(pair):
    ours, theirs = twins(pair)
    x = torch.randn(N, H_IN) if pair in CELL_PAIRS else torch.randn(L, N, H_IN)
    messages = []
    for module in (ours, theirs):
        del module.training
        try:
            module(x)
            messages.append(None)
        except AttributeError as error:
            messages.append(str(error).replace("rnnkit.nn._rnn.", ""))
    if messages[1] is not None:  # torch's layers read `training`; its cells do not
        assert messages[0] is not None and "'training'" in messages[0]


# ------------------------------------------------------------------------------- the errors

LAYER_ERRORS = {
    "4-D input": lambda p: (torch.randn(L, N, H_IN, 1),),
    "input features": lambda p: (torch.randn(L, N, H_IN + 1),),
    "hx batch": lambda p: (torch.randn(L, N, H_IN), state(p, 1, N + 1, H)),
    "hx width": lambda p: (torch.randn(L, N, H_IN), state(p, 1, N, H + 1)),
    "hx dimensions": lambda p: (torch.randn(L, N, H_IN), state(p, N, H)),
    "input dtype": lambda p: (torch.randn(L, N, H_IN, dtype=torch.float64),),
    # with an hx: torch.nn.LSTM checks packed input only then
    "empty sequence": lambda p: (torch.randn(0, N, H_IN),),
    "packed features": lambda p: (pack_sequence([torch.randn(3, H_IN + 1)]), state(p, 1, 1, H)),
}
CELL_ERRORS = {
    "3-D input": lambda p: (torch.randn(1, N, H_IN),),
    "input features": lambda p: (torch.randn(N, H_IN + 1),),
    "hx batch": lambda p: (torch.randn(N, H_IN), state(p, N + 1, H)),
    "hx width": lambda p: (torch.randn(N, H_IN), state(p, N, H + 1)),
    "hx dimensions": lambda p: (torch.randn(N, H_IN), state(p, 1, N, H)),
    "input dtype": lambda p: (torch.randn(N, H_IN, dtype=torch.float64),),
}
CASES = [(p, name, make) for p in LAYER_PAIRS for name, make in LAYER_ERRORS.items()] + [
    (p, name, make) for p in CELL_PAIRS for name, make in CELL_ERRORS.items()
]


@pytest.mark.parametrize(
    ("pair", "situation", "make"), CASES, ids=[f"{p[0].__name__}-{n}" for p, n, _ in CASES]
)
def test_errors_are_torchs_class_and_words_and_rnnkits(pair, situation, make):
    ours, theirs = twins(pair)
    arguments = make(pair)
    try:
        theirs(*arguments)
        expected = None  # torch.nn.LSTM runs packed input of the wrong width (oneDNN)
    except Exception as error:
        expected = error
    with pytest.raises(Exception) as raised:
        ours(*arguments)
    # `except <torch's class>` and `except ValueError` (rnnkit's class for a bad value) catch it
    assert isinstance(raised.value, (RuntimeError if expected is None else type(expected)))
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith("hx" if situation.startswith("hx") else "input")
    if expected is None or ("dtype" in situation and pair in CELL_PAIRS):
        return  # for a cell's dtype torch's words come from a matrix product ("mat1 and mat2")
    first_sentence = str(expected).split(". ")[0]
    assert first_sentence in str(raised.value)


# ------------------------------------------------------------------- compile, export, load

EVERY_LAYER = [*sorted(LAYERS), "recurrent"]


class _UserCell(nn.RecurrentCell):
    """A cell rnnkit has never seen: ``h' = tanh(x W^T + h U^T)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, (hidden_size,))
        self.w = torch.nn.Linear(input_size, hidden_size)
        self.u = torch.nn.Linear(hidden_size, hidden_size, bias=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.w(x)

    def step(self, x_t, state, dropout_mask=None):
        return (torch.tanh(x_t + self.u(state[0])),)


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "recurrent":
        return nn.Recurrent(_UserCell, H_IN, H, num_layers=2)
    return make_layer(name, H_IN, H, num_layers=2, bidirectional=True)


class Model(torch.nn.Module):
    """A small model around a layer, as users compile them: the layer, then a linear head."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer
        probe = layer(torch.randn(2, 1, H_IN))[0]
        self.head = torch.nn.Linear(probe.shape[-1], 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        output = self.layer(x)[0] if lengths is None else self.layer(x, lengths=lengths)[0]
        return self.head(torch.relu(output))


def _run(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None):
    """The output and every parameter's gradient of one training step's backward."""
    model.zero_grad()
    output = model(x, lengths)
    output.square().sum().backward()
    return output.detach(), [p.grad.clone() for p in model.parameters()]


# dynamo reads .grad of every tensor it wraps (not shown under Python's default filters);
# the suite's "error" filter would raise it inside dynamo
DYNAMO_READS_GRAD = "ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning"


@pytest.mark.filterwarnings(DYNAMO_READS_GRAD)
@pytest.mark.parametrize("name", EVERY_LAYER)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_torch_compile_trains_and_infers_as_eager(name, with_lengths):
    torch._dynamo.reset()
    model = Model(build(name))
    x = torch.randn(L, N, H_IN)
    lengths = torch.tensor([L, 2, 0]) if with_lengths else None
    compiled = torch.compile(model, backend="aot_eager")
    output, grads = _run(compiled, x, lengths)
    expected_output, expected_grads = _run(model, x, lengths)
    torch.testing.assert_close(output, expected_output)
    for grad, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected)
    with torch.no_grad():
        torch.testing.assert_close(compiled.eval()(x, lengths), model.eval()(x, lengths))


@pytest.mark.filterwarnings(DYNAMO_READS_GRAD)
@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.LSTM(H_IN, H, zoneout=0.1, num_layers=2),  # eval zoneout: the engine
        lambda: nn.GRU(H_IN, H, recurrent_dropout=0.2, bidirectional=True),
    ],
    ids=["LSTM-zoneout", "GRU-recurrent-dropout"],
)
def test_torch_compile_keeps_out_of_the_engine_of_torch_nn_layers(make) -> None:
    """torch.compile runs torch.nn's RNN modules (rnnkit's LSTM and GRU are subclasses)
    without tracing their forward, but compiles the frames below it one by one: where such a
    layer runs rnnkit's engine (regularisers, ``lengths=`` in inference) its numba loops stay
    out of the compiler, whose warnings the suite's filter makes errors, and the numbers are
    eager's."""
    torch._dynamo.reset()
    model = Model(make())
    x, lengths = torch.randn(L, N, H_IN), torch.tensor([L, 2, 0])
    compiled = torch.compile(model, backend="aot_eager")
    torch.manual_seed(1)  # the same random regularisers in training
    output, grads = _run(compiled, x, None)
    torch.manual_seed(1)
    expected_output, expected_grads = _run(model, x, None)
    torch.testing.assert_close(output, expected_output)
    for grad, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected)
    with torch.no_grad():
        for given in (None, lengths):
            torch.testing.assert_close(compiled.eval()(x, given), model.eval()(x, given))


@pytest.mark.filterwarnings(DYNAMO_READS_GRAD)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor's use of torch.jit
@pytest.mark.parametrize("name", EVERY_LAYER)
def test_torch_compile_with_inductor_trains_as_eager(name):
    torch._dynamo.reset()
    model = Model(build(name))
    x = torch.randn(L, N, H_IN)
    output, grads = _run(torch.compile(model), x, None)
    expected_output, expected_grads = _run(model, x, None)
    torch.testing.assert_close(output, expected_output)
    for grad, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected)


EVERY_CELL = [
    cell
    for cell in (getattr(nn, name) for name in nn.__all__)
    if isinstance(cell, type)
    and issubclass(cell, nn.RecurrentCell)
    and cell not in (nn.RecurrentCell, nn.SpecCell)  # the bases
]


@pytest.mark.parametrize("cell_type", EVERY_CELL, ids=lambda c: c.__name__)
def test_torch_compile_traces_a_users_loop_over_a_cell(cell_type):
    """A cell runs one step: the compiler traces it (no graph break) inside the user's loop."""
    torch._dynamo.reset()
    cell = cell_type(H_IN, H)

    def run(x: torch.Tensor) -> torch.Tensor:
        state, outputs = None, []
        for x_t in x:
            state = cell(x_t, state)
            outputs.append(state if isinstance(state, torch.Tensor) else state[0])
        return torch.stack(outputs)

    x = torch.randn(L, N, H_IN)
    compiled = torch.compile(run, backend="aot_eager", fullgraph=True)
    for function in (compiled, run):
        cell.zero_grad()
        function(x).square().sum().backward()
        if function is compiled:
            output, grads = compiled(x), [p.grad.clone() for p in cell.parameters()]
    torch.testing.assert_close(output, run(x))
    for grad, p in zip(grads, cell.parameters(), strict=True):
        torch.testing.assert_close(grad, p.grad)


@pytest.mark.parametrize("cell_type", EVERY_CELL, ids=lambda c: c.__name__)
def test_calling_a_cell_returns_as_torch_nn_cells_do(cell_type):
    """torch.nn's rule for every cell: a one-tensor state comes back bare (as ``nn.GRUCell``)
    and goes in bare, several come back as a tuple (as ``nn.LSTMCell``), so a user's loop
    written for one torch.nn cell runs any rnnkit cell of the same state structure."""
    cell = cell_type(H_IN, H)
    sizes = cell.state_sizes
    for x, batch in ((torch.randn(N, H_IN), (N,)), (torch.randn(H_IN), ())):
        state = cell(x)
        for _ in range(2):  # from zeros, then fed back as it came
            if len(sizes) == 1:
                assert isinstance(state, torch.Tensor), type(state)
                assert state.shape == (*batch, sizes[0])
            else:
                assert isinstance(state, tuple) and len(state) == len(sizes)
                assert [s.shape for s in state] == [(*batch, size) for size in sizes]
            state = cell(x, state)


@pytest.mark.parametrize("name", EVERY_LAYER)
def test_torch_export_gives_the_layers_outputs(name):
    layer = build(name).eval()
    program = torch.export.export(layer, (torch.randn(L, N, H_IN),))
    x = torch.randn(L, N, H_IN)  # not the example the graph was traced with
    for a, b in zip(torch.utils._pytree.tree_leaves(program.module()(x)),
                    torch.utils._pytree.tree_leaves(layer(x)), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("learn_init", [False, True])
def test_whole_models_load_with_weights_only_naming_no_rnnkit_class(learn_init):
    layers = [make_layer(name, H_IN, H, learn_init=learn_init) for name in sorted(LAYERS)]
    cells = [cell(H_IN, H) for cell, _ in CELL_PAIRS]
    model = torch.nn.ModuleList(layers + cells)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # ModuleList: rnnkit allows its containers
    x = torch.randn(L, N, H_IN)
    for original, copy in zip(model, loaded, strict=True):
        assert type(copy) is type(original)
        inputs = x[0] if original in cells else x
        torch.testing.assert_close(copy(inputs)[0], original(inputs)[0], rtol=0, atol=0)


# --------------------------------------------------------------------------- quantization


class _Net(torch.nn.Module):
    def __init__(self, lstm, gru, cell) -> None:
        super().__init__()
        self.lstm, self.gru, self.cell = lstm, gru, cell
        self.head = torch.nn.Linear(2 * H, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        h, _ = self.cell(y[-1])
        return self.head(torch.cat([y[-1, :, :H], h], dim=-1))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.ao.quantization's own
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_quantize_dynamic_gives_torchs_quantized_model():
    torch.manual_seed(0)
    ours = _Net(nn.LSTM(H_IN, H, num_layers=2), nn.GRU(H, H, bidirectional=True),
                nn.LSTMCell(2 * H, H)).eval()  # fmt: skip
    theirs = _Net(torch.nn.LSTM(H_IN, H, num_layers=2), torch.nn.GRU(H, H, bidirectional=True),
                  torch.nn.LSTMCell(2 * H, H)).eval()  # fmt: skip
    theirs.load_state_dict(ours.state_dict())
    spec = {torch.nn.LSTM, torch.nn.GRU, torch.nn.LSTMCell, torch.nn.Linear}
    expected = torch.ao.quantization.quantize_dynamic(theirs, spec, dtype=torch.qint8)
    quantized = nn.quantize_dynamic(ours, spec, dtype=torch.qint8)
    assert isinstance(ours.lstm, nn.LSTM)  # not in place: the float model is untouched
    assert [type(m) for m in quantized.children()] == [type(m) for m in expected.children()]
    x = torch.randn(L, N, H_IN)
    torch.testing.assert_close(quantized(x), expected(x), rtol=0, atol=0)
    assert not torch.equal(expected(x), theirs(x))  # quantization did change the numbers


def test_to_torch_keeps_what_torch_cannot_compute():
    model = torch.nn.Sequential(nn.LSTM(H_IN, H, learn_init=True), nn.GRU(H, H, zoneout=0.1))
    assert nn.to_torch(model) is model
    assert [type(m) for m in model] == [nn.LSTM, nn.GRU]
    assert type(nn.to_torch(nn.GRU(H_IN, H))) is torch.nn.modules.rnn.GRU


# ------------------------------------------------------------------------------ the docs

DOC = Path(__file__).resolve().parents[1] / "docs" / "torch_compat.md"


def test_the_docs_example_runs_and_prints_both_wordings(capsys: pytest.CaptureFixture) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    exec(compile(textwrap.dedent(block), str(DOC), "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("input: expected H_in = input_size = 4 features")
    assert "(input.size(-1) must be equal to input_size. Expected 4, got 7)" in printed


def test_the_docs_links_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", DOC.read_text(encoding="utf-8"))
    assert links and all((DOC.parent / link).exists() for link in links), links
