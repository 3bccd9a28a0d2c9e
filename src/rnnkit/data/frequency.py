"""Defaults that fit a user's series: its frequency, its season, and the sizes of its parts.

``rnnkit forecast`` must run on any series given only its file, target and horizon, so what a
half-hourly demo could hard-code is read from the series instead:

* :func:`infer_frequency`: the calendar step of the timestamps (the median step, so a few
  gaps do not matter), with the seasons that calendar suggests and a conventional horizon.
* :func:`choose_season`: which of those candidate seasons the training data confirm (or, for
  series without dates, which period the data show).
* :func:`default_sizes`: lookback, validation and test sizes that the series' length can hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Frequency",
    "SeasonChoice",
    "Sizes",
    "choose_season",
    "default_sizes",
    "infer_frequency",
]

MINUTES_PER_DAY = 1440
DAYS_PER_YEAR = 365.25
WEEKS_PER_YEAR = DAYS_PER_YEAR / 7  # 52.18
# A season must raise the lag-p autocorrelation above this as well as above the significance
# bound: on long series the bound shrinks towards 0 and would accept seasons too weak to use
# (r = 0.1 means the lag-p value explains 1% of the variance, a "small" effect, Cohen 1988).
MIN_AUTOCORRELATION = 0.1
# A period found by searching, not expected from a calendar, must be stronger: searching
# picks the lags where chance (or a variance that grows, as in share prices) did best.
MIN_SEARCHED_AUTOCORRELATION = 0.2
SIGNIFICANCE = 0.1  # two-sided, as in the M4 benchmarks' seasonality test: z = 1.645
MAX_TEST_ORIGINS = 5
TARGET_WINDOWS = 10


@dataclass(frozen=True)
class Frequency:
    """The calendar step of a series.

    Attributes:
        name: ``"half-hourly"``, ``"hourly"``, ``"daily"``, ``"business daily"``,
            ``"weekly"``, ``"monthly"``, ``"quarterly"``, ``"yearly"``, ``"every 15 minutes"``
            and the like for other regular steps, or ``"index"`` (no dates).
        seasons: candidate season lengths in steps, most important first (not necessarily
            integers: a year is 52.18 weeks).
        horizon: a conventional default horizon in steps.
    """

    name: str
    seasons: tuple[float, ...]
    horizon: int


# Horizons: the M4 competition's per frequency (Makridakis, Spiliotis & Assimakopoulos 2020);
# half-hourly: a day ahead, as in electricity load forecasting; business daily: two weeks of
# working days, as M4's daily 14 is two calendar weeks; index: 8, the M3 competition's horizon
# for its "other" series, whose frequency was not stated either.
INDEX = Frequency("index", (), 8)
HALF_HOURLY = Frequency("half-hourly", (48, 336), 48)
HOURLY = Frequency("hourly", (24, 168), 48)
DAILY = Frequency("daily", (7, DAYS_PER_YEAR), 14)
# Without weekends a week is 5 steps and a year 5 * 52.18 (holidays shorten it a little).
BUSINESS_DAILY = Frequency("business daily", (5, 5 * WEEKS_PER_YEAR), 10)
WEEKLY = Frequency("weekly", (WEEKS_PER_YEAR,), 13)
MONTHLY = Frequency("monthly", (12,), 18)
QUARTERLY = Frequency("quarterly", (4,), 8)
YEARLY = Frequency("yearly", (), 6)

# Calendar steps of uneven length, in days (inclusive ranges): month lengths vary 28-31 days,
# quarters 89-92 and years 365-366.
_CALENDAR_STEPS = (
    (28, 31, MONTHLY),
    (59, 62, Frequency("every 2 months", (6,), 9)),
    (89, 92, QUARTERLY),
    (181, 184, Frequency("half-yearly", (2,), 4)),
    (365, 366, YEARLY),
)
# Clock changes and timestamps written to the hour shift a step by up to an hour.
_SLACK_MINUTES = 60
# In a full calendar 2 days in 7 (29%) fall on a weekend; under 5% means they were left out.
_MAX_WEEKEND_SHARE = 0.05


def infer_frequency(timestamps: np.ndarray | None) -> Frequency:
    """The frequency of a series from its timestamps.

    The step is the median difference between consecutive timestamps, so a few missing steps
    do not change it. A daily series whose weekends are (almost) all missing is "business
    daily", with seasons of 5 and 261 steps.

    Args:
        timestamps: ``(T,)`` ``datetime64`` (any unit; read to the minute), increasing; None
            for a series without dates.

    Returns:
        The frequency; ``"index"`` (no candidate seasons) for None or fewer than 2 timestamps.

    Raises:
        TypeError: ``timestamps`` is not a datetime64 array.
        ValueError: ``timestamps`` is not 1-D or its median step is not positive.
    """
    if timestamps is None:
        return INDEX
    stamps = np.asarray(timestamps)
    if not np.issubdtype(stamps.dtype, np.datetime64):
        raise TypeError(
            f"timestamps: expected a datetime64 array or None, got dtype {stamps.dtype}"
        )
    if stamps.ndim != 1:
        raise ValueError(f"timestamps: expected shape (T,), got {stamps.shape}")
    if len(stamps) < 2:
        return INDEX
    minutes = stamps.astype("datetime64[m]").astype(np.int64)
    step = float(np.median(np.diff(minutes)))
    if step <= 0:
        raise ValueError(
            f"timestamps: expected increasing times, got a median step of {step:g} minutes"
        )
    days = step / MINUTES_PER_DAY
    slack = _SLACK_MINUTES / MINUTES_PER_DAY
    for low, high, frequency in _CALENDAR_STEPS:
        if low - slack <= days <= high + slack:
            return frequency
    if abs(days - 7) <= slack:
        return WEEKLY
    if abs(days - 1) <= slack:
        weekdays = (minutes // MINUTES_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday (3)
        weekend_share = float(np.mean(weekdays >= 5))
        return BUSINESS_DAILY if weekend_share < _MAX_WEEKEND_SHARE else DAILY
    if step < MINUTES_PER_DAY - _SLACK_MINUTES:
        return _sub_daily(round(step))
    return _multi_day(days)


def _sub_daily(minutes: int) -> Frequency:
    """A step shorter than a day: seasons of a day and a week; a day ahead, at most 96
    steps (a day of quarter-hours: at finer steps day-ahead is seldom what is wanted)."""
    if minutes == 30:
        return HALF_HOURLY
    if minutes == 60:
        return HOURLY
    if minutes % 60 == 0:
        name = f"every {minutes // 60} hours"
    else:
        name = "every minute" if minutes == 1 else f"every {minutes} minutes"
    per_day = MINUTES_PER_DAY / minutes
    seasons = tuple(p for p in (per_day, 7 * per_day) if round(p) >= 2)
    return Frequency(name, seasons, max(1, min(round(per_day), 96)))


def _multi_day(days: float) -> Frequency:
    """Any other step of a day or more: a yearly season when a year holds 2 steps or more;
    the horizon spans what M4's next coarser frequency does (14 days below a week, a quarter
    below a month, 18 months below a year, else 6 steps)."""
    whole, years = round(days), round(days / DAYS_PER_YEAR)
    if years >= 2 and abs(days - years * DAYS_PER_YEAR) <= years:
        name = f"every {years} years"
    elif abs(days - whole) * MINUTES_PER_DAY <= _SLACK_MINUTES:
        name = f"every {whole} days"
    else:
        name = f"every {round(days * 24)} hours"
    per_year = DAYS_PER_YEAR / days
    seasons = (per_year,) if round(per_year) >= 2 else ()
    span = next((s for limit, s in ((7, 14), (28, 91.3), (365, 547.9)) if days < limit), None)
    horizon = 6 if span is None else max(1, round(span / days))
    return Frequency(name, seasons, horizon)


@dataclass(frozen=True)
class SeasonChoice:
    """The season a forecast uses.

    Attributes:
        season: the primary season in steps; 1 means none.
        seasons: every confirmed season, primary first (for a seasonal-naive baseline of
            each); ``(1,)`` when none is.
        reason: one sentence saying why, for the command's output.
    """

    season: int
    seasons: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class _Test:
    period: int
    autocorrelation: float
    bound: float
    floor: float = MIN_AUTOCORRELATION

    @property
    def confirmed(self) -> bool:
        return self.autocorrelation > max(self.bound, self.floor)


def choose_season(values: np.ndarray, frequency: Frequency) -> SeasonChoice:
    """Which of the frequency's candidate seasons the data confirm.

    The test, for a candidate period ``p`` (rounded to whole steps; testable when the series
    holds two full periods, ``T >= 2p``): remove the trend with the centred moving average
    of order ``p`` (classical decomposition, statsmodels ``seasonal_decompose``; the average
    over one period cancels the seasonal pattern, so only the trend is removed, which would
    otherwise make every lag look correlated), then compare the autocorrelation ``r_p`` of
    what remains with the seasonality test of the M4 competition's benchmarks (Makridakis,
    Spiliotis & Assimakopoulos 2020): ``r_p > 1.645 sqrt((1 + 2 sum_{k<p} r_k^2) / T)``, a
    90% bound with Bartlett's standard error. ``r_p`` must also exceed 0.1, because on long
    series that bound accepts seasons too weak to be worth forecasting with. (For an even
    ``p`` the 2 x p average makes white noise correlated at lag ``p`` by itself, 0.17 at
    ``p = 2``; ``r_p`` is taken less that amount, here and in the reason.)

    Shorter confirmed seasons are subtracted (their classical seasonal component) before a
    longer candidate is tested, so that a weekly season in hourly data is confirmed only by
    a difference between days of the week, not by the daily pattern repeating every 168 hours.

    Candidates come from the calendar (``frequency.seasons``); the primary season is the
    first confirmed in that order (the most important). Series without dates (``"index"``)
    have no calendar, so their candidates are the highest peaks of the periodogram
    (``scipy.signal.periodogram``), each tested as above but at a Bonferroni-corrected level
    (``0.1 / candidates``: about ten are tried, and without the correction 4 in 10 short
    white-noise series would get a season) and with ``r_p > 0.2``; the one confirmed with
    the highest ``r_p`` is the only season, the others being mostly its harmonics and
    neighbours. Yearly and coarser data are not searched: a cycle such as the sunspots' ~11
    years varies in length and is not a season (Hyndman & Athanasopoulos, *Forecasting:
    Principles and Practice*, 3rd ed., section 2.3).

    Args:
        values: ``(T,)`` the training part of the series only (a season chosen with the
            test data would leak them).
        frequency: from :func:`infer_frequency`.

    Returns:
        The primary season (1 when none is confirmed), all confirmed seasons, and the reason.

    Raises:
        ValueError: ``values`` is not 1-D or holds non-finite numbers.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values: expected shape (T,), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values: expected finite numbers, got NaN or inf")
    label = "index data (no dates)" if frequency.name == "index" else f"{frequency.name} data"
    if frequency.name == "index":
        return _search_season(x, label)
    if not frequency.seasons:
        return SeasonChoice(1, (1,), f"{label} have no calendar season: no season")

    periods = list(dict.fromkeys(round(p) for p in frequency.seasons if round(p) >= 2))
    testable = [p for p in periods if len(x) >= 2 * p]
    untestable = [p for p in periods if p not in testable]
    tests: dict[int, _Test] = {}
    confirmed: list[int] = []
    for period in sorted(testable):  # shorter seasons first: they are removed from longer
        tests[period] = _test_period(x, period, remove=confirmed)
        if tests[period].confirmed:
            confirmed.append(period)
    chosen = tuple(p for p in periods if p in confirmed)  # in the frequency's order

    parts = []
    if chosen:
        what = _join(chosen)
        noun = "a season" if len(chosen) == 1 else "seasons"
        values_at = ", ".join(_at(tests[p]) for p in chosen)
        parts.append(
            f"{noun} of {what} steps confirmed by the autocorrelation of the detrended series "
            f"({values_at})"
        )
    rejected = [p for p in periods if p in tests and p not in confirmed]
    if rejected:
        values_at = ", ".join(_at(tests[p]) for p in rejected)
        if chosen:
            parts.append(f"{_join(rejected)} not confirmed ({values_at})")
        else:
            neither = {1: "not confirmed", 2: "neither confirmed"}.get(
                len(rejected), "none confirmed"
            )
            parts.append(f"{_join(rejected)} tested, {neither} (autocorrelation {values_at})")
    if untestable:
        needs = ", ".join(str(2 * p) for p in untestable)
        parts.append(
            f"{_join(untestable)} not testable with {len(x)} steps (two periods needed: {needs})"
        )
    reason = f"{label}; " + "; ".join(parts)
    if not chosen:
        return SeasonChoice(1, (1,), reason + ": no season")
    return SeasonChoice(chosen[0], chosen, reason)


def _search_season(x: np.ndarray, label: str) -> SeasonChoice:
    """An index series' season: the periodogram's peaks, each tested as in
    :func:`choose_season` at a Bonferroni-corrected level (several are tried); the one with
    the highest autocorrelation is kept, the others being mostly its harmonics and
    neighbours."""
    candidates = _periodogram_periods(x)
    alpha = SIGNIFICANCE / max(1, len(candidates))
    tests = [_test_period(x, p, alpha, MIN_SEARCHED_AUTOCORRELATION) for p in candidates]
    confirmed = [t for t in tests if t.confirmed]
    tried = _join(sorted(candidates)) if candidates else "none"
    if not confirmed:
        return SeasonChoice(
            1,
            (1,),
            f"{label}; no period among the periodogram's peaks ({tried}) confirmed by the "
            "autocorrelation of the detrended series: no season",
        )
    best = max(confirmed, key=lambda t: t.autocorrelation)
    return SeasonChoice(
        best.period,
        (best.period,),
        f"{label}; a season of {best.period} steps: of the periodogram's peaks ({tried}), the "
        f"one best confirmed by the autocorrelation of the detrended series ({_at(best)})",
    )


def _periodogram_periods(x: np.ndarray, count: int = 5) -> list[int]:
    """Whole-step periods ``2 <= p <= T / 2`` at the ``count`` highest periodogram peaks of
    the linearly detrended series and of its first differences: what is left of a curved
    trend dominates the first, and differencing suppresses it (and long periods) in the
    second, so between them both short and long periods are proposed.

    A period between two frequency bins spreads over both (1440 falls between bins that read
    1449 and 1429 in 100,000 steps), so each peak's frequency is refined by a parabola
    through the log power of the peak bin and its neighbours (Gaussian interpolation,
    Gasior & Gonzalez 2004)."""
    from scipy.signal import find_peaks, periodogram

    periods: list[int] = []
    for series, trend in ((x, "linear"), (np.diff(x), "constant")):
        if len(series) < 4 or np.ptp(series) == 0:
            continue
        _, power = periodogram(series, window="hann", detrend=trend)
        peaks, _ = find_peaks(power)
        for peak in peaks[np.argsort(power[peaks])[::-1]][:count]:
            before, at, after = np.log(np.maximum(power[peak - 1 : peak + 2], 1e-300))
            curvature = before - 2 * at + after
            shift = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
            period = round(len(series) / (peak + shift))
            if 2 <= period <= len(x) // 2 and period not in periods:
                periods.append(period)
    return periods


def _test_period(
    x: np.ndarray,
    period: int,
    alpha: float = SIGNIFICANCE,
    floor: float = MIN_AUTOCORRELATION,
    remove: list[int] | tuple[int, ...] = (),
) -> _Test:
    """The lag-``period`` autocorrelation of ``x`` less its trend (and less the seasonal
    components of the periods in ``remove``), with its Bartlett bound at level ``alpha``
    and the ``floor`` it must also exceed."""
    from statsmodels.tsa.seasonal import seasonal_decompose
    from statsmodels.tsa.stattools import acf

    for shorter in remove:
        x = x - seasonal_decompose(x, period=shorter, extrapolate_trend="period").seasonal
    trend = seasonal_decompose(x, period=period, extrapolate_trend="period").trend
    rest = x - trend
    # A series that is all trend (or constant) has nothing left to correlate.
    if np.std(rest) <= 1e-12 * max(float(np.std(x)), 1e-300):
        return _Test(period, 0.0, float("inf"), floor)
    correlations, interval = acf(rest, nlags=period, alpha=alpha, result_object=False)
    r = float(correlations[period])
    return _Test(period, r - _detrending_bias(period), float(interval[period, 1]) - r, floor)


def _detrending_bias(period: int) -> float:
    """The lag-``period`` autocorrelation that removing the centred moving average alone
    gives white noise: for an even period the 2 x p average at ``t`` and at ``t + p`` share
    an end point (0.17 at p = 2, 0.02 at p = 4, under 0.01 from p = 6); 0 for odd ones."""
    if period % 2:
        return 0.0
    remainder = np.full(period + 1, -1 / period)  # 1 minus the 2 x p average's weights
    remainder[[0, -1]] = -1 / (2 * period)
    remainder[period // 2] += 1
    return float(remainder[0] * remainder[-1] / np.sum(remainder**2))


def _at(test: _Test) -> str:
    return f"{test.autocorrelation:.2f} at lag {test.period}"


def _join(numbers: list[int] | tuple[int, ...]) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def best_season(values: np.ndarray, seasons: tuple[int, ...], steps: int) -> int:
    """Of several confirmed ``seasons``, the one whose seasonal naive forecast of the last
    ``steps`` of ``values`` ``(T,)`` errs least: the season a forecaster's base should repeat
    (half-hourly electricity demand: the week, not the day). The first of ``seasons`` where
    there is one, or none can be scored."""
    error = {
        s: np.abs(values[-steps:] - values[-steps - s : -s]).mean()
        for s in seasons
        if s > 1 and steps + s <= len(values)
    }
    return min(error, key=error.__getitem__) if error else seasons[0]


@dataclass(frozen=True)
class Sizes:
    """How a series is split for training and evaluation.

    Attributes:
        lookback: input steps per forecast.
        val_size: steps of the validation part (before the test part).
        test_size: steps of the test part (the end of the series), a whole number of
            horizons: the rolling origins.
        reason: one sentence saying how they were chosen.
    """

    lookback: int
    val_size: int
    test_size: int
    reason: str


def default_sizes(length: int, horizon: int, season: int) -> Sizes:
    """Lookback, validation and test sizes that a series of ``length`` steps can hold.

    A forecast reads ``lookback + season`` steps of history (the network reads the change
    from one season earlier). The rules, ``h`` the horizon, ``s`` the season and ``b =
    max(s, h)``:

    * test: ``k`` rolling origins of ``h`` steps, ``1 <= k <= 5``, at most a quarter of the
      series; validation: ``j`` horizons, ``1 <= j <= k``, at most an eighth of the series;
    * lookback: ``2b``, else ``b``, a conventional 1-2 seasons or horizons;
    * training part ``length - test - val`` holds at least 10 windows of ``lookback + s + h``
      steps (stride 1), and evaluation has ``length - test >= max(lookback + s, 2s)``.

    The largest ``k``, then lookback, then ``j`` that meet these are chosen. If none does, the
    lookback shrinks below ``b`` (not below ``h``) to keep 10 windows, and last of all the
    split is the minimum (``k = j = 1``, lookback ``h``) with fewer windows.

    Args:
        length: steps in the whole series ``T``.
        horizon: steps forecast at once.
        season: the primary season in steps (1 for none).

    Returns:
        The sizes and one sentence explaining them.

    Raises:
        TypeError, ValueError: an argument is not an int >= 1, or the series is shorter than
            the minimum ``max(4h + s, h + 2s)`` steps (the message suggests a horizon that
            fits).
    """
    for name, value in (("length", length), ("horizon", horizon), ("season", season)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value}")
    length, h, s = int(length), int(horizon), int(season)
    base = max(s, h)

    def windows(k: int, j: int, lookback: int) -> int:
        """Training windows of a split; 0 where evaluation would not fit."""
        if length - k * h < max(lookback + s, 2 * s):
            return 0
        return max(0, length - (k + j) * h - (lookback + s) - h + 1)

    k_max = min(MAX_TEST_ORIGINS, max(1, length // (4 * h)))
    j_max = max(1, length // (8 * h))
    for k in range(k_max, 0, -1):
        for lookback in (2 * base, base):
            for j in range(min(j_max, k), 0, -1):
                if windows(k, j, lookback) >= TARGET_WINDOWS:
                    return _sizes(length, h, s, k, j, lookback, windows(k, j, lookback))
    for k in range(k_max, 0, -1):
        for j in range(min(j_max, k), 0, -1):
            lookback = min(base, length - (k + j) * h - s - h - (TARGET_WINDOWS - 1))
            if lookback >= h and windows(k, j, lookback) >= TARGET_WINDOWS:
                return _sizes(length, h, s, k, j, lookback, windows(k, j, lookback))
    if windows(1, 1, h) >= 1:
        return _sizes(length, h, s, 1, 1, h, windows(1, 1, h))

    need = _minimum_length(h, s)
    fits = [n for n in range(h - 1, 0, -1) if _minimum_length(n, s) <= length]
    unseasonal = [n for n in range(h, 0, -1) if _minimum_length(n, 1) <= length]
    if fits:
        advice = f"try a horizon of {fits[0]} or less"
    elif unseasonal and unseasonal[0] == h:
        advice = "the season is too long for it: try no season (season 1)"
    elif unseasonal:
        advice = (
            f"the season is too long for it: try no season (season 1) and a horizon of "
            f"{unseasonal[0]} or less"
        )
    else:
        advice = "it is too short to forecast"
    raise ValueError(
        f"length: expected at least max(4 * horizon + season, horizon + 2 * season) = "
        f"max(4 * {h} + {s}, {h} + 2 * {s}) = {need} steps (test and validation of one "
        f"horizon each, and training of lookback {h} + season + horizon), got {length}; "
        f"{advice}"
    )


def _minimum_length(horizon: int, season: int) -> int:
    """The shortest series :func:`default_sizes` accepts (``k = j = 1``, lookback = horizon,
    one training window)."""
    return max(4 * horizon + season, horizon + 2 * season)


def _sizes(length: int, h: int, s: int, k: int, j: int, lookback: int, windows: int) -> Sizes:
    base, unit = (s, "season") if s >= h and s > 1 else (h, "horizon")
    if lookback in (base, 2 * base):
        times = lookback // base
        described = f"{times} {unit}{'s' if times > 1 else ''} ({lookback})"
    else:
        described = f"{lookback}, shorter than a {unit} ({base}) to leave training windows"
    origins = "1 rolling origin" if k == 1 else f"{k} rolling origins"
    reason = (
        f"test: {origins} of {h} steps; validation: {j * h} steps; lookback: {described}; "
        f"training: {length - (k + j) * h} steps, {windows} window{'s' if windows > 1 else ''}"
    )
    return Sizes(lookback, j * h, k * h, reason)
