"""Time one streamed step at batch 1: onnxruntime on the exported layer vs torch.nn's cells.

Contenders per configuration (input size 4, one layer, one thread each):

* ``onnxruntime``: :func:`rnnkit.export.onnx.export_onnx` of ``rnnkit.nn.LSTM``/``GRU``, run one
  step per ``session.run`` with the state fed back (:func:`onnx_stepper`);
* ``torch.nn.LSTMCell`` / ``GRUCell`` with the same weights, under ``torch.no_grad()``;
* ``torch.nn.LSTM`` / ``GRU`` called with one step (``L = 1``), with the same weights.

Method: the three are first checked to give the same outputs over 50 steps (1e-5), then
timed in ``--repeats`` rounds of ``--steps`` steps, each round running every contender once
in an order rotated from round to round (machine noise falls on all alike). The table
gives each contender's median microseconds per step and its ratio to the cell's.

Usage::

    python benchmarks/bench_onnx.py [--steps 2000] [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import rnnkit.nn as rnn
from rnnkit.export.onnx import export_onnx

INPUT_SIZE = 4
CONFIGS = (("LSTM", 32), ("LSTM", 64), ("LSTM", 256), ("GRU", 32), ("GRU", 64), ("GRU", 256))
Step = Callable[[np.ndarray], np.ndarray]


def onnx_stepper(layer: nn.Module, path: Path, threads: int = 1) -> Step:
    """Export ``layer`` (batch_first=False) to ``path``; return ``step(x_t)``: ``(N, H_in)``
    -> ``(N, D * H)``, which runs onnxruntime on one step and keeps the state between calls
    (zeros at first)."""
    export_onnx(layer, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()][1:]  # h0[, c0]
    shapes = {i.name: i.shape for i in session.get_inputs()}
    state: dict[str, np.ndarray] = {}

    def step(x_t: np.ndarray) -> np.ndarray:
        if not state:
            rows, _, size = shapes[names[0]]
            state.update({n: np.zeros((rows, len(x_t), size), np.float32) for n in names})
        output, *final = session.run(None, {"input": x_t[None], **state})
        state.update(zip(names, final, strict=True))
        return output[0]

    return step


def torch_steppers(kind: str, layer: nn.Module) -> dict[str, Step]:
    """``torch.nn.{kind}Cell`` and ``torch.nn.{kind}`` (one step per call), with ``layer``'s
    weights, as ``step(x_t)`` functions on NumPy arrays that keep their state."""
    cell = getattr(nn, f"{kind}Cell")(layer.input_size, layer.hidden_size)
    cell.load_state_dict({name[:-3]: value for name, value in layer.state_dict().items()})
    whole = getattr(nn, kind)(layer.input_size, layer.hidden_size)
    whole.load_state_dict(layer.state_dict())
    cell_state: list = [None]
    layer_state: list = [None]

    @torch.no_grad()
    def cell_step(x_t: np.ndarray) -> np.ndarray:
        cell_state[0] = cell(torch.from_numpy(x_t), cell_state[0])
        h = cell_state[0][0] if kind == "LSTM" else cell_state[0]
        return h.numpy()

    @torch.no_grad()
    def layer_step(x_t: np.ndarray) -> np.ndarray:
        output, layer_state[0] = whole(torch.from_numpy(x_t)[None], layer_state[0])
        return output[0].numpy()

    return {f"torch.nn.{kind}Cell": cell_step, f"torch.nn.{kind} (L=1)": layer_step}


def seconds_per_step(step: Step, inputs: np.ndarray) -> float:
    """Run ``step`` over ``inputs`` ``(S, N, H_in)``; return the mean seconds per step."""
    start = time.perf_counter()
    for x_t in inputs:
        step(x_t)
    return (time.perf_counter() - start) / len(inputs)


def benchmark(kind: str, hidden: int, steps: int, repeats: int, directory: Path) -> dict:
    torch.manual_seed(0)
    layer = getattr(rnn, kind)(INPUT_SIZE, hidden).eval()
    steppers = {"onnxruntime": onnx_stepper(layer, directory / f"{kind}{hidden}.onnx")}
    steppers |= torch_steppers(kind, layer)
    check = np.random.default_rng(1).normal(size=(50, 1, INPUT_SIZE)).astype(np.float32)
    outputs = {name: np.stack([step(x_t) for x_t in check]) for name, step in steppers.items()}
    reference = outputs[f"torch.nn.{kind}Cell"]
    for name, output in outputs.items():
        np.testing.assert_allclose(output, reference, atol=1e-5, err_msg=name)
    inputs = np.random.default_rng(2).normal(size=(steps, 1, INPUT_SIZE)).astype(np.float32)
    names = list(steppers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(repeats):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(seconds_per_step(steppers[name], inputs) * 1e6)
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per round (2000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    torch.set_num_threads(1)
    console = Console()
    console.print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, one thread each, batch 1, "
        f"input {INPUT_SIZE}, {args.steps} steps x {args.repeats} rounds"
    )
    table = Table(title="median microseconds per step; ratio = contender / torch.nn cell")
    for column in ("layer", "hidden", "onnxruntime", "nn cell", "nn layer (L=1)", "ort / cell"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for kind, hidden in CONFIGS:
            medians = benchmark(kind, hidden, args.steps, args.repeats, Path(directory))
            onnx_us, cell_us, layer_us = medians.values()
            table.add_row(
                kind,
                str(hidden),
                f"{onnx_us:.1f}",
                f"{cell_us:.1f}",
                f"{layer_us:.1f}",
                f"{onnx_us / cell_us:.2f}x",
            )
            results.append({"layer": kind, "hidden": hidden, "median_us": medians})
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
