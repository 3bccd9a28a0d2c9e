"""A forecaster (:class:`rnnkit.tasks.Forecaster`) streamed one observation at a time.

Each :meth:`StreamingForecaster.step` takes the newest row of the series (targets and
covariates, in the series' units, and its timestamp when the model uses calendar features)
and returns the forecast of the next ``horizon`` steps, exactly what ``Forecaster.predict``
returns for the history seen so far: the encoder reads the last ``lookback`` steps from its
initial state, as in training, so each step runs ``lookback`` encoder steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.preprocess import calendar_features
from rnnkit.runtime._file import field
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
    """

    def __init__(self, header: dict[str, Any], tensors: dict[str, Array], backend: str) -> None:
        self.encoder = StreamingRNN(
            field(header, "layer", dict, "header"), tensors, backend, "layer"
        )
        spec = field(header, "forecaster", dict, "header")
        where = "forecaster"
        for name in ("lookback", "horizon", "season", "num_targets"):
            if field(spec, name, int, where) < 1:
                raise ValueError(f"{where}.{name}: expected an int >= 1, got {spec[name]}")
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
        if self.encoder.input_size != features or self.encoder.bidirectional:
            raise ValueError(
                f"layer: expected a one-directional encoder of input_size {features} (columns, "
                f"seasonal change, calendar), got {self.encoder.input_size}"
            )
        outputs = self.horizon * self.num_targets
        self._head_weight = _tensor(tensors, "head.weight", (outputs, self.encoder.output_size)).T
        self._head_bias = _tensor(tensors, "head.bias", (outputs,))
        self.warmup = self.lookback + (self.season if self.seasonal_base else 0)
        # The last ``warmup`` observations, oldest first; ``_seen`` of them are real.
        self._values = np.zeros((self.warmup, width))
        self._stamps = np.zeros(self.warmup, dtype="datetime64[m]")
        self._seen = 0

    def step(self, values: Any, timestamp: Any = None) -> Array | None:
        """Add the newest observation and forecast from it.

        Args:
            values: ``(C,)``, one value per column, in the series' units.
            timestamp: the observation's time (``numpy.datetime64`` or an ISO 8601 string),
                required when the model uses calendar features, ignored otherwise.

        Returns:
            The forecast ``(horizon, K)`` of the next steps in the series' units, or None
            while fewer than :attr:`warmup` steps have been seen.
        """
        row = np.asarray(values, dtype=np.float64)
        if row.shape != (len(self.columns),) or not np.isfinite(row).all():
            raise ValueError(
                f"values: expected {len(self.columns)} finite numbers ({', '.join(self.columns)}),"
                f" got {values!r}"
            )
        if self.calendar:
            if timestamp is None:
                raise ValueError("timestamp: this model uses calendar features; pass each time")
            try:
                stamp = np.datetime64(timestamp, "m")
            except ValueError:
                raise ValueError(
                    f"timestamp: expected an ISO 8601 time, got {timestamp!r}"
                ) from None
            self._stamps[:-1] = self._stamps[1:]
            self._stamps[-1] = stamp
        self._values[:-1] = self._values[1:]
        self._values[-1] = row
        self._seen = min(self._seen + 1, self.warmup)
        if self._seen < self.warmup:
            return None
        return self._forecast(self._values, self._stamps if self.calendar else None)

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
            stamps = np.asarray(timestamps, dtype="datetime64[m]")[-self.warmup :]
        return self._forecast(rows[-self.warmup :], stamps)

    def reset(self) -> None:
        """Forget the history: the next forecast comes after :attr:`warmup` new steps."""
        self._seen = 0

    @property
    def state(self) -> tuple[Array, Array | None]:
        """The history a forecast reads: ``(values (T, C), timestamps (T,) or None)`` with
        ``T <= warmup``; assign such a pair to resume a stream."""
        seen = slice(self.warmup - self._seen, None)
        return self._values[seen].copy(), self._stamps[seen].copy() if self.calendar else None

    @state.setter
    def state(self, value: tuple[Any, Any]) -> None:
        values, stamps = value
        rows = np.asarray(values, dtype=np.float64).reshape(-1, len(self.columns))
        if self.calendar:
            times = np.asarray(stamps, dtype="datetime64[m]")
            if times.shape != (len(rows),):
                raise ValueError(f"state: expected {len(rows)} timestamps, got {np.shape(stamps)}")
        self._seen = min(len(rows), self.warmup)
        if self._seen:
            self._values[-self._seen :] = rows[-self._seen :]
            if self.calendar:
                self._stamps[-self._seen :] = times[-self._seen :]

    def _forecast(self, values: Array, stamps: Array | None) -> Array:
        """``values`` ``(warmup, C)`` (and ``stamps``) -> the next ``(horizon, K)``."""
        scaled = (values - self._mean) / self._std  # (warmup, C)
        targets = scaled[:, : self.num_targets]
        parts = [scaled[-self.lookback :]]
        if self.seasonal_base:
            parts.append(targets[self.season :] - targets[: -self.season])
        if stamps is not None:
            parts.append(calendar_features(stamps[-self.lookback :]))
        features = np.concatenate(parts, axis=1)  # (lookback, F)
        output, _ = self.encoder.run(features)  # (lookback, S_0)
        change = output[-1] @ self._head_weight + self._head_bias  # (horizon * K,)
        forecast = change.astype(np.float64).reshape(self.horizon, self.num_targets)
        if self.seasonal_base:
            steps = np.arange(self.horizon)
            forecast += targets[self.lookback + steps % self.season]
        return forecast * self._std[: self.num_targets] + self._mean[: self.num_targets]
