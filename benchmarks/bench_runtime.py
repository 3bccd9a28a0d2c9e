"""The torch-free runtime: latency of one streamed step, and the memory of a streaming process.

Latency (batch 1, input size 4, one layer, one thread): per configuration (LSTM and GRU
with hidden 32/64/256, MinGRU 64), the contenders share the weights of one layer and run one
step per call with their state kept between calls:

* ``runtime numba`` / ``runtime numpy``: ``rnnkit.runtime.load(...).step`` with each backend;
* ``nn cell``: ``torch.nn.LSTMCell`` / ``GRUCell`` (``rnnkit.nn.MinGRUCell`` for MinGRU,
  which torch.nn lacks) under ``torch.no_grad()``;
* ``onnxruntime``: the layer exported by :func:`rnnkit.export.onnx.export_onnx`, one
  ``session.run`` per step (``benchmarks/bench_onnx.py``'s stepper; not for MinGRU; the
  column is skipped, with a note, when ``rnnkit.export.onnx`` or onnxruntime is missing).

Method: every contender is first checked against the nn cell over 50 steps (1e-5), then
timed in ``--repeats`` rounds of ``--steps`` steps, each round running every contender once
in an order rotated from round to round. The clock is the process's CPU time
(``time.process_time``): on a shared machine wall time mostly measures the other processes.
The table gives medians in microseconds per step and ratios to the nn cell, in one run.

Memory: the peak resident set size (``VmHWM``) of a fresh process that loads the demo
forecaster (``rnnkit demo``'s configuration: LSTM 64, lookback 96, horizon 48, trained one
epoch here: the footprint does not depend on the weights) and streams 10,000 half-hourly
steps of the electricity series (repeated past its end), forecasting at every step:
with the runtime (torch blocked from importing; with numba, and with NumPy alone) and with
torch (``Forecaster.predict`` on the same history at every step). A bare ``import numpy``
process is the floor.

Usage::

    python benchmarks/bench_runtime.py [--steps 2000] [--repeats 7] [--stream 10000]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import rnnkit.nn as rnn
import rnnkit.runtime as rt
from rnnkit.export import export_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from bench_onnx import onnx_stepper
except ImportError as error:  # no onnxruntime, or no rnnkit.export.onnx
    ONNX_MISSING: str | None = str(error)
else:
    ONNX_MISSING = None

INPUT_SIZE = 4
CONFIGS = (
    ("LSTM", 32), ("LSTM", 64), ("LSTM", 256), ("GRU", 32), ("GRU", 64), ("GRU", 256),
    ("MinGRU", 64),
)  # fmt: skip
SRC = Path(__file__).resolve().parents[1] / "src"
Step = Callable[[np.ndarray], np.ndarray]


def runtime_steppers(layer: nn.Module, path: Path) -> dict[str, Step]:
    export_runtime(layer, path)
    backends = ("numba", "numpy") if rt.ACCELERATED else ("numpy",)
    return {f"runtime {b}": rt.load(path, backend=b).step for b in backends}


def cell_stepper(kind: str, layer: nn.Module) -> Step:
    """``torch.nn.{kind}Cell`` with ``layer``'s weights (MinGRU: the layer's own cell), one
    step per call under ``torch.no_grad()``, keeping its state."""
    if kind == "MinGRU":
        cell = layer.cells[0]
    else:
        cell = getattr(nn, f"{kind}Cell")(layer.input_size, layer.hidden_size)
        cell.load_state_dict({name[:-3]: value for name, value in layer.state_dict().items()})
    state: list = [None]

    @torch.no_grad()
    def step(x_t: np.ndarray) -> np.ndarray:
        state[0] = cell(torch.from_numpy(x_t), state[0])
        return (state[0][0] if kind == "LSTM" else state[0]).numpy()

    return step


def steppers(kind: str, hidden: int, directory: Path) -> dict[str, Step]:
    torch.manual_seed(0)
    layer = getattr(rnn, kind)(INPUT_SIZE, hidden).eval()
    found = runtime_steppers(layer, directory / f"{kind}{hidden}.rnnkit")
    found["nn cell"] = cell_stepper(kind, layer)
    if ONNX_MISSING is None and kind != "MinGRU":
        found["onnxruntime"] = onnx_stepper(layer, directory / f"{kind}{hidden}.onnx")
    return found


def cpu_us_per_step(step: Step, inputs: np.ndarray) -> float:
    start = time.process_time()
    for x_t in inputs:
        step(x_t)
    return (time.process_time() - start) / len(inputs) * 1e6


def latency(kind: str, hidden: int, steps: int, repeats: int, directory: Path) -> dict:
    found = steppers(kind, hidden, directory)
    check = np.random.default_rng(1).normal(size=(50, 1, INPUT_SIZE)).astype(np.float32)
    outputs = {name: np.stack([step(x_t) for x_t in check]) for name, step in found.items()}
    for name, output in outputs.items():
        np.testing.assert_allclose(output, outputs["nn cell"], atol=1e-5, err_msg=name)
    inputs = np.random.default_rng(2).normal(size=(steps, 1, INPUT_SIZE)).astype(np.float32)
    names = list(found)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(repeats):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(cpu_us_per_step(found[name], inputs))
    return {name: statistics.median(times) for name, times in samples.items()}


# ------------------------------------------------------------------------------- memory

_STREAM = """
import json, re, sys, time
import numpy as np
{block}
stream = np.load({data!r})
values, stamps = stream["values"], stream["stamps"]
{body}
# VmHWM, not ru_maxrss: that one keeps the parent's size across fork and exec.
with open("/proc/self/status") as status:
    peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1))
print(json.dumps({{"peak_rss_mb": peak_kb / 1024, "seconds": time.perf_counter() - start,
                  "torch": sys.modules.get("torch") is not None}}))
"""
_RUNTIME = """
import rnnkit.runtime as rt
model = rt.load({file!r})
start = time.perf_counter()
for value, stamp in zip(values, stamps):
    forecast = model.step(value, stamp)
assert forecast is not None
"""
_TORCH = """
import torch
from rnnkit.data import TimeSeries
from rnnkit.tasks import Forecaster
torch.set_num_threads(1)
model = Forecaster.load({directory!r})
series = TimeSeries(values, model._fitted.columns, 1, stamps)
features = model._features(series)[0].astype(np.float32)  # (T, F), computed once
lookback, warmup = model.config.lookback, model._warmup
start = time.perf_counter()
with torch.no_grad():
    for t in range(warmup, len(values) + 1):
        change = model.network(torch.from_numpy(features[None, t - lookback : t]))
"""


def demo_forecaster(directory: Path, steps: int) -> tuple[Path, Path, Path]:
    """Train the demo configuration for one epoch; save it, its runtime file and a stream."""
    from rnnkit.data import load_series
    from rnnkit.tasks import Forecaster
    from rnnkit.train import TrainConfig

    series = load_series("electricity")
    model = Forecaster(training=TrainConfig(max_epochs=1, seed=0))
    model.fit(series, val_size=672, progress=False)
    saved = model.save(directory / "demo")
    file = export_runtime(saved, directory / "demo.rnnkit")
    repeats = -(-steps // len(series))
    values = np.tile(series.values, (repeats, 1))[:steps]
    stamps = series.timestamps[0] + np.arange(steps) * np.timedelta64(30, "m")
    np.savez(directory / "stream.npz", values=values, stamps=stamps)
    return saved, file, directory / "stream.npz"


def peak_memory(block: str, body: str, data: Path) -> dict:
    script = _STREAM.format(block=block, data=str(data), body=body)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(steps: int, directory: Path) -> dict[str, dict]:
    saved, file, data = demo_forecaster(directory, steps)
    warmup = rt.load(file).warmup
    if steps < warmup:
        raise SystemExit(
            f"--stream: expected at least {warmup} steps (the demo forecaster's warm-up, "
            f"before its first forecast), got {steps}"
        )
    no_torch = "sys.modules['torch'] = None"
    no_numba = no_torch + "; sys.modules['numba'] = None"
    runtime = _RUNTIME.format(file=str(file))
    return {
        "python + numpy (floor)": peak_memory("", "start = time.perf_counter()", data),
        "runtime, numba": peak_memory(no_torch, runtime, data),
        "runtime, NumPy only": peak_memory(no_numba, runtime, data),
        "torch (network per window)": peak_memory("", _TORCH.format(directory=str(saved)), data),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per round (2000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--stream", type=int, default=10_000, help="steps streamed (10000)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args()
    if min(args.steps, args.repeats, args.stream) < 1:
        parser.error("--steps, --repeats and --stream must be >= 1")
    torch.set_num_threads(1)
    console = Console()
    console.print(
        f"torch {torch.__version__}, numba {'on' if rt.ACCELERATED else 'not installed'}, one "
        f"thread, batch 1, input {INPUT_SIZE}, {args.steps} steps x {args.repeats} rounds, "
        "CPU time"
    )
    if ONNX_MISSING is not None:
        console.print(f"onnxruntime column skipped: {ONNX_MISSING}")
    columns = ["runtime numba", "runtime numpy", "nn cell", "onnxruntime"]
    table = Table(title="median microseconds per step (CPU); ratio = contender / nn cell")
    for column in ("layer", "hidden", *columns, "numba / cell", "numba / onnx"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    results: dict = {"latency": [], "memory": {}}
    with tempfile.TemporaryDirectory() as folder:
        for kind, hidden in CONFIGS:
            us = latency(kind, hidden, args.steps, args.repeats, Path(folder))
            fast = us.get("runtime numba")
            ratios = [
                f"{fast / us[other]:.3f}x" if fast and other in us else "-"
                for other in ("nn cell", "onnxruntime")
            ]
            cells = [f"{us[c]:.2f}" if c in us else "-" for c in columns]
            table.add_row(kind, str(hidden), *cells, *ratios)
            results["latency"].append({"layer": kind, "hidden": hidden, "median_us": us})
        console.print(table)
        results["memory"] = memory(args.stream, Path(folder))
    footprint = Table(title=f"demo forecaster streaming {args.stream} steps: peak RSS")
    for column in ("process", "peak RSS MB", "stream seconds", "torch imported"):
        footprint.add_column(column, justify="left" if column == "process" else "right")
    for name, row in results["memory"].items():
        footprint.add_row(
            name, f"{row['peak_rss_mb']:.0f}", f"{row['seconds']:.1f}", str(row["torch"])
        )
    console.print(footprint)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
