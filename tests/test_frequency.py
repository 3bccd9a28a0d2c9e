"""Frequency, season and size defaults: generated calendars, simulated seasons with known
periods, real series shipped with statsmodels and rnnkit, and the size constraints the
forecaster checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels
from hypothesis import example, given
from hypothesis import strategies as st

from rnnkit.data import load_series
from rnnkit.data.frequency import (
    Frequency,
    best_season,
    choose_season,
    default_sizes,
    infer_frequency,
)

START = np.datetime64("2021-03-01T00:00", "m")  # a Monday


def minutes(step: int, count: int = 400) -> np.ndarray:
    return START + np.arange(count) * np.timedelta64(step, "m")


def months(step: int, count: int = 120) -> np.ndarray:
    """Calendar months (uneven lengths), as datetime64[m] on the 1st of each."""
    return (np.datetime64("1990-01", "M") + np.arange(count) * step).astype("datetime64[m]")


def with_gaps(stamps: np.ndarray, share: float = 0.05, seed: int = 0) -> np.ndarray:
    """``stamps`` less a random ``share`` of them (never two in a row or the first)."""
    rng = np.random.default_rng(seed)
    drop = rng.choice(np.arange(1, len(stamps), 2), int(share * len(stamps)), replace=False)
    return np.delete(stamps, drop)


# (timestamps, name, seasons, horizon): references written out, not computed by the code.
CALENDARS = {
    "half-hourly": (minutes(30), "half-hourly", (48, 336), 48),
    "hourly": (minutes(60), "hourly", (24, 168), 48),
    "daily": (minutes(1440), "daily", (7, 365.25), 14),
    "weekly": (minutes(7 * 1440), "weekly", (365.25 / 7,), 13),
    "monthly": (months(1), "monthly", (12,), 18),
    "quarterly": (months(3), "quarterly", (4,), 8),
    "yearly": (months(12, 40), "yearly", (), 6),
    "every 15 minutes": (minutes(15), "every 15 minutes", (96, 672), 96),
    "every 6 hours": (minutes(360), "every 6 hours", (4, 28), 4),
}


@pytest.mark.parametrize("calendar", CALENDARS)
def test_infer_frequency_names_the_calendar(calendar: str) -> None:
    stamps, name, seasons, horizon = CALENDARS[calendar]
    frequency = infer_frequency(stamps)
    assert frequency.name == name
    assert frequency.seasons == pytest.approx(seasons)
    assert frequency.horizon == horizon
    # A few missing steps leave the median step, and so the frequency, unchanged.
    assert infer_frequency(with_gaps(stamps)) == frequency


def test_infer_frequency_reads_any_datetime64_unit() -> None:
    days = np.arange("2020-01-01", "2021-01-01", dtype="datetime64[D]")
    assert infer_frequency(days).name == "daily"
    assert infer_frequency(days.astype("datetime64[ns]")).name == "daily"
    years = np.datetime64("1900", "Y") + np.arange(30)  # leap years: 365 and 366 days
    assert infer_frequency(years).name == "yearly"


def test_business_days_are_business_daily() -> None:
    days = np.arange("2019-01-01", "2021-01-01", dtype="datetime64[D]")
    workdays = days[np.is_busday(days)]
    frequency = infer_frequency(workdays)
    assert frequency.name == "business daily"
    assert frequency.seasons[0] == 5
    assert infer_frequency(load_series("msft").timestamps).name == "business daily"
    # A daily series that lost a few weekend days is still daily.
    weekend = np.flatnonzero(~np.is_busday(days))[:10]
    assert infer_frequency(np.delete(days, weekend)).name == "daily"


def test_no_dates_is_index() -> None:
    assert infer_frequency(None) == Frequency("index", (), 8)
    assert infer_frequency(minutes(60, count=1)).name == "index"


def test_infer_frequency_errors_name_the_argument() -> None:
    with pytest.raises(TypeError, match="timestamps: expected a datetime64"):
        infer_frequency(np.arange(10))
    with pytest.raises(ValueError, match="timestamps: expected increasing"):
        infer_frequency(minutes(60)[::-1])


# ---------------------------------------------------------------- seasons, simulated


def ar1(rng: np.random.Generator, count: int, phi: float, scale: float) -> np.ndarray:
    noise = rng.normal(0, scale, count)
    out = np.zeros(count)
    for t in range(1, count):
        out[t] = phi * out[t - 1] + noise[t]
    return out


def simulated(kind: str, seed: int) -> tuple[np.ndarray, Frequency]:
    rng = np.random.default_rng(seed)
    monthly, daily, weekly, hourly = (
        infer_frequency(CALENDARS[name][0]) for name in ("monthly", "daily", "weekly", "hourly")
    )
    if kind == "monthly, season 12, strong trend":
        t = np.arange(144)
        return 10 * np.sin(2 * np.pi * t / 12) + 3 * t + rng.normal(0, 5, 144), monthly
    if kind == "daily, weekend effect":
        t = np.arange(1000)
        return 100 + 0.05 * t + 5 * (t % 7 >= 5) + rng.normal(0, 3, 1000), daily
    if kind == "daily, yearly cycle":
        t = np.arange(3650)
        return 10 * np.sin(2 * np.pi * t / 365.25) + ar1(rng, 3650, 0.7, 2), daily
    if kind == "daily, yearly cycle and weekend effect":
        x, _ = simulated("daily, yearly cycle", seed)
        return x + 3 * (np.arange(3650) % 7 >= 5), daily
    if kind == "weekly, period 52.18":
        t = np.arange(2000)
        return np.sin(2 * np.pi * t / 52.18) + rng.normal(0, 1, 2000) + 0.002 * t, weekly
    if kind == "hourly, daily cycle only":
        t = np.arange(2000)
        return 5 * np.sin(2 * np.pi * t / 24) + ar1(rng, 2000, 0.8, 1), hourly
    if kind == "hourly, daily cycle and weekend effect":
        x, _ = simulated("hourly, daily cycle only", seed)
        return x + 3 * ((np.arange(2000) // 24) % 7 >= 5), hourly
    if kind == "index, period 17":
        t = np.arange(500)
        return np.where(t % 17 < 5, 4.0, 0.0) + rng.normal(0, 1, 500), infer_frequency(None)
    raise AssertionError(kind)


SEASONAL = {
    "monthly, season 12, strong trend": (12,),
    "daily, weekend effect": (7,),
    "daily, yearly cycle": (365,),  # temperature-like: no weekly cycle
    "daily, yearly cycle and weekend effect": (7, 365),
    "weekly, period 52.18": (52,),
    "hourly, daily cycle only": (24,),  # 168 repeats the daily cycle and adds nothing
    "hourly, daily cycle and weekend effect": (24, 168),
    "index, period 17": (17,),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", SEASONAL)
def test_choose_season_confirms_simulated_seasons(kind: str, seed: int) -> None:
    values, frequency = simulated(kind, seed)
    choice = choose_season(values, frequency)
    assert choice.seasons == SEASONAL[kind], choice.reason
    assert choice.season == SEASONAL[kind][0]
    assert f"lag {choice.season}" in choice.reason


FREQUENCIES = ["monthly", "daily", "weekly", "hourly", "business daily", "index"]


def frequency_named(name: str) -> Frequency:
    if name == "business daily":
        days = np.arange("2019-01-01", "2021-01-01", dtype="datetime64[D]")
        return infer_frequency(days[np.is_busday(days)])
    return infer_frequency(None if name == "index" else CALENDARS[name][0])


@pytest.mark.parametrize("name", FREQUENCIES)
@pytest.mark.parametrize("process", ["white noise", "random walk", "AR(1) 0.9"])
def test_no_season_in_noise(process: str, name: str) -> None:
    rng = np.random.default_rng(7)
    length = 2000
    values = {
        "white noise": lambda: rng.normal(size=length),
        "random walk": lambda: np.cumsum(rng.normal(size=length)),
        "AR(1) 0.9": lambda: ar1(rng, length, 0.9, 1.0),
    }[process]()
    choice = choose_season(values, frequency_named(name))
    assert (choice.season, choice.seasons) == (1, (1,)), choice.reason
    assert choice.reason.endswith("no season")


def test_index_search_rarely_finds_a_season_in_short_noise() -> None:
    """The search tests several periodogram peaks, so each must pass a stricter bound: at
    the plain 90% two-sided level about 40% of these series would get a season."""
    index = infer_frequency(None)
    found = sum(
        choose_season(np.random.default_rng(seed).normal(size=150), index).season > 1
        for seed in range(40)
    )
    assert found <= 4


@pytest.mark.parametrize(("period", "length", "tolerance"), [(150, 2000, 0), (1440, 50_000, 1)])
def test_index_search_finds_a_period_between_frequency_bins(
    period: int, length: int, tolerance: int
) -> None:
    """2000 / 150 = 13.3 cycles: the nearest bins read 154 and 143 steps; 50,000 / 1440 =
    34.7 cycles: 1471 and 1429."""
    t = np.arange(length)
    values = np.sin(2 * np.pi * t / period) + np.random.default_rng(0).normal(0, 0.5, length)
    found = choose_season(values, infer_frequency(None)).season
    assert abs(found - period) <= tolerance


def test_untestable_seasons_are_not_chosen() -> None:
    monthly = infer_frequency(months(1))
    t = np.arange(20)  # under two years of months
    choice = choose_season(np.sin(2 * np.pi * t / 12), monthly)
    assert choice.season == 1
    assert "not testable with 20 steps" in choice.reason and "24" in choice.reason


def test_choose_season_handles_degenerate_series() -> None:
    daily = infer_frequency(CALENDARS["daily"][0])
    assert choose_season(np.full(100, 3.0), daily).season == 1
    assert choose_season(np.arange(100.0), daily).season == 1  # all trend
    assert choose_season(np.full(100, 3.0), infer_frequency(None)).season == 1


def test_choose_season_errors_name_the_argument() -> None:
    monthly = infer_frequency(months(1))
    with pytest.raises(ValueError, match=r"values: expected shape \(T,\)"):
        choose_season(np.zeros((50, 2)), monthly)
    with pytest.raises(ValueError, match="values: expected finite"):
        choose_season(np.array([1.0, np.nan] * 30), monthly)


# ---------------------------------------------------------------- seasons, real data


def test_co2_weekly_has_a_yearly_season_of_52() -> None:
    from statsmodels.datasets import co2

    data = co2.load_pandas().data  # weekly, 59 missing weeks
    values = data["co2"].interpolate().to_numpy()
    frequency = infer_frequency(data.index.to_numpy())
    assert frequency.name == "weekly"
    choice = choose_season(values[:-130], frequency)
    assert choice.seasons == (52,), choice.reason


def test_sunspots_yearly_has_no_season_but_the_index_search_finds_the_cycle() -> None:
    from statsmodels.datasets import sunspots

    data = sunspots.load_pandas().data
    years = np.array([f"{int(year)}-01-01" for year in data["YEAR"]], dtype="datetime64[m]")
    values = data["SUNACTIVITY"].to_numpy()
    frequency = infer_frequency(years)
    assert frequency.name == "yearly"
    assert choose_season(values, frequency).season == 1
    # Without dates the search finds the ~11-year cycle (10.7 years on average).
    assert 10 <= choose_season(values, infer_frequency(None)).season <= 11


def test_bundled_electricity_has_daily_and_weekly_seasons() -> None:
    series = load_series("electricity")
    frequency = infer_frequency(series.timestamps)
    assert frequency.name == "half-hourly"
    choice = choose_season(series.targets[:-480, 0], frequency)
    assert choice.seasons == (48, 336), choice.reason
    # Without its dates the search still finds the day.
    assert choose_season(series.targets[:-480, 0], infer_frequency(None)).season == 48


def test_hourly_victorian_electricity_has_daily_and_weekly_seasons() -> None:
    import pandas as pd

    path = Path(statsmodels.__file__).parent / "tsa/stl/tests/results/mstl_elec_vic.csv"
    if not path.is_file():
        pytest.skip("this statsmodels installation ships no test results")
    data = pd.read_csv(path)
    frequency = infer_frequency(data["ds"].to_numpy().astype("datetime64[m]"))
    assert frequency.name == "hourly"
    choice = choose_season(data["y"].to_numpy()[:-480], frequency)
    assert choice.seasons == (24, 168), choice.reason


def test_monthly_electrical_equipment_has_season_12() -> None:
    from statsmodels.datasets import elec_equip

    data = elec_equip.load().data
    frequency = infer_frequency(data.index.to_numpy())
    assert frequency.name == "monthly"
    assert choose_season(data.iloc[:-36, 0].to_numpy(), frequency).seasons == (12,)


def test_seasonally_adjusted_and_stock_series_have_no_season() -> None:
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data  # quarterly, seasonally adjusted
    years, quarters = data["year"].astype(int), data["quarter"].astype(int)
    starts = [f"{y}-{3 * q - 2:02d}-01" for y, q in zip(years, quarters, strict=True)]
    quarters = np.array(starts, dtype="datetime64[m]")
    frequency = infer_frequency(quarters)
    assert frequency.name == "quarterly"
    assert choose_season(data["realgdp"].to_numpy(), frequency).season == 1
    msft = load_series("msft")
    choice = choose_season(msft.targets[:, 0], infer_frequency(msft.timestamps))
    assert choice.season == 1, choice.reason
    # Nor when searched without dates (a growing variance makes chance peaks look strong).
    assert choose_season(msft.targets[:, 0], infer_frequency(None)).season == 1


# ---------------------------------------------------------------- sizes


def check_sizes(length: int, horizon: int, season: int) -> int:
    """Assert what the forecaster's fit and evaluate require; return the training windows."""
    sizes = default_sizes(length, horizon, season)
    lookback, val, test = sizes.lookback, sizes.val_size, sizes.test_size
    train_end = length - test - val
    assert test >= horizon and test % horizon == 0  # whole rolling origins
    assert val >= horizon
    assert lookback >= horizon
    assert train_end >= lookback + season + horizon
    assert length - test >= max(lookback + season, 2 * season)
    # The training part keeps most of the data once the series has room for it.
    assert test <= max(horizon, length // 4) and val <= max(horizon, length // 8)
    assert str(test // horizon) in sizes.reason and str(lookback) in sizes.reason
    return train_end - (lookback + season) - horizon + 1


@example(length=25, horizon=6, season=1)  # the minimum 4h + s
@example(length=24, horizon=6, season=1)
@example(length=201, horizon=1, season=100)  # the minimum h + 2s: evaluation's 2 seasons
@example(length=200, horizon=1, season=100)
@example(length=150, horizon=10, season=60)
@given(
    length=st.integers(1, 6000),
    horizon=st.integers(1, 200),
    season=st.one_of(st.just(1), st.integers(2, 400)),
)
def test_default_sizes_meet_the_forecasters_constraints(
    length: int, horizon: int, season: int
) -> None:
    shortest = max(4 * horizon + season, horizon + 2 * season)
    if length < shortest:
        with pytest.raises(ValueError, match=f"at least .* = {shortest} steps"):
            default_sizes(length, horizon, season)
        return
    windows = check_sizes(length, horizon, season)
    assert windows >= 1
    if length >= max(4 * horizon + season + 9, horizon + 2 * season):
        assert windows >= 10


@pytest.mark.parametrize(
    ("length", "horizon", "season", "lookback"),
    [
        (4032, 48, 48, 96),  # the bundled half-hourly electricity
        (144, 18, 12, 36),  # monthly, M4's horizon
        (144, 12, 12, 24),
        (40, 6, 1, 12),  # yearly
        (2000, 13, 52, 104),  # weekly
        (3650, 14, 7, 28),  # daily
        (3650, 14, 365, 730),
    ],
)
def test_default_sizes_on_typical_series(
    length: int, horizon: int, season: int, lookback: int
) -> None:
    assert check_sizes(length, horizon, season) >= 10
    assert default_sizes(length, horizon, season).lookback == lookback


def test_default_sizes_gives_long_series_several_origins() -> None:
    sizes = default_sizes(4032, 48, 48)
    assert sizes.test_size == 5 * 48 and sizes.val_size >= 2 * 48
    assert default_sizes(40, 6, 1).test_size == 6


def test_too_short_a_series_is_refused_with_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"length: .* = 84 steps .* got 60; try a horizon of 12"):
        default_sizes(60, 18, 12)
    with pytest.raises(ValueError, match=r"got 100; the season is too long.*no season"):
        default_sizes(100, 14, 365)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ((100, 0, 1), ValueError, "horizon: expected an int >= 1, got 0"),
        ((100, 6, 0), ValueError, "season: expected an int >= 1, got 0"),
        ((100.0, 6, 1), TypeError, "length: expected an int, got float"),
        ((100, True, 1), TypeError, "horizon: expected an int, got bool"),
    ],
)
def test_default_sizes_argument_errors(
    arguments: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        default_sizes(*arguments)  # type: ignore[arg-type]


def test_best_season_is_the_one_whose_seasonal_naive_errs_least() -> None:
    """Hourly steps, a daily cycle whose amplitude depends on the weekday: both seasons
    repeat, but only the weekly one repeats exactly, so its seasonal naive is exact."""
    t = np.arange(24 * 7 * 8)
    weekday = (t // 24) % 7
    values = (1 + 0.5 * (weekday >= 5)) * np.sin(2 * np.pi * t / 24)
    assert best_season(values, (24, 168), 48) == 168
    assert best_season(values + np.arange(t.size) * 0.01, (24,), 48) == 24  # one: that one
    assert best_season(values[:100], (24, 168), 48) == 24  # 168 cannot be scored: the first
