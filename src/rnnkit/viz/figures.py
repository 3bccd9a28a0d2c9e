"""Forecast, training-curve and confusion-matrix figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from rnnkit.atomic import atomic_file

# Figures are built without pyplot: no global state and no display needed (servers, CI).

# The model's forecast: one strong colour, drawn boldest and on top.
_MODEL_COLOUR = "#1565c0"
# Baselines: greys and light, low-saturation tones with distinct dashes, drawn thin.
_BASELINE_COLOURS = ("0.55", "#c4a484", "#9bb59b", "#b7a1c9", "#d4a5a5", "0.75")
_BASELINE_DASHES = ("--", "-.", ":", (0, (6, 2, 1, 2)), (0, (3, 1)), (0, (8, 3)))


def plot_forecast(
    path: str | Path,
    history: np.ndarray,
    truth: np.ndarray | None,
    forecasts: dict[str, np.ndarray],
    intervals: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    timestamps: np.ndarray | None = None,
    title: str = "Forecast",
    ylabel: str = "value",
    zoom_history: int | None = None,
) -> Path:
    """Rolling-origin forecasts of one target against the truth: a full view and a zoom.

    The left panel shows the whole history and the test window (shaded); the right one
    zooms on the test window with the last ``zoom_history`` steps of history before it.
    The actual series is black, the first forecast (the model) a strong blue with its
    prediction intervals shaded (lighter for the wider level), the other forecasts
    (baselines) thin muted lines. Each origin's forecast is its own piece: pieces at
    successive origins are not joined (with ``horizon == 1`` the one-step forecasts are
    joined into one line, as a single point per piece would be invisible). The x-axis
    shows dates when ``timestamps`` are given, else step numbers (0 = first history step).

    Origins tile the test window back to back: origin ``m`` forecasts test steps
    ``[m * horizon, (m + 1) * horizon)``.

    Args:
        path: where to write the figure; its suffix picks the format (``.png``, ``.svg``).
        history: ``(T_h,)`` target values before the first forecast origin.
        truth: ``(M, horizon)`` actual values at the ``M`` origins, or ``None`` when the
            forecasts run past the end of the data (e.g. one forecast, ``M = 1``). A 1-D
            ``(M,)`` array is read as ``M`` one-step forecasts, ``(M, 1)``.
        forecasts: ``{label: (M, horizon)}``; the first is the model, the rest baselines.
            1-D ``(M,)`` arrays are read as ``(M, 1)`` like ``truth``.
        intervals: ``{level: (lower, upper)}`` with ``level`` a percentage in (0, 100) and
            ``lower``, ``upper`` each ``(M, horizon)``: prediction intervals of the first
            forecast.
        timestamps: ``(T_h + M * horizon,)`` ``datetime64`` times of the history steps then
            the test steps, or ``None`` for step numbers.
        title: a short title over both panels, e.g. ``"airline: 12-step forecasts"``.
        ylabel: the target's name or unit.
        zoom_history: steps of history the zoom panel shows before the first origin;
            default ``max(2 * horizon, ceil(M * horizon / 4))`` (pass a season to show one).

    Returns:
        ``path``, written atomically.
    """
    figure = _forecast_figure(
        history,
        truth,
        forecasts,
        intervals=intervals,
        timestamps=timestamps,
        title=title,
        ylabel=ylabel,
        zoom_history=zoom_history,
    )
    return _save(figure, path)


def _forecast_figure(
    history: np.ndarray,
    truth: np.ndarray | None,
    forecasts: dict[str, np.ndarray],
    intervals: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    timestamps: np.ndarray | None = None,
    title: str = "Forecast",
    ylabel: str = "value",
    zoom_history: int | None = None,
) -> Figure:
    """Build :func:`plot_forecast`'s figure (arguments and shapes as there), unsaved."""
    history = _as_float(history, "history")
    if history.ndim != 1:
        raise ValueError(f"history: expected a 1-D (T_h,) array, got shape {history.shape}")
    if not forecasts:
        raise ValueError("forecasts: expected at least one {label: (M, horizon)} forecast")
    model = next(iter(forecasts))
    # The shape every forecast must have: truth's, else the model's.
    reference = "truth" if truth is not None else f"forecasts[{model!r}]"
    shape = _as_origins(truth if truth is not None else forecasts[model], reference).shape
    if 0 in shape:
        raise ValueError(
            f"{reference}: expected at least one origin and one step (M, horizon "
            f">= 1), got shape {shape}"
        )
    if truth is not None:
        truth = _as_origins(truth, "truth")
    like = f"like {reference}"
    forecasts = {
        label: _as_origins(values, f"forecasts[{label!r}]", shape, like)
        for label, values in forecasts.items()
    }
    bands = _check_intervals(intervals or {}, shape, f"like forecasts[{model!r}]")
    origins, horizon = shape
    steps = len(history) + origins * horizon
    if timestamps is not None:
        timestamps = np.asarray(timestamps)
        if timestamps.dtype.kind != "M" or timestamps.shape != (steps,):
            raise ValueError(
                f"timestamps: expected a datetime64 array of shape ({steps},) (T_h + M * "
                f"horizon), got {timestamps.dtype} of shape {timestamps.shape}"
            )
        x = mdates.date2num(timestamps)
    else:
        x = np.arange(steps, dtype=float)
    if zoom_history is None:
        zoom_history = max(2 * horizon, -(-origins * horizon // 4))
    elif isinstance(zoom_history, bool) or not isinstance(zoom_history, int | np.integer):
        raise TypeError(f"zoom_history: expected a non-negative int, got {zoom_history!r}")
    if zoom_history < 0:
        raise ValueError(f"zoom_history: expected a non-negative int, got {zoom_history}")

    figure = Figure(figsize=(12, 4.4), layout="constrained")
    full, zoom = figure.subplots(1, 2, width_ratios=[1.15, 1])
    x_history, x_test = x[: len(history)], x[len(history) :]
    # Where the test window starts and ends: half a step beyond its first and last points.
    step = float(np.median(np.diff(x))) if steps > 1 else 1.0
    window = (x_test[0] - step / 2, x_test[-1] + step / 2)
    for axes in (full, zoom):
        _draw_forecasts(axes, x_history, x_test, history, truth, forecasts, bands)
        axes.grid(color="0.92", lw=0.6, zorder=0)
        axes.axvline(window[0], color="0.35", ls=":", lw=1, zorder=1.5)
        if timestamps is not None:
            locator = mdates.AutoDateLocator()
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        else:
            axes.set_xlabel("step")
    full.axvspan(*window, color="0.95", lw=0, zorder=0)
    full.set_ylabel(ylabel)
    full.set_title("full series", fontsize=10)
    what = "test window" if truth is not None else "forecast"
    plural = ("s" if origins != 1 else "", "s" if horizon != 1 else "")
    zoom.set_title(f"{what}: {origins} origin{plural[0]} of {horizon} step{plural[1]}", fontsize=10)
    # Zoom: the last `zoom_history` steps of history, then the test window.
    first = len(history) - min(zoom_history, len(history))
    left = x[first] - step / 2 if first < len(history) else window[0]
    zoom.set_xlim(left, window[1])
    for origin in range(1, origins if horizon > 1 else 0):  # faint marks at later origins
        zoom.axvline(x_test[origin * horizon] - step / 2, color="0.85", lw=0.6, zorder=0.5)
    # Matplotlib scales y to all the data: rescale it to what the zoom shows.
    shown = [history[first:], *forecasts.values(), *(b for pair in bands.values() for b in pair)]
    if truth is not None:
        shown.append(truth)
    low, high = _finite_range(np.concatenate([np.ravel(s) for s in shown]))
    pad = 0.06 * (high - low) or 0.5 * max(abs(high), 1.0)
    zoom.set_ylim(low - pad, high + pad)

    handles, labels = full.get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=min(len(labels), 8),
        fontsize=9,
        frameon=False,
    )
    figure.suptitle(title)
    return figure


def _draw_forecasts(
    axes: Axes,
    x_history: np.ndarray,
    x_test: np.ndarray,
    history: np.ndarray,
    truth: np.ndarray | None,
    forecasts: dict[str, np.ndarray],
    bands: dict[int, tuple[np.ndarray, np.ndarray]],
) -> None:
    """Draw the actual series, interval bands and forecasts (``(M, horizon)`` each)."""
    actual_x, actual = x_history, history
    if truth is not None:  # history then the test window's truth: one contiguous series
        actual_x = np.concatenate([x_history, x_test])
        actual = np.concatenate([history, truth.ravel()])
    if len(actual):
        axes.plot(
            actual_x,
            actual,
            color="black",
            lw=1.3,
            label="actual",
            zorder=2.5,
            marker="o" if len(actual) == 1 else None,
            ms=3,
        )
    # Added in legend order (actual, model, its intervals, baselines); zorder sets the layers.
    marker = "o" if x_test.size == 1 else None  # a lone point draws no line
    labels = list(forecasts)
    xs, ys = _pieces(x_test, forecasts[labels[0]])
    axes.plot(xs, ys, color=_MODEL_COLOUR, lw=2.2, zorder=3, label=labels[0], marker=marker, ms=4)
    # Widest band lightest and lowest; `bands` runs widest first.
    whiteness = np.linspace(0.85, 0.65, len(bands)) if len(bands) > 1 else [0.75]
    for rank, (level, (lower, upper)) in reversed(list(enumerate(bands.items()))):
        xs, lows = _pieces(x_test, lower)
        axes.fill_between(
            xs,
            lows,
            _pieces(x_test, upper)[1],
            lw=0,
            zorder=1 + 0.1 * rank,
            color=_tint(_MODEL_COLOUR, whiteness[rank]),
            label=f"{level}% interval",
        )
    for i, label in enumerate(labels[1:]):
        xs, ys = _pieces(x_test, forecasts[label])
        k = i % len(_BASELINE_COLOURS)
        axes.plot(
            xs,
            ys,
            color=_BASELINE_COLOURS[k],
            ls=_BASELINE_DASHES[k],
            lw=1.1,
            zorder=2,
            label=label,
            marker=marker,
            ms=4,
        )


def _pieces(x_test: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One piece per origin: ``(M, horizon)`` values and ``(M * horizon,)`` x positions to
    1-D arrays with a NaN between origins, so a line does not join them (``horizon == 1``:
    joined, one point per origin)."""
    origins, horizon = values.shape
    if horizon == 1:
        return x_test, values[:, 0]
    gap = np.full((origins, 1), np.nan)
    xs = np.hstack([x_test.reshape(origins, horizon), gap]).ravel()[:-1]
    return xs, np.hstack([values, gap]).ravel()[:-1]


def _as_float(values: object, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric values, got dtype {array.dtype}")
    return array.astype(float)


def _as_origins(
    values: object, name: str, shape: tuple[int, int] | None = None, like: str = ""
) -> np.ndarray:
    """``values`` as an ``(M, horizon)`` float array; 1-D ``(M,)`` becomes ``(M, 1)``."""
    array = _as_float(values, name)
    if array.ndim == 1:
        array = array[:, None]
    if shape is None and array.ndim != 2:
        raise ValueError(f"{name}: expected an (M, horizon) array, got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} {like}, got {array.shape}")
    return array


def _check_intervals(
    intervals: dict[int, tuple[np.ndarray, np.ndarray]], shape: tuple[int, int], like: str
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Validated ``{level: (lower, upper)}`` bands, each ``(M, horizon)``, widest first."""
    bands = {}
    for level, band in intervals.items():
        name = f"intervals[{level!r}]"
        integer = isinstance(level, int | np.integer) and not isinstance(level, bool)
        if not integer or not 0 < level < 100:
            raise ValueError(f"intervals: expected int levels in (0, 100) (percent), got {level!r}")
        if not isinstance(band, tuple | list) or len(band) != 2:
            raise ValueError(f"{name}: expected a (lower, upper) pair")
        lower = _as_origins(band[0], f"{name} lower", shape, like)
        upper = _as_origins(band[1], f"{name} upper", shape, like)
        if (lower > upper).any():
            raise ValueError(f"{name}: expected lower <= upper at every step")
        bands[int(level)] = (lower, upper)
    return dict(sorted(bands.items(), reverse=True))


def _tint(colour: str, whiteness: float) -> tuple[float, float, float]:
    """``colour`` mixed with white: ``whiteness`` 0 is the colour, 1 is white."""
    rgb = np.asarray(to_rgb(colour))
    r, g, b = rgb + (1 - rgb) * whiteness
    return float(r), float(g), float(b)


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def plot_training(path: str | Path, train_loss: list[float], val_loss: list[float]) -> Path:
    """Training and validation loss per epoch, with the restored best epoch marked."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    epochs = np.arange(1, len(val_loss) + 1)
    axes.plot(epochs[: len(train_loss)], train_loss, marker="o", ms=3, label="train")
    axes.plot(epochs, val_loss, marker="o", ms=3, label="validation")
    if val_loss:
        best = int(np.argmin(val_loss))
        axes.scatter(
            [epochs[best]],
            [val_loss[best]],
            s=80,
            facecolors="none",
            edgecolors="red",
            label=f"best (epoch {epochs[best]})",
        )
    axes.set(title="Training curves", xlabel="epoch", ylabel="loss (MSE, scaled)", yscale="log")
    axes.legend()
    return _save(figure, path)


def plot_confusion(
    matrix: np.ndarray,
    labels: Sequence[object],
    path: str | Path,
    title: str = "Confusion matrix",
) -> Path:
    """Counts of true classes (rows) against predicted classes (columns), written in cells.

    Args:
        matrix: ``(C, C)`` non-negative counts, e.g. ``evaluate(...)["confusion_matrix"]``.
        labels: the ``C`` class names, in the matrix's order.
    """
    matrix = np.asarray(matrix)
    if matrix.dtype.kind not in "biuf":
        raise TypeError(f"matrix: expected numeric counts, got dtype {matrix.dtype}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix: expected a non-empty square (C, C) array, got {matrix.shape}")
    if len(labels) != len(matrix):
        raise ValueError(f"labels: expected {len(matrix)} labels (C), got {len(labels)}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("matrix: expected finite non-negative counts")
    size = 2.5 + 0.45 * len(labels)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046)
    ticks = np.arange(len(labels))
    names = [str(label) for label in labels]
    axes.set(
        xticks=ticks,
        yticks=ticks,
        xticklabels=names,
        yticklabels=names,
        title=title,
        xlabel="predicted",
        ylabel="true",
    )
    dark = matrix.max() / 2  # white text on dark cells
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(
            column,
            row,
            f"{count:g}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if count > dark else "black",
        )
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    """Write atomically: a temporary name, then a rename."""
    path = Path(path)
    if figure.get_layout_engine() is None:  # a figure built with a layout keeps it
        figure.tight_layout()
    with atomic_file(path) as partial:
        figure.savefig(partial, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path
