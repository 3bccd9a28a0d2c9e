"""A bidirectional layer's two directions side by side against one after the other, in one
process: is ``tuning.SIDE_BY_SIDE_BATCH`` where it pays?

Each round times the layer with the directions side by side (the threshold set to 1) and one
after the other (set past any batch), in alternating order, then a bidirectional
``torch.nn.LSTM``; it prints each mode's range of ratios to ``nn.LSTM`` over the rounds and the
median of the per-round ratio side by side / one after the other.

Usage::

    python benchmarks/side_by_side.py [--threads 2] [--rounds 15] \\
        [--shapes 'B,T,I,H;...'] [--layers LayerNormLSTM,LayerNormGRU]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from large_batch_paths import timed

import rnnkit.nn as nn
from rnnkit.functional import tuning

LAYERS: dict[str, Callable[..., torch.nn.Module]] = {
    "LayerNormLSTM": nn.LayerNormLSTM,
    "PeepholeLSTM": nn.PeepholeLSTM,
    "LayerNormGRU": nn.LayerNormGRU,
    "LSTM zoneout": lambda i, h, **o: nn.LSTM(i, h, zoneout=0.1, **o),
}


def seconds(module: torch.nn.Module, x: torch.Tensor, mode: str, side_by_side: bool) -> float:
    """One call of ``module`` on ``x`` (eval forward, or training forward+backward)."""
    tuning.SIDE_BY_SIDE_BATCH = 1 if side_by_side else 2**62
    return timed(module, x, mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--shapes", default="1,35,32,128;4,128,8,64;16,256,32,128")
    parser.add_argument("--layers", default="LayerNormLSTM,LayerNormGRU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'layer, shape, mode':54} {'on / nn.LSTM':>13} {'off / nn.LSTM':>13} {'on/off':>7}")
    for point in args.shapes.split(";"):
        batch, steps, inputs, hidden = (int(v) for v in point.split(","))
        x = torch.randn(steps, batch, inputs)
        lstm = torch.nn.LSTM(inputs, hidden, bidirectional=True)
        for name in args.layers.split(","):
            layer = LAYERS[name](inputs, hidden, bidirectional=True)
            for mode in ("forward", "forward+backward"):
                for warm in (True, False):
                    seconds(layer, x, mode, warm)
                seconds(lstm, x, mode, False)
                on, off, gain = [], [], []
                for k in range(args.rounds):
                    order = (True, False) if k % 2 else (False, True)
                    times = {choice: seconds(layer, x, mode, choice) for choice in order}
                    base = seconds(lstm, x, mode, False)
                    on.append(times[True] / base)
                    off.append(times[False] / base)
                    gain.append(times[True] / times[False])
                key = f"{name} B={batch} T={steps} I={inputs} H={hidden} {mode}"
                spans = f"{min(on):.2f}-{max(on):.2f}", f"{min(off):.2f}-{max(off):.2f}"
                print(f"{key:54} {spans[0]:>13} {spans[1]:>13} {statistics.median(gain):7.3f}")


if __name__ == "__main__":
    main()
