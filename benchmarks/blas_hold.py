"""One-direction layers at two torch threads: the numba loops' BLAS (torch's MKL) left to its
threads, against held to one thread inside the loops, each as a ratio to ``torch.nn.LSTM`` in
the same process, alternating within each round. Does holding MKL pay where the per-step
products are small?

Usage::

    python benchmarks/blas_hold.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import rnnkit.nn as nn
from rnnkit.functional import _gemm, _numba_calls

SHAPES = [(4, 128, 8, 64), (16, 256, 32, 128), (64, 128, 32, 256), (256, 96, 4, 64)]
LAYERS = {"LayerNormLSTM": nn.LayerNormLSTM, "PeepholeLSTM": nn.PeepholeLSTM,
          "LayerNormGRU": nn.LayerNormGRU}  # fmt: skip
FREE = _numba_calls.run_loop


def _held(loop: Callable[..., None], *args: object) -> None:
    before = _gemm._SET_LOCAL_THREADS(1)  # MKL's cap for this thread
    try:
        FREE(loop, *args)
    finally:
        _gemm._SET_LOCAL_THREADS(before)


def median_seconds(module: torch.nn.Module, x: torch.Tensor, mode: str, repeats: int = 5) -> float:
    """The median of ``repeats`` calls (after one warm-up): eval forward, or forward+backward."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        if mode == "forward":
            with torch.no_grad():
                module(x)
        else:
            module(x)[0].sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    torch.set_num_threads(2)
    for batch, steps, inputs, hidden in SHAPES:
        x = torch.randn(steps, batch, inputs, requires_grad=True)
        reference = torch.nn.LSTM(inputs, hidden)
        for name, layer_class in LAYERS.items():
            layer = layer_class(inputs, hidden)
            for mode in ("forward", "forward+backward"):
                ratios: dict[str, list[float]] = {"free": [], "held": []}
                for _ in range(rounds):
                    base = median_seconds(reference, x, mode)
                    for kind, run in (("free", FREE), ("held", _held)):
                        _numba_calls.run_loop = run
                        ratios[kind].append(median_seconds(layer, x, mode) / base)
                    _numba_calls.run_loop = FREE
                spans = "  ".join(f"{k} {min(v):.2f}-{max(v):.2f}" for k, v in ratios.items())
                print(f"B={batch} T={steps} I={inputs} H={hidden} {name} {mode}: {spans}")


if __name__ == "__main__":
    main()
