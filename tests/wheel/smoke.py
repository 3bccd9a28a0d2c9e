"""Run inside a fresh virtual environment where only the wheel (and its dependencies) is
installed: every public module imports, every layer trains on the fast path without a
warning, and the runtime reads back what the layers export. Run with ``python -W error``."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from pathlib import Path

import rnnkit


class _FailOnWarning(logging.Handler):
    """A logged warning fails the check (the engine says `numba is not installed` this way)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING and record.name.startswith("rnnkit"):
            raise SystemExit(f"logged warning: {record.name}: {record.getMessage()}")


logging.getLogger().addHandler(_FailOnWarning())

# 1. Installed from the wheel, not from a source tree.
location = Path(rnnkit.__file__).resolve()
assert "site-packages" in location.parts, f"rnnkit imported from {location}, not the wheel"
print(f"rnnkit {rnnkit.__version__} from {location.parent}")

# 2. Every public module imports (a leading underscore anywhere in the path: private).
public = ["rnnkit"] + [
    info.name
    for info in pkgutil.walk_packages(rnnkit.__path__, "rnnkit.")
    if not any(part.startswith("_") for part in info.name.split("."))
]
for name in public:
    importlib.import_module(name)
print(f"{len(public)} public modules import: {', '.join(public)}")

# 3. The bundled data files are in the wheel.
from rnnkit.data import DATASETS, dataset_path  # noqa: E402

for name in DATASETS:
    assert dataset_path(name).is_file(), name
print(f"{len(DATASETS)} bundled data sets present")

# 4. Every layer, forward and backward, on the fast path: numba is installed (a core
# dependency), and the engine would log a warning (which fails here) if it fell back.
import numba  # noqa: E402, F401
import numpy as np  # noqa: E402
import torch  # noqa: E402

import rnnkit.runtime as rt  # noqa: E402
from rnnkit.export import export_runtime  # noqa: E402
from rnnkit.nn import LAYERS, make_layer  # noqa: E402

torch.manual_seed(0)
work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
for name in sorted(LAYERS):
    layer = make_layer(name, 3, 8, num_layers=2, bidirectional=True)
    x = torch.randn(12, 4, 3, requires_grad=True)
    lengths = torch.tensor([12, 7, 1, 0])
    output, _ = layer(x, lengths=lengths)
    output.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), name
    assert all(p.grad is not None for p in layer.parameters()), name
    # the extras that put every family on the fused engine (a cell without a dropout mask
    # refuses recurrent dropout in one ValueError, by design)
    for extra in ({"zoneout": 0.1}, {"recurrent_dropout": 0.1}):
        try:
            regularised = make_layer(name, 3, 8, **extra)
        except ValueError as error:
            assert "does not accept dropout_mask" in str(error), error
            continue
        regularised(torch.randn(12, 4, 3))[0].sum().backward()
    # streamed by the runtime as torch runs it
    single = make_layer(name, 3, 8).eval()
    path = export_runtime(single, work / f"{name}.rnnkit")
    stream = rt.load(path)
    steps = torch.randn(5, 3)
    with torch.no_grad():
        expected = single(steps)[0].numpy()
    got = np.stack([stream.step(step) for step in steps.numpy()])
    assert np.abs(got - expected).max() < 1e-4, (name, np.abs(got - expected).max())
print(f"{len(LAYERS)} layers: forward, backward, zoneout and recurrent dropout, runtime parity")
assert rt.ACCELERATED, "the runtime runs without numba's kernels"
print("runtime backend: numba")
