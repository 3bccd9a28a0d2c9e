"""Users' own series through the forecaster: defaults from the data, season 1, intervals,
the blend with a baseline, the log transform and panels."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from docs_code import DOCS, run_python_blocks
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data import TimeSeries, find_date_column, read_panel
from rnnkit.export import export_runtime
from rnnkit.tasks import Forecaster
from rnnkit.train import TrainConfig

runner = CliRunner()
QUICK = TrainConfig(max_epochs=3, batch_size=32, learning_rate=1e-2)


def monthly_dates(length: int, start: str = "1990-01") -> np.ndarray:
    return (np.datetime64(start, "M") + np.arange(length)).astype("datetime64[D]")


def write_series(path: Path, dates: np.ndarray, values: np.ndarray, name: str = "y") -> Path:
    lines = ["date," + name] + [f"{d},{v:.6f}" for d, v in zip(dates, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def airline_like(length: int = 144, seed: int = 0) -> np.ndarray:
    """Trend times a yearly season times lognormal noise: a multiplicative monthly series."""
    t = np.arange(length)
    noise = np.random.default_rng(seed).lognormal(0, 0.03, length)
    return (100 + 2 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12)) * noise


# ------------------------------------------------------------------- defaults from the data


def test_a_short_monthly_csv_runs_with_only_data_and_target(tmp_path: Path) -> None:
    """144 monthly points: the old fixed sizes (672 + 672) left no training data."""
    csv = write_series(tmp_path / "monthly.csv", monthly_dates(144), airline_like())
    out = tmp_path / "run"
    args = ["--data", str(csv), "--target", "y", "--epochs", "2", "--hidden-size", "8"]
    result = runner.invoke(app, ["forecast", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Frequency: monthly." in result.stdout
    assert "Horizon: 18 steps" in result.stdout
    assert "Season: 12 (monthly data; a season of 12 steps confirmed" in result.stdout
    metadata = json.loads((out / "model" / "config.json").read_text())["metadata"]
    plan, test = metadata["plan"], metadata["test_size"]
    assert (plan["horizon"], plan["season"]) == (18, 12)
    assert test % 18 == 0 and plan["val_size"] >= 18
    # the training part holds a window of input, the season before it and a horizon
    assert 144 - test - plan["val_size"] >= plan["lookback"] + 12 + 18
    evaluation = metadata["evaluation"]
    assert set(evaluation["MASE"]) == {"rnnkit", "naive", "seasonal naive", "AutoETS",
                                       "AutoARIMA"}  # fmt: skip
    best = min((v, k) for k, v in evaluation["MASE"].items() if k != "rnnkit")[1]
    assert evaluation["best_baseline"] == best
    assert evaluation["beats_best_baseline"] == (
        evaluation["MASE"]["rnnkit"] < evaluation["MASE"][best]
    )
    verdict = "beats the best baseline" if evaluation["beats_best_baseline"] else "does NOT beat"
    assert verdict in result.stdout


def test_season_one_runs_end_to_end(tmp_path: Path) -> None:
    """Yearly data has no season: no seasonal-naive baseline, MASE against naive, and the
    model predicts and re-evaluates."""
    rng = np.random.default_rng(3)
    values = 50 + np.cumsum(rng.normal(0.5, 1.0, 60))
    dates = np.datetime64("1950", "Y") + np.arange(60)
    csv = write_series(tmp_path / "yearly.csv", dates.astype("datetime64[D]"), values)
    out = tmp_path / "run"
    args = ["--data", str(csv), "--target", "y", "--epochs", "2", "--hidden-size", "8"]
    result = runner.invoke(app, ["forecast", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Season: 1 (" in result.stdout and "season 1)" in result.stdout
    assert "seasonal naive" not in result.stdout and "naive" in result.stdout
    predicted = runner.invoke(app, ["predict", str(out / "model"), str(csv)])
    assert predicted.exit_code == 0, predicted.output
    forecast = json.loads(predicted.stdout)
    assert len(forecast["y"]) == 6  # the yearly horizon
    for level in (80, 95):
        lower, upper = forecast[f"y lower {level}%"], forecast[f"y upper {level}%"]
        assert all(lo <= y <= hi for lo, y, hi in zip(lower, forecast["y"], upper, strict=True))
    evaluated = runner.invoke(app, ["evaluate", str(out / "model"), "--data", str(csv)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "AutoETS" in evaluated.stdout


def test_a_given_season_of_one_is_used_on_seasonal_data(tmp_path: Path) -> None:
    csv = write_series(tmp_path / "monthly.csv", monthly_dates(144), airline_like())
    result = runner.invoke(app, ["forecast", "--data", str(csv), "--target", "y", "--season",
                                 "1", "--horizon", "6", "--epochs", "1", "--hidden-size", "8",
                                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "season 1)" in result.stdout and "seasonal naive" not in result.stdout


def test_a_series_too_short_for_its_horizon_says_what_would_fit(tmp_path: Path) -> None:
    csv = write_series(tmp_path / "short.csv", monthly_dates(30), airline_like(30))
    result = runner.invoke(app, ["forecast", "--data", str(csv), "--target", "y",
                                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2
    assert "length: expected at least" in result.stderr and "try" in result.stderr


def test_the_date_column_is_found_by_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("id,value,when\n1,3.5,2020-01-01\n2,4.5,2020-01-02\n")
    assert find_date_column(path) == "when"
    path.write_text("year,value\n1990,3.5\n1991,4.5\n")
    assert find_date_column(path) is None  # a bare number is not read as a date


# ----------------------------------------------------------------- intervals, blend, log


def test_intervals_match_known_noise_quantiles() -> None:
    """A known mean (a daily cycle) plus Gaussian noise of sd 1: the best 80% and 95%
    intervals are the mean +- 1.28 and +- 1.96. Ours must cover about as often and be
    about as wide."""
    rng = np.random.default_rng(0)
    t = np.arange(2400)
    values = 10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, t.size)
    series = TimeSeries(values[:, None], ("y",))
    model = Forecaster(lookback=48, horizon=12, season=24, hidden_size=16, blend=False,
                       transform="none", training=TrainConfig(max_epochs=8, seed=0))  # fmt: skip
    model.fit(series.slice(stop=-600), val_size=480, progress=False)
    report = model.evaluate(series, test_size=600)
    for level, z in ((80, 1.2816), (95, 1.9600)):
        assert abs(report.coverage[level] - level / 100) < 0.07, report.coverage
        lower, upper = report.intervals[level]
        assert np.mean(upper - lower) == pytest.approx(2 * z, rel=0.25)
        assert (lower <= report.forecasts["rnnkit"]).all()
        assert (report.forecasts["rnnkit"] <= upper).all()


def test_intervals_do_not_change_the_point_forecast() -> None:
    series = TimeSeries(airline_like(240)[:, None], ("y",))
    forecasts = []
    for levels in ((80, 95), ()):
        model = Forecaster(lookback=24, horizon=6, season=12, hidden_size=8, blend=False,
                           levels=levels, training=QUICK)  # fmt: skip
        model.fit(series.slice(stop=-24), val_size=24, progress=False)
        forecasts.append(model.predict(series))
    np.testing.assert_array_equal(*forecasts)


def trend_and_season(length: int = 300) -> TimeSeries:
    """A noiseless linear trend plus a season of 12: AutoETS and AutoARIMA are all but
    exact, seasonal naive misses the trend."""
    t = np.arange(length)
    return TimeSeries((20 + 0.1 * t + 2 * np.sin(2 * np.pi * t / 12))[:, None], ("y",))


def test_the_base_is_the_baseline_that_forecasts_best() -> None:
    series = trend_and_season()
    model = Forecaster(lookback=24, horizon=6, season=12, hidden_size=4, blend=False,
                       transform="none", training=TrainConfig(max_epochs=1))  # fmt: skip
    model.fit(series.slice(stop=-36), val_size=36, progress=False)
    assert model._fitted.base in ("AutoETS", "AutoARIMA")
    metrics = model.evaluate(series, test_size=36).metrics
    assert metrics["rnnkit"]["MAE"] < 0.1 * metrics["seasonal naive"]["MAE"], metrics


def test_the_blend_leans_on_a_baseline_that_is_exact() -> None:
    """Seasonal naive as the base, a network trained for one epoch: validation gives the
    exact baseline the larger weight, and the blend forecasts better than the network."""
    series = trend_and_season()
    errors = {}
    for blend in (True, False):
        model = Forecaster(lookback=24, horizon=6, season=12, hidden_size=4, blend=blend,
                           transform="none", base="seasonal naive",
                           training=TrainConfig(max_epochs=1))  # fmt: skip
        model.fit(series.slice(stop=-36), val_size=36, progress=False)
        errors[blend] = model.evaluate(series, test_size=36).metrics["rnnkit"]["MAE"]
        if blend:
            assert model._fitted.blend <= 0.5
    assert errors[True] < errors[False]


def test_the_blend_falls_back_to_seasonal_naive_where_it_is_best_on_validation() -> None:
    """A season repeated exactly: seasonal naive is exact on validation, a network without a
    base trained for one epoch is not, so the forecast is seasonal naive's, to the digit. (The
    series is long enough that AutoARIMA, which AICc would make exact too, is not run.)"""
    pattern = np.random.default_rng(1).normal(0, 1, 12)
    series = TimeSeries(np.tile(pattern, 25)[:, None] + 5, ("y",))
    model = Forecaster(lookback=12, horizon=6, season=12, hidden_size=4, seasonal_base=False,
                       transform="none", training=TrainConfig(max_epochs=1))  # fmt: skip
    model.fit(series.slice(stop=-24), val_size=24, progress=False)
    assert (model._fitted.partner, model._fitted.blend) == ("seasonal naive", 0.0)
    origins = [216, 222, 228]
    by_hand = np.stack([series.targets[t - 12 : t - 6] for t in origins])
    np.testing.assert_allclose(model.predict(series, origins), by_hand, rtol=1e-12)


def test_the_log_transform_is_chosen_for_multiplicative_positive_series() -> None:
    multiplicative = TimeSeries(airline_like(240)[:, None], ("y",))
    additive = TimeSeries((np.sin(np.arange(240) * 2 * np.pi / 12) * 5)[:, None], ("y",))
    chosen = {}
    for name, series in (("multiplicative", multiplicative), ("additive", additive)):
        model = Forecaster(lookback=24, horizon=6, season=12, hidden_size=4, training=QUICK)
        model.fit(series, val_size=24, progress=False)
        chosen[name] = model._fitted.transform
    assert chosen == {"multiplicative": "log", "additive": "none"}


# --------------------------------------------------------------------------- seed averaging


def deviating_series(length: int = 240, seed: int = 0) -> TimeSeries:
    """A season of 12 plus a persistent AR(1) deviation that seasonal naive cannot see, so
    every seed's network keeps a correction of its own."""
    rng = np.random.default_rng(seed)
    deviation = np.zeros(length)
    for t in range(1, length):
        deviation[t] = 0.9 * deviation[t - 1] + rng.normal(scale=0.5)
    return TimeSeries((10 + 3 * np.sin(2 * np.pi * np.arange(length) / 12) + deviation)[:, None],
                      ("y",))  # fmt: skip


def seeded(seeds: int, seed: int, **options) -> Forecaster:
    return Forecaster(lookback=12, horizon=6, season=12, hidden_size=8, blend=False,
                      transform="none", base="seasonal naive", seeds=seeds,
                      training=replace(QUICK, seed=seed), **options)  # fmt: skip


def test_seed_averaging_forecasts_the_mean_of_the_seeded_networks() -> None:
    """Three seeds from 5 against three one-network models trained alone with seeds 5, 6, 7:
    the averaged forecast is the mean of theirs, and theirs differ (nothing vacuous)."""
    series = deviating_series()
    origins = [180, 200, 220]
    averaged = seeded(3, seed=5)
    averaged.fit(series.slice(stop=-24), val_size=24, progress=False)
    alone = []
    for seed in (5, 6, 7):
        model = seeded(1, seed=seed)
        model.fit(series.slice(stop=-24), val_size=24, progress=False)
        alone.append(model.predict(series, origins))
    assert np.ptp(np.stack(alone), axis=0).min() > 1e-4
    np.testing.assert_allclose(averaged.predict(series, origins), np.mean(alone, axis=0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_a_seed_averaged_model_round_trips_and_the_runtime_refuses_it(tmp_path: Path) -> None:
    series = deviating_series()
    model = seeded(2, seed=0)
    model.fit(series.slice(stop=-24), val_size=24, progress=False)
    loaded = Forecaster.load(model.save(tmp_path / "model"))
    assert loaded.config.seeds == 2
    ours, theirs = model.forecast(series, [200, 234]), loaded.forecast(series, [200, 234])
    np.testing.assert_array_equal(theirs.mean, ours.mean)
    for level in (80, 95):
        np.testing.assert_array_equal(theirs.intervals[level], ours.intervals[level])
    with pytest.raises(ValueError, match=r"averages 2 networks \(seeds\).*seeds=1"):
        export_runtime(tmp_path / "model", tmp_path / "model.rnnkit")


@pytest.mark.parametrize(("seeds", "error"), [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_seeds_are_refused_in_one_line(seeds, error: type) -> None:
    with pytest.raises(error, match=r"^seeds: expected an int") as raised:
        Forecaster(seeds=seeds)
    assert "\n" not in str(raised.value)


def test_resuming_a_seed_averaged_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="resume: expected a model with seeds = 1, got 2"):
        seeded(2, seed=0).fit(deviating_series(), val_size=24, progress=False, resume=True)


# ------------------------------------------------------------------------------- panels


def write_panel(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("series,date,value\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return path


def test_read_panel_groups_rows_by_id_with_unequal_lengths_and_gaps(tmp_path: Path) -> None:
    rows = [("a", "2020-01-01", "1"), ("b", "2020-01-01", "10"), ("a", "2020-02-01", ""),
            ("a", "2020-03-01", "3"), ("b", "2020-02-01", "12")]  # fmt: skip
    path = write_panel(tmp_path / "panel.csv", rows)
    with pytest.raises(ValueError, match=r"series 'a'\)?: 1 missing values"):
        read_panel(path, "series", "value", date_column="date")
    panel = read_panel(path, "series", "value", date_column="date", fill="interpolate")
    assert [one.name for one in panel] == ["a", "b"]
    np.testing.assert_array_equal(panel[0].targets[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(panel[1].targets[:, 0], [10, 12])
    assert panel[1].timestamps[-1] == np.datetime64("2020-02-01T00:00")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", "2020-01-01", "1"), ("", "2020-01-02", "2")], "no series id at data row 2"),
        ([("a", "2020-01-02", "1"), ("a", "2020-01-01", "2")], "strictly increasing"),
        ([("a", "2020-01-01", "x")], "expected numbers, got 'x'"),
    ],
)
def test_read_panel_names_the_bad_row(tmp_path: Path, rows, message: str) -> None:
    path = write_panel(tmp_path / "panel.csv", rows)
    with pytest.raises(ValueError, match=message):
        read_panel(path, "series", "value", date_column="date")


def test_read_panel_needs_its_id_column(tmp_path: Path) -> None:
    path = write_panel(tmp_path / "panel.csv", [("a", "2020-01-01", "1")])
    with pytest.raises(ValueError, match="column 'meter' not found"):
        read_panel(path, "meter", "value")


def panel_of(lengths: list[int], seed: int = 0) -> list[TimeSeries]:
    """Random walks with drift on different levels, one per length."""
    rng = np.random.default_rng(seed)
    return [
        TimeSeries((100 * (k + 1) + np.cumsum(rng.normal(1, 2, n)))[:, None], ("v",), name=f"s{k}")
        for k, n in enumerate(lengths)
    ]


def test_a_panel_trains_one_model_and_is_evaluated_per_series(tmp_path: Path) -> None:
    panel = panel_of([40, 25, 60, 33])
    model = Forecaster(lookback=8, horizon=4, season=1, hidden_size=8, training=QUICK)
    model.fit([one.slice(stop=-4) for one in panel], val_size=4, progress=False)
    scalers = model._fitted.series_scalers
    assert model._fitted.scaler is None and set(scalers) == {"s0", "s1", "s2", "s3"}
    # each series is scaled by its own training part
    np.testing.assert_allclose(scalers["s1"].mean, panel[1].values[:17].mean(0))
    report = model.evaluate_panel(panel, test_size=4)
    assert list(report.reports) == ["s0", "s1", "s2", "s3"]
    for method, summary in report.metrics.items():
        scores = [r.metrics[method]["MASE"] for r in report.reports.values()]
        assert summary["mean MASE"] == pytest.approx(np.mean(scores))
    loaded = Forecaster.load(model.save(tmp_path / "model"))
    for one in panel:
        np.testing.assert_array_equal(loaded.predict(one), model.predict(one))
    with pytest.raises(ValueError, match="trained on \\(by name\\), got 'other'"):
        model.predict(TimeSeries(panel[0].values, ("v",), name="other"))


@pytest.mark.parametrize(
    ("panel", "message"),
    [
        ([TimeSeries(np.ones((30, 1)), ("v",)), TimeSeries(np.ones((30, 1)), ("v",))],
         "distinct names"),
        ([TimeSeries(np.ones((30, 1)), ("v",), name="a"),
          TimeSeries(np.ones((30, 1)), ("w",), name="b")], "same columns"),
        ([TimeSeries(np.ones((30, 1)), ("v",), name="a"),
          TimeSeries(np.ones((1, 1)), ("v",), name="b")], "'b' has 1 step"),
    ],
)  # fmt: skip
def test_a_bad_panel_is_refused_before_training(panel, message: str) -> None:
    model = Forecaster(lookback=4, horizon=2, season=1, hidden_size=4, training=QUICK)
    with pytest.raises(ValueError, match=message):
        model.fit(panel, val_size=4, progress=False)


def test_the_panel_command_reports_mean_mase(tmp_path: Path) -> None:
    rows = []
    for one in panel_of([30, 36, 28, 40, 33]):
        dates = (np.datetime64("2000", "Y") + np.arange(len(one))).astype("datetime64[D]")
        rows += [
            (one.name, str(d), f"{v:.4f}") for d, v in zip(dates, one.targets[:, 0], strict=True)
        ]
    csv = write_panel(tmp_path / "panel.csv", rows)
    out = tmp_path / "run"
    result = runner.invoke(app, ["forecast", "--data", str(csv), "--target", "value",
                                 "--id-column", "series", "--epochs", "2", "--hidden-size", "8",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 series: MASE over the panel" in result.stdout
    metadata = json.loads((out / "model" / "config.json").read_text())["metadata"]
    assert set(metadata["evaluation"]["mean MASE"]) >= {"rnnkit", "naive", "AutoETS"}
    predicted = runner.invoke(app, ["predict", str(out / "model"), str(csv)])
    assert predicted.exit_code == 0, predicted.output
    assert sorted(json.loads(predicted.stdout)) == ["s0", "s1", "s2", "s3", "s4"]


def test_the_forecasting_page_runs_as_written() -> None:
    namespace = run_python_blocks(DOCS / "forecasting.md")
    lower, upper = namespace["lower"], namespace["upper"]
    assert lower.shape == upper.shape == (1, 12, 1) and (lower < upper).all()
    assert set(namespace["report"].coverage) == {80, 95}
