"""A forecaster (:class:`rnnkit.tasks.Forecaster`) streamed one observation at a time.

Each :meth:`StreamingForecaster.step` takes the newest row of the series (targets and
covariates, in the series' units, and its timestamp when the model uses calendar features)
and returns the forecast of the next ``horizon`` steps, exactly what ``Forecaster.predict``
returns for the history seen so far: the encoder reads the last ``lookback`` steps from its
initial state, as in training, so each step runs ``lookback`` encoder steps. ``N`` series
(sensors, meters) stream together when each step gets ``(N, C)`` rows: one encoder run
serves them all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.preprocess import calendar_features, utc_minutes
from rnnkit.runtime._file import MAX_STEPS, field
from rnnkit.runtime._layers import Array, StreamingRNN, _tensor


class StreamingForecaster:
    """Stream a series into an exported forecaster; every step returns a new forecast.

    Attributes:
        columns: the series' columns (targets first, then covariates), ``C`` of them.
        num_targets: ``K``, the forecast columns.
        lookback, horizon, season, seasonal_base, calendar: as the trained model.
        warmup: steps seen before the first forecast (``lookback``, plus ``season`` with
            ``seasonal_base``).
        encoder: the :class:`StreamingRNN` that reads each window.

    Example:
        >>> model = rnnkit.runtime.load("demand.rnnkit")                   # doctest: +SKIP
        >>> for stamp, value in feed:                                      # doctest: +SKIP
        ...     forecast = model.step([value], stamp)  # None, then (horizon, K)
        >>> for stamp, meters in feed:   # meters (N, C): N series at once # doctest: +SKIP
        ...     forecasts = model.step(meters, stamp)  # None, then (N, horizon, K)
    """

    def __init__(
        self, header: dict[str, Any], tensors: dict[str, Array], backend: str, dtype: str
    ) -> None:
        self.encoder = StreamingRNN(
            field(header, "layer", dict, "header"), tensors, backend, "layer", dtype
        )
        spec = field(header, "forecaster", dict, "header")
        where = "forecaster"
        for name in ("lookback", "horizon", "season", "num_targets"):
            # the stream keeps lookback + season steps: a bound before any allocation
            if not 1 <= field(spec, name, int, where) <= MAX_STEPS:
                raise ValueError(
                    f"{where}.{name}: expected an int from 1 to {MAX_STEPS}, got {spec[name]}"
                )
        self.lookback, self.horizon = spec["lookback"], spec["horizon"]
        self.season, self.num_targets = spec["season"], spec["num_targets"]
        self.seasonal_base = field(spec, "seasonal_base", bool, where)
        self.calendar = field(spec, "calendar", bool, where)
        self.columns = tuple(field(spec, "columns", list, where))
        scaler = field(spec, "scaler", dict, where)
        self._mean = np.asarray(field(scaler, "mean", list, "forecaster.scaler"), np.float64)
        self._std = np.asarray(field(scaler, "std", list, "forecaster.scaler"), np.float64)
        width = len(self.columns)
        features = width + self.num_targets * self.seasonal_base + 4 * self.calendar
        if self._mean.shape != (width,) or self._std.shape != (width,) or width < self.num_targets:
            raise ValueError(f"{where}.scaler: expected mean and std of {width} columns")
        if not (np.isfinite(self._mean).all() and np.isfinite(self._std).all()):
            raise ValueError(f"{where}.scaler: expected finite means and stds")
        if not (self._std > 0).all():
            raise ValueError(f"{where}.scaler.std: expected numbers > 0, got {self._std.tolist()}")
        if self.encoder.input_size != features or self.encoder.bidirectional:
            raise ValueError(
                f"layer: expected a one-directional encoder of input_size {features} (columns, "
                f"seasonal change, calendar), got {self.encoder.input_size}"
            )
        outputs = self.horizon * self.num_targets
        self._head_weight = _tensor(tensors, "head.weight", (outputs, self.encoder.output_size)).T
        self._head_bias = _tensor(tensors, "head.bias", (outputs,))
        self.warmup = self.lookback + (self.season if self.seasonal_base else 0)
        # The last ``warmup`` observations of the N streams, oldest first, ``_seen`` of them
        # real; None until the first step fixes N (and whether it is one unbatched stream).
        self._values: Array | None = None  # (warmup, N, C)
        self._stamps: Array | None = None  # (warmup, N)
        self._single = True
        self._seen = 0

    def step(self, values: Any, timestamp: Any = None) -> Array | None:
        """Add the newest observation of every stream and forecast from it.

        Args:
            values: ``(C,)``, one value per column in the series' units, or ``(N, C)`` for
                ``N`` streams (the same ``N`` at every step until :meth:`reset`).
            timestamp: the observation's time (``numpy.datetime64`` or an ISO 8601 string;
                one with a UTC offset is converted to UTC, as in training), or ``(N,)``
                times, one per stream; required when the model uses calendar features,
                ignored otherwise.

        Returns:
            The forecast ``(horizon, K)`` (``(N, horizon, K)``) of the next steps in the
            series' units, or None while fewer than :attr:`warmup` steps have been seen.
        """
        rows = np.asarray(values, dtype=np.float64)
        width = len(self.columns)
        if rows.shape[-1:] != (width,) or rows.ndim > 2 or not np.isfinite(rows).all():
            raise ValueError(
                f"values: expected {width} finite numbers ({', '.join(self.columns)}) per "
                f"stream, shape ({width},) or (N, {width}), got {values!r}"
            )
        largest = np.finfo(self.encoder.dtype).max
        if not (np.abs((rows - self._mean) / self._std) < largest).all():
            raise ValueError(
                f"values: expected numbers the model's {self.encoder.dtype} holds after scaling "
                f"(mean {self._mean.tolist()}, std {self._std.tolist()}), got {values!r}"
            )
        single = rows.ndim == 1
        rows = rows.reshape(-1, width)  # (N, C)
        if self._values is None:
            self._start(len(rows), single)
        elif self._values.shape[1] != len(rows) or self._single != single:
            shape = f"({width},)" if self._single else f"({self._values.shape[1]}, {width})"
            raise ValueError(
                f"values: expected shape {shape}, as the streams started; call reset() to "
                f"start new streams, got {rows.shape if not single else (width,)}"
            )
        if self.calendar:
            stamps = self._timestamps(timestamp, len(rows))
            if self._seen and (stamps <= self._stamps[-1]).any():
                raise ValueError(
                    f"timestamp: expected a time after the last one ({self._stamps[-1][0]}), "
                    f"got {timestamp!r}"
                )
            self._stamps[:-1] = self._stamps[1:]
            self._stamps[-1] = stamps
        self._values[:-1] = self._values[1:]
        self._values[-1] = rows
        self._seen = min(self._seen + 1, self.warmup)
        if self._seen < self.warmup:
            return None
        forecast = self._forecast(self._values, self._stamps if self.calendar else None)
        return forecast[0] if single else forecast

    def _start(self, streams: int, single: bool) -> None:
        self._values = np.zeros((self.warmup, streams, len(self.columns)))
        self._stamps = np.zeros((self.warmup, streams), dtype="datetime64[m]")
        self._single, self._seen = single, 0

    def _timestamps(self, timestamp: Any, streams: int) -> Array:
        """``timestamp`` (one time, or one per stream) as ``(N,)`` minutes."""
        if timestamp is None:
            raise ValueError("timestamp: this model uses calendar features; pass each time")
        try:
            stamps = utc_minutes(timestamp)
        except ValueError:
            raise ValueError(f"timestamp: expected an ISO 8601 time, got {timestamp!r}") from None
        if stamps.shape not in ((), (streams,)):
            raise ValueError(
                f"timestamp: expected one time or {streams} (one per stream), got {stamps.shape}"
            )
        return np.broadcast_to(stamps, (streams,))

    def run(self, values: Any, timestamps: Any = None) -> Array:
        """The forecast after a whole history (``Forecaster.predict(series)``); the stream
        is untouched.

        Args:
            values: ``(T, C)`` with ``T >= warmup``; timestamps: ``(T,)`` (calendar models).

        Returns:
            ``(horizon, K)``.
        """
        rows = np.asarray(values, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.columns) or len(rows) < self.warmup:
            raise ValueError(
                f"values: expected shape (T, {len(self.columns)}) with T >= warmup = "
                f"{self.warmup}, got {rows.shape}"
            )
        stamps = None
        if self.calendar:
            if timestamps is None or len(timestamps) != len(rows):
                raise ValueError(f"timestamps: expected {len(rows)} times (calendar features)")
            stamps = utc_minutes(timestamps)[-self.warmup :, None]
        return self._forecast(rows[-self.warmup :, None], stamps)[0]

    def reset(self) -> None:
        """Forget the history: the next forecast comes after :attr:`warmup` new steps, and
        the next step may start another number of streams."""
        self._values = self._stamps = None
        self._seen = 0

    @property
    def state(self) -> tuple[Array, Array | None] | None:
        """The history a forecast reads: ``(values, timestamps or None)`` with values
        ``(T, C)`` and timestamps ``(T,)`` for one stream, ``(T, N, C)`` and ``(T, N)`` for
        ``N``, ``T <= warmup``; None before the first step. Assign such a pair to resume."""
        if self._values is None:
            return None
        seen = slice(self.warmup - self._seen, None)
        values, stamps = self._values[seen], self._stamps[seen]
        if self._single:
            values, stamps = values[:, 0], stamps[:, 0]
        return values.copy(), stamps.copy() if self.calendar else None

    @state.setter
    def state(self, value: tuple[Any, Any] | None) -> None:
        if value is None:
            self.reset()
            return
        values, stamps = value
        width = len(self.columns)
        rows = np.asarray(values, dtype=np.float64)
        if rows.ndim not in (2, 3) or rows.shape[-1] != width:
            raise ValueError(
                f"state: expected values of shape (T, {width}) or (T, N, {width}), got {rows.shape}"
            )
        single = rows.ndim == 2
        rows = rows[:, None] if single else rows  # (T, N, C)
        if self.calendar:
            times = utc_minutes(stamps).reshape(len(rows), -1)
            if times.shape != rows.shape[:2]:
                raise ValueError(
                    f"state: expected timestamps of shape {rows.shape[: 2 - single]}, "
                    f"got {np.shape(stamps)}"
                )
        self._start(rows.shape[1], single)
        self._seen = min(len(rows), self.warmup)
        if self._seen:
            self._values[-self._seen :] = rows[-self._seen :]
            if self.calendar:
                self._stamps[-self._seen :] = times[-self._seen :]

    def _forecast(self, values: Array, stamps: Array | None) -> Array:
        """``values`` ``(warmup, N, C)`` (and ``stamps`` ``(warmup, N)``) -> the next
        ``(N, horizon, K)``."""
        scaled = (values - self._mean) / self._std  # (warmup, N, C)
        targets = scaled[..., : self.num_targets]
        parts = [scaled[-self.lookback :]]
        if self.seasonal_base:
            parts.append(targets[self.season :] - targets[: -self.season])
        if stamps is not None:
            recent = stamps[-self.lookback :]  # (lookback, N)
            parts.append(calendar_features(recent.ravel()).reshape(*recent.shape, 4))
        features = np.concatenate(parts, axis=-1)  # (lookback, N, F)
        if self.encoder.batch_first:
            features = features.transpose(1, 0, 2)
        output, _ = self.encoder.run(features)  # (lookback, N, S_0) in the encoder's layout
        last = output[:, -1] if self.encoder.batch_first else output[-1]  # (N, S_0)
        change = last @ self._head_weight + self._head_bias  # (N, horizon * K)
        forecast = change.astype(np.float64).reshape(-1, self.horizon, self.num_targets)
        if self.seasonal_base:
            steps = np.arange(self.horizon)
            forecast += targets[self.lookback + steps % self.season].transpose(1, 0, 2)
        return forecast * self._std[: self.num_targets] + self._mean[: self.num_targets]
