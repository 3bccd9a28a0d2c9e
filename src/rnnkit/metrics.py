"""Forecast metrics and the simple baselines every forecast is compared with."""

from __future__ import annotations

import numpy as np


def mae(forecast: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(forecast - truth)))


def rmse(forecast: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forecast - truth) ** 2)))


def mase(forecast: np.ndarray, truth: np.ndarray, history: np.ndarray, season: int) -> float:
    """MAE scaled by the in-sample MAE of the seasonal-naive forecast on ``history``
    (Hyndman & Koehler 2006); below 1 beats that baseline's in-sample error."""
    scale = np.mean(np.abs(history[season:] - history[:-season]))
    return mae(forecast, truth) / float(scale)


def rolling_origins(length: int, test_size: int, horizon: int) -> list[int]:
    """Forecast origins that tile the last ``test_size`` steps with ``horizon``-step forecasts."""
    return list(range(length - test_size, length - horizon + 1, horizon))


def seasonal_naive(values: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """Each step repeats the value one season earlier: ``(len(origins), horizon, ...)`` for
    ``values`` ``(T, ...)``; forecasts beyond one season repeat the last observed season."""
    steps = np.arange(horizon)
    return np.stack([values[t - season + steps % season] for t in origins])
