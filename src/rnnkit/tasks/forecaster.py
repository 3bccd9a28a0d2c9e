"""Forecaster: many-to-one, direct multi-step forecasting of a series with any rnnkit cell.

An encoder layer reads the last ``lookback`` steps (targets, covariates and calendar
features, standardised with statistics of the training part only) and a linear head maps
its last output to all ``horizon`` future target values at once.

With ``seasonal_base`` (the default) the network forecasts the *change from one season
earlier* and reads that change as an extra input: the forecast is the seasonal-naive
forecast plus a learned correction, so training starts from a strong baseline instead of
rediscovering the season (seasonal differencing, Box & Jenkins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from rnnkit import metrics
from rnnkit.data.series import TimeSeries
from rnnkit.data.windows import Scaler, make_windows, window_origins
from rnnkit.nn import make_layer
from rnnkit.nn._checks import check_int, check_rate
from rnnkit.preprocess import calendar_features
from rnnkit.tasks._base import Task, build_network
from rnnkit.train import History, ModelFileError, train

TASK = "forecaster"


@dataclass
class ForecasterConfig:
    """What the model sees and how big it is.

    Attributes:
        lookback: input steps per forecast (two days of half-hours by default).
        horizon: steps forecast at once (a day of half-hours by default).
        stride: steps between training windows.
        cell: a layer name from :data:`rnnkit.nn.LAYERS`.
        hidden_size, num_layers, dropout: the encoder's sizes and inter-layer dropout.
        calendar: add time-of-day and day-of-week features when the series has timestamps.
        season: steps per season for the baselines and MASE; None detects it.
        seasonal_base: forecast the change from one season earlier (module docstring).
    """

    lookback: int = 96
    horizon: int = 48
    stride: int = 2
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    calendar: bool = True
    season: int | None = None
    seasonal_base: bool = True

    def __post_init__(self) -> None:
        for name in ("lookback", "horizon", "stride", "hidden_size", "num_layers"):
            check_int(name, getattr(self, name))
        check_rate("dropout", self.dropout)
        if self.season is not None:
            check_int("season", self.season)


class ForecastNetwork(nn.Module):
    """``(N, lookback, F)`` -> ``(N, horizon, K)``: encoder layer, last output, linear head."""

    def __init__(self, num_features: int, num_targets: int, config: ForecasterConfig) -> None:
        super().__init__()
        self.horizon, self.num_targets = config.horizon, num_targets
        self.encoder = make_layer(
            config.cell,
            num_features,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden_size, config.horizon * num_targets)

    def forward(self, x: Tensor) -> Tensor:
        output, _ = self.encoder(x)  # (N, lookback, H)
        return self.head(output[:, -1]).view(x.shape[0], self.horizon, self.num_targets)


@dataclass
class ForecastReport:
    """Rolling-origin evaluation on the last ``test_size`` steps of a series.

    Attributes:
        metrics: ``{method: {"MAE": ..., "RMSE": ..., "MASE": ...}}`` for the model and the
            baselines, in the series' units (MASE is unitless).
        forecasts: ``{method: (M, horizon, K)}`` at the ``origins`` ``(M,)``.
        truth: ``(M, horizon, K)``.
        season: the season used by the baselines and MASE.
    """

    metrics: dict[str, dict[str, float]]
    forecasts: dict[str, np.ndarray]
    truth: np.ndarray
    origins: list[int]
    season: int


@dataclass
class _Fitted:
    scaler: Scaler
    season: int
    columns: tuple[str, ...]
    num_targets: int
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class Forecaster(Task[_Fitted, ForecastNetwork]):
    """Fit, evaluate, predict, save and load a recurrent forecaster.

    Example:
        >>> from rnnkit.data import load_series
        >>> series = load_series("electricity")
        >>> model = Forecaster(cell="gru", hidden_size=32)
        >>> history = model.fit(series.slice(stop=-672), val_size=672)   # doctest: +SKIP
        >>> report = model.evaluate(series, test_size=672)               # doctest: +SKIP
    """

    task = TASK
    config_type = ForecasterConfig
    config: ForecasterConfig

    # ------------------------------------------------------------------ training

    def fit(
        self,
        series: TimeSeries,
        val_size: int = 672,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train on ``series``; its last ``val_size`` steps are the validation part.

        The scaler and the detected season come from the training part only. ``log_dir``,
        ``progress``, ``trainer`` and ``resume`` are :func:`rnnkit.train.train`'s.
        """
        config = self.config
        check_int("val_size", val_size)
        train_end = len(series) - val_size
        season = config.season or metrics.detect_season(series.targets[: max(train_end, 0), 0])
        warmup = config.lookback + (season if config.seasonal_base else 0)
        if train_end < warmup + config.horizon or val_size < config.horizon:
            raise ValueError(
                f"series: {len(series)} steps are too few for {warmup} steps of input "
                f"(lookback{' + season' if config.seasonal_base else ''}) + horizon "
                f"{config.horizon} of training plus val_size {val_size} >= horizon"
            )
        self._fitted = _Fitted(
            Scaler.fit(series.values[:train_end]), season, series.columns, series.num_targets
        )
        features, scaled = self._features(series)
        torch.manual_seed(self.training.seed)
        self.network = ForecastNetwork(features.shape[1], series.num_targets, config)
        datasets = []
        for start, stop, stride in ((0, train_end, config.stride), (train_end, len(series), 1)):
            origins = window_origins(
                max(start, self._warmup), stop, config.lookback, config.horizon, stride
            )
            inputs, outputs = make_windows(
                features, scaled, origins, config.lookback, config.horizon
            )
            targets = outputs - self._base(scaled, origins)
            datasets.append(TensorDataset(_float_tensor(inputs), _float_tensor(targets)))
        history = train(
            self.network, _mse, *datasets, self.training, log_dir, progress, trainer, resume=resume
        )
        self._fitted.history = history
        return history

    @property
    def _warmup(self) -> int:
        """Steps of history one forecast needs."""
        fitted = self._require_fitted()
        return self.config.lookback + (fitted.season if self.config.seasonal_base else 0)

    def _base(self, scaled: np.ndarray, origins: np.ndarray | list[int]) -> np.ndarray:
        """What the network's output is added to: the seasonal-naive forecast in scaled
        units with ``seasonal_base``, else zeros; ``(M, horizon, K)``."""
        horizon, season = self.config.horizon, self._require_fitted().season
        if not self.config.seasonal_base:
            return np.zeros((len(origins), horizon, scaled.shape[1]))
        steps = np.arange(horizon)
        return np.stack([scaled[t - season + steps % season] for t in origins])

    def _features(self, series: TimeSeries) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs ``(T, F)`` and scaled targets ``(T, K)`` of a series."""
        fitted = self._require_fitted()
        if series.columns != fitted.columns:
            raise ValueError(
                f"series: expected columns {list(fitted.columns)} (as in training), got "
                f"{list(series.columns)}"
            )
        scaled = fitted.scaler.transform(series.values)
        targets = scaled[:, : fitted.num_targets]
        parts = [scaled]
        if self.config.seasonal_base:
            change = np.zeros_like(targets)  # (T, K): change from one season earlier
            change[fitted.season :] = targets[fitted.season :] - targets[: -fitted.season]
            parts.append(change)
        if self.config.calendar and series.timestamps is not None:
            parts.append(calendar_features(series.timestamps))
        return np.concatenate(parts, axis=1), targets

    # ------------------------------------------------------------------ inference

    def predict(self, series: TimeSeries, origins: list[int] | None = None) -> np.ndarray:
        """Forecasts in the series' units.

        Args:
            series: the history (and later data, which is ignored past each origin).
            origins: forecast origins ``t`` (each uses steps ``[t - lookback, t)``); default:
                the end of ``series``.

        Returns:
            ``(horizon, K)`` for the default origin, else ``(len(origins), horizon, K)``.
        """
        network, fitted = self._require_network(), self._require_fitted()
        single = origins is None
        origins = [len(series)] if single else list(origins)
        if min(origins) < self._warmup or max(origins) > len(series):
            raise ValueError(
                f"origins: expected values in [{self._warmup} (steps of input one forecast "
                f"needs), len(series) = {len(series)}], got {min(origins)}..{max(origins)}"
            )
        features, scaled = self._features(series)
        inputs = np.stack([features[t - self.config.lookback : t] for t in origins])
        network.eval()
        with torch.no_grad():
            change = network(_float_tensor(inputs)).double().numpy()
        forecasts = fitted.scaler.inverse(
            self._base(scaled, origins) + change, slice(0, fitted.num_targets)
        )
        return forecasts[0] if single else forecasts

    def evaluate(self, series: TimeSeries, test_size: int = 672) -> ForecastReport:
        """Rolling-origin evaluation over the last ``test_size`` steps against
        seasonal-naive and Holt-Winters, all fitted on the steps before them."""
        fitted = self._require_fitted()
        check_int("test_size", test_size)
        horizon, season = self.config.horizon, fitted.season
        longest = len(series) - max(self._warmup, 2 * season)
        if not horizon <= test_size <= longest:
            raise ValueError(
                f"test_size: expected horizon {horizon} <= test_size <= len(series) - "
                f"max(input steps, 2 * season) = {longest}, got {test_size}"
            )
        origins = metrics.rolling_origins(len(series), test_size, horizon)
        targets = series.targets
        truth = np.stack([targets[t : t + horizon] for t in origins])
        forecasts = {
            "rnnkit": self.predict(series, origins),
            "seasonal naive": _per_target(
                metrics.seasonal_naive, targets, origins, horizon, season
            ),
            "Holt-Winters": _per_target(metrics.holt_winters, targets, origins, horizon, season),
        }
        history = targets[: origins[0]]
        table = {
            name: {
                "MAE": metrics.mae(f, truth),
                "RMSE": metrics.rmse(f, truth),
                "MASE": float(
                    np.mean(
                        [
                            metrics.mase(f[..., k], truth[..., k], history[:, k], season)
                            for k in range(truth.shape[-1])
                        ]
                    )
                ),
            }
            for name, f in forecasts.items()
        }
        return ForecastReport(table, forecasts, truth, origins, season)

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, scaler, curves and ``metadata`` (JSON:
        e.g. where the data came from) to ``directory``."""
        network, fitted = self._require_network(), self._require_fitted()
        fitted_state = {
            "columns": list(fitted.columns),
            "num_targets": fitted.num_targets,
            "season": fitted.season,
            "scaler": {"mean": fitted.scaler.mean.tolist(), "std": fitted.scaler.std.tolist()},
            "num_features": network.encoder.input_size,
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Rebuild a forecaster saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        scaler = _recorded_scaler(directory, state["scaler"], len(state["columns"]))
        season = state["season"]
        if isinstance(season, bool) or not isinstance(season, int) or season < 1:
            raise ModelFileError(
                f"model: config.json in {str(directory)!r} holds season {season!r}; expected an "
                "int >= 1"
            )
        model._fitted = _Fitted(
            scaler, state["season"], tuple(state["columns"]), state["num_targets"],
            History(**state["history"]), state["metadata"],
        )  # fmt: skip
        model.network = build_network(
            directory,
            partial(ForecastNetwork, state["num_features"], state["num_targets"], model.config),
            weights,
        )
        return model


def _recorded_scaler(directory: str | Path, recorded: Any, columns: int) -> Scaler:
    """The scaler a model folder records: ``columns`` finite means and positive stds."""
    try:
        mean, std = (np.asarray(recorded[key], dtype=np.float64) for key in ("mean", "std"))
    except (TypeError, KeyError, ValueError):
        mean = std = np.empty(0)
    if not (mean.shape == std.shape == (columns,) and np.isfinite(mean).all() and (std > 0).all()):
        raise ModelFileError(
            f"model: config.json in {str(directory)!r} holds scaler {recorded!r}; expected "
            f"mean and std of {columns} columns, finite, std > 0"
        )
    return Scaler(mean, std)


def _float_tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array.astype(np.float32))


def _mse(network: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    inputs, targets = batch
    return nn.functional.mse_loss(network(inputs), targets)


def _per_target(
    baseline: Any, targets: np.ndarray, origins: list[int], horizon: int, season: int
) -> np.ndarray:
    """Run a univariate baseline on each target column: ``(M, horizon, K)``."""
    columns = [baseline(targets[:, k], origins, horizon, season) for k in range(targets.shape[1])]
    return np.stack(columns, axis=-1)
