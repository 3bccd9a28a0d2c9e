"""ONNX export through Scan loops (rnnkit.export._onnx_scan): every layer without an ONNX operator,
run by onnxruntime at several sizes from one export, matches the torch layer."""

from __future__ import annotations

from collections.abc import Callable
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

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnkit[onnx]')")
ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install 'rnnkit[onnx]')"
)

ATOL = 1e-5  # measured over 3 seeds: at most 1e-6, except the layer-normalised LSTM
# The layer-normalised LSTM, stacked and bidirectional: measured up to 1.7e-5 over 3 seeds
# at L = 20, where torch's own float32 result is up to 7.6e-6 from its float64 result (and
# onnxruntime's up to 5e-6): the normalisation of c amplifies rounding, in either runtime.
LN_LSTM_ATOL = 3e-5
SIZES = [(1, 6), (3, 20)]  # (N, L): neither the (2, 3) the export traces with
ONE_EPOCH = TrainConfig(max_epochs=1, batch_size=16)
EXTENDED = [name for name in rnn.LAYERS if name not in ("rnn", "lstm", "gru")]
STACKED = {"num_layers": 2, "bidirectional": True, "batch_first": True}


def make(cell: str, **options: object) -> Callable[[], nn.Module]:
    return lambda: rnn.make_layer(cell, 4, 8, **options)


LAYERS: dict[str, Callable[[], nn.Module]] = {
    **{cell: make(cell) for cell in EXTENDED},
    **{f"{cell} stacked bidirectional batch_first": make(cell, **STACKED) for cell in EXTENDED},
    "lstm proj_size stacked bidirectional": make(
        "lstm", proj_size=3, num_layers=2, bidirectional=True
    ),
    "lstm zoneout batch_first": make("lstm", zoneout=0.3, batch_first=True),
    "gru zoneout bidirectional": make("gru", zoneout=0.6, bidirectional=True),
    "rnn relu fused=False": make("rnn", nonlinearity="relu", fused=False),
    "gru fused=False bias=False": make("gru", fused=False, bias=False),
    "peephole_lstm zoneout bias=False": make("peephole_lstm", zoneout=0.2, bias=False),
    "layernorm_lstm bias=False eps": make("layernorm_lstm", bias=False, eps=1e-3),
    "layernorm_gru bias=False": make("layernorm_gru", bias=False),
    "indrnn tanh recurrent_max_abs": make("indrnn", nonlinearity="tanh", recurrent_max_abs=0.5),
    "mingru positive zoneout": make("mingru", positive=True, zoneout=0.1),
    "minlstm positive bias=False": make("minlstm", positive=True, bias=False),
    "mingru parallel=False": make("mingru", parallel=False),
    "jordan output_size softmax relu": make(
        "jordan", output_size=3, output_nonlinearity="softmax", nonlinearity="relu"
    ),
    "jordan sigmoid bias=False stacked": make(
        "jordan", output_size=5, output_nonlinearity="sigmoid", bias=False, **STACKED
    ),
    "jordan identity tanh": make("jordan", output_nonlinearity="tanh"),
    "mingru learn_init": make("mingru", learn_init=True, num_layers=2),
}


def run(path: Path, **inputs: Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: value.numpy() for name, value in inputs.items()})


def assert_close(
    onnx_outputs: list[np.ndarray], torch_outputs: tuple[Tensor, ...], atol: float = ATOL
) -> None:
    assert len(onnx_outputs) == len(torch_outputs)
    for got, expected in zip(onnx_outputs, torch_outputs, strict=True):
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), atol=atol, rtol=0)


def tolerance(layer: nn.Module) -> float:
    return LN_LSTM_ATOL if isinstance(layer, rnn.LayerNormLSTM) else ATOL


def flat(result: tuple) -> tuple[Tensor, ...]:
    """``(output, state)`` of a layer -> ``(output, *state)``."""
    output, state = result
    return (output, *(state if isinstance(state, tuple) else (state,)))


def random_state(layer: rnn.RecurrentBase, batch: int) -> tuple[Tensor, ...]:
    rows = layer.num_directions * layer.num_layers
    return tuple(torch.randn(rows, batch, size) for size in layer.state_sizes)


def state_feeds(state: tuple[Tensor, ...]) -> dict[str, Tensor]:
    return dict(zip(["h0", "c0"], state, strict=False))


def assert_scan_graph(path: Path) -> None:
    """Scan loops, no placeholder left, and a model the full ONNX checker accepts."""
    model = onnx.load(str(path))
    assert "Scan" in [node.op_type for node in model.graph.node]
    assert all(node.domain == "" for node in model.graph.node)
    assert [o.domain for o in model.opset_import] == [""]
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch_at_every_size_from_one_export(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = LAYERS[name]().train()  # export runs it in eval mode and restores the mode
    with torch.no_grad():
        for h0 in layer.initial_state or ():
            h0.normal_()
    path = export_onnx(layer, tmp_path / "layer.onnx")
    assert layer.training
    layer.eval()
    assert_scan_graph(path)
    count = len(layer.state_sizes)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "h0", "c0"][: 1 + count]
    assert [o.name for o in session.get_outputs()] == ["output", "hn", "cn"][: 1 + count]
    for batch, length in SIZES:
        shape = (batch, length, 4) if layer.batch_first else (length, batch, 4)
        x, state = torch.randn(shape), random_state(layer, batch)
        with torch.no_grad():
            expected = flat(layer(x, state if count > 1 else state[0]))
        assert_close(run(path, input=x, **state_feeds(state)), expected, tolerance(layer))


class Tagger(nn.Module):
    """A plain module passing ``lengths`` to an extended layer: ``(N, L, 4)`` -> ``(N, L, 2)``."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = rnn.IndRNN(4, 8, batch_first=True, bidirectional=True, num_layers=2)
        self.head = nn.Linear(16, 2)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.layer(x, lengths=lengths)[0])


def test_plain_module_with_lengths_masks_the_padding(tmp_path: Path) -> None:
    module = Tagger().eval()
    path = export_onnx(
        module,
        tmp_path / "tagger.onnx",
        example_inputs=(torch.randn(3, 4, 4), torch.tensor([4, 2, 3])),
        input_names=["input", "lengths"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N", 1: "L"}, "lengths": {0: "N"}, "output": {0: "N", 1: "L"}},
    )
    assert_scan_graph(path)
    for lengths in ([1], [9, 9], [8, 1, 3, 8, 5]):
        lengths = torch.tensor(lengths)
        x = torch.randn(len(lengths), int(lengths.max()), 4)
        with torch.no_grad():
            expected = (module(x, lengths),)
        assert_close(run(path, input=x, lengths=lengths), expected)


# ----------------------------------------------------------------------------- tasks


def test_forecaster_directory_with_an_extended_cell(tmp_path: Path) -> None:
    t = np.arange(300)
    series = TimeSeries(np.sin(2 * np.pi * t / 24)[:, None], ("y",), num_targets=1)
    model = Forecaster(
        cell="layernorm_gru", lookback=12, horizon=4, hidden_size=8, num_layers=2,
        season=24, training=ONE_EPOCH,
    )  # fmt: skip
    model.fit(series, val_size=48, progress=False)
    path = export_onnx(model.save(tmp_path / "model"), tmp_path / "forecaster.onnx")
    assert_scan_graph(path)
    network = model.network.eval()
    for batch, length in [(1, 12), (5, 20)]:
        x = torch.randn(batch, length, network.encoder.input_size)
        with torch.no_grad():
            expected = (network(x),)
        assert_close(run(path, input=x), expected)


@pytest.mark.parametrize("kind", ["classifier", "tagger"])
def test_lengths_tasks_with_an_extended_bidirectional_cell(kind: str, tmp_path: Path) -> None:
    texts = ["good fine great nice", "bad awful poor", "great good", "awful bad sad"] * 8
    if kind == "classifier":
        model = SequenceClassifier(
            cell="minlstm", hidden_size=8, embedding_size=8, pooling="last", training=ONE_EPOCH
        )
        model.fit(texts, [1, 0, 1, 0] * 8, progress=False)
    else:
        model = SequenceTagger(cell="peephole_lstm", hidden_size=8, embedding_size=4,
                               min_count=1, training=ONE_EPOCH)  # fmt: skip
        model.fit(texts, [[int(ch == "a") for ch in s] for s in texts], progress=False)
    path = export_onnx(model.save(tmp_path / "model"), tmp_path / f"{kind}.onnx")
    assert_scan_graph(path)
    network = model.network.eval()
    for lengths in ([1], [9, 9, 9], [8, 1, 3, 8, 5]):
        lengths = torch.tensor(lengths)
        ids = torch.randint(0, 8, (len(lengths), int(lengths.max())))
        with torch.no_grad():
            expected = (network(ids, lengths),)
        assert_close(run(path, input=ids, lengths=lengths), expected)


@pytest.mark.parametrize("cell", ["jordan", "layernorm_lstm"])
def test_generator_with_its_state(cell: str, tmp_path: Path) -> None:
    model = Generator(
        cell=cell, hidden_size=8, embedding_size=4, num_layers=2, sequence_length=16,
        training=ONE_EPOCH,
    )  # fmt: skip
    model.fit("the cat sat on the mat. " * 20, progress=False)
    path = export_onnx(model.save(tmp_path / "model"), tmp_path / "generator.onnx")
    assert_scan_graph(path)
    network = model.network.eval()
    for batch, length in SIZES:
        ids = torch.randint(0, len(model.vocabulary), (batch, length))
        state = random_state(network.layer, batch)
        with torch.no_grad():
            expected = flat(network(ids, state if len(state) > 1 else state[0]))
        assert_close(run(path, input=ids, **state_feeds(state)), expected, tolerance(network.layer))


# ----------------------------------------------------------------------------- refused


class OwnCell(rnn.RecurrentCell):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, (hidden_size,))
        self.ih = nn.Linear(input_size, hidden_size)

    def project(self, x: Tensor) -> Tensor:
        return self.ih(x)

    def step(self, x_t: Tensor, state: tuple[Tensor, ...], dropout_mask=None) -> tuple:
        return (torch.tanh(x_t + state[0]),)


def test_what_cannot_export_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "layer.onnx"
    with pytest.raises(ValueError, match="its cell OwnCell is not one of rnnkit's"):
        export_onnx(rnn.Recurrent(OwnCell, 4, 8), target)
    with pytest.raises(ValueError, match=r"proj_size=2: ONNX's LSTM .*\(rnnkit.nn.LSTM loads"):
        export_onnx(nn.LSTM(4, 8, proj_size=2), target)
    with pytest.raises(ValueError, match="LayerNormalization needs opset_version >= 17, got 16"):
        export_onnx(rnn.LayerNormGRU(4, 8), target, opset_version=16)
    assert list(tmp_path.iterdir()) == []


def test_older_opset_exports_cells_without_layer_norm(tmp_path: Path) -> None:
    layer = rnn.PeepholeLSTM(4, 8).eval()
    path = export_onnx(layer, tmp_path / "layer.onnx", opset_version=14)
    x, state = torch.randn(5, 2, 4), random_state(layer, 2)
    with torch.no_grad():
        expected = flat(layer(x, state))
    assert_close(run(path, input=x, **state_feeds(state)), expected)
