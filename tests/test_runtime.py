"""The torch-free runtime against torch: long streams, states, batches, files and the CLI."""

from __future__ import annotations

import copy
import json
import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from typer.testing import CliRunner

import rnnkit.runtime as rt
from rnnkit.cli import app
from rnnkit.data import TimeSeries
from rnnkit.export import export_runtime
from rnnkit.nn import LAYERS
from rnnkit.runtime._file import HEADER_KEY, read_file, write_file
from rnnkit.tasks import Forecaster, Generator, SequenceClassifier
from rnnkit.train import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
BACKENDS = ["numpy", "numba"] if rt.ACCELERATED else ["numpy"]

# (layer class, options): every cell of rnnkit.nn.LAYERS, torch.nn's three, and options.
LAYER_CASES = [
    (torch.nn.LSTM, {}),
    (torch.nn.GRU, {}),
    (torch.nn.RNN, {"nonlinearity": "relu"}),
    *[(LAYERS[name], {}) for name in sorted(LAYERS)],
    (LAYERS["rnn"], {"bias": False}),
    (LAYERS["lstm"], {"proj_size": 5, "num_layers": 2}),
    (LAYERS["jordan"], {"output_size": 3, "output_nonlinearity": "softmax"}),
    (LAYERS["indrnn"], {"nonlinearity": "tanh", "recurrent_max_abs": 0.5}),
    (LAYERS["mingru"], {"positive": True, "num_layers": 2}),
    (LAYERS["minlstm"], {"positive": True}),
    (LAYERS["layernorm_gru"], {"bias": False}),
]


def _case_id(case: tuple[type, dict]) -> str:
    layer, options = case
    origin = "torch" if layer.__module__.startswith("torch") else "rnnkit"
    return f"{origin}.{layer.__name__}" + "".join(f"-{k}={v}" for k, v in options.items())


def _export(layer: torch.nn.Module, path: Path) -> Path:
    return export_runtime(layer.eval(), path)


def _torch_output(layer: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        output, _ = layer(torch.from_numpy(x))
    return output.numpy()


# ----------------------------------------------------------------------------- parity


# Every cell for 1,000 steps, torch.nn.LSTM's for 10,000 in the fast run; all for 10,000 slow.
STREAMS = [pytest.param(case, 1000, id=f"{_case_id(case)}-1000") for case in LAYER_CASES] + [
    pytest.param(
        case,
        10_000,
        id=f"{_case_id(case)}-10000",
        marks=() if case[0] is torch.nn.LSTM else pytest.mark.slow,
    )
    for case in LAYER_CASES
]


@pytest.mark.parametrize("dtype", rt.DTYPES)
@pytest.mark.parametrize(("case", "steps"), STREAMS)
def test_every_cell_streams_like_torch(case, steps: int, dtype: str, tmp_path: Path) -> None:
    """float32 against torch's float32 layer; float64 against the same layer in float64."""
    layer_class, options = case
    layer = layer_class(4, 12, **options).eval()
    model = rt.load(_export(layer, tmp_path / "model.rnnkit"), dtype=dtype)
    x = np.random.default_rng(0).standard_normal((steps, 2, 4)).astype(np.float32)
    if dtype == "float64":
        layer, x = copy.deepcopy(layer).double(), x.astype(np.float64)
    expected = _torch_output(layer, x)  # (L, 2, H_out)
    streamed = np.stack([model.step(x_t) for x_t in x])
    assert streamed.dtype == dtype and model.state[0].dtype == dtype
    if dtype == "float32" and layer_class is LAYERS["layernorm_lstm"]:
        # Any two float32 streams of it part (see the next two tests), by a chance amount:
        # held to the order of torch's own float32 distance from the float64 trajectory (up
        # to 5x it in 32 streams of 8 layers on either backend; each step is tested below).
        exact = _torch_output(copy.deepcopy(layer).double(), x.astype(np.float64))
        ours, torchs = np.abs(streamed - exact).max(), np.abs(expected - exact).max()
        assert ours <= 10 * torchs + 1e-4, (ours, torchs)
        return
    # absolute, or relative where ReLU states grow past 1
    np.testing.assert_allclose(streamed, expected, rtol=1e-5, atol=1e-5)


def _tolerance(layer_class: type) -> float:
    """1e-5, but LayerNorm-LSTM amplifies rounding (see the next two tests), so any two
    float32 implementations part over a stream; it is held more loosely there (and to 1e-5
    in float64, above)."""
    return 1e-3 if layer_class is LAYERS["layernorm_lstm"] else 1e-5


def test_layer_norm_lstm_float32_parts_from_itself_in_torch() -> None:
    """Why float32 parity is loose for LayerNorm-LSTM: torch's layer and a loop over its own
    cell, both float32, differ by more than 1e-5 after 10,000 steps; in float64 they agree."""
    layer = LAYERS["layernorm_lstm"](4, 12).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((10_000, 1, 4)))
    gaps = []
    for dtype in (torch.float32, torch.float64):
        layer, x = layer.to(dtype), x.to(dtype)
        with torch.no_grad():
            whole, _ = layer(x)
            h = c = x.new_zeros(1, 12)
            looped = []
            for x_t in x:
                h, c = layer.cells[0](x_t, (h, c))
                looped.append(h)
        gaps.append((whole - torch.stack(looped)).abs().max().item())
    assert gaps[0] > 1e-5 > 1e-9 > gaps[1], gaps


def test_float64_needs_the_numpy_kernels(lstm_file) -> None:
    _, path = lstm_file
    with pytest.raises(ValueError, match="dtype: expected one of"):
        rt.load(path, dtype="float16")
    if rt.ACCELERATED:
        with pytest.raises(ValueError, match="backend: 'numba' computes in float32"):
            rt.load(path, backend="numba", dtype="float64")


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_lstm_steps_as_exactly_as_torch_float32(backend: str, tmp_path) -> None:
    """LN of ``W_hh h`` is scale-free, so the relative rounding of a small ``h`` grows: torch's
    own float32 stream is 2e-5 off float64 after 40 steps, 1e-4 after 1,000. Each single
    step, from the float64 trajectory's state, must be as exact as torch's float32 step."""
    layer = LAYERS["layernorm_lstm"](4, 12).eval()
    exact = copy.deepcopy(layer).double().cells[0]
    model = rt.load(_export(layer, tmp_path / "model.rnnkit"), backend=backend)
    x = torch.randn(1000, 2, 4)
    h = c = torch.zeros(2, 12, dtype=torch.float64)
    ours, torchs = [], []
    with torch.no_grad():
        for x_t in x:
            h_next, c_next = exact(x_t.double(), (h, c))
            model.state = (h.float().numpy()[None], c.float().numpy()[None])
            ours.append(np.abs(model.step(x_t.numpy()) - h_next.numpy()).max())
            h32, _ = layer.cells[0](x_t, (h.float(), c.float()))
            torchs.append((h32.double() - h_next).abs().max().item())
            h, c = h_next, c_next
    assert max(ours) < 1e-6 and max(ours) < 2 * max(torchs), (max(ours), max(torchs))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYER_CASES, ids=_case_id)
def test_run_matches_torch_bidirectional_stacked_batch_first(case, backend, tmp_path) -> None:
    layer_class, options = case
    options = {"num_layers": 2, **options, "bidirectional": True, "batch_first": True}
    layer = layer_class(3, 7, **options).eval()
    x = np.random.default_rng(1).standard_normal((2, 40, 3)).astype(np.float32)  # (N, L, H_in)
    state = _torch_state(layer, batch=2)
    with torch.no_grad():
        expected, final = layer(torch.from_numpy(x), state)
    model = rt.load(_export(layer, tmp_path / "model.rnnkit"), backend=backend)
    output, final_rt = model.run(x, tuple(s.numpy() for s in _as_tuple(state)))
    tolerance = _tolerance(layer_class)
    np.testing.assert_allclose(output, expected.numpy(), atol=tolerance)
    for ours, theirs in zip(final_rt, _as_tuple(final), strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=tolerance)
    with pytest.raises(ValueError, match="bidirectional model needs the whole sequence"):
        model.step(x[0, 0])


def _torch_state(layer: torch.nn.Module, batch: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """A random initial state shaped like the layer's final state (batch_first input)."""
    with torch.no_grad():
        _, final = layer(torch.zeros(batch, 1, layer.input_size))
    state = tuple(torch.randn(s.shape) * 0.5 for s in _as_tuple(final))
    return state if isinstance(final, tuple) else state[0]


def _as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.skipif(not rt.ACCELERATED, reason="numba is not installed")
@pytest.mark.parametrize("case", LAYER_CASES, ids=_case_id)
def test_numba_and_numpy_backends_agree(case, tmp_path: Path) -> None:
    layer_class, options = case
    path = _export(layer_class(4, 9, **options), tmp_path / "model.rnnkit")
    x = np.random.default_rng(2).standard_normal((300, 3, 4)).astype(np.float32)
    fast, plain = rt.load(path, backend="numba"), rt.load(path, backend="numpy")
    tolerance = 1e-3 if layer_class is LAYERS["layernorm_lstm"] else 2e-6  # see _tolerance
    for x_t in x:
        np.testing.assert_allclose(fast.step(x_t), plain.step(x_t), atol=tolerance)


def test_learned_initial_state_is_exported(tmp_path: Path) -> None:
    layer = LAYERS["gru"](4, 6, num_layers=2, learn_init=True)
    with torch.no_grad():
        for h0 in layer.initial_state:
            h0.normal_()
    x = np.random.default_rng(3).standard_normal((50, 1, 4)).astype(np.float32)
    model = rt.load(_export(layer, tmp_path / "model.rnnkit"))
    streamed = np.stack([model.step(x_t) for x_t in x])
    np.testing.assert_allclose(streamed, _torch_output(layer, x), atol=1e-5)


# ----------------------------------------------------------------------------- streaming


@pytest.fixture
def lstm_file(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    layer = torch.nn.LSTM(4, 16, num_layers=2).eval()
    return layer, _export(layer, tmp_path / "lstm.rnnkit")


def test_state_round_trip_resumes_a_stream_exactly(lstm_file) -> None:
    _, path = lstm_file
    x = np.random.default_rng(4).standard_normal((150, 4)).astype(np.float32)
    model = rt.load(path)
    assert model.state is None
    for x_t in x[:100]:
        model.step(x_t)
    checkpoint = model.state
    assert [s.shape for s in checkpoint] == [(2, 1, 16), (2, 1, 16)]
    tail = np.stack([model.step(x_t) for x_t in x[100:]])
    resumed = rt.load(path)
    resumed.state = checkpoint
    np.testing.assert_array_equal(np.stack([resumed.step(x_t) for x_t in x[100:]]), tail)
    model.reset()
    fresh = rt.load(path)
    np.testing.assert_array_equal(model.step(x[0]), fresh.step(x[0]))


def test_a_batch_of_streams_equals_separate_streams(lstm_file) -> None:
    layer, path = lstm_file
    x = np.random.default_rng(5).standard_normal((60, 3, 4)).astype(np.float32)
    batched = rt.load(path)
    together = np.stack([batched.step(x_t) for x_t in x])  # (L, 3, H)
    for n in range(3):
        alone = rt.load(path)
        np.testing.assert_allclose(
            np.stack([alone.step(x_t) for x_t in x[:, n]]), together[:, n], atol=1e-7
        )
    np.testing.assert_allclose(together, _torch_output(layer, x), atol=1e-5)


def test_step_and_state_errors_name_the_argument(lstm_file) -> None:
    _, path = lstm_file
    model = rt.load(path)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(H_in,\) or \(N, H_in\)"):
        model.step(np.zeros(5))
    model.step(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"x_t: expected 2 streams .* call reset"):
        model.step(np.zeros(4))
    with pytest.raises(ValueError, match=r"state\[1\]: expected shape \(2, N, 16\)"):
        model.state = (np.zeros((2, 1, 16)), np.zeros((2, 1, 15)))
    with pytest.raises(ValueError, match="xs: expected shape"):
        model.run(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="backend: expected one of"):
        rt.load(path, backend="gpu")


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("blocked", [("torch",), ("torch", "numba")])
def test_the_runtime_runs_where_torch_cannot_be_imported(lstm_file, blocked, tmp_path) -> None:
    layer, path = lstm_file
    x = np.random.default_rng(6).standard_normal((20, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        f"import sys; sys.modules.update(dict.fromkeys({blocked!r}))\n"  # their imports fail
        "import numpy as np, rnnkit.runtime as rt\n"
        f"assert rt.ACCELERATED is {'numba' not in blocked}\n"
        f"model = rt.load({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, np.stack([model.step(x_t) for x_t in x]))\n"
        "assert sys.modules['torch'] is None\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    expected = _torch_output(layer, x[:, None])[:, 0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)


def _rewrite(path: Path, out: Path, header=None, drop: str | None = None, reshape=None) -> Path:
    header_read, tensors = read_file(path)
    header_read = {k: v for k, v in header_read.items() if k not in ("format", "version")}
    tensors = {k: v for k, v in tensors.items() if k != drop}
    if reshape is not None:
        tensors[reshape] = tensors[reshape][:-1]
    return write_file(out, header if header is not None else header_read, tensors)


def test_bad_files_raise_clear_errors(lstm_file, tmp_path: Path) -> None:
    _, good = lstm_file
    data = good.read_bytes()
    (tmp_path / "truncated.rnnkit").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.rnnkit").write_bytes(os.urandom(256))
    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "foreign.rnnkit")
    header, _ = read_file(good)
    raw = tmp_path / "version.rnnkit"
    save_file(
        {"x": np.zeros(1, np.float32)},
        raw,
        metadata={HEADER_KEY: json.dumps({**header, "version": 99})},
    )
    cases = {
        tmp_path / "missing.rnnkit": "no such file",
        tmp_path / "truncated.rnnkit": "truncated, corrupt or not a safetensors file",
        tmp_path / "garbage.rnnkit": "truncated, corrupt or not a safetensors file",
        tmp_path / "foreign.rnnkit": "without an rnnkit header",
        raw: "format version 99; this rnnkit reads version 1",
        _rewrite(good, tmp_path / "drop.rnnkit", drop="layer.1.0.weight_hh"): (
            "tensor 'layer.1.0.weight_hh' is missing"
        ),
        _rewrite(good, tmp_path / "shape.rnnkit", reshape="layer.0.0.bias_ih"): (
            r"tensor 'layer.0.0.bias_ih': expected float32 \(64,\), got float32 \(63,\)"
        ),
        _rewrite(good, tmp_path / "cell.rnnkit", {"architecture": "layer", "layer": {}}): (
            "layer.cell is missing"
        ),
        _rewrite(good, tmp_path / "arch.rnnkit", {"architecture": "transformer"}): (
            "unknown architecture 'transformer'"
        ),
    }
    for path, message in cases.items():
        with pytest.raises(rt.RuntimeFileError, match=message) as error:
            rt.load(path)
        assert str(path) in str(error.value)
        assert isinstance(error.value, ValueError)


def test_files_written_before_lstm_and_gru_were_cells_still_load(tmp_path: Path) -> None:
    """Files from before RNN, LSTM and GRU were cells of rnnkit.cells give LSTM and GRU the
    nonlinearity "tanh", no option of theirs: they load and stream as the files of now; any
    other nonlinearity is refused, naming it."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    for layer in (LAYERS["lstm"](3, 5, proj_size=2), torch.nn.GRU(3, 5, bidirectional=True)):
        path = _export(layer, tmp_path / "now.rnnkit")
        header, tensors = read_file(path)
        assert "nonlinearity" not in header["layer"]["options"]
        header["layer"]["options"]["nonlinearity"] = "tanh"
        before = write_file(tmp_path / "before.rnnkit", header, tensors)
        for backend in BACKENDS:
            now, then = rt.load(path, backend=backend), rt.load(before, backend=backend)
            np.testing.assert_array_equal(then.run(x)[0], now.run(x)[0])
        header["layer"]["options"]["nonlinearity"] = "relu"
        bad = write_file(tmp_path / "bad.rnnkit", header, tensors)
        with pytest.raises(rt.RuntimeFileError, match="nonlinearity: not an option"):
            rt.load(bad)


def test_export_rejects_what_the_runtime_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"model: the runtime runs torch\.nn\.RNN/LSTM/GRU"):
        export_runtime(torch.nn.Linear(2, 3), tmp_path / "x.rnnkit")
    with pytest.raises(ValueError, match="zoneout"):
        export_runtime(LAYERS["gru"](2, 3, zoneout=0.1), tmp_path / "x.rnnkit")
    with pytest.raises(TypeError, match="model: expected a recurrent layer"):
        export_runtime(42, tmp_path / "x.rnnkit")
    assert not (tmp_path / "x.rnnkit").exists()


def test_importing_the_runtime_does_not_import_torch() -> None:
    script = "import sys, rnnkit.runtime; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- forecaster

SEASON = 12


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory) -> tuple[Path, TimeSeries, Forecaster]:
    rng = np.random.default_rng(7)
    steps = np.arange(360)
    load = 10 + 3 * np.sin(2 * np.pi * steps / SEASON) + rng.normal(0, 0.3, steps.size)
    temperature = 5 + np.cos(2 * np.pi * steps / 48) + rng.normal(0, 0.1, steps.size)
    stamps = np.datetime64("2024-03-01T00:00") + steps * np.timedelta64(30, "m")
    series = TimeSeries(np.stack([load, temperature], axis=1), ("load", "temp"), 1, stamps)
    model = Forecaster(
        lookback=16, horizon=6, stride=2, cell="gru", hidden_size=8, season=SEASON,
        blend=False, transform="none", base="seasonal naive",
        training=TrainConfig(max_epochs=2, batch_size=32, learning_rate=1e-2),
    )  # fmt: skip
    model.fit(series.slice(stop=-60), val_size=60, progress=False)
    directory = model.save(tmp_path_factory.mktemp("forecaster") / "model")
    return directory, series, model


def test_streamed_forecasts_equal_forecaster_predict(forecaster, tmp_path: Path) -> None:
    directory, series, model = forecaster
    runtime = rt.load(export_runtime(directory, tmp_path / "forecaster.rnnkit"))
    assert isinstance(runtime, rt.StreamingForecaster) and runtime.calendar
    assert runtime.warmup == 16 + SEASON
    streamed = [runtime.step(v, t) for v, t in zip(series.values, series.timestamps, strict=True)]
    assert all(f is None for f in streamed[: runtime.warmup - 1])
    origins = list(range(runtime.warmup, len(series) + 1))
    expected = model.predict(series, origins)  # (M, horizon, K)
    np.testing.assert_allclose(np.stack(streamed[runtime.warmup - 1 :]), expected, atol=1e-4)
    np.testing.assert_allclose(runtime.run(series.values, series.timestamps), expected[-1])
    # resume from a checkpointed history
    history = runtime.state
    resumed = rt.load(tmp_path / "forecaster.rnnkit")
    resumed.state = history
    last = (series.values[-1], series.timestamps[-1] + np.timedelta64(30, "m"))
    np.testing.assert_array_equal(resumed.step(*last), runtime.step(*last))
    with pytest.raises(ValueError, match="timestamp: this model uses calendar features"):
        runtime.step(series.values[0])
    before = runtime.state
    with pytest.raises(ValueError, match="timestamp: expected a time after the last one"):
        runtime.step(*last)  # the same time again
    # 1e300 scales past float32: refused before it enters (and stays in) the history
    with pytest.raises(ValueError, match="values: expected numbers the model's float32 holds"):
        runtime.step([1e300, 5.0], last[1])
    for kept, was in zip(runtime.state, before, strict=True):
        np.testing.assert_array_equal(kept, was)


def test_many_series_stream_together_as_each_alone(forecaster, tmp_path: Path) -> None:
    """N meters in one batch: each forecast equals that meter streamed alone and
    Forecaster.predict on its own series; state round-trips and shapes are checked."""
    directory, series, model = forecaster
    path = export_runtime(directory, tmp_path / "forecaster.rnnkit")
    together, alone = rt.load(path), rt.load(path)
    rng = np.random.default_rng(3)
    meters = series.values[None] * rng.uniform(0.8, 1.2, (3, 1, 2))  # (N, T, C)
    stamps = series.timestamps
    streamed = [together.step(meters[:, t], stamps[t]) for t in range(len(stamps))]
    assert all(f is None for f in streamed[: together.warmup - 1])
    forecasts = np.stack(streamed[together.warmup - 1 :])  # (M, N, horizon, K)
    assert forecasts.shape[1:] == (3, model.config.horizon, 1)
    origins = list(range(together.warmup, len(stamps) + 1))
    for n in range(3):
        meter = TimeSeries(meters[n], series.columns, series.num_targets, stamps)
        np.testing.assert_allclose(forecasts[:, n], model.predict(meter, origins), atol=1e-4)
        alone.reset()
        last = [alone.step(v, t) for v, t in zip(meters[n], stamps, strict=True)][-1]
        np.testing.assert_allclose(forecasts[-1, n], last, atol=1e-6)
    values, times = together.state
    assert values.shape == (together.warmup, 3, 2) and times.shape == (together.warmup, 3)
    resumed = rt.load(path)
    resumed.state = (values, times)
    following = stamps[-1] + np.timedelta64(30, "m")
    per_stream = np.repeat(following, 3)  # one time per stream, as well as one for all
    np.testing.assert_array_equal(
        resumed.step(meters[:, -1], per_stream), together.step(meters[:, -1], following)
    )
    with pytest.raises(ValueError, match=r"values: expected shape \(3, 2\), as the streams"):
        together.step(meters[:2, -1], following)
    with pytest.raises(ValueError, match="timestamp: expected one time or 3"):
        together.step(meters[:, -1], per_stream[:2])
    together.reset()
    assert together.state is None and together.step(meters[0, 0], stamps[0]) is None


# ----------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_export_and_stream_commands(forecaster, lstm_file, tmp_path: Path) -> None:
    directory, series, _ = forecaster
    out = tmp_path / "cli.rnnkit"
    result = runner.invoke(app, ["export", str(directory), "--out", str(out)])
    assert result.exit_code == 0, result.output
    runtime = rt.load(out)
    lines = [
        f"{np.datetime_as_string(t)},{v[0]:.17g},{v[1]:.17g}"
        for t, v in zip(series.timestamps[:40], series.values[:40], strict=True)
    ]
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "stream", str(out)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert len(printed) == 40 and printed[: runtime.warmup - 1] == [""] * (runtime.warmup - 1)
    for line, t, v in zip(printed, series.timestamps[:40], series.values[:40], strict=True):
        forecast = runtime.step(v, t)
        if forecast is not None:
            np.testing.assert_allclose(np.array(line.split(","), float), forecast[:, 0], rtol=1e-7)
    layer, layer_path = lstm_file
    x = np.random.default_rng(8).standard_normal((5, 4)).astype(np.float32)
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in x)
    result = runner.invoke(app, ["stream", str(layer_path)], input=text + "\n")
    assert result.exit_code == 0, result.output
    got = np.array([line.split(",") for line in result.stdout.splitlines()], float)
    np.testing.assert_allclose(got, _torch_output(layer, x[:, None])[:, 0], atol=1e-5)
    exact = runner.invoke(app, ["stream", str(layer_path), "--dtype", "float64"], input=text)
    got = np.array([line.split(",") for line in exact.stdout.splitlines()], float)
    double = copy.deepcopy(layer).double()
    np.testing.assert_allclose(
        got, _torch_output(double, x[:, None].astype(float))[:, 0], atol=1e-12
    )
    wrong = runner.invoke(app, ["stream", str(layer_path), "--dtype", "half"], input=text)
    assert wrong.exit_code == 2 and "dtype: expected one of ('float32', 'float64')" in wrong.output


def test_stream_answers_each_line_before_the_next_arrives(lstm_file) -> None:
    layer, path = lstm_file
    outputs = []
    with subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "stream", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        for row in ([0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]):
            process.stdin.write(",".join(map(str, row)) + "\n")
            process.stdin.flush()  # stdin stays open: the answer must come now
            ready, _, _ = select.select([process.stdout], [], [], 60)
            assert ready, "no output within 60 s while stdin is still open"
            outputs.append([float(v) for v in process.stdout.readline().split(",")])
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    x = np.array([[[0.5, -1.0, 2.0, 0.0]], [[1.0, 1.0, 1.0, 1.0]]], np.float32)
    np.testing.assert_allclose(outputs, _torch_output(layer, x)[:, 0], atol=1e-5)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["stream", "nowhere.rnnkit"], "", "no such file"),
        (["export", "nowhere", "--out", "x.rnnkit", "--format", "tflite"], "", "format: expected"),
        (["stream", "{lstm}"], "1,2,x,4\n", "stdin line 1: expected comma-separated finite"),
        (["stream", "{lstm}"], "1,2,3,4\n1,nan,3,4\n", "stdin line 2: expected comma-sep"),
        (["stream", "{lstm}"], "1,2,3,1e999\n", "stdin line 1: expected comma-separated finite"),
        (["stream", "{lstm}"], "1,2,3\n", "x_t: expected shape (H_in,) or (N, H_in)"),
    ],
)
def test_command_errors_are_one_line_and_exit_2(lstm_file, args, stdin, message) -> None:
    _, path = lstm_file
    result = runner.invoke(app, [a.format(lstm=path) for a in args], input=stdin)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split()), result.stderr


# ----------------------------------------------------------------------------- generator


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> tuple[Path, Generator]:
    text = "the quick brown fox jumps over the lazy dog. " * 40
    model = Generator(
        cell="lstm", hidden_size=16, num_layers=2, embedding_size=8, sequence_length=20,
        training=TrainConfig(max_epochs=2, batch_size=16, learning_rate=1e-2),
    )  # fmt: skip
    model.fit(text, val_fraction=0.1, progress=False)
    return model.save(tmp_path_factory.mktemp("generator") / "model"), model


def test_generator_streams_the_distributions_and_greedy_text(generator, tmp_path) -> None:
    directory, model = generator
    runtime = rt.load(export_runtime(directory, tmp_path / "generator.rnnkit"))
    assert isinstance(runtime, rt.StreamingGenerator)
    prompt = "the lazy "
    for end, character in enumerate(prompt, start=1):
        probabilities = runtime.step(character)
        expected = model.predict_next(prompt[:end], top_k=None)
        got = {runtime.vocabulary[i]: p for i, p in enumerate(probabilities) if p > 0}
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[c] for c in expected], list(expected.values()), atol=1e-5)
    assert list(runtime.predict_next(3)) == list(model.predict_next(prompt, top_k=3))
    kept = runtime.state
    greedy = runtime.sample("the q", 40, top_k=1)
    assert greedy == model.complete("the q", max_length=40, stop="")
    np.testing.assert_array_equal(runtime.state[0], kept[0])  # sampling leaves the stream
    assert runtime.sample("fox", 30, seed=3) == runtime.sample("fox", 30, seed=3)
    with pytest.raises(ValueError, match="character: 'Z' is not in the model's vocabulary"):
        runtime.step("Z")


def test_stream_command_on_a_generator(generator, tmp_path: Path) -> None:
    directory, model = generator
    out = tmp_path / "generator.rnnkit"
    assert runner.invoke(app, ["export", str(directory), "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["stream", str(out)], input="the qu\nick\n")
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    for printed, prefix in ((first, "the qu"), (second, "the quick")):
        expected = model.predict_next(prefix, top_k=5)
        assert list(printed) == list(expected)
        np.testing.assert_allclose(list(printed.values()), list(expected.values()), atol=1e-5)


# ----------------------------------------------------------------------------- classifier


def _texts(count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    filler = ["the", "a", "phone", "was", "very", "and", "it", "is", ",", "!"]
    texts, labels = [], []
    for _ in range(count):
        words = list(rng.choice(filler, size=int(rng.integers(3, 9))))
        label = ["good", "bad"][int(rng.integers(2))]
        words.insert(int(rng.integers(len(words) + 1)), label.upper())
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def test_text_classifier_matches_predict_proba(tmp_path: Path) -> None:
    texts, labels = _texts(120, seed=0)
    model = SequenceClassifier(
        cell="lstm", hidden_size=8, embedding_size=8, bidirectional=True, pooling="last+mean+max",
        max_length=6, training=TrainConfig(max_epochs=2, batch_size=16),
    )  # fmt: skip
    model.fit(texts, labels, val_fraction=0.25, progress=False)
    model.save(tmp_path / "model")
    runtime = rt.load(export_runtime(tmp_path / "model", tmp_path / "classifier.rnnkit"))
    assert isinstance(runtime, rt.StreamingClassifier) and runtime.classes == model.classes
    probe = [*texts[:20], "an unseen word GOOD", "BAD!!"]
    np.testing.assert_allclose(runtime.predict_proba(probe), model.predict_proba(probe), atol=1e-5)
    assert list(runtime.predict(probe)) == list(model.predict(probe))
    with pytest.raises(ValueError, match="bidirectional model needs the whole sequence"):
        runtime.step("good")
    result = runner.invoke(app, ["stream", str(tmp_path / "classifier.rnnkit")], input="BAD !\n")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    expected = model.predict_proba(["BAD !"])[0]
    np.testing.assert_allclose([printed[c] for c in model.classes], expected, atol=1e-5)


def test_numeric_classifier_streams_each_prefix(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sequences = [rng.normal(size=(int(rng.integers(2, 9)), 3)) for _ in range(80)]
    labels = [int(s[:, 0].sum() > 0) for s in sequences]
    model = SequenceClassifier(
        cell="gru", hidden_size=8, bidirectional=False, pooling="last+mean+max",
        training=TrainConfig(max_epochs=2),
    )  # fmt: skip
    model.fit(sequences, labels, val_fraction=0.25, progress=False)
    runtime = rt.load(export_runtime(model, tmp_path / "numeric.rnnkit"))
    sequence = sequences[0]
    for end in range(1, len(sequence) + 1):
        streamed = runtime.step(sequence[end - 1])
        np.testing.assert_allclose(streamed, model.predict_proba([sequence[:end]])[0], atol=1e-5)
    np.testing.assert_allclose(
        runtime.predict_proba(sequences), model.predict_proba(sequences), atol=1e-5
    )


# ----------------------------------------------------------------------------- batches of streams


def test_generator_steps_a_batch_of_texts_like_each_alone(generator, tmp_path) -> None:
    directory, _ = generator
    path = export_runtime(directory, tmp_path / "generator.rnnkit")
    texts = ["the lazy ", "quick bro", "fox jumps"]
    batched = rt.load(path)
    together = np.stack([batched.step(list(column)) for column in zip(*texts, strict=True)])
    assert together.shape == (9, 3, len(batched.vocabulary))  # (L, N, V)
    for n, text in enumerate(texts):
        alone = rt.load(path)
        np.testing.assert_allclose(
            np.stack([alone.step(c) for c in text]), together[:, n], atol=1e-6
        )
    # a checkpointed batch resumes exactly; sampling leaves it as it was
    checkpoint = batched.state
    assert [s.shape for s in checkpoint] == [(2, 3, 16), (2, 3, 16)]
    batched.sample("the", 5, seed=0)
    tail = np.stack([batched.step(list(c)) for c in ("dox", "oge", "g .")])
    resumed = rt.load(path)
    resumed.state = checkpoint
    np.testing.assert_array_equal(
        np.stack([resumed.step(list(c)) for c in ("dox", "oge", "g .")]), tail
    )
    with pytest.raises(ValueError, match="predict_next: reads one stream, the state holds 3"):
        resumed.predict_next()
    resumed.reset()
    np.testing.assert_array_equal(resumed.step("t"), rt.load(path).step("t"))  # (V,) again


def test_generator_batch_errors(generator, tmp_path) -> None:
    directory, _ = generator
    runtime = rt.load(export_runtime(directory, tmp_path / "generator.rnnkit"))
    with pytest.raises(TypeError, match=r"character: expected a str or a list of str .* got int"):
        runtime.step(5)
    with pytest.raises(ValueError, match=r"character: expected a non-empty batch"):
        runtime.step([])
    with pytest.raises(ValueError, match=r"character\[1\]: 'Z' is not in the model's vocabulary"):
        runtime.step(["t", "Z"])
    assert runtime.state is None  # a rejected batch starts nothing
    runtime.step(["t", "h", "e"])
    for wrong in (["t", "h"], "t"):  # the batch is the state's until reset()
        with pytest.raises(ValueError, match=r"expected 3 streams \(the state's batch\), got"):
            runtime.step(wrong)
    runtime.reset()
    assert runtime.step(["t", "h"]).shape == (2, len(runtime.vocabulary))


def _stream_one_by_one(runtime, items) -> np.ndarray:
    runtime.reset()
    return np.stack([runtime.step(item) for item in items])


def test_classifier_steps_a_batch_of_sequences_like_each_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    sequences = [rng.normal(size=(int(rng.integers(2, 9)), 3)) for _ in range(60)]
    labels = [int(s[:, 0].sum() > 0) for s in sequences]
    numeric = SequenceClassifier(
        cell="lstm", hidden_size=8, num_layers=2, bidirectional=False, pooling="last+mean+max",
        training=TrainConfig(max_epochs=1),
    )  # fmt: skip
    numeric.fit(sequences, labels, val_fraction=0.25, progress=False)
    runtime = rt.load(export_runtime(numeric, tmp_path / "numeric.rnnkit"))
    x = rng.normal(size=(7, 4, 3))  # (L, N, F)
    together = _stream_one_by_one(runtime, x)  # (L, N, C)
    assert together.shape == (7, 4, 2)
    for n in range(4):
        np.testing.assert_allclose(_stream_one_by_one(runtime, x[:, n]), together[:, n], atol=1e-6)
        np.testing.assert_allclose(together[-1, n], numeric.predict_proba([x[:, n]])[0], atol=1e-5)
    # a checkpointed batch (encoder state and pooling) resumes exactly
    runtime.reset()
    assert runtime.state is None
    for x_t in x[:4]:
        runtime.step(x_t)
    checkpoint = runtime.state
    assert [s.shape for s in checkpoint[0]] == [(2, 4, 8), (2, 4, 8)] and checkpoint[1] == 4
    tail = np.stack([runtime.step(x_t) for x_t in x[4:]])
    resumed = rt.load(tmp_path / "numeric.rnnkit")
    resumed.state = checkpoint
    np.testing.assert_array_equal(np.stack([resumed.step(x_t) for x_t in x[4:]]), tail)
    with pytest.raises(ValueError, match=r"state\[2\]: expected shape \(4, 8\)"):
        resumed.state = (checkpoint[0], 4, checkpoint[2][:3], checkpoint[3])
    resumed.state = None
    assert resumed.state is None
    runtime.reset()
    with pytest.raises(
        ValueError, match=r"item: expected shape \(F,\) or \(N >= 1, F\) with F = 3"
    ):
        runtime.step(np.zeros((0, 3)))
    runtime.step(x[0])
    with pytest.raises(ValueError, match=r"expected 4 streams \(the state's batch\), got 1"):
        runtime.step(x[0, 0])

    texts, labels = _texts(80, seed=3)
    words = SequenceClassifier(
        cell="gru", hidden_size=8, embedding_size=8, bidirectional=False, pooling="mean+max",
        training=TrainConfig(max_epochs=1, batch_size=16),
    )  # fmt: skip
    words.fit(texts, labels, val_fraction=0.25, progress=False)
    runtime = rt.load(export_runtime(words, tmp_path / "words.rnnkit"))
    columns = [("the", "BAD", "phone"), ("GOOD", "unseen", "!"), ("a", "a", "GOOD")]
    together = _stream_one_by_one(runtime, [list(c) for c in columns])  # (L, N, C)
    for n in range(3):
        alone = _stream_one_by_one(runtime, [c[n] for c in columns])
        np.testing.assert_allclose(alone, together[:, n], atol=1e-6)
    with pytest.raises(ValueError, match=r"item: expected a non-empty batch"):
        runtime.step([])
    with pytest.raises(TypeError, match=r"item: expected a word token \(str\) or a list"):
        runtime.step(3)


def test_the_stream_command_does_not_import_torch(lstm_file) -> None:
    """The runtime is torch-free, and so is ``rnnkit stream`` (torch took 359 MB of it)."""
    _, path = lstm_file
    script = (
        "import sys\n"
        "from rnnkit.cli import run\n"
        f"sys.argv = ['rnnkit', 'stream', {str(path)!r}]\n"
        "try:\n    run()\nexcept SystemExit as done:\n    assert done.code == 0, done.code\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], input="1,2,3,4\n",
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert len(done.stdout.split(",")) == 16  # the LSTM's 16 outputs
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_stream_skips_bad_lines_when_asked_and_the_stream_goes_on(lstm_file, policy) -> None:
    """A skipped line prints nothing and leaves the state as it was: the outputs are those of
    the good lines alone."""
    _, path = lstm_file
    good = ["1,2,3,4", "0.5,-1,2,0"]
    mixed = [good[0], "1,nan,3,4", "1,2,3", "x", good[1]]
    result = runner.invoke(app, ["stream", str(path), "--on-error", policy],
                           input="\n".join(mixed) + "\n")  # fmt: skip
    clean = runner.invoke(app, ["stream", str(path)], input="\n".join(good) + "\n")
    assert result.exit_code == 0 and clean.exit_code == 0, result.output
    assert result.stdout == clean.stdout and len(result.stdout.splitlines()) == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == (3 if policy == "warn" else 0), result.stderr
    assert policy == "skip" or "stdin line 2: expected comma-separated finite" in warnings[0]
