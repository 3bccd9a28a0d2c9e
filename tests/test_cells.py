"""The cells written once in :mod:`rnnkit.cells`: what each gets from its one file.

Every test here runs for every cell of the registry, so a new cell file is tested without
editing this one: the layer interface (stacking, directions, ``lengths``, ``PackedSequence``,
unbatched input, gradients), the names by which tasks and the CLI find it, and its options'
errors. The runtime and the ONNX export of these cells are tested with every other layer's,
in tests/test_runtime.py and tests/test_onnx_scan.py (they iterate ``rnnkit.nn.LAYERS``);
each cell's equations against an independent reference are in tests/test_cell_<name>.py
(RNN's, LSTM's and GRU's in tests/test_functional.py, and against torch.nn in
tests/test_parity_cells.py and tests/test_parity_layers.py).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from typer.testing import CliRunner

import rnnkit.functional as RF
import rnnkit.runtime as rt
from rnnkit import cells, nn
from rnnkit.cells import CELLS
from rnnkit.cli import app
from rnnkit.export import export_onnx, export_runtime
from rnnkit.runtime import _kernels
from rnnkit.runtime._file import write_file
from rnnkit.tasks import ForecasterConfig, Generator

F64 = torch.float64
NAMES = sorted(CELLS)
# Input width 4 (a fourth projection in SRU) and the hidden size (SRU's identity highway).
WIDTHS = [4, 5]


def make(name: str, input_size: int = 4, **options: object) -> nn.RecurrentBase:
    torch.manual_seed(0)
    return nn.make_layer(name, input_size, 5, dtype=F64, **options)


def as_tuple(state: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A layer's state as a tuple (torch.nn's drop-ins return a one-tensor state bare)."""
    return state if isinstance(state, tuple) else (state,)


def as_hx(state: tuple[torch.Tensor, ...]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """A state as a layer takes it (torch.nn's drop-ins take a one-tensor state bare)."""
    return state if len(state) > 1 else state[0]


def recurrence_cell(layer: nn.RecurrentBase, index: int, name: str) -> nn.RecurrentCell:
    """The cell of the forward recurrence ``index`` of ``layer`` (made with the default cell
    options): its own, or for a torch.nn drop-in, the hand-written cell holding that
    recurrence's flat weights."""
    spec = CELLS[name]
    if not spec.torch_native:
        return layer.recurrence(index, 0)
    inputs = layer.input_size if index == 0 else layer.state_sizes[0]
    cell = getattr(nn, spec.cell_name)(inputs, layer.hidden_size, dtype=F64)
    suffix = f"_l{index}"
    weights = {n: getattr(layer, n + suffix) for n, _ in cell.named_parameters()}
    cell.load_state_dict(weights)
    return cell


def test_the_registry_reads_the_package():
    files = Path(cells.__file__).parent.glob("[!_]*.py")
    assert sorted(CELLS[p.stem].name for p in files) == NAMES  # one cell per file, each found


def test_rnn_lstm_and_gru_are_cells_of_the_registry_and_the_layers_come_from_it():
    drop_ins = {name for name, spec in CELLS.items() if spec.torch_native}
    assert drop_ins == {"rnn", "lstm", "gru"}
    assert list(nn.LAYERS) == list(CELLS)  # no hand-written list of layers
    for name in drop_ins:
        spec = CELLS[name]
        assert nn.LAYERS[name].spec is spec and getattr(nn, spec.cell_name).spec is spec
        assert spec.name not in nn._from_spec.CLASSES  # nothing generated for a drop-in


def test_the_functional_steps_are_the_specs_steps():
    """rnnkit.functional's RNN, LSTM and GRU steps compute what the specs' steps compute, to
    the bit, gradients included (the projection ``P = 3`` and a recurrent dropout mask too)."""
    from rnnkit.nn._from_spec import TORCH

    torch.manual_seed(0)
    h, c, mask = torch.randn(2, 3, dtype=F64), torch.randn(2, 4, dtype=F64), torch.rand(2, 3)
    w = {
        "lstm": (torch.randn(16, 3, dtype=F64), torch.randn(16, dtype=F64)),
        "gru": (torch.randn(9, 3, dtype=F64), torch.randn(9, dtype=F64)),
        "rnn": (torch.randn(3, 3, dtype=F64), torch.randn(3, dtype=F64)),
    }
    w_hr = torch.randn(3, 4, dtype=F64, requires_grad=True)
    for weights in w.values():
        for t in weights:
            t.requires_grad_(True)
    gi = {name: torch.randn(2, ws[0].shape[0], dtype=F64) for name, ws in w.items()}

    def spec_step(name, state, **options):
        p = SimpleNamespace(weight_hh=w[name][0], bias_hh=w[name][1], **options)
        return CELLS[name].step(TORCH, p, gi[name], state, mask.to(F64))

    pairs = [
        (
            RF.lstm_recurrence(gi["lstm"], h, c, *w["lstm"], w_hr, mask.to(F64)),
            spec_step("lstm", (h, c), weight_hr=w_hr),
        ),
        (RF.gru_recurrence(gi["gru"], h, *w["gru"], mask.to(F64)), spec_step("gru", (h,))[0]),
        (
            RF.rnn_recurrence(gi["rnn"], h, *w["rnn"], "relu", mask.to(F64)),
            spec_step("rnn", (h,), nonlinearity="relu")[0],
        ),
    ]
    for ours, specs in pairs:
        ours, specs = as_tuple(ours), as_tuple(specs)
        for a, b in zip(ours, specs, strict=True):
            assert torch.equal(a, b)
        inputs = (w_hr, *(t for ws in w.values() for t in ws))
        first = torch.autograd.grad(sum(a.sum() for a in ours), inputs, allow_unused=True)
        second = torch.autograd.grad(sum(b.sum() for b in specs), inputs, allow_unused=True)
        for a, b in zip(first, second, strict=True):
            assert (a is None and b is None) or torch.equal(a, b)


def test_the_onnx_scan_and_the_runtime_run_the_drop_ins_specs(tmp_path, monkeypatch):
    """GRU's ONNX Scan body and its runtime NumPy step are written by its spec's step, and its
    compiled runtime kernel comes from its spec's hook: none is GRU's own."""
    from rnnkit.runtime._ops import NUMPY

    spec, seen = CELLS["gru"], []

    def step(ops, p, x_t, state, mask):
        seen.append(ops)
        return spec.step(ops, p, x_t, state, mask)

    def runtime_kernel(kernels, p):
        seen.append("runtime_kernel")
        return spec.runtime_kernel(kernels, p)

    traced = dataclasses.replace(spec, step=step, runtime_kernel=runtime_kernel)
    monkeypatch.setitem(CELLS, "gru", traced)
    monkeypatch.setattr(nn.GRU, "spec", traced)
    layer = nn.GRU(3, 4, fused=False).eval()
    export_onnx(layer, tmp_path / "gru.onnx")
    assert "_Ops" in {type(ops).__name__ for ops in seen}
    path = export_runtime(layer, tmp_path / "gru.rnnkit")
    seen.clear()
    rt.load(path, backend="numpy").step(np.zeros(3, np.float32))
    assert seen == [NUMPY]
    if rt.ACCELERATED:
        seen.clear()
        rt.load(path, backend="numba").step(np.zeros(3, np.float32))
        assert seen == ["runtime_kernel"]


@pytest.mark.parametrize("name", NAMES)
def test_each_cell_is_a_layer_a_cell_a_task_choice_and_a_runtime_cell(name):
    spec = CELLS[name]
    layer, cell = getattr(nn, spec.layer), getattr(nn, spec.cell_name)
    assert nn.LAYERS[name] is layer
    assert {spec.layer, spec.cell_name} <= set(nn.__all__)
    assert name in rt.CELLS
    assert ForecasterConfig(cell=name).cell == name
    if spec.torch_native:  # hand-written drop-ins for torch.nn's classes, on the spec
        assert issubclass(layer, getattr(torch.nn, spec.layer)) and layer.spec is spec
        assert issubclass(cell, getattr(torch.nn, spec.cell_name)) and cell.spec is spec
    else:
        assert layer.cell is cell and cell.__doc__ == spec.doc


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("input_size", WIDTHS)
def test_padded_batch_with_lengths_equals_each_sequence_alone(name, input_size):
    layer = make(name, input_size, num_layers=2, bidirectional=True)
    lengths = [7, 3, 1]
    x = torch.randn(7, 3, input_size, dtype=F64)
    state = tuple(torch.randn(4, 3, s, dtype=F64) for s in layer.state_sizes)
    out, final = layer(x, as_hx(state), lengths=torch.tensor(lengths))
    for n, length in enumerate(lengths):
        alone = as_hx(tuple(s[:, n : n + 1] for s in state))
        alone_out, alone_final = layer(x[:length, n : n + 1], alone)
        torch.testing.assert_close(out[:length, n : n + 1], alone_out, rtol=0, atol=1e-12)
        assert not out[length:, n].any()
        for s, s_alone in zip(as_tuple(final), as_tuple(alone_final), strict=True):
            torch.testing.assert_close(s[:, n : n + 1], s_alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_packed_sequence_equals_lengths(name):
    layer = make(name, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(6, 3, 4, dtype=F64), torch.tensor([4, 6, 2])
    out, final = layer(x, lengths=lengths)
    packed_out, packed_final = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
    padded, _ = pad_packed_sequence(packed_out, total_length=6)
    torch.testing.assert_close(padded, out, rtol=0, atol=1e-12)
    for a, b in zip(as_tuple(packed_final), as_tuple(final), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_a_layer_is_its_cells_stepped(name):
    """The layer's time loop and the cell's one-step ``forward`` agree, layer by layer."""
    layer = make(name, num_layers=2, batch_first=True)
    x = torch.randn(3, 6, 4, dtype=F64)
    out, final = layer(x)
    inputs = x.transpose(0, 1)
    for index in range(2):
        cell, state, outputs = recurrence_cell(layer, index, name), None, []
        for x_t in inputs:
            state = cell(x_t, state)
            if len(cell.state_sizes) == 1:  # torch.nn's rule: a one-tensor state comes bare
                assert isinstance(state, torch.Tensor)
                state = (state,)
            outputs.append(state[0])
        inputs = torch.stack(outputs)
        for k, s in enumerate(state):
            torch.testing.assert_close(as_tuple(final)[k][index], s, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, inputs.transpose(0, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_unbatched_input_is_a_batch_of_one(name):
    layer = make(name)
    x = torch.randn(6, 4, dtype=F64)
    out, final = layer(x)
    batched_out, batched_final = layer(x.unsqueeze(1))
    torch.testing.assert_close(out, batched_out.squeeze(1), rtol=0, atol=0)
    for a, b in zip(as_tuple(final), as_tuple(batched_final), strict=True):
        torch.testing.assert_close(a, b.squeeze(1), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("input_size", WIDTHS)
def test_gradients_match_finite_differences(name, input_size):
    layer = make(name, input_size, bidirectional=True, bias=False)
    x = torch.randn(4, 2, input_size, dtype=F64, requires_grad=True)
    weights = tuple(layer.parameters())

    def run(x, *weights):
        params = dict(zip((n for n, _ in layer.named_parameters()), weights, strict=True))
        return torch.func.functional_call(layer, params, (x,))[0]

    assert torch.autograd.gradcheck(run, (x, *weights))


@pytest.mark.parametrize("name", NAMES)
def test_recurrent_dropout_and_zoneout_change_training_only(name):
    drop = 0.5 if CELLS[name].recurrent_dropout else 0.0  # minGRU's state enters no weights
    layer = make(name, recurrent_dropout=drop, zoneout=0.3)
    x = torch.randn(6, 2, 4, dtype=F64)
    torch.manual_seed(1)
    trained = layer(x)[0]
    torch.manual_seed(2)
    assert not torch.equal(trained, layer(x)[0])  # fresh masks each call
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_option_is_named(name):
    if CELLS[name].torch_native:  # torch.nn's signature: Python's own error
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'colour'"):
            make(name, colour="red")
        return
    with pytest.raises(ValueError, match=r"^colour: not an option of the .* cell; its options"):
        make(name, colour="red")


def test_a_bad_option_value_is_named():
    with pytest.raises(ValueError, match=r"^nonlinearity: expected one of \('relu', 'tanh'\)"):
        make("ligru", nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"^eps: expected a finite number > 0, got -1"):
        make("ligru", eps=-1)


def test_a_runtime_file_with_a_bad_option_is_refused(tmp_path):
    path = export_runtime(make("ligru").float().eval(), tmp_path / "ligru.rnnkit")
    header, tensors = rt.read_file(path)
    header["layer"]["options"]["normalization"] = "batchnorm"
    bad = write_file(tmp_path / "bad.rnnkit", header, tensors)
    with pytest.raises(rt.RuntimeFileError, match="normalization"):
        rt.load(bad)


@pytest.mark.parametrize("name", NAMES)
def test_the_command_line_trains_saves_reloads_and_streams_each_cell(name, tmp_path):
    """``--cell NAME`` from the CLI to a model folder, back, and to the runtime."""
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    out = tmp_path / "run"
    args = ["generate", "--data", str(text), "--cell", name, "--epochs", "1", "--hidden-size",
            "8", "--sequence-length", "8", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = Generator.load(out / "model")
    assert isinstance(model.network.layer, getattr(nn, CELLS[name].layer))
    runtime = rt.load(export_runtime(model, tmp_path / "model.rnnkit"))
    greedy = {"length": 30, "top_k": 1}
    assert runtime.sample("the ", **greedy) == model.sample("the ", **greedy)


def test_the_numpy_ops_compute_what_the_torch_ops_compute():
    """The runtime's backend against the training one, op by op, at extreme values too."""
    from rnnkit.cells import ACTIVATIONS
    from rnnkit.nn._from_spec import TORCH
    from rnnkit.runtime._ops import NUMPY

    v = torch.cat([torch.randn(3, 8, dtype=F64), torch.tensor([[-800.0] * 4 + [800.0] * 4])])
    w, b = torch.randn(6, 8, dtype=F64), torch.randn(6, dtype=F64)
    gain, shift = torch.rand(8, dtype=F64) + 0.5, torch.randn(8, dtype=F64)
    normed = [t.numpy() for t in (v, gain, shift)]
    pairs = [(TORCH.act(v, name), NUMPY.act(v.numpy(), name)) for name in ACTIVATIONS]
    pairs += [
        (TORCH.linear(v, w, b), NUMPY.linear(v.numpy(), w.numpy(), b.numpy())),
        (TORCH.layer_norm(v, gain, shift, 1e-5), NUMPY.layer_norm(*normed, 1e-5)),
        (TORCH.concat(*TORCH.split(v, 4)), NUMPY.concat(*NUMPY.split(v.numpy(), 4))),
        (TORCH.clamp(v, -1.0, 2.0), NUMPY.clamp(v.numpy(), -1.0, 2.0)),
        (TORCH.softmax(v), NUMPY.softmax(v.numpy())),
    ]
    # a / b with b floored at the smallest normal number: an underflowed b gives no NaN
    b = torch.tensor([0.5, 1e-300, 0.0, 0.0], dtype=F64)
    a = torch.tensor([0.25, 1e-300, 0.0, 1e-320], dtype=F64)
    pairs.append((TORCH.divide(a, b), NUMPY.divide(a.numpy(), b.numpy())))
    assert TORCH.divide(a, b).tolist()[:3] == [0.5, 1.0, 0.0]
    for expected, got in pairs:
        got = torch.from_numpy(np.asarray(got))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_the_base_of_the_written_once_cells_is_not_a_cell() -> None:
    with pytest.raises(TypeError, match=r"^SpecCell is the base of the cells of rnnkit\.cells"):
        nn.SpecCell(3, 4)


# ----------------------------------------------------------------------------- the spec's parts


def test_option_kinds_check_type_and_value():
    width = cells.Option(None, integer=True, none_is_hidden_size=True)
    assert (width.check("o", None, 7), width.check("o", 3, 7)) == (7, 3)
    bound = cells.Option(None, positive=True, optional=True)
    assert (bound.check("m", None, 7), bound.check("m", 2, 7)) == (None, 2.0)
    for option, value, error, message in [
        (width, 0, ValueError, "o: expected an int >= 1, got 0"),
        (width, 2.5, TypeError, "o: expected an int, got float 2.5"),
        (width, True, TypeError, "o: expected an int, got bool True"),
        (bound, 0, ValueError, "m: expected a finite number > 0, got 0"),
        (bound, float("inf"), ValueError, "m: expected a finite number > 0, got inf"),
        (bound, "1", TypeError, "m: expected a positive number, got str '1'"),
    ]:
        with pytest.raises(error, match=f"^{message}$"):
            option.check(message[0], value, 7)


def _toy(**fields: object) -> type[nn.SpecCell]:
    """A one-weight cell ``h' = tanh(x_t + u * h)`` whose spec has ``fields``."""

    def parameters(input_size, hidden_size, bias, options):
        return {
            "weight_ih": cells.Param((hidden_size, input_size), bound=0.5),
            "weight_hh": cells.Param((hidden_size,), bound=0.75, low=0.25),
        }

    spec = cells.CellSpec(
        name="toy",
        layer="Toy",
        doc="A toy.",
        parameters=parameters,
        project=lambda ops, p, x: ops.linear(x, p.weight_ih),
        step=lambda ops, p, x_t, state, mask: (ops.tanh(x_t + p.weight_hh * state[0]),),
        **({"state": ("h",)} | fields),
    )
    return type("ToyCell", (nn.SpecCell,), {"spec": spec})


def test_param_low_draws_from_low_to_bound_in_the_specs_order():
    torch.manual_seed(0)
    cell = _toy()(3, 2000, dtype=F64)
    torch.manual_seed(0)
    first = torch.empty(2000, 3, dtype=F64).uniform_(-0.5, 0.5)
    expected = torch.empty(2000, dtype=F64).uniform_(0.25, 0.75)
    assert torch.equal(cell.weight_ih, first) and torch.equal(cell.weight_hh, expected)


def test_positional_arguments_are_the_specs_in_its_order():
    options = {"gain": cells.Option(1.0, positive=True), "mode": cells.Option("a", ("a", "b"))}
    cell = _toy(options=options, positional=("gain", "bias", "mode"))
    made = cell(3, 4, 2, False, "b")
    assert (made.gain, made.bias, made.mode) == (2.0, False, "b")
    assert str(inspect.signature(cell)) == (
        "(input_size, hidden_size, gain=1.0, bias=True, mode='a', *, device=None, dtype=None)"
    )
    with pytest.raises(TypeError, match=r"^ToyCell\(\) takes at most 5 positional arguments"):
        cell(3, 4, 2, False, "b", 1)
    with pytest.raises(TypeError, match=r"^ToyCell\(\) got multiple values for argument 'gain'"):
        cell(3, 4, 2, gain=3)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'colour'"):
        cell(3, 4, colour="red")


def test_state_widths_may_follow_the_options():
    options = {"width": cells.Option(None, integer=True, none_is_hidden_size=True)}
    cell = _toy(options=options, widths=lambda hidden, o: (hidden, o["width"]), state=("h", "s"))
    assert cell(3, 4).state_sizes == (4, 4) and cell(3, 4, width=6).state_sizes == (4, 6)


@pytest.mark.parametrize("name", NAMES)
def test_a_cell_with_an_engine_hook_runs_it_as_its_reference(name):
    layer = make(name, num_layers=2, bidirectional=True)
    fused = [layer.engine_kernel(i, d) for i in range(2) for d in range(2)]
    if CELLS[name].engine_kernel is None:
        assert fused == [None] * 4
        return
    assert all(f is not None for f in fused)
    x = torch.randn(6, 3, 4, dtype=F64, requires_grad=True)
    results = []
    for backend in ("auto", "reference"):
        layer.backend = backend
        out, final = layer(x, lengths=torch.tensor([6, 2, 4]))
        final = as_tuple(final)
        grads = torch.autograd.grad(out.sum() + final[0].sum(), (x, *layer.parameters()))
        results.append((out, *final, *grads))
    for fast, reference in zip(*results, strict=True):
        torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not rt.ACCELERATED, reason="numba is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_a_cell_with_a_runtime_hook_streams_on_its_kernel(name, tmp_path):
    path = export_runtime(make(name).float().eval(), tmp_path / "model.rnnkit")
    fast, plain = rt.load(path, backend="numba"), rt.load(path, backend="numpy")
    kernel = fast._recurrences[0][0][0]
    hook = CELLS[name].runtime_kernel
    assert (kernel in _kernels.NUMBA.values()) == (hook is not None)
    compiled = tuple(_kernels.NUMBA.values())
    assert plain._recurrences[0][0][0] not in compiled  # the spec's NumPy step
    x = np.random.default_rng(0).standard_normal((50, 2, 4)).astype(np.float32)
    for x_t in x:
        np.testing.assert_allclose(fast.step(x_t), plain.step(x_t), rtol=1e-4, atol=1e-5)
