"""ONNX export: onnxruntime reproduces the torch model at many sizes from one export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import rnnkit.nn as rnn
from rnnkit.data.series import TimeSeries
from rnnkit.export.onnx import export_onnx
from rnnkit.tasks import Forecaster, Generator, SequenceClassifier, SequenceTagger
from rnnkit.train import TrainConfig
from rnnkit.train.io import ModelFileError

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnkit[onnx]')")
ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install 'rnnkit[onnx]')"
)

ATOL = 1e-5
SIZES = [(1, 1), (3, 7), (5, 20)]  # (N, L): none of them the (2, 3) the export traces with
ONE_EPOCH = TrainConfig(max_epochs=1, batch_size=16)


def run(path: Path, **inputs: Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: value.numpy() for name, value in inputs.items()})


def assert_close(onnx_outputs: list[np.ndarray], torch_outputs: tuple[Tensor, ...]) -> None:
    assert len(onnx_outputs) == len(torch_outputs)
    for got, expected in zip(onnx_outputs, torch_outputs, strict=True):
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), atol=ATOL, rtol=0)


def flat(result: tuple) -> tuple[Tensor, ...]:
    """``(output, state)`` of a layer -> ``(output, h_n[, c_n])``."""
    output, state = result
    return (output, *(state if isinstance(state, tuple) else (state,)))


def random_state(layer: nn.Module, batch: int) -> tuple[Tensor, ...]:
    rows = (2 if layer.bidirectional else 1) * layer.num_layers
    count = 2 if isinstance(layer, (rnn.LSTM, nn.LSTM)) else 1
    return tuple(torch.randn(rows, batch, layer.hidden_size) for _ in range(count))


def state_feeds(state: tuple[Tensor, ...]) -> dict[str, Tensor]:
    return dict(zip(["h0", "c0"], state, strict=False))


def operators(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


# ----------------------------------------------------------------------------- layers

LAYERS = {
    "RNN": lambda: rnn.RNN(4, 8),
    "RNN relu batch_first": lambda: rnn.RNN(4, 8, nonlinearity="relu", batch_first=True),
    "LSTM": lambda: rnn.LSTM(4, 8),
    "LSTM 2 layers bidirectional batch_first": lambda: rnn.LSTM(
        4, 8, num_layers=2, bidirectional=True, batch_first=True
    ),
    "GRU": lambda: rnn.GRU(4, 8, bias=False),
    "GRU 3 layers bidirectional dropout": lambda: rnn.GRU(
        4, 8, num_layers=3, bidirectional=True, dropout=0.5
    ),
    "torch.nn.LSTM batch_first": lambda: nn.LSTM(4, 8, batch_first=True),
    "torch.nn.GRU bidirectional": lambda: nn.GRU(4, 8, bidirectional=True),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch_at_every_size_from_one_export(name: str, tmp_path: Path) -> None:
    layer = LAYERS[name]().train()  # export runs it in eval mode and restores the mode
    path = export_onnx(layer, tmp_path / "layer.onnx")
    assert layer.training
    layer.eval()
    lstm = isinstance(layer, (rnn.LSTM, nn.LSTM))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "h0", "c0"][: 3 if lstm else 2]
    assert [o.name for o in session.get_outputs()] == ["output", "hn", "cn"][: 3 if lstm else 2]
    # ONNX's own recurrent operator, one node per layer: no time loop unrolled into the graph.
    assert operators(path).count(type(layer).__name__) == layer.num_layers
    for batch, length in SIZES:
        shape = (batch, length, 4) if layer.batch_first else (length, batch, 4)
        x, state = torch.randn(shape), random_state(layer, batch)
        with torch.no_grad():
            expected = flat(layer(x, state if lstm else state[0]))
        assert_close(run(path, input=x, **state_feeds(state)), expected)


# ONNX's own LSTM operator, and a Scan loop (LayerNorm-LSTM amplifies rounding: see
# tests/test_onnx_scan.py)
@pytest.mark.parametrize(("layer_class", "atol"), [(rnn.LSTM, ATOL), (rnn.LayerNormLSTM, 3e-5)])
def test_state_outputs_continue_a_stream(layer_class: type, atol: float, tmp_path: Path) -> None:
    layer = layer_class(3, 6, num_layers=2, batch_first=True).eval()
    path = export_onnx(layer, tmp_path / "lstm.onnx")
    x = torch.randn(2, 12, 3)
    with torch.no_grad():
        whole, (h_n, c_n) = layer(x)
    h, c = torch.zeros(2, 2, 6), torch.zeros(2, 2, 6)
    pieces = []
    for chunk in x.split([5, 1, 6], dim=1):
        output, h_np, c_np = run(path, input=chunk, h0=h, c0=c)
        pieces.append(output)
        h, c = torch.from_numpy(h_np), torch.from_numpy(c_np)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole.numpy(), atol=atol)
    np.testing.assert_allclose(h.numpy(), h_n.numpy(), atol=atol)
    np.testing.assert_allclose(c.numpy(), c_n.numpy(), atol=atol)


def test_learned_initial_state_is_fed_as_h0(tmp_path: Path) -> None:
    layer = rnn.GRU(4, 8, learn_init=True).eval()
    with torch.no_grad():
        layer.initial_state[0].normal_()
    path = export_onnx(layer, tmp_path / "gru.onnx")
    x = torch.randn(6, 3, 4)
    h0 = layer.initial_state[0].detach().unsqueeze(1).expand(-1, 3, -1).contiguous()
    with torch.no_grad():
        expected = flat(layer(x))  # starts from the learned state
    assert_close(run(path, input=x, h0=h0), expected)


@pytest.mark.parametrize("options", [{"proj_size": 3}, {"zoneout": 0.1}, {"fused": False}])
def test_options_without_an_onnx_operator_export_as_scan(options: dict, tmp_path: Path) -> None:
    # Every such layer and option: tests/test_onnx_scan.py.
    layer = rnn.LSTM(4, 8, **options).eval()
    path = export_onnx(layer, tmp_path / "lstm.onnx")
    assert "Scan" in operators(path) and "LSTM" not in operators(path)
    x, state = torch.randn(7, 3, 4), random_state(layer, 3)
    if options.get("proj_size"):
        state = (torch.randn(1, 3, 3), state[1])
    with torch.no_grad():
        expected = flat(layer(x, state))
    assert_close(run(path, input=x, **state_feeds(state)), expected)


# ----------------------------------------------------------------------------- modules


class Tagger(nn.Module):
    """A plain module: ``(N, L, 4)`` -> ``(N, L, 2)``."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer, self.head = layer, nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layer(x)[0])


def test_plain_module_with_example_inputs_and_dynamic_axes(tmp_path: Path) -> None:
    module = Tagger(rnn.GRU(4, 8, batch_first=True)).eval()
    path = export_onnx(
        module,
        tmp_path / "tagger.onnx",
        example_inputs=(torch.randn(2, 3, 4),),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N", 1: "L"}, "output": {0: "N", 1: "L"}},
    )
    for batch, length in SIZES:
        x = torch.randn(batch, length, 4)
        with torch.no_grad():
            expected = (module(x),)
        assert_close(run(path, input=x), expected)


def test_export_restores_the_mode_of_every_submodule(tmp_path: Path) -> None:
    module = Tagger(rnn.GRU(4, 8, batch_first=True)).eval()
    module.head.train()
    export_onnx(module, tmp_path / "m.onnx", example_inputs=(torch.randn(2, 3, 4),))
    assert [m.training for m in module.modules()] == [False, False, True]
    layer = rnn.LSTM(4, 8).eval()
    export_onnx(layer, tmp_path / "layer.onnx")
    assert not layer.training


def test_plain_module_with_a_layer_that_cannot_export_is_refused(tmp_path: Path) -> None:
    module = Tagger(nn.LSTM(4, 8, proj_size=2, batch_first=True))
    with pytest.raises(ValueError, match=r"Tagger.layer \(LSTM\) is not exportable"):
        export_onnx(module, tmp_path / "m.onnx", example_inputs=(torch.randn(2, 3, 4),))


class Reshaper(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.view(len(x), -1)


def test_len_of_a_tensor_is_refused_because_it_fixes_the_batch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"calls len\(\) on a tensor .*use tensor.shape\[0\]"):
        export_onnx(Reshaper(), tmp_path / "m.onnx", example_inputs=(torch.randn(2, 3, 4),))
    assert list(tmp_path.iterdir()) == []


class Branchy(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if bool(x.sum() > 0) else -x


def test_a_user_modules_tracer_warnings_are_passed_on(tmp_path: Path) -> None:
    with pytest.warns(torch.jit.TracerWarning, match="Converting a tensor to a Python boolean"):
        export_onnx(Branchy(), tmp_path / "m.onnx", example_inputs=(torch.ones(2, 3),))


# ----------------------------------------------------------------------------- tasks


def sine_series() -> TimeSeries:
    t = np.arange(400)
    values = np.stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 50)], axis=1)
    return TimeSeries(values, ("y", "x"), num_targets=1)


@pytest.mark.parametrize("seeds", [1, 2])
def test_forecaster_directory(seeds: int, tmp_path: Path) -> None:
    """With seeds > 1 the graph averages the networks' changes, as forward does."""
    model = Forecaster(
        lookback=12, horizon=4, hidden_size=8, season=24, seeds=seeds, training=ONE_EPOCH
    )
    model.fit(sine_series(), val_size=48, progress=False)
    path = export_onnx(model.save(tmp_path / "model"), tmp_path / "forecaster.onnx")
    network = model.network.eval()
    for batch, length in [(1, 12), (5, 30)]:
        x = torch.randn(batch, length, network.input_size)
        with torch.no_grad():
            expected = (network(x),)
        assert_close(run(path, input=x), expected)


TEXTS = ["good fine great nice", "bad awful poor", "great good", "awful bad sad", "nice"] * 8
LABELS = [1, 0, 1, 0, 1] * 8


@pytest.mark.parametrize("kind", ["text mean+max", "numeric mean", "numeric last"])
def test_classifier_directory_with_lengths(kind: str, tmp_path: Path) -> None:
    pooling = kind.split()[1]
    model = SequenceClassifier(
        cell="lstm", hidden_size=8, embedding_size=8, pooling=pooling, training=ONE_EPOCH
    )
    numeric = kind.startswith("numeric")
    if numeric:
        model.fit(np.random.default_rng(0).normal(size=(40, 6, 3)), LABELS, progress=False)
    else:
        model.fit(TEXTS, LABELS, progress=False)
    path = export_onnx(model.save(tmp_path / "model"), tmp_path / "classifier.onnx")
    network = model.network.eval()
    for lengths in ([1], [9, 9, 9], [8, 1, 3, 8, 5]):
        lengths = torch.tensor(lengths)
        shape = (len(lengths), int(lengths.max()))
        x = torch.randn(*shape, 3) if numeric else torch.randint(0, 10, shape)
        with torch.no_grad():
            expected = (network(x, lengths),)
        assert_close(run(path, input=x, lengths=lengths), expected)


def test_tagger_directory(tmp_path: Path) -> None:
    strings = ["abcab", "bcabca", "cab", "abcabcab"] * 10
    tags = [[int(ch == "a") for ch in s] for s in strings]
    model = SequenceTagger(
        cell="gru", hidden_size=8, embedding_size=4, min_count=1, training=ONE_EPOCH
    )
    model.fit(strings, tags, progress=False)
    path = export_onnx(model.save(tmp_path / "model"), tmp_path / "tagger.onnx")
    network = model.network.eval()
    for lengths in ([1], [4, 4], [7, 2, 5]):
        lengths = torch.tensor(lengths)
        ids = torch.randint(0, 5, (len(lengths), int(lengths.max())))
        with torch.no_grad():
            expected = (network(ids, lengths),)
        assert_close(run(path, input=ids, lengths=lengths), expected)


@pytest.mark.parametrize(("cell", "from_directory"), [("lstm", True), ("gru", False)])
def test_generator_with_its_state(cell: str, from_directory: bool, tmp_path: Path) -> None:
    model = Generator(
        cell=cell,
        hidden_size=8,
        embedding_size=4,
        num_layers=2,
        sequence_length=16,
        training=ONE_EPOCH,
    )
    model.fit("the cat sat on the mat. " * 20, progress=False)
    source = model.save(tmp_path / "model") if from_directory else model
    path = export_onnx(source, tmp_path / "generator.onnx")
    network = model.network.eval()
    for batch, length in SIZES:
        ids = torch.randint(0, len(model.vocabulary), (batch, length))
        state = random_state(network.layer, batch)
        with torch.no_grad():
            expected = flat(network(ids, state if cell == "lstm" else state[0]))
        assert_close(run(path, input=ids, **state_feeds(state)), expected)


# ----------------------------------------------------------------------------- bad input


def test_bad_sources_and_arguments_give_clear_errors(tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    with pytest.raises(TypeError, match=r"source: expected a recurrent layer .* got int"):
        export_onnx(42, target)
    with pytest.raises(ModelFileError, match="is not an rnnkit model"):
        export_onnx(tmp_path / "missing", target)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"task": "captioner"}))
    with pytest.raises(ModelFileError, match="holds a 'captioner' model; ONNX export supports"):
        export_onnx(foreign, target)
    with pytest.raises(TypeError, match="example_inputs: expected a tuple of tensors"):
        export_onnx(Reshaper(), target)
    with pytest.raises(TypeError, match="expected None for a layer or task model"):
        export_onnx(rnn.GRU(4, 8), target, example_inputs=(torch.randn(3, 2, 4),))
    with pytest.raises(ValueError, match="opset_version: expected an int >= 14, got 9"):
        export_onnx(rnn.GRU(4, 8), target, opset_version=9)
    with pytest.raises(RuntimeError, match="Generator: call fit"):
        export_onnx(Generator(), target)
    assert not target.exists()


def test_a_failed_export_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    export_onnx(rnn.GRU(4, 8), target)
    before = target.read_bytes()
    with pytest.raises(ValueError, match="not exportable"):
        export_onnx(nn.LSTM(4, 8, proj_size=2), target)
    with pytest.raises(ValueError, match=r"len\(\)"):
        export_onnx(Reshaper(), target, example_inputs=(torch.randn(2, 3),))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    onnx.checker.check_model(str(target), full_check=True)
