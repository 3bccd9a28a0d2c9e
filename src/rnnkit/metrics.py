"""Forecast metrics and the simple baselines every forecast is compared with."""

from __future__ import annotations

import warnings

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


def detect_season(values: np.ndarray, max_lag: int | None = None) -> int:
    """The lag in ``[2, max_lag]`` whose autocorrelation is the highest *local peak*, or 1
    if there is none. Peaks only: a smooth series is most correlated at lag 1, 2, ... without
    being periodic there. ``values`` is ``(T,)``; ``max_lag`` defaults to ``T // 3``."""
    max_lag = min(max_lag or len(values) // 3, len(values) - 2)
    if max_lag < 2:
        return 1
    x = values - values.mean()
    spectrum = np.fft.rfft(x, n=2 * len(x))
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 2]
    acf = acf / acf[0]  # the usual (biased) estimate: long lags weigh less
    lags = np.arange(2, max_lag + 1)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    return int(peaks[np.argmax(acf[peaks])]) if len(peaks) else 1


def rolling_origins(length: int, test_size: int, horizon: int) -> list[int]:
    """Forecast origins that tile the last ``test_size`` steps with ``horizon``-step forecasts."""
    return list(range(length - test_size, length - horizon + 1, horizon))


def seasonal_naive(values: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """Each step repeats the value one season earlier: ``(len(origins), horizon)`` for ``values``
    ``(T,)``; forecasts beyond one season repeat the last observed season."""
    steps = np.arange(horizon)
    return np.stack([values[t - season + steps % season] for t in origins])


def holt_winters(values: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """Additive Holt-Winters (statsmodels) fitted once on ``values[:origins[0]]``, then run with
    those parameters over the actual data up to each origin: ``(len(origins), horizon)``."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    def model(history: np.ndarray, **initial: object) -> ExponentialSmoothing:
        return ExponentialSmoothing(history, seasonal="add", seasonal_periods=season, **initial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter
        fitted = model(values[: origins[0]], initialization_method="estimated").fit()
        params = fitted.params
        forecasts = []
        for origin in origins:
            rerun = model(
                values[:origin],
                initialization_method="known",
                initial_level=params["initial_level"],
                initial_seasonal=params["initial_seasons"],
            ).fit(
                smoothing_level=params["smoothing_level"],
                smoothing_seasonal=params["smoothing_seasonal"],
                optimized=False,
            )
            forecasts.append(rerun.forecast(horizon))
    return np.stack(forecasts)
