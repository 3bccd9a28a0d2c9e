"""Windows over a series and the scaler fitted on the training part only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """Per-column standardisation ``(x - mean) / std``; ``mean``, ``std`` ``(C,)``."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        """From ``values`` ``(T, C)``; constant columns get ``std = 1``."""
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        return values * self.std[columns] + self.mean[columns]


def window_origins(start: int, stop: int, lookback: int, horizon: int, stride: int) -> np.ndarray:
    """Origins ``t`` whose input ``[t - lookback, t)`` starts at or after 0 and whose target
    ``[t, t + horizon)`` lies inside ``[start, stop)``."""
    first = max(start, lookback)
    return np.arange(first, stop - horizon + 1, stride)


def make_windows(
    features: np.ndarray, targets: np.ndarray, origins: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(M, lookback, F)`` and targets ``(M, horizon, K)`` at ``origins`` ``(M,)``."""
    inputs = np.stack([features[t - lookback : t] for t in origins])
    outputs = np.stack([targets[t : t + horizon] for t in origins])
    return inputs, outputs
