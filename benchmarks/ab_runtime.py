"""A/B of the runtime's compiled step between two source trees, for every cell with a kernel.

Every cell of ``rnnkit.cells.CELLS`` whose spec has a ``runtime_kernel`` is exported once per
hidden size (input 8, one layer, batch 1) by the package this script runs with. Each round
then runs one fresh process per tree, alternating; a process loads every file with
``backend="numba"`` and times ``model.step`` on one stream (CPU time, the median of
``--repeats`` passes of ``--steps`` steps, after a warm-up). The table gives each tree's range
over the rounds in microseconds per step and the ratio of the medians.

Usage (the old tree from git, e.g. the commit before a change)::

    mkdir -p /tmp/old && git archive <rev> src | tar -x -C /tmp/old
    python benchmarks/ab_runtime.py /tmp/old/src src [--rounds 3] [--hidden 64 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ab_engine import alternate, print_ranges

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import rnnkit.runtime as rt
files, steps, repeats = json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = np.random.default_rng(0).standard_normal((steps, 8)).astype(np.float32)
found = {}
for key, path in files.items():
    model = rt.load(path, backend="numba")
    for x_t in x[:100]:
        model.step(x_t)
    passes = []
    for _ in range(repeats):
        start = time.process_time()
        for x_t in x:
            model.step(x_t)
        passes.append((time.process_time() - start) / steps * 1e6)
    found[key] = statistics.median(passes)
print(json.dumps(found))
"""


def export_files(folder: Path, hidden_sizes: list[int]) -> dict[str, str]:
    """One runtime file per cell with a runtime kernel and hidden size, by this package."""
    import torch

    from rnnkit.cells import CELLS
    from rnnkit.export import export_runtime
    from rnnkit.nn import LAYERS

    files = {}
    for name, spec in CELLS.items():
        if spec.runtime_kernel is None:
            continue
        for hidden in hidden_sizes:
            torch.manual_seed(0)
            path = folder / f"{name}-{hidden}.rnnkit"
            export_runtime(LAYERS[name](8, hidden).float().eval(), path)
            files[f"{name} H={hidden}"] = str(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the old tree's src folder")
    parser.add_argument("new", help="the new tree's src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=2000, help="steps per pass (2000)")
    parser.add_argument("--repeats", type=int, default=5, help="passes per process (5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = json.dumps(export_files(Path(folder), args.hidden))
        steps, repeats = str(args.steps), str(args.repeats)
        found = alternate(args.old, args.new, args.rounds, CHILD, files, steps, repeats)
    print_ranges(found, "cell", "old µs", "new µs", 24)


if __name__ == "__main__":
    main()
