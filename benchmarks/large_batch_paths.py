"""The engine's loops against the reference path at large batches: what ``MAX_TRAINING_BATCH``
rests on.

For each extended layer and shape, one process times the layer on each path against
``torch.nn.LSTM`` of the same size (interleaved, medians of 3 pairs): ``loops``, the engine's
compiled loops forced at any batch; ``reference``, ``backend="reference"`` (autograd through
every step); and, on a tree from before the torch loop was removed (``src`` of an old commit,
which has ``tuning.NUMBA_MAX_BATCH``), ``torch loop``.

Usage::

    python benchmarks/large_batch_paths.py [--src src] [--threads 1] \\
        [--shapes '600,96,4,64;1024,35,32,128;2048,96,4,64'] [--layers LayerNormGRU,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def timed(module, x, mode: str) -> float:
    """Seconds of one forward (inference) or forward+backward (training) of ``module``."""
    import torch

    start = time.perf_counter()
    if mode == "forward":
        with torch.no_grad():
            module.eval()(x)
    else:
        module.train()(x)[0].sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="src", help="the tree's src folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", default="600,96,4,64;1024,35,32,128;2048,96,4,64")
    parser.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    import torch

    import rnnkit.nn as nn
    from rnnkit.functional import tuning
    from rnnkit.functional._numba_calls import engine_blas

    torch.set_num_threads(args.threads)
    layers = {
        "LayerNormLSTM": nn.LayerNormLSTM,
        "PeepholeLSTM": nn.PeepholeLSTM,
        "LayerNormGRU": nn.LayerNormGRU,
        "IndRNN": nn.IndRNN,
        "JordanRNN": nn.JordanRNN,
        "LSTM zoneout": lambda i, h: nn.LSTM(i, h, zoneout=0.1),
    }
    chosen = args.layers.split(",") if args.layers else list(layers)
    limit = "NUMBA_MAX_BATCH" if hasattr(tuning, "NUMBA_MAX_BATCH") else "MAX_TRAINING_BATCH"
    paths = {"loops": 10**9, "reference": 10**9}
    if limit == "NUMBA_MAX_BATCH":
        paths["torch loop"] = 0
    print(f"torch {torch.__version__}, {args.threads} thread(s), loops' BLAS: {engine_blas()}")
    print("ratio to torch.nn.LSTM, median of 3:", ", ".join(paths))
    torch.manual_seed(0)
    for point in args.shapes.split(";"):
        batch, steps, inputs, hidden = (int(v) for v in point.split(","))
        x = torch.randn(steps, batch, inputs)
        lstm = torch.nn.LSTM(inputs, hidden)
        for name in chosen:
            layer = layers[name](inputs, hidden)
            for mode in ("forward", "forward+backward"):
                ratios = []
                for path, rows in paths.items():
                    layer.backend = "reference" if path == "reference" else "auto"
                    setattr(tuning, limit, rows)
                    timed(layer, x, mode), timed(lstm, x, mode)
                    pairs = [(timed(layer, x, mode), timed(lstm, x, mode)) for _ in range(3)]
                    ratios.append(statistics.median(a / b for a, b in pairs))
                shape = f"B={batch} T={steps} I={inputs} H={hidden}"
                print(f"{name:14} {shape:24} {mode:17}", *(f"{r:6.2f}" for r in ratios))


if __name__ == "__main__":
    main()
