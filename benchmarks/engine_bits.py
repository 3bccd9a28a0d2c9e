"""Does a change to the engine keep its results to the bit? Two source trees, compared.

Each tree runs in a fresh process that computes, from fixed seeds, every output, final state
and gradient (input and parameters) of the engine's layers over a grid of cases: the layer
kinds with their regularisers, float32 and float64, B = 1, 5 and 40, one and two directions,
training and inference, with and without ``lengths``. The arrays are compared with
``numpy.array_equal``; the script prints how many differ and exits 1 if any does.

Usage (the old tree from git, e.g. the commit before a change)::

    mkdir -p /tmp/old && git archive <rev> src | tar -x -C /tmp/old
    python benchmarks/engine_bits.py /tmp/old/src src
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import torch
import rnnkit.nn as nn

torch.set_num_threads(1)
makers = {
    "LSTM": lambda i, h, **o: nn.LSTM(i, h, **o),
    "GRU": lambda i, h, **o: nn.GRU(i, h, **o),
    "LSTM zoneout": lambda i, h, **o: nn.LSTM(i, h, zoneout=0.2, **o),
    "LSTM rec-dropout": lambda i, h, **o: nn.LSTM(i, h, recurrent_dropout=0.2, **o),
    "GRU zoneout": lambda i, h, **o: nn.GRU(i, h, zoneout=0.2, **o),
    "PeepholeLSTM": nn.PeepholeLSTM, "LayerNormLSTM": nn.LayerNormLSTM,
    "LayerNormGRU": nn.LayerNormGRU, "IndRNN": nn.IndRNN, "JordanRNN": nn.JordanRNN,
    "MinGRU": nn.MinGRU, "MinLSTM": nn.MinLSTM,
}
found = {}
for dtype in (torch.float32, torch.float64):
    for name, make in makers.items():
        for batch, steps, inputs, hidden in ((1, 9, 3, 8), (5, 7, 4, 16), (40, 6, 6, 12)):
            for both in (False, True):
                for training in (True, False):
                    torch.manual_seed(0)
                    layer = make(inputs, hidden, num_layers=2, bidirectional=both).to(dtype)
                    layer.train(training)
                    x = torch.randn(steps, batch, inputs, dtype=dtype, requires_grad=True)
                    lengths = torch.randint(1, steps + 1, (batch,))
                    lengths[0] = steps
                    for given in (None, lengths):
                        key = f"{name} {dtype} B={batch} both={both} train={training} "
                        key += f"lengths={given is not None}"
                        torch.manual_seed(1)
                        with torch.set_grad_enabled(training):
                            y = layer(x, lengths=given)
                        leaves = torch.utils._pytree.tree_leaves(y)
                        if training:
                            loss = sum((t.float() ** 2).sum() for t in leaves)
                            leaves += torch.autograd.grad(loss, [x, *layer.parameters()])
                        for k, t in enumerate(leaves):
                            found[f"{key} #{k}"] = t.detach().numpy()
np.savez(sys.argv[2], **found)
"""


def arrays(tree: str, folder: Path, label: str) -> dict[str, np.ndarray]:
    """Every array of the grid, computed by the package in ``tree`` (a ``src`` folder)."""
    out = folder / f"{label}.npz"
    subprocess.run([sys.executable, "-c", CHILD, tree, str(out)], check=True)
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the old tree's src folder")
    parser.add_argument("new", help="the new tree's src folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        old, new = arrays(args.old, Path(folder), "old"), arrays(args.new, Path(folder), "new")
    if old.keys() != new.keys():
        raise SystemExit(f"the trees computed different cases: {sorted(old.keys() ^ new.keys())}")
    differ = [key for key in old if not np.array_equal(old[key], new[key], equal_nan=True)]
    print(f"{len(old)} arrays, {len(differ)} differ")
    for key in differ[:20]:
        print(f"  {key}: largest difference {np.abs(old[key] - new[key]).max():.3g}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
