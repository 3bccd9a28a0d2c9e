"""plot_forecast draws what a person reads: a full view and a zoom on the test window, dates
on the x-axis, the model bold over muted baselines, shaded intervals, one piece per origin."""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import rgb_to_hsv, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import rnnkit.viz.figures as figures
from rnnkit.viz import plot_forecast

HISTORY_STEPS, ORIGINS, HORIZON = 48, 3, 6
TEST_STEPS = ORIGINS * HORIZON
RNG = np.random.default_rng(0)
STEPS = np.arange(HISTORY_STEPS + TEST_STEPS)
SERIES = 50 + 2 * STEPS + 10 * np.sin(STEPS * 2 * np.pi / 12)  # trend: the zoom sees less
HISTORY, TRUTH = SERIES[:HISTORY_STEPS], SERIES[HISTORY_STEPS:].reshape(ORIGINS, HORIZON)
MODEL = TRUTH + RNG.normal(0, 1, TRUTH.shape)
FORECASTS = {
    "rnnkit": MODEL,
    "seasonal naive": SERIES[HISTORY_STEPS - 12 : HISTORY_STEPS + TEST_STEPS - 12].reshape(
        ORIGINS, HORIZON
    ),
    "AutoETS": TRUTH + 2,
}
INTERVALS = {80: (MODEL - 2, MODEL + 2), 95: (MODEL - 4, MODEL + 4)}
# Monthly timestamps for the history then the test steps.
TIMESTAMPS = np.arange("2015-01", "2020-07", dtype="datetime64[M]")
TITLE = "airline: 6-step forecasts"


def build(**changes: object) -> Figure:
    arguments: dict[str, object] = {
        "history": HISTORY,
        "truth": TRUTH,
        "forecasts": FORECASTS,
        "intervals": INTERVALS,
        "title": TITLE,
    }
    return figures._forecast_figure(**(arguments | changes))


def line(axes: object, label: str) -> Line2D:
    (found,) = [ln for ln in axes.get_lines() if ln.get_label() == label]
    return found


def fill(axes: object, level: int) -> PolyCollection:
    (found,) = [c for c in axes.collections if c.get_label() == f"{level}% interval"]
    assert isinstance(found, PolyCollection)
    return found


def finite_runs(artist: Line2D) -> list[np.ndarray]:
    """The x values of each stretch a line draws without a break (NaN in x or y)."""
    x, y = (np.asarray(a, dtype=float) for a in artist.get_data())
    finite = np.isfinite(x) & np.isfinite(y)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(int), [0]])))
    return [x[start:stop] for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def test_two_panels_with_the_title_and_a_legend_off_the_data() -> None:
    figure = build()
    assert len(figure.axes) == 2
    assert figure.get_suptitle() == TITLE
    assert not any(axes.get_legend() for axes in figure.axes)
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["actual", "rnnkit", "80% interval", "95% interval", *list(FORECASTS)[1:]]
    figure.draw_without_rendering()
    box = legend.get_window_extent()
    for axes in figure.axes:
        assert not box.overlaps(axes.get_window_extent())


def test_the_zoom_shows_the_test_window_and_only_the_end_of_the_history() -> None:
    full, zoom = build().axes
    last = HISTORY_STEPS + TEST_STEPS - 1
    assert full.get_xlim()[0] <= 0 and full.get_xlim()[1] >= last
    left, right = zoom.get_xlim()
    assert right >= last and right < last + 1
    # Default context: max(2 * horizon, a quarter of the test window) = 12 steps.
    assert HISTORY_STEPS - 12 - 1 < left < HISTORY_STEPS - 12
    # The y-range follows what the zoom shows, not the whole history.
    shown = np.concatenate([HISTORY[-12:], TRUTH, *INTERVALS[95], *FORECASTS.values()], axis=None)
    bottom, top = zoom.get_ylim()
    assert bottom <= shown.min() and top >= shown.max()
    assert top - bottom < 1.3 * (shown.max() - shown.min())


def test_zoom_history_sets_the_context() -> None:
    _, zoom = build(zoom_history=30).axes
    assert HISTORY_STEPS - 31 < zoom.get_xlim()[0] < HISTORY_STEPS - 30


def test_with_timestamps_the_x_data_are_dates() -> None:
    full, zoom = build(timestamps=TIMESTAMPS).axes
    dates = mdates.date2num(TIMESTAMPS)
    for axes in (full, zoom):
        np.testing.assert_array_equal(line(axes, "actual").get_xdata(), dates)
        for label in FORECASTS:
            x = np.asarray(line(axes, label).get_xdata(), dtype=float)
            np.testing.assert_array_equal(x[np.isfinite(x)], dates[HISTORY_STEPS:])
        assert isinstance(axes.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
        assert isinstance(axes.xaxis.get_major_locator(), mdates.AutoDateLocator)
    assert dates[HISTORY_STEPS - 13] < zoom.get_xlim()[0] < dates[HISTORY_STEPS - 12]
    assert zoom.get_xlim()[1] >= dates[-1]


def test_without_timestamps_the_x_data_are_step_numbers() -> None:
    full, _ = build().axes
    np.testing.assert_array_equal(
        line(full, "actual").get_xdata(), np.arange(HISTORY_STEPS + TEST_STEPS)
    )
    assert full.get_xlabel() == "step"


def test_the_model_stands_out_and_baselines_are_muted() -> None:
    for axes in build().axes:
        model = line(axes, "rnnkit")
        assert line(axes, "actual").get_color() == "black"
        assert rgb_to_hsv(to_rgb(model.get_color()))[1] > 0.6  # a strong colour
        for label in list(FORECASTS)[1:]:
            baseline = line(axes, label)
            assert model.get_linewidth() > 1.5 * baseline.get_linewidth()
            assert rgb_to_hsv(to_rgb(baseline.get_color()))[1] < 0.4  # grey or a light tone
            assert model.get_zorder() > baseline.get_zorder()


def test_intervals_are_shaded_per_origin_wider_lighter_and_below() -> None:
    for axes in build().axes:
        narrow, wide = fill(axes, 80), fill(axes, 95)
        assert wide.get_zorder() < narrow.get_zorder() < line(axes, "rnnkit").get_zorder()
        brightness = {level: fill(axes, level).get_facecolor()[0][:3].mean() for level in (80, 95)}
        assert brightness[95] > brightness[80]
        # One polygon per origin (not joined across origins), spanning lower .. upper.
        for level, band in ((80, narrow), (95, wide)):
            paths = band.get_paths()
            assert len(paths) == ORIGINS
            lower, upper = INTERVALS[level]
            for origin, path in enumerate(paths):
                x, y = path.vertices.T
                span = HISTORY_STEPS + origin * HORIZON
                assert (x.min(), x.max()) == (span, span + HORIZON - 1)
                assert y.min() == pytest.approx(lower[origin].min())
                assert y.max() == pytest.approx(upper[origin].max())


def test_no_line_joins_successive_origins() -> None:
    for axes in build().axes:
        for label in FORECASTS:
            runs = finite_runs(line(axes, label))
            starts = [HISTORY_STEPS + m * HORIZON for m in range(ORIGINS)]
            assert [run.tolist() for run in runs] == [
                list(range(start, start + HORIZON)) for start in starts
            ]
            np.testing.assert_array_equal(
                np.asarray(line(axes, label).get_ydata())[
                    np.isfinite(line(axes, label).get_ydata())
                ],
                FORECASTS[label].ravel(),
            )
        # The actual series is one contiguous line: history then the truth.
        np.testing.assert_array_equal(
            line(axes, "actual").get_ydata(), np.concatenate([HISTORY, TRUTH.ravel()])
        )


def test_one_step_forecasts_as_1d_arrays_draw_one_line() -> None:
    truth = SERIES[HISTORY_STEPS:]
    figure = build(truth=truth, forecasts={"LSTM": truth + 0.5, "naive": truth - 0.5},
                   intervals=None)  # fmt: skip
    for axes in figure.axes:
        (run,) = finite_runs(line(axes, "LSTM"))
        np.testing.assert_array_equal(run, np.arange(HISTORY_STEPS, HISTORY_STEPS + TEST_STEPS))
        assert not axes.collections


def test_a_single_forecast_past_the_data_needs_no_truth() -> None:
    forecast = {"rnnkit": MODEL[:1], "naive": np.full((1, HORIZON), HISTORY[-1])}
    figure = build(truth=None, forecasts=forecast, intervals={80: (MODEL[:1] - 1, MODEL[:1] + 1)},
                   timestamps=TIMESTAMPS[: HISTORY_STEPS + HORIZON])  # fmt: skip
    full, zoom = figure.axes
    assert len(line(full, "actual").get_xdata()) == HISTORY_STEPS  # history only
    (run,) = finite_runs(line(zoom, "rnnkit"))
    np.testing.assert_array_equal(
        run, mdates.date2num(TIMESTAMPS[HISTORY_STEPS : HISTORY_STEPS + HORIZON])
    )
    assert zoom.get_title().startswith("forecast")
    assert len(fill(zoom, 80).get_paths()) == 1


def test_the_png_is_written_with_the_figure_size(saved_figures: list, tmp_path: Path) -> None:
    path = plot_forecast(tmp_path / "out" / "forecast.png", HISTORY, TRUTH, FORECASTS,
                         intervals=INTERVALS, timestamps=TIMESTAMPS, title=TITLE)  # fmt: skip
    assert path == tmp_path / "out" / "forecast.png"
    assert not list(path.parent.glob(".*.partial"))
    (figure,) = saved_figures
    assert len(figure.axes) == 2 and figure.get_suptitle() == TITLE
    width, height = figure.get_size_inches() * 120  # _save's dpi
    assert matplotlib.image.imread(path).shape[:2] == (round(height), round(width))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"forecasts": FORECASTS | {"AutoETS": TRUTH[:, :-1]}},
         r"forecasts\['AutoETS'\]: expected shape \(3, 6\) like truth, got \(3, 5\)"),
        ({"truth": TRUTH[None]}, r"truth: expected an \(M, horizon\) array, got shape \(1, 3, 6\)"),
        ({"truth": None, "forecasts": {"rnnkit": MODEL, "naive": MODEL[:2]}, "intervals": None},
         r"forecasts\['naive'\]: expected shape \(3, 6\) like forecasts\['rnnkit'\], got \(2, 6\)"),
        ({"history": HISTORY[None]}, r"history: expected a 1-D \(T_h,\) array, got shape"),
        ({"forecasts": {}}, "forecasts: expected at least one"),
        ({"intervals": {80: (MODEL[:2], MODEL[:2])}},
         r"intervals\[80\] lower: expected shape \(3, 6\) like forecasts\['rnnkit'\], got"),
        ({"intervals": {150: (MODEL, MODEL)}}, r"intervals: expected int levels in \(0, 100\)"),
        ({"intervals": {80: (MODEL + 1, MODEL)}}, r"intervals\[80\]: expected lower <= upper"),
        ({"timestamps": TIMESTAMPS[:-1]},
         r"timestamps: expected a datetime64 array of shape \(66,\) \(T_h \+ M \* horizon\)"),
        ({"timestamps": np.arange(66)}, r"timestamps: expected a datetime64 array"),
        ({"zoom_history": -1}, "zoom_history: expected a non-negative int, got -1"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    arguments = {"history": HISTORY, "truth": TRUTH, "forecasts": FORECASTS,
                 "intervals": INTERVALS} | changes  # fmt: skip
    with pytest.raises(ValueError, match=message):
        plot_forecast(tmp_path / "forecast.png", **arguments)
    assert not (tmp_path / "forecast.png").exists()
