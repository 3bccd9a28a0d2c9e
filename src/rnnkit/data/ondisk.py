"""A series larger than memory: windows read from a ``.npy`` file on demand.

:class:`DiskWindows` is a map-style dataset over a ``(T, C)`` array stored with
``numpy.save``: window ``i`` is read from the file when a batch asks for it (one
positioned read of ``lookback + horizon`` rows), so a process holds one batch of windows
at a time whatever the file's size. Under DDP each process reads only the windows of its
shard. Reads go through the operating system's file cache rather than a memory map: pages
of a map that a process has touched count in its resident memory (RSS), cached file
pages do not, and the kernel drops them when memory is short.

The scaler is fitted in one pass over the training rows, a chunk at a time
(:func:`fit_scaler`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnkit.data.windows import Scaler

_CHUNK_ROWS = 1 << 16


def _header(path: Path, kind: str = "f") -> tuple[tuple[int, ...], np.dtype, int]:
    """The array's shape, dtype and data offset in a ``.npy`` file, from its header only;
    the array must be ``(T, C)``, C-ordered, of dtype kind ``kind`` (``"f"`` float, ``"u"``
    unsigned int)."""
    with path.open("rb") as file:
        version = np.lib.format.read_magic(file)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(file)
        offset = file.tell()
    if fortran or len(shape) != 2 or dtype.kind != kind:
        expected = {"f": "float", "u": "unsigned int"}[kind]
        raise ValueError(
            f"path: expected a C-ordered (T, C) {expected} array in {str(path)!r}, got shape "
            f"{shape}, dtype {dtype}{', Fortran order' if fortran else ''}"
        )
    return shape, dtype, offset


class _Rows:
    """Positioned reads of rows of a ``(T, C)`` ``.npy`` file (opened for each read, so a
    dataset pickles to DataLoader workers and DDP processes without an open file)."""

    def __init__(self, path: str | Path, kind: str = "f") -> None:
        self.path = Path(path)
        (self.count, self.columns), self.dtype, self.offset = _header(self.path, kind)

    def read(self, first: int, count: int) -> np.ndarray:
        """Rows ``[first, first + count)``, ``(count, C)``."""
        row_bytes = self.columns * self.dtype.itemsize
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(descriptor, count * row_bytes, self.offset + first * row_bytes)
        finally:
            os.close(descriptor)
        return np.frombuffer(data, self.dtype).reshape(-1, self.columns)


class DiskWindows(Dataset):
    """Windows ``(inputs (lookback, C), targets (horizon, K))`` over rows ``[start, stop)``
    of a ``(T, C)`` ``.npy`` file, read lazily and standardised by ``scaler``; the targets
    are the first ``num_targets`` columns. Origins ``t`` step by ``stride`` from
    ``start + lookback`` (as :func:`rnnkit.data.windows.window_origins`).

    Raises:
        ValueError: the file is not a ``(T, C)`` float ``.npy`` array, or the range holds
            no window.
    """

    def __init__(
        self,
        path: str | Path,
        lookback: int,
        horizon: int,
        stride: int = 1,
        start: int = 0,
        stop: int | None = None,
        num_targets: int = 1,
        scaler: Scaler | None = None,
    ) -> None:
        self.rows = _Rows(path)
        stop = self.rows.count if stop is None else min(stop, self.rows.count)
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        self.num_targets, self.scaler = num_targets, scaler
        self.first = start + lookback
        self.count = max(0, (stop - horizon - self.first) // stride + 1)
        if self.count == 0:
            raise ValueError(
                f"start, stop: rows [{start}, {stop}) hold no window of lookback "
                f"{lookback} + horizon {horizon}"
            )

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(f"index: expected 0 <= index < {self.count}, got {index}")
        origin = self.first + index * self.stride
        rows = self.rows.read(origin - self.lookback, self.lookback + self.horizon)
        rows = rows.astype(np.float64)
        if self.scaler is not None:
            rows = self.scaler.transform(rows)
        window = torch.from_numpy(rows.astype(np.float32))
        return window[: self.lookback], window[self.lookback :, : self.num_targets]


def fit_scaler(path: str | Path, stop: int | None = None) -> Scaler:
    """A :class:`Scaler` of rows ``[0, stop)`` of a ``(T, C)`` ``.npy`` file, read a chunk
    at a time and merged by Chan et al.'s pairwise update (float64; constant columns get
    ``std = 1``)."""
    rows = _Rows(path)
    stop = rows.count if stop is None else min(stop, rows.count)
    seen, mean, squares = 0, np.zeros(rows.columns), np.zeros(rows.columns)
    for first in range(0, stop, _CHUNK_ROWS):
        chunk = rows.read(first, min(_CHUNK_ROWS, stop - first)).astype(np.float64)
        size, chunk_mean = len(chunk), chunk.mean(axis=0)
        delta = chunk_mean - mean
        total = seen + size
        mean = mean + delta * size / total
        squares += np.square(chunk - chunk_mean).sum(axis=0) + delta**2 * seen * size / total
        seen = total
    std = np.sqrt(squares / seen)
    return Scaler(mean, np.where(std > 0, std, 1.0))
