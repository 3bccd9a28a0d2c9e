"""Forecaster: many-to-one, direct multi-step forecasting of a series with any rnnkit cell.

An encoder layer reads the last ``lookback`` steps (targets, covariates and calendar
features, standardised with statistics of the training part only) and a linear head maps
its last output to all ``horizon`` future target values at once.

With ``seasonal_base`` (the default) the network forecasts a *correction to a baseline's
forecast* and reads the change from one season earlier as an extra input, so training
starts from a strong forecast instead of rediscovering the season and the trend (seasonal
differencing, Box & Jenkins; forecasting the residual of a statistical model, Zhang 2003).

Four choices are made from the training data at fit time, each recorded in the model folder:
- ``base``: the baseline corrected, seasonal naive, AutoETS or AutoARIMA (where it fits in
  time), whichever forecasts the validation part best; an AutoETS base keeps the form
  selected on the training part (``forms``) and re-estimates its parameters before each
  forecast, while an AutoARIMA one is selected anew by AICc on the longer history (orders
  chosen on a short training part forecast the test part worse). The head starts at zero
  (an untrained network forecasts the base exactly), and corrections that do not beat the
  base on validation are dropped;
- ``transform``: the network works on log values where the AICc-selected exponential
  smoothing model of the training part is multiplicative (and the series positive);
- ``blend``: the forecast is ``w * network + (1 - w) * partner``, the partner AutoETS or
  AutoARIMA, with the partner and weight ``w`` that forecast the validation part best
  (``w = 1`` where the network alone is best): a combination never chosen blindly (Bates &
  Granger 1969; the M4 competition's lesson). Where seasonal naive alone forecasts the
  validation part strictly better than every blend, the forecast is seasonal naive's
  (partner ``"seasonal naive"``, ``w = 0``);
- interval ``calibration``: a second head gives quantiles (pinball loss, fitted after
  training with the encoder frozen, so it never moves the point forecast), shifted on the
  validation windows to cover as often as they claim (conformalized quantile regression,
  Romano, Patterson & Candes 2019).

A list of series (a panel) trains one global model: each series is scaled by its own
training part and keeps its own baseline forms.

Under DDP with a ``log_dir``, the statsforecast fits of these choices (the slow part before
training) are computed by global rank 0 alone, which writes them to
``log_dir/shared/baselines-<digest>.safetensors``; the other processes read them there.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from rnnkit import metrics
from rnnkit.atomic import atomic_file
from rnnkit.baselines import BaselineForecast, BaselineWarning, rolling_baselines
from rnnkit.checks import check_choice, check_int, check_rate
from rnnkit.data.frequency import best_season, choose_season, default_sizes, infer_frequency
from rnnkit.data.series import TimeSeries
from rnnkit.data.windows import Scaler, make_windows, window_origins
from rnnkit.nn import LAYERS, make_layer
from rnnkit.preprocess import calendar_features
from rnnkit.runtime import MAX_STEPS
from rnnkit.tasks._base import Task, build_network
from rnnkit.train import History, ModelFileError, train
from rnnkit.train.distributed import is_global_zero, written_by_rank_zero

TASK = "forecaster"
TRANSFORMS = ("none", "log")
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)  # network's share; ties go to the network
PARTNERS = ("AutoETS", "AutoARIMA")  # the baselines a network may be blended with
BASES = ("seasonal naive", *PARTNERS)  # the baselines a network may correct


@dataclass
class ForecasterConfig:
    """What the model sees and how big it is.

    Attributes:
        lookback: input steps per forecast; None chooses it at fit from the season, the
            horizon and the series' length (:func:`rnnkit.data.frequency.default_sizes`).
        horizon: steps forecast at once (a day of half-hours by default).
        stride: steps between training windows.
        cell: a layer name from :data:`rnnkit.nn.LAYERS`.
        hidden_size, num_layers, dropout: the encoder's sizes and inter-layer dropout.
        calendar: add time-of-day and day-of-week features when the series has timestamps.
        season: steps per season for the baselines and MASE; None detects it.
        seasonal_base: forecast a correction to a baseline's forecast (module docstring).
        base: that baseline, one of :data:`BASES`, or None to choose at fit.
        levels: prediction-interval levels in percent, e.g. ``(80, 95)``; ``()`` for none.
        transform: ``"none"``, ``"log"``, or None to choose at fit (module docstring).
        blend: combine the network with AutoETS or AutoARIMA, as validation chooses.
        seeds: train this many networks, network ``i`` with seed ``seed + i``, and average
            their forecasts and interval bounds.
    """

    lookback: int | None = None
    horizon: int = 48
    stride: int = 1
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    calendar: bool = True
    season: int | None = None
    seasonal_base: bool = True
    base: str | None = None
    levels: tuple[int, ...] = (80, 95)
    transform: str | None = None
    blend: bool = True
    seeds: int = 1

    def __post_init__(self) -> None:
        for name in ("horizon", "stride", "hidden_size", "num_layers", "seeds"):
            check_int(name, getattr(self, name))
        check_choice("cell", self.cell, tuple(LAYERS))  # before any fitting, not after
        if self.lookback is not None:
            check_int("lookback", self.lookback)
        check_rate("dropout", self.dropout)
        if self.season is not None:
            check_int("season", self.season)
        if self.transform is not None:
            check_choice("transform", self.transform, TRANSFORMS)
        if self.base is not None:
            check_choice("base", self.base, BASES)
        self.levels = tuple(self.levels)
        for level in self.levels:
            if isinstance(level, bool) or not isinstance(level, int) or not 0 < level < 100:
                raise ValueError(f"levels: expected ints in (0, 100), got {self.levels!r}")

    @property
    def quantiles(self) -> list[float]:
        """The head's quantile probabilities: lower then upper bound of each level."""
        return [q for level in self.levels for q in (0.5 - level / 200, 0.5 + level / 200)]


class ForecastNetwork(nn.Module):
    """``(N, lookback, F)`` -> ``(N, horizon, K)``: encoder layer, last output, linear head;
    a second linear head gives the interval bounds (:meth:`bounds`)."""

    def __init__(self, num_features: int, num_targets: int, config: ForecasterConfig) -> None:
        super().__init__()
        self.horizon, self.num_targets, self.input_size = config.horizon, num_targets, num_features
        self.encoder = make_layer(
            config.cell,
            num_features,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden_size, config.horizon * num_targets)
        # Zero: an untrained network forecasts its base exactly, and training moves it away
        # only as far as the training windows ask.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.num_quantiles = len(config.quantiles)
        if self.num_quantiles:
            self.quantile_head = nn.Linear(
                config.hidden_size, config.horizon * num_targets * self.num_quantiles
            )

    def encode(self, x: Tensor) -> Tensor:
        """``(N, lookback, F)`` -> the encoder's last output ``(N, H)``."""
        output, _ = self.encoder(x)
        return output[:, -1]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encode(x)).view(x.shape[0], self.horizon, self.num_targets)

    def bounds(self, encoded: Tensor) -> Tensor:
        """``(N, H)`` encoded -> ``(N, horizon, K, Q)`` quantiles (config.quantiles' order)."""
        shape = (encoded.shape[0], self.horizon, self.num_targets, self.num_quantiles)
        return self.quantile_head(encoded).view(shape)

    def forecast(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, lookback, F)`` -> the point forecast ``(N, horizon, K)`` and the quantiles
        ``(N, horizon, K, Q)`` (``Q = 0`` without levels)."""
        encoded = self.encode(x)
        change = self.head(encoded).view(x.shape[0], self.horizon, self.num_targets)
        return change, self.bounds(encoded) if self.num_quantiles else change[..., None, :0]

    @property
    def corrects(self) -> bool:
        """Whether the network kept a correction to the base (a nonzero head)."""
        return bool(self.head.weight.any() or self.head.bias.any())


class ForecastEnsemble(nn.Module):
    """Networks of one architecture trained with different seeds, averaged: ``(N, lookback,
    F)`` -> the mean of their point forecasts ``(N, horizon, K)``, and (:meth:`forecast`) of
    their quantiles."""

    def __init__(self, members: list[ForecastNetwork]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.input_size = members[0].input_size

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)

    def forecast(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`ForecastNetwork.forecast`, averaged over the members."""
        changes, quantiles = zip(*(member.forecast(x) for member in self.members), strict=True)
        return torch.stack(changes).mean(0), torch.stack(quantiles).mean(0)

    @property
    def corrects(self) -> bool:
        """Whether any member kept a correction to the base (a nonzero head)."""
        return any(member.corrects for member in self.members)


@dataclass
class Forecast:
    """Forecasts at one or more origins, with their prediction intervals.

    Attributes:
        mean: ``(M, horizon, K)`` point forecasts in the series' units.
        intervals: ``{level: (lower, upper)}``, each ``(M, horizon, K)``; ``{}`` without levels.
    """

    mean: np.ndarray
    intervals: dict[int, tuple[np.ndarray, np.ndarray]]


@dataclass
class ForecastReport:
    """Rolling-origin evaluation on the last ``test_size`` steps of a series.

    Attributes:
        metrics: ``{method: {"MAE": ..., "RMSE": ..., "MASE": ...}}`` for the model and the
            baselines, in the series' units (MASE is unitless).
        forecasts: ``{method: (M, horizon, K)}`` at the ``origins`` ``(M,)``.
        truth: ``(M, horizon, K)``.
        season: the season used by MASE and the seasonal baselines.
        intervals: rnnkit's ``{level: (lower, upper)}``, each ``(M, horizon, K)``.
        coverage: ``{level: fraction of the truth inside the interval}``.
        models: ``{method: what was fitted}``, e.g. ``{"AutoETS": "ETS(M,A,M)"}``.
    """

    metrics: dict[str, dict[str, float]]
    forecasts: dict[str, np.ndarray]
    truth: np.ndarray
    origins: list[int]
    season: int
    intervals: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    coverage: dict[int, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    @property
    def best_baseline(self) -> str:
        """The baseline with the lowest MASE."""
        baselines = {name: m["MASE"] for name, m in self.metrics.items() if name != "rnnkit"}
        return min(baselines, key=baselines.__getitem__)

    @property
    def beats_best_baseline(self) -> bool:
        """Whether rnnkit's MASE is below the best baseline's."""
        return self.metrics["rnnkit"]["MASE"] < self.metrics[self.best_baseline]["MASE"]

    @property
    def verdict(self) -> str:
        """One sentence: does rnnkit beat the best baseline, and by how much (MASE)."""
        ours, best = self.metrics["rnnkit"]["MASE"], self.best_baseline
        theirs = self.metrics[best]["MASE"]
        if self.beats_best_baseline:
            return f"rnnkit beats the best baseline, {best}: MASE {ours:.3f} against {theirs:.3f}"
        return (
            f"rnnkit does NOT beat the best baseline, {best}: MASE {ours:.3f} against "
            f"{theirs:.3f} ({ours / theirs - 1:+.1%}); prefer {best} on this series"
        )


@dataclass
class PanelReport:
    """:class:`ForecastReport` per series of a panel, and their summary.

    Attributes:
        reports: ``{series name: ForecastReport}``.
        metrics: ``{method: {"mean MASE": ..., "median MASE": ...}}`` over the series.
        coverage: ``{level: mean coverage over the series}``.
    """

    reports: dict[str | None, ForecastReport]
    metrics: dict[str, dict[str, float]]
    coverage: dict[int, float]


@dataclass
class _Windows:
    """One series' validation windows at ``origins`` ``(M,)``: the truth and the baselines'
    forecasts (``{name: (M, horizon, K)}``, those with a form for the series), scaled."""

    series: TimeSeries
    origins: list[int]
    truth: np.ndarray
    baselines: dict[str, np.ndarray]


@dataclass
class _Fitted:
    scaler: Scaler | None  # None for a panel model: each series has its own
    season: int
    columns: tuple[str, ...]
    num_targets: int
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)
    transform: str = "none"
    base: str = "seasonal naive"  # the baseline the network corrects (seasonal_base)
    blend: float = 1.0  # the network's weight against the partner
    partner: str = "AutoETS"  # the baseline blended with the network
    calibration: dict[int, float] = field(default_factory=dict)  # level -> shift, scaled units
    series_scalers: dict[str | None, Scaler] = field(default_factory=dict)  # by series name
    # by series name, the forms of AutoETS and AutoARIMA selected on the training part
    # ({baseline: [form per target]}): an AutoETS base or partner keeps its form at every
    # forecast; AutoARIMA's says only that it fitted (it is selected anew each time)
    forms: dict[str | None, dict[str, list[str]]] = field(default_factory=dict)


class Forecaster(Task[_Fitted, ForecastNetwork | ForecastEnsemble]):
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
        series: TimeSeries | Sequence[TimeSeries],
        val_size: int = 672,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train on ``series``, or on a panel of them (one global model); the last
        ``val_size`` steps of each are the validation part.

        The scalers (one per series of a panel), the detected season and the transform come
        from the training parts only; the blend weight and the interval calibration from the
        validation parts. ``log_dir``, ``progress``, ``trainer`` and ``resume`` are
        :func:`rnnkit.train.train`'s.
        """
        panel = _panel(series)
        check_int("val_size", val_size)
        if resume and self.config.seeds > 1:
            raise ValueError(f"resume: expected a model with seeds = 1, got {self.config.seeds}")
        shared = self._shared_file(panel, val_size, log_dir)
        read = shared is not None and written_by_rank_zero(shared, self.training.ddp_timeout)
        self._memo = _read_baselines(shared) if read else {}
        try:
            return self._fit(panel, val_size, log_dir, progress, trainer, resume, shared)
        finally:
            self._memo = None

    def _fit(
        self,
        panel: list[TimeSeries],
        val_size: int,
        log_dir: str | Path | None,
        progress: bool,
        trainer: Any,
        resume: bool,
        shared: Path | None,
    ) -> History:
        """:meth:`fit` with the baselines computed so far in ``self._memo``; global rank 0
        writes them to ``shared`` before training."""
        longest = max(panel, key=len)
        train_end = len(longest) - val_size
        season = self.config.season or _detect_season(
            longest.slice(stop=max(train_end, 0)), self.config.horizon
        )
        if self.config.lookback is None:
            lookback = default_sizes(len(longest), self.config.horizon, season).lookback
            self.config = replace(self.config, lookback=lookback)
        config = self.config
        warmup = config.lookback + (season if config.seasonal_base else 0)
        if train_end < warmup + config.horizon or val_size < config.horizon:
            raise ValueError(
                f"series: {len(longest)} steps are too few for {warmup} steps of input "
                f"(lookback{' + season' if config.seasonal_base else ''}) + horizon "
                f"{config.horizon} of training plus val_size {val_size} >= horizon"
            )
        positive = all((one.targets > 0).all() for one in panel)
        transform = config.transform or (
            self._choose_transform(longest.targets[:train_end], season) if positive else "none"
        )
        for one in panel:
            if len(one) < 2:
                raise ValueError(f"series: {one.name!r} has {len(one)} step; expected at least 2")
        # A series of a panel too short for a training part is scaled by its first steps.
        fit_lengths = {one.name: max(len(one) - val_size, min(len(one), 2)) for one in panel}
        scalers = {
            one.name: Scaler.fit(
                _transformed(one.values[: fit_lengths[one.name]], transform, one.num_targets)
            )
            for one in panel
        }
        self._fitted = _Fitted(
            scalers[longest.name] if len(panel) == 1 else None,
            season,
            longest.columns,
            longest.num_targets,
            transform=transform,
            series_scalers=scalers if len(panel) > 1 else {},
        )
        if config.seasonal_base or config.blend:
            self._fitted.forms = {
                one.name: self._select_forms(one, fit_lengths[one.name]) for one in panel
            }
        windows = self._validation_windows(panel, val_size, fit_lengths)
        if config.seasonal_base:
            self._fitted.base = config.base or self._choose_base(windows, panel)
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []]  # training, validation
        for one in panel:
            features, scaled = self._features(one)
            end = len(one) - val_size
            for part, (start, stop, stride) in zip(
                parts, ((0, end, config.stride), (end, len(one), 1)), strict=True
            ):
                origins = window_origins(
                    max(start, self._warmup), stop, config.lookback, config.horizon, stride
                )
                if len(origins):
                    inputs, outputs = make_windows(
                        features, scaled, origins, config.lookback, config.horizon
                    )
                    base = self._base(one, scaled, origins, fit_lengths[one.name])
                    part.append((inputs, outputs - base))
        if not parts[1]:
            raise ValueError(f"val_size: {val_size} leaves no validation window in any series")
        datasets = []
        for part in parts:
            inputs, targets = (np.concatenate(arrays) for arrays in zip(*part, strict=True))
            datasets.append(TensorDataset(_float_tensor(inputs), _float_tensor(targets)))
        if shared is not None and is_global_zero():
            _write_baselines(shared, self._memo)
        members, histories = [], []
        for member in range(config.seeds):
            training = replace(self.training, seed=self.training.seed + member)
            where = (
                log_dir if log_dir is None or config.seeds == 1 else Path(log_dir) / f"seed{member}"
            )
            torch.manual_seed(training.seed)
            # held while it trains: a run that diverges leaves it, restored, to inspect
            self.network = network = ForecastNetwork(inputs.shape[-1], longest.num_targets, config)
            history = train(
                network, _mse, *datasets, training, where, progress, trainer, resume=resume
            )
            if config.seasonal_base and history.val_loss:
                base_alone = float(datasets[1].tensors[1].pow(2).mean())  # the zero correction's
                if base_alone <= history.val_loss[history.best_epoch]:
                    # the corrections learned do not beat the base on validation: drop them
                    nn.init.zeros_(network.head.weight)
                    nn.init.zeros_(network.head.bias)
            if network.num_quantiles:
                self._fit_interval_head(network, *datasets[0].tensors)
            members.append(network)
            histories.append(history)
        self.network = members[0] if config.seeds == 1 else ForecastEnsemble(members)
        self._fitted.history = histories[0]
        self._tune_on_validation(windows, panel, fit_lengths)
        return histories[0]

    _memo: dict[str, dict[str, BaselineForecast]] | None = None  # during fit, by call

    def _shared_file(
        self, panel: list[TimeSeries], val_size: int, log_dir: str | Path | None
    ) -> Path | None:
        """Where global rank 0 of a distributed fit writes the baselines it computed before
        training, named by a digest of everything they depend on; None in one process or
        without a ``log_dir``."""
        if log_dir is None or self.training.devices * self.training.num_nodes == 1:
            return None
        digest = hashlib.sha256(repr((self.config, val_size)).encode())
        for one in panel:
            digest.update(repr((one.name, one.columns, one.values.shape)).encode())
            digest.update(one.values.tobytes())
            if one.timestamps is not None:
                digest.update(np.asarray(one.timestamps).astype("datetime64[ns]").tobytes())
        return Path(log_dir) / "shared" / f"baselines-{digest.hexdigest()[:32]}.safetensors"

    def _baselines(
        self,
        values: np.ndarray,
        origins: Sequence[int],
        horizon: int,
        season: int,
        arima: bool | None = None,
        fit_length: int | None = None,
        forms: dict[str, str] | None = None,
    ) -> dict[str, BaselineForecast]:
        """:func:`_baselines`, kept during :meth:`fit` by a digest of its arguments (or read
        from what global rank 0 computed)."""
        if self._memo is None:
            return _baselines(values, origins, horizon, season, arima, fit_length, forms)
        call = (list(map(int, origins)), horizon, season, arima, fit_length, forms, values.shape)
        digest = hashlib.sha256(repr(call).encode())
        digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        key = digest.hexdigest()[:32]
        if key not in self._memo:
            self._memo[key] = _baselines(values, origins, horizon, season, arima, fit_length, forms)
        return self._memo[key]

    def _fit_interval_head(
        self, network: ForecastNetwork, inputs: Tensor, targets: Tensor, steps: int = 300
    ) -> None:
        """Fit the network's quantile head by the pinball loss on the training windows, the
        trained encoder frozen: asking for intervals leaves the point forecast as it is."""
        network.eval()
        with torch.no_grad():
            encoded = network.encode(inputs)  # (N, H)
        quantiles = torch.tensor(self.config.quantiles)
        optimiser = torch.optim.Adam(network.quantile_head.parameters(), lr=1e-2)
        for _ in range(steps):
            optimiser.zero_grad()
            error = targets[..., None] - network.bounds(encoded)  # (N, horizon, K, Q)
            torch.maximum(quantiles * error, (quantiles - 1) * error).mean().backward()
            optimiser.step()

    def _choose_transform(self, targets: np.ndarray, season: int) -> str:
        """``"log"`` where AutoETS (AICc) selects multiplicative errors or seasonality on the
        positive ``targets`` ``(T, K)``, else ``"none"``."""
        chosen = self._baselines(targets[:, 0], [len(targets)], self.config.horizon, season, False)
        chosen = chosen["AutoETS"].model
        components = chosen.partition("(")[2].rstrip(")").split(",")  # "ETS(M,Ad,M)"
        return "log" if "M" in (components[0], components[-1]) else "none"

    def _validation_windows(
        self, panel: list[TimeSeries], val_size: int, fit_lengths: dict[str | None, int]
    ) -> list[_Windows]:
        """Every series' validation windows, with the baselines' forecasts of them: computed
        once for both the choice of the base and the blend."""
        horizon = self.config.horizon
        windows = []
        for one in panel:
            origins = list(range(max(len(one) - val_size, self._warmup), len(one) - horizon + 1))
            if not origins:
                continue
            scaled = self._features(one)[1]
            truth = np.stack([scaled[t : t + horizon] for t in origins])
            found = self._forecasts(one, origins, BASES, fit_lengths[one.name])
            windows.append(_Windows(one, origins, truth, found))
        return windows

    def _tune_on_validation(
        self, windows: list[_Windows], panel: list[TimeSeries], fit_lengths: dict[str | None, int]
    ) -> None:
        """Choose the blend partner and weight, then shift the interval bounds to cover as
        claimed, both on every validation window of every series, in scaled units."""
        fitted = self._require_fitted()
        truths, networks, bounds = [], [], []
        for part in windows:
            name = part.series.name
            network, quantiles = self._scaled_forecast(part.series, part.origins, fit_lengths[name])
            truths.append(part.truth)
            networks.append(network)
            bounds.append(quantiles)
        truth, network, bound = (np.concatenate(arrays) for arrays in (truths, networks, bounds))
        partners = [
            name
            for name in (self._everywhere(panel) if self.config.blend else [])
            if all(name in part.baselines for part in windows)  # a fit may fail on a window
        ]
        candidates = {
            (name, w): w * network
            + (1 - w) * np.concatenate([part.baselines[name] for part in windows])
            for name in partners
            for w in BLEND_WEIGHTS
        }
        if self.config.blend:
            if not candidates:  # no statsforecast partner: the network alone
                candidates["seasonal naive", 1.0] = network
            # the guard, last so that it wins only where strictly better: the final forecast
            # is never worse than seasonal naive's on the validation windows
            candidates["seasonal naive", 0.0] = np.concatenate(
                [part.baselines["seasonal naive"] for part in windows]
            )
        if candidates:
            errors = {key: np.abs(forecast - truth).mean() for key, forecast in candidates.items()}
            fitted.partner, fitted.blend = min(errors, key=errors.__getitem__)
            bound = bound + (candidates[fitted.partner, fitted.blend] - network)[..., None]
        for k, level in enumerate(self.config.levels):
            lower, upper = bound[..., 2 * k], bound[..., 2 * k + 1]
            scores = np.sort(np.maximum(lower - truth, truth - upper).ravel())
            rank = min(int(np.ceil((len(scores) + 1) * level / 100)), len(scores))
            fitted.calibration[level] = float(scores[rank - 1])

    def _select_forms(self, series: TimeSeries, fit_length: int) -> dict[str, list[str]]:
        """The AICc-selected form of AutoETS and (where it fits in time) AutoARIMA on the
        first ``fit_length`` scaled steps of each target: ``{name: [form per target]}``."""
        horizon, season = self.config.horizon, self._require_fitted().season
        scaled = self._features(series)[1][:fit_length]
        columns = [self._baselines(column, [fit_length], horizon, season) for column in scaled.T]
        return {
            name: [column[name].form for column in columns]
            for name in PARTNERS
            if all(name in column for column in columns)
        }

    def _forecasts(
        self, series: TimeSeries, origins: Sequence[int], names: Sequence[str], fit_length: int
    ) -> dict[str, np.ndarray]:
        """The named baselines (of :data:`BASES`) on the series' scaled targets, ``{name:
        (M, horizon, K)}``, statsforecast's as :meth:`_statistical` gives them (a name
        without a form for this series is left out)."""
        fitted = self._require_fitted()
        found = self._statistical(series, origins, [n for n in PARTNERS if n in names], fit_length)
        if "seasonal naive" in names:
            scaled = self._features(series)[1]
            found["seasonal naive"] = metrics.seasonal_naive(
                scaled, origins, self.config.horizon, fitted.season
            )
        return {name: found[name] for name in names if name in found}

    def _statistical(
        self, series: TimeSeries, origins: Sequence[int], names: Sequence[str], fit_length: int
    ) -> dict[str, np.ndarray]:
        """The named statsforecast baselines on the series' scaled targets, ``{name: (M,
        horizon, K)}``, estimated on the first ``fit_length`` steps: AutoETS in the form
        selected at fit, AutoARIMA selected anew by AICc (module docstring). A name without a
        form for this series (no fit at fit time) is left out."""
        fitted, horizon = self._require_fitted(), self.config.horizon
        forms, scaled = fitted.forms.get(series.name, {}), self._features(series)[1]
        found = {}
        for name in (name for name in names if name in forms):
            arima = name == "AutoARIMA"
            columns = [
                self._baselines(
                    column,
                    origins,
                    horizon,
                    fitted.season,
                    arima,
                    fit_length,
                    None if arima else {name: form},
                )
                for column, form in zip(scaled.T, forms[name], strict=True)
            ]
            if all(name in column for column in columns):
                found[name] = np.stack([column[name].mean for column in columns], axis=-1)
        return found

    def _scaler_of(self, series: TimeSeries) -> Scaler:
        """The scaler of ``series``: the model's, or its own in a panel model."""
        fitted = self._require_fitted()
        if fitted.scaler is not None:
            return fitted.scaler
        if series.name not in fitted.series_scalers:
            raise ValueError(
                f"series: expected one of the {len(fitted.series_scalers)} series this panel "
                f"model was trained on (by name), got {series.name!r}"
            )
        return fitted.series_scalers[series.name]

    @property
    def _warmup(self) -> int:
        """Steps of history one forecast needs."""
        fitted = self._require_fitted()
        return self.config.lookback + (fitted.season if self.config.seasonal_base else 0)

    def _base(
        self, series: TimeSeries, scaled: np.ndarray, origins: Sequence[int], fit_length: int
    ) -> np.ndarray:
        """What the network's output is added to, ``(M, horizon, K)`` in scaled units: the
        chosen baseline's forecast (:meth:`_choose_base`) with ``seasonal_base``, else zeros.

        ``scaled`` ``(T, K)`` are the series' scaled targets; a statsforecast baseline is
        estimated on their first ``fit_length`` steps."""
        fitted = self._require_fitted()
        horizon, season = self.config.horizon, fitted.season
        if not self.config.seasonal_base:
            return np.zeros((len(origins), horizon, fitted.num_targets))
        if fitted.base == "seasonal naive":
            return metrics.seasonal_naive(scaled, origins, horizon, season)
        found = self._forecasts(series, origins, (fitted.base,), fit_length)
        if fitted.base not in found:
            raise ValueError(
                f"series: {series.name!r} has no {fitted.base} form recorded at fit, the base "
                "this model corrects"
            )
        return found[fitted.base]

    def _choose_base(self, windows: list[_Windows], panel: list[TimeSeries]) -> str:
        """The baseline of :meth:`_everywhere` whose forecasts of every validation window
        (of every series, in scaled units) are best, each estimated on the training part.
        Out of sample: scored on the training part, the fitted models would be judged on
        data they were estimated on."""
        errors = {
            name: [
                np.abs(part.baselines[name] - part.truth).mean()
                if name in part.baselines
                else np.inf
                for part in windows
            ]
            for name in BASES
        }
        eligible = ("seasonal naive", *self._everywhere(panel))
        return min(eligible, key=lambda name: np.mean(errors[name]))

    def _everywhere(self, panel: list[TimeSeries]) -> list[str]:
        """The statsforecast baselines with a form for every series (AutoETS needs a few
        steps, AutoARIMA runs only where it fits in time)."""
        forms = self._require_fitted().forms
        return [name for name in PARTNERS if all(name in forms[one.name] for one in panel)]

    def _features(self, series: TimeSeries) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs ``(T, F)`` and scaled targets ``(T, K)`` of a series."""
        fitted = self._require_fitted()
        if series.columns != fitted.columns:
            raise ValueError(
                f"series: expected columns {list(fitted.columns)} (as in training), got "
                f"{list(series.columns)}"
            )
        values = _transformed(series.values, fitted.transform, fitted.num_targets)
        scaled = self._scaler_of(series).transform(values)
        targets = scaled[:, : fitted.num_targets]
        parts = [scaled]
        if self.config.seasonal_base:
            change = np.zeros_like(targets)  # (T, K): change from one season earlier
            change[fitted.season :] = targets[fitted.season :] - targets[: -fitted.season]
            parts.append(change)
        if self.config.calendar and series.timestamps is not None:
            parts.append(calendar_features(series.timestamps))
        features = np.concatenate(parts, axis=1)
        network = self.network
        if network is not None and features.shape[1] != network.input_size:
            # the one difference fit allows: a model trained on times, given none (or back)
            trained, given = ("with", "without")
            if features.shape[1] > network.input_size:
                trained, given = given, trained
            raise ValueError(
                f"series: expected a series {trained} timestamps (the model was trained "
                f"{trained} calendar features), got one {given}"
            )
        return features, targets

    # ------------------------------------------------------------------ inference

    def predict(self, series: TimeSeries, origins: list[int] | None = None) -> np.ndarray:
        """Point forecasts in the series' units (:meth:`forecast` gives the intervals too).

        Args:
            series: the history (and later data, which is ignored past each origin).
            origins: forecast origins ``t`` (each uses steps ``[t - lookback, t)``); default:
                the end of ``series``.

        Returns:
            ``(horizon, K)`` for the default origin, else ``(len(origins), horizon, K)``.
        """
        mean = self.forecast(series, origins).mean
        return mean[0] if origins is None else mean

    def forecast(self, series: TimeSeries, origins: list[int] | None = None) -> Forecast:
        """Point forecasts and prediction intervals at ``origins`` (default: the end of
        ``series``), each ``(len(origins), horizon, K)`` in the series' units."""
        fitted = self._require_fitted()
        origins = [len(series)] if origins is None else list(origins)
        if not origins or min(origins) < self._warmup or max(origins) > len(series):
            raise ValueError(
                f"origins: expected values in [{self._warmup} (steps of input one forecast "
                f"needs), len(series) = {len(series)}], got {origins}"
            )
        mean, bounds = self._scaled_forecast(series, origins, origins[0])
        if fitted.blend < 1:
            found = self._forecasts(series, origins, (fitted.partner,), origins[0])
            shift = (1 - fitted.blend) * (found[fitted.partner] - mean)
            mean, bounds = mean + shift, bounds + shift[..., None]
        intervals = {}
        for k, level in enumerate(self.config.levels):
            widen = fitted.calibration.get(level, 0.0)
            lower = np.minimum(bounds[..., 2 * k], bounds[..., 2 * k + 1]) - widen
            upper = np.maximum(bounds[..., 2 * k], bounds[..., 2 * k + 1]) + widen
            intervals[level] = tuple(
                self._in_units(series, bound)
                for bound in (np.minimum(lower, mean), np.maximum(upper, mean))
            )
        return Forecast(self._in_units(series, mean), intervals)

    def _scaled_forecast(
        self, series: TimeSeries, origins: list[int], fit_length: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The network's point forecasts ``(M, horizon, K)`` and quantiles ``(M, horizon,
        K, Q)`` in scaled units, on a base estimated on the first ``fit_length`` steps."""
        network = self._require_network()
        features, scaled = self._features(series)
        inputs = np.stack([features[t - self.config.lookback : t] for t in origins])
        network.eval()
        with torch.no_grad():
            change, quantiles = network.forecast(_float_tensor(inputs))
        base = self._base(series, scaled, origins, fit_length)
        return base + change.double().numpy(), base[..., None] + quantiles.double().numpy()

    def _in_units(self, series: TimeSeries, scaled: np.ndarray) -> np.ndarray:
        """Scaled (and maybe log) target values ``(..., K)`` in the series' units."""
        fitted = self._require_fitted()
        values = self._scaler_of(series).inverse(scaled, slice(0, fitted.num_targets))
        return np.exp(values) if fitted.transform == "log" else values

    def evaluate(
        self, series: TimeSeries, test_size: int = 672, seasons: Sequence[int] = ()
    ) -> ForecastReport:
        """Rolling-origin evaluation over the last ``test_size`` steps against the naive,
        seasonal-naive, AutoETS and (where it fits in time) AutoARIMA baselines, all fitted
        on the steps before them; ``seasons`` adds a seasonal naive for each further season
        (e.g. a week of half-hours beside the model's daily season)."""
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
        ours = self.forecast(series, origins)
        columns = [
            _baselines(column, origins, horizon, season, more_seasons=seasons)
            for column in targets.T
        ]
        forecasts = {"rnnkit": ours.mean} | {
            name: np.stack([column[name].mean for column in columns], axis=-1)
            for name in columns[0]
        }
        models = {name: baseline.model for name, baseline in columns[0].items()}
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
        coverage = {
            level: float(np.mean((lower <= truth) & (truth <= upper)))
            for level, (lower, upper) in ours.intervals.items()
        }
        return ForecastReport(
            table, forecasts, truth, origins, season, ours.intervals, coverage, models
        )

    def evaluate_panel(
        self, panel: Sequence[TimeSeries], test_size: int, seasons: Sequence[int] = ()
    ) -> PanelReport:
        """:meth:`evaluate` on each series of ``panel`` (the last ``test_size`` steps of
        each), and the mean and median MASE of every method over the series."""
        reports = {one.name: self.evaluate(one, test_size, seasons) for one in _panel(panel)}
        methods = next(iter(reports.values())).metrics
        summary = {}
        for method in methods:
            scores = [float(report.metrics[method]["MASE"]) for report in reports.values()]
            summary[method] = {
                "mean MASE": float(np.mean(scores)),
                "median MASE": float(np.median(scores)),
            }
        coverage = {
            level: float(np.mean([report.coverage[level] for report in reports.values()]))
            for level in self.config.levels
        }
        return PanelReport(reports, summary, coverage)

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, scaler, curves and ``metadata`` (JSON:
        e.g. where the data came from) to ``directory``."""
        network, fitted = self._require_network(), self._require_fitted()
        fitted_state = {
            "columns": list(fitted.columns),
            "num_targets": fitted.num_targets,
            "season": fitted.season,
            "scaler": _scaler_state(fitted.scaler),
            "series_scalers": {
                name: _scaler_state(scaler) for name, scaler in fitted.series_scalers.items()
            },
            "num_features": network.input_size,
            "forms": [[name, forms] for name, forms in fitted.forms.items()],
            "transform": fitted.transform,
            "base": fitted.base,
            "blend": fitted.blend,
            "partner": fitted.partner,
            "calibration": {str(level): shift for level, shift in fitted.calibration.items()},
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Rebuild a forecaster saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        columns = len(state["columns"])
        series_scalers = state["series_scalers"]
        if not isinstance(series_scalers, dict):
            raise ModelFileError(
                f"model: config.json in {str(directory)!r} holds series_scalers "
                f"{series_scalers!r}; expected a mapping of series names to scalers"
            )
        panel = {
            name: _recorded_scaler(directory, recorded, columns)
            for name, recorded in series_scalers.items()
        }
        scaler = None if panel else _recorded_scaler(directory, state["scaler"], columns)
        season = state["season"]
        # bounded as in the runtime file: a forecast reads lookback + season steps
        sizes = {
            "lookback": model.config.lookback,
            "horizon": model.config.horizon,
            "season": season,
        }
        for name, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_STEPS:
                raise ModelFileError(
                    f"model: config.json in {str(directory)!r} holds {name} {size!r}; expected "
                    f"an int >= 1 and <= {MAX_STEPS}"
                )
        model._fitted = _Fitted(
            scaler,
            state["season"],
            tuple(state["columns"]),
            state["num_targets"],
            History(**state["history"]),
            state["metadata"],
            *_recorded_tuning(directory, state, model.config.levels),
            panel,
            _recorded_forms(directory, state["forms"]),
        )
        model.network = build_network(
            directory,
            partial(_network, state["num_features"], state["num_targets"], model.config),
            weights,
        )
        return model


def _network(
    num_features: int, num_targets: int, config: ForecasterConfig
) -> ForecastNetwork | ForecastEnsemble:
    """The network a config describes: one, or with ``seeds > 1`` an ensemble of that many."""
    members = [ForecastNetwork(num_features, num_targets, config) for _ in range(config.seeds)]
    return members[0] if config.seeds == 1 else ForecastEnsemble(members)


def _recorded_forms(directory: str | Path, recorded: Any) -> dict[str | None, dict[str, list[str]]]:
    """The baseline forms a model folder records: ``[[name or null, {baseline: [str]}]]``."""
    try:
        forms = {name: dict(by_baseline) for name, by_baseline in recorded}
        valid = all(
            (name is None or isinstance(name, str))
            and set(by_baseline) <= set(PARTNERS)
            and all(isinstance(form, str) for found in by_baseline.values() for form in found)
            for name, by_baseline in forms.items()
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ModelFileError(
            f"model: config.json in {str(directory)!r} holds forms {recorded!r}; expected a "
            f"list of [series name or null, {{baseline: [form, ...]}}] with baselines of "
            f"{PARTNERS}"
        )
    return forms


def _scaler_state(scaler: Scaler | None) -> dict[str, list[float]] | None:
    return None if scaler is None else {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()}


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


def _baselines(
    values: np.ndarray,
    origins: Sequence[int],
    horizon: int,
    season: int,
    arima: bool | None = None,
    fit_length: int | None = None,
    forms: dict[str, str] | None = None,
    more_seasons: Sequence[int] = (),
) -> dict[str, BaselineForecast]:
    """:func:`rnnkit.baselines.rolling_baselines` of ``values`` ``(T,)`` without intervals
    or fallback warnings (a model refitted without its season says so in ``model``)."""
    seasons = (season, *more_seasons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return rolling_baselines(values, origins, horizon, seasons, (), arima, fit_length, forms)


def _write_baselines(path: Path, memo: dict[str, dict[str, BaselineForecast]]) -> None:
    """Write the baselines of ``memo`` (by call, then by name) to ``path``, atomically: each
    forecast's mean ``(M, horizon)`` as a tensor ``"<call>/<name>"``, models and forms as
    JSON metadata."""
    arrays = {
        f"{call}/{name}": found.mean
        for call, by_name in memo.items()
        for name, found in by_name.items()
    }
    labels = {
        call: {name: [found.model, found.form] for name, found in by_name.items()}
        for call, by_name in memo.items()
    }
    with atomic_file(path) as staging:
        save_file(arrays, staging, metadata={"baselines": json.dumps(labels)})


def _read_baselines(path: Path) -> dict[str, dict[str, BaselineForecast]]:
    """What :func:`_write_baselines` wrote to ``path``."""
    with safe_open(path, framework="np") as file:
        labels = json.loads(file.metadata()["baselines"])
        return {
            call: {
                name: BaselineForecast(file.get_tensor(f"{call}/{name}"), {}, model, form)
                for name, (model, form) in by_name.items()
            }
            for call, by_name in labels.items()
        }


def _detect_season(series: TimeSeries, horizon: int) -> int:
    """The season of the first target, tested where the timestamps suggest one; of several,
    the one whose seasonal naive forecasts the last few horizons best (as the CLI's)."""
    values = series.targets[:, 0]
    seasons = choose_season(values, infer_frequency(series.timestamps)).seasons
    if len(seasons) < 2:
        return seasons[0]
    return best_season(values, seasons, min(5 * horizon, max(len(values) // 4, 1)))


def _panel(series: TimeSeries | Sequence[TimeSeries]) -> list[TimeSeries]:
    """``series`` as a list; a panel's series need distinct names and the same columns."""
    if isinstance(series, TimeSeries):
        return [series]
    panel = list(series)
    if not panel or not all(isinstance(one, TimeSeries) for one in panel):
        raise TypeError(
            f"series: expected a TimeSeries or a non-empty list of them, got {series!r}"
        )
    names = [one.name for one in panel]
    if len(panel) > 1 and (None in names or len(set(names)) < len(names)):
        raise ValueError(
            f"series: a panel's series need distinct names (TimeSeries.name; read_panel sets "
            f"them from the id column), got {names[:10]}"
        )
    for one in panel:
        if (one.columns, one.num_targets) != (panel[0].columns, panel[0].num_targets):
            raise ValueError(
                f"series: a panel's series need the same columns, got {list(one.columns)} for "
                f"{one.name!r} and {list(panel[0].columns)} for {panel[0].name!r}"
            )
    return panel


def _recorded_tuning(
    directory: str | Path, state: Any, levels: tuple[int, ...]
) -> tuple[str, str, float, str, dict[int, float]]:
    """The transform, base, blend weight and partner, and interval calibration a model
    folder records."""
    transform, base, blend, partner, calibration = (
        state[key] for key in ("transform", "base", "blend", "partner", "calibration")
    )
    try:
        shifts = {int(level): float(calibration[str(level)]) for level in levels}
    except (TypeError, KeyError, ValueError):
        shifts = {0: np.nan}
    if (
        transform not in TRANSFORMS
        or not isinstance(blend, (int, float))
        or not 0 <= blend <= 1
        or partner not in BASES
        or base not in BASES
        or not np.isfinite(list(shifts.values())).all()
    ):
        raise ModelFileError(
            f"model: config.json in {str(directory)!r} holds transform {transform!r}, base "
            f"{base!r}, blend {blend!r}, partner {partner!r}, calibration {calibration!r}; "
            f"expected one of {TRANSFORMS}, one of {BASES} for each of base and partner, a "
            f"weight in [0, 1] and a finite shift for each level of {list(levels)}"
        )
    return transform, base, float(blend), partner, shifts


def _transformed(values: np.ndarray, transform: str, num_targets: int) -> np.ndarray:
    """``values`` ``(T, C)`` with the first ``num_targets`` columns log-transformed if asked.

    Raises:
        ValueError: for a log model given targets that are not positive.
    """
    if transform == "none":
        return values
    targets = values[:, :num_targets]
    if (targets <= 0).any():
        raise ValueError(
            f"series: this model forecasts log values (transform 'log', chosen for a positive "
            f"series), but got a target value of {targets[targets <= 0][0]}"
        )
    return np.concatenate([np.log(targets), values[:, num_targets:]], axis=1)


def _float_tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array.astype(np.float32))


def _mse(network: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    inputs, targets = batch
    return nn.functional.mse_loss(network(inputs), targets)
