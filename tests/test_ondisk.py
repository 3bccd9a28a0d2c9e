"""Windows read lazily from a .npy file equal those cut from the array in memory."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data import ondisk
from rnnkit.data.ondisk import DiskWindows, fit_scaler
from rnnkit.data.windows import Scaler, make_windows, window_origins


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, np.ndarray]:
    values = np.random.default_rng(0).normal(5.0, 2.0, size=(1000, 3)).astype(np.float32)
    path = tmp_path / "series.npy"
    np.save(path, values)
    return path, values


@pytest.mark.parametrize(("start", "stop", "stride"), [(0, None, 1), (100, 900, 7)])
def test_windows_equal_the_in_memory_ones(
    series: tuple[Path, np.ndarray], start: int, stop: int | None, stride: int
) -> None:
    path, values = series
    scaler = Scaler.fit(values[:600].astype(np.float64))
    windows = DiskWindows(path, lookback=24, horizon=6, stride=stride, start=start, stop=stop,
                          num_targets=2, scaler=scaler)  # fmt: skip
    scaled = scaler.transform(values.astype(np.float64))
    # make_windows' origins count from row 0; a range starting later shifts the series
    origins = window_origins(0, (stop or len(values)) - start, 24, 6, stride)
    inputs, targets = make_windows(scaled[start:], scaled[start:, :2], origins, 24, 6)
    assert len(windows) == len(origins)
    for index in (0, len(windows) // 2, len(windows) - 1):
        x, y = windows[index]
        torch.testing.assert_close(x, torch.tensor(inputs[index], dtype=torch.float32))
        torch.testing.assert_close(y, torch.tensor(targets[index], dtype=torch.float32))
    with pytest.raises(IndexError):
        windows[len(windows)]


def test_the_scaler_is_fitted_a_chunk_at_a_time(
    series: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, values = series
    monkeypatch.setattr(ondisk, "_CHUNK_ROWS", 64)  # 800 rows: 12 chunks and a part
    fitted = fit_scaler(path, stop=800)
    expected = Scaler.fit(values[:800].astype(np.float64))
    np.testing.assert_allclose(fitted.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(fitted.std, expected.std, rtol=1e-10)


def test_a_dataset_pickles_without_its_open_file(series: tuple[Path, np.ndarray]) -> None:
    path, _ = series
    windows = DiskWindows(path, lookback=8, horizon=2)
    first = windows[3]
    copy = pickle.loads(pickle.dumps(windows))  # as a DataLoader worker receives it
    torch.testing.assert_close(copy[3][0], first[0])


def test_files_it_cannot_read_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((10, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^path: expected a C-ordered \(T, C\) float array"):
        DiskWindows(path, lookback=2, horizon=1)
    np.save(path, np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^start, stop: rows \[0, 10\) hold no window"):
        DiskWindows(path, lookback=8, horizon=4)
