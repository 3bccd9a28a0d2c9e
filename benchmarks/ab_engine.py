"""A/B of the engine between two source trees: is a change to the layers slower?

Each round runs one fresh process per tree, alternating; a process times each extended layer
against ``torch.nn.LSTM`` (interleaved, one thread, medians) and prints the ratios, so the
comparison is of ratios taken inside one process each, over the same rounds.

Usage (the old tree from git, e.g. the commit before a change)::

    git worktree add /tmp/old <rev>
    python benchmarks/ab_engine.py /tmp/old/src src [--rounds 5] [--threads 1] \\
        [--shapes 'B,T,I,H;...'] [--bidirectional] [--layers MinGRU,MinLSTM]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, statistics, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[6])
import torch
from large_batch_paths import timed
import rnnkit.nn as nn
torch.set_num_threads(int(sys.argv[3]))
both = sys.argv[4] == "bidirectional"
torch.manual_seed(0)
layers = {
    "LayerNormLSTM": nn.LayerNormLSTM, "PeepholeLSTM": nn.PeepholeLSTM,
    "LayerNormGRU": nn.LayerNormGRU, "IndRNN": nn.IndRNN, "JordanRNN": nn.JordanRNN,
    "LSTM zoneout": lambda i, h, **o: nn.LSTM(i, h, zoneout=0.1, **o),
    "MinGRU": nn.MinGRU, "MinLSTM": nn.MinLSTM,
}
chosen = sys.argv[5].split(",") if sys.argv[5] else list(layers)
layers = {name: layers[name] for name in chosen}
results = {}
for batch, steps, inputs, hidden in json.loads(sys.argv[2]):
    x = torch.randn(steps, batch, inputs)
    lstm = torch.nn.LSTM(inputs, hidden, bidirectional=both)
    for name, make in layers.items():
        layer = make(inputs, hidden, bidirectional=both)
        for mode in ("forward", "forward+backward"):
            timed(layer, x, mode), timed(lstm, x, mode)
            pairs = [(timed(layer, x, mode), timed(lstm, x, mode)) for _ in range(7)]
            key = f"{name} B={batch} T={steps} I={inputs} H={hidden} {mode}"
            results[key] = statistics.median(a / b for a, b in pairs)
print(json.dumps(results))
"""


def alternate(old: str, new: str, rounds: int, child: str, *args: str) -> dict[str, dict]:
    """Each round, one fresh process per tree, old first: ``python -c child TREE *args``, which
    prints a JSON object of numbers. Every key's numbers over the rounds, by ``"old"`` and
    ``"new"``."""
    found: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for _ in range(rounds):
        for label, tree in (("old", old), ("new", new)):
            command = [sys.executable, "-c", child, tree, *args]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            for key, value in json.loads(out).items():
                found[label].setdefault(key, []).append(value)
    return found


def print_ranges(found: dict[str, dict], first: str, old: str, new: str, width: int) -> None:
    """A line a key: each tree's range over the rounds, and the ratio of their medians."""
    print(f"{first:{width}} {old:>15} {new:>15} {'new/old':>8}")
    for key, before in found["old"].items():
        after = found["new"][key]
        change = statistics.median(after) / statistics.median(before)
        span = f"{min(before):.2f}-{max(before):.2f}", f"{min(after):.2f}-{max(after):.2f}"
        print(f"{key:{width}} {span[0]:>15} {span[1]:>15} {change:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the old tree's src folder")
    parser.add_argument("new", help="the new tree's src folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--bidirectional", action="store_true", help="bidirectional layers and nn.LSTM"
    )
    parser.add_argument(
        "--shapes",
        default="1,256,32,64;16,256,32,128",
        help="B,T,I,H points separated by ';' (default: %(default)s)",
    )
    parser.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    args = parser.parse_args()
    shapes = json.dumps([[int(v) for v in point.split(",")] for point in args.shapes.split(";")])
    both = "bidirectional" if args.bidirectional else "one direction"
    here = str(Path(__file__).parent)  # the child imports large_batch_paths.timed from it
    found = alternate(
        args.old, args.new, args.rounds, CHILD, shapes, str(args.threads), both, args.layers, here
    )
    print_ranges(found, "layer, shape, mode", "old / nn.LSTM", "new / nn.LSTM", 58)


if __name__ == "__main__":
    main()
