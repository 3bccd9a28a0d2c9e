"""A series larger than memory trains from disk: peak RSS of each process vs the file.

    python benchmarks/bench_ondisk.py [--gigabytes 3] [--devices 2] [--folder DIR]

Writes (once) a ``(T, 16)`` float32 ``.npy`` random walk of about ``--gigabytes`` GB a
chunk at a time, fits the scaler on its first 99% in one chunked pass, and trains a GRU
forecaster for one epoch on windows read lazily (:class:`rnnkit.data.ondisk.DiskWindows`,
lookback 48, horizon 12, one window every 1024 rows, so the epoch reaches across the whole
file), on ``--devices`` processes. Each process reports its peak resident memory
(VmHWM) at the end; the file's size over the largest peak is the point.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

COLUMNS, LOOKBACK, HORIZON, STRIDE = 16, 48, 12, 1024


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(COLUMNS, 64, batch_first=True)
        self.head = nn.Linear(64, HORIZON)

    def forward(self, x: Tensor) -> Tensor:  # (N, LOOKBACK, C) -> (N, HORIZON, 1)
        out, _ = self.gru(x)
        return self.head(out[:, -1])[..., None]


def _loss(network: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    return nn.functional.mse_loss(network(batch[0]), batch[1])


def _write(path: Path, rows: int) -> None:
    """A random walk per column, written a chunk at a time with plain writes (a writable
    memory map would count the file's pages in this process's RSS)."""
    staging = path.with_suffix(".partial")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": (rows, COLUMNS)}  # fmt: skip
    rng, level, chunk = np.random.default_rng(0), np.zeros(COLUMNS), 1 << 20
    with staging.open("wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        for first in range(0, rows, chunk):
            steps = rng.normal(size=(min(chunk, rows - first), COLUMNS))
            walk = level + np.cumsum(steps, axis=0)
            file.write(walk.astype(np.float32).tobytes())
            level = walk[-1]
    staging.rename(path)


def _peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM, the high-water mark of its own
    address space (ru_maxrss would carry over the launching process's, across fork and
    exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("peak RSS: /proc/self/status has no VmHWM (not Linux?)")


def main() -> None:
    from rnnkit.data.ondisk import DiskWindows, fit_scaler
    from rnnkit.train import TrainConfig, train
    from rnnkit.train.distributed import is_global_zero

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=3.0)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/rnnkit-ondisk"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    rows = int(args.gigabytes * 1e9 / (4 * COLUMNS))
    path = args.folder / f"series-{rows}.npy"
    if not path.exists() and is_global_zero():  # the further processes start after this
        started = time.perf_counter()
        _write(path, rows)
        print(f"wrote {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s")
    split = int(rows * 0.99)
    started = time.perf_counter()
    scaler = fit_scaler(path, stop=split)
    scaling = time.perf_counter() - started
    train_set = DiskWindows(path, LOOKBACK, HORIZON, STRIDE, stop=split, scaler=scaler)
    val_set = DiskWindows(path, LOOKBACK, HORIZON, STRIDE, start=split - LOOKBACK,
                          scaler=scaler)  # fmt: skip
    torch.manual_seed(0)
    network = _Net()
    config = TrainConfig(max_epochs=1, batch_size=256, devices=args.devices)
    started = time.perf_counter()
    history = train(network, _loss, train_set, val_set, config, progress=False)
    seconds = time.perf_counter() - started
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    peak = _peak_rss()
    result = {
        "rank": rank, "file_gb": path.stat().st_size / 1e9, "peak_rss_gb": peak / 1e9,
        "train_windows": len(train_set), "scaler_seconds": scaling, "fit_seconds": seconds,
        "val_loss": history.val_loss,
    }  # fmt: skip
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
