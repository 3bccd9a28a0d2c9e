"""One-direction inference at two torch threads: the batch whole, against its two halves side
by side (``tuning.SPLIT_WORK``), each as a ratio to ``torch.nn.LSTM`` in the same process.

Each round times three calls of ``nn.LSTM``, then three of the layer on the whole batch, then
three on the halves, call after call (a call timed right after another contender's can find
that one's threads still busy); a cell is the median over the rounds' calls. ``nn.LSTM`` is
timed first: the halves must leave torch's threads as they found them.

Usage::

    python benchmarks/batch_halves.py [--rounds 5] [--shapes B,T,I,H ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnkit.nn as nn
from rnnkit.functional import engine_blas, tuning

SHAPES = ["64,128,32,128", "64,128,200,200", "256,128,4,64", "256,128,32,128", "64,512,32,128"]
LAYERS = {
    "LayerNormLSTM": nn.LayerNormLSTM,
    "PeepholeLSTM": nn.PeepholeLSTM,
    "LSTM zoneout": lambda i, h: nn.LSTM(i, h, zoneout=0.1),
    "LayerNormGRU": nn.LayerNormGRU,
}


def seconds(module: torch.nn.Module, x: torch.Tensor, halves: bool) -> float:
    """One inference call of ``module`` on ``x``, the batch in halves or whole."""
    tuning.SPLIT_WORK = 1 if halves else 2**62
    start = time.perf_counter()
    with torch.no_grad():
        module(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="B,T,I,H")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, 2 threads; engine BLAS: {engine_blas()}")
    print("| B T I H | nn.LSTM ms | " + " | ".join(f"{n}: whole / halves" for n in LAYERS) + " |")
    print("|---" * (len(LAYERS) + 2) + "|")
    for shape in args.shapes:
        batch, steps, inputs, hidden = (int(v) for v in shape.split(","))
        x = torch.randn(steps, batch, inputs)
        reference = torch.nn.LSTM(inputs, hidden).eval()
        cells, base = [], []
        for make in LAYERS.values():
            layer = make(inputs, hidden).eval()
            for halves in (False, True, False):  # warm-up
                seconds(layer, x, halves)
                seconds(reference, x, False)
            times: dict[str, list[float]] = {"nn": [], "whole": [], "halves": []}
            for _ in range(args.rounds):
                for key in times:
                    module = reference if key == "nn" else layer
                    times[key] += [seconds(module, x, key == "halves") for _ in range(3)]
            median = {key: statistics.median(values) for key, values in times.items()}
            base.append(median["nn"])
            ratios = (median[key] / median["nn"] for key in ("whole", "halves"))
            cells.append(" / ".join(f"{ratio:.2f}" for ratio in ratios))
        row = [f"{batch} {steps} {inputs} {hidden}", f"{statistics.median(base) * 1e3:.1f}", *cells]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
