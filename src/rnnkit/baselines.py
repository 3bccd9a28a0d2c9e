"""The baselines every rnnkit forecast is compared with, on the same rolling origins.

At each origin ``t`` a baseline may use ``values[:t]`` only and forecasts ``values[t:t+horizon]``.
Parameters (residual spread, smoothing weights, ARIMA coefficients) are estimated once on
``values[:origins[0]]``; later origins re-run the fitted model over the longer history, as a
deployed model would be, so every origin is scored with the same model.

- ``"naive"``: the last value. ``"seasonal naive"`` (primary season) and
  ``"seasonal naive (s)"`` (each further season): the value one season earlier. Their intervals
  are the normal ones of Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*
  (3rd ed., section 5.5): ``sigma * sqrt(h)`` for naive and ``sigma * sqrt(k + 1)``,
  ``k = (h - 1) // m``, for seasonal naive, with ``sigma`` the root mean square of the in-sample
  residuals.
- ``"AutoETS"`` / ``"AutoARIMA"``: statsforecast's models (components or orders selected by
  AICc) with the primary season, re-applied at later origins by their ``forward``: ETS keeps its
  smoothing parameters and initial states and re-runs the state filter (its residual variance,
  and so the interval width, is recomputed over the longer history); ARIMA keeps its
  coefficients and residual variance and re-runs the Kalman filter. AutoETS is seasonal only
  for seasons of up to 24 steps (``ETS_MAX_SEASON``), as R's ``forecast::ets``; longer
  seasons get a non-seasonal ETS, which ``model`` shows.

When a statsforecast fit fails with the primary season it is refitted with ``season_length=1``;
when that fails too (e.g. ETS on fewer than 7 points) the baseline is left out. Either way a
:class:`BaselineWarning` says so.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from rnnkit import metrics

# The histories AutoARIMA fits in about a second: its stepwise search grows with the history
# and, steeply, with the season (its state holds ~season*P lags), so past the seasonal limit
# (history x season) a fit takes from seconds to minutes (benchmarks/README.md, "Baselines'
# fit times"); the non-seasonal limit keeps long histories to a few seconds.
ARIMA_MAX_SEASONAL_WORK = 3_000
ARIMA_MAX_NONSEASONAL_LENGTH = 10_000
# Seasonal ETS models hold one initial state per step of the season: as R's forecast::ets,
# AutoETS is seasonal only up to 24 steps per season (seasonal naive serves longer seasons).
ETS_MAX_SEASON = 24


class BaselineWarning(UserWarning):
    """A statsforecast baseline fell back to a non-seasonal fit or was left out."""


@dataclass(frozen=True)
class BaselineForecast:
    """One baseline's forecasts at rolling origins.

    ``mean`` is ``(M, horizon)`` for ``M`` origins; ``intervals`` maps each level (e.g. 80, 95)
    to ``(lower, upper)``, each ``(M, horizon)``, and is ``{}`` when the method gives none;
    ``model`` says what was fitted, e.g. ``"ETS(M,Ad,M)"``, ``"ARIMA(0,1,1)(0,1,1)[12]"``,
    ``"last value"``, ``"value one season (12) earlier"``; ``form`` is the statsforecast
    model's form as a string (``"ETS:MAMN"``: error, trend, season, damped;
    ``"ARIMA:p,d,q,P,D,Q,m,mean,drift"``), which ``forms=`` takes back to estimate that
    form's parameters on other data, ``""`` for the naive baselines.
    """

    mean: np.ndarray
    intervals: dict[int, tuple[np.ndarray, np.ndarray]]
    model: str
    form: str = ""


def arima_fits_in_time(history: int, season: int) -> bool:
    """Whether AutoARIMA on ``history`` points with ``season`` is expected to take a few
    seconds at most: the rule ``rolling_baselines(arima=None)`` applies."""
    if season <= 1:
        return history <= ARIMA_MAX_NONSEASONAL_LENGTH
    return history * season <= ARIMA_MAX_SEASONAL_WORK


def rolling_baselines(
    values: np.ndarray,
    origins: Sequence[int],
    horizon: int,
    seasons: Sequence[int] = (1,),
    levels: Sequence[int] = (80, 95),
    arima: bool | None = None,
    fit_length: int | None = None,
    forms: Mapping[str, str] | None = None,
) -> dict[str, BaselineForecast]:
    """Forecasts of every baseline at each origin.

    ``values`` is ``(T,)``, finite; ``origins`` are ``M`` strictly increasing ints in
    ``[2, T]`` (forecasts may run past ``T``); ``seasons`` are periods in steps, the first the
    primary one, 1 meaning none; ``levels`` are interval coverages in percent. ``arima=None``
    runs AutoARIMA only when :func:`arima_fits_in_time` (``origins[0]``, primary season).

    Returns, in this order, ``"naive"``, ``"seasonal naive"`` and ``"seasonal naive (s)"`` for
    each further season ``s > 1`` (neither when the primary season is 1), ``"AutoETS"`` and
    ``"AutoARIMA"``, each a :class:`BaselineForecast` with ``(M, horizon)`` arrays. A seasonal
    naive whose season is not shorter than ``origins[0]`` is left out: it has no in-sample
    residual to size its intervals.

    ``fit_length`` (default ``origins[0]``) is how many first steps the parameters are
    estimated on; origins before it are then forecast with parameters that saw later data
    (the state is still filtered over ``values[:origin]`` only), as a model forecasting the
    residual of a baseline over its training windows needs.

    ``forms`` (``{"AutoETS": ..., "AutoARIMA": ...}``, from :attr:`BaselineForecast.form`)
    fixes a model's form instead of selecting one by AICc: only its parameters are
    estimated, so a form chosen on one part of a series stays the same on a longer part. A
    form that cannot be estimated on ``values[:fit_length]`` is selected anew by AICc, with a
    :class:`BaselineWarning` (the returned ``form`` says which).
    """
    values, origins_, horizon, seasons, levels = _validate(
        values, origins, horizon, seasons, levels, arima
    )
    fit_length = int(origins_[0]) if fit_length is None else fit_length
    if (
        isinstance(fit_length, bool)
        or not isinstance(fit_length, int)
        or not 2 <= fit_length <= len(values)
    ):
        raise ValueError(
            f"fit_length: expected None or an int in [2, len(values) = {len(values)}], got "
            f"{fit_length!r}"
        )
    primary = seasons[0]
    # the last value is the value one season of one step earlier
    naive = _seasonal_naive(values, origins_, horizon, 1, levels, fit_length)
    out = {"naive": BaselineForecast(naive.mean, naive.intervals, "last value")}
    seen: set[int] = set()
    # a primary season of 1 means the series has none: further seasons are not looked at
    for i, season in enumerate(seasons if primary > 1 else ()):
        if season == 1 or season in seen or season >= fit_length:
            continue
        seen.add(season)
        name = "seasonal naive" if i == 0 else f"seasonal naive ({season})"
        out[name] = _seasonal_naive(values, origins_, horizon, season, levels, fit_length)

    forms = dict(forms or {})
    for form in forms.values():
        _of_form(form, primary)  # a malformed form is the caller's error, not a failed fit
    ets_season = primary if primary <= ETS_MAX_SEASON else 1
    ets = _statsforecast(
        "AutoETS", values, origins_, horizon, ets_season, levels, fit_length, forms.get("AutoETS")
    )
    if ets is not None:
        out["AutoETS"] = ets
    if arima is None:
        arima = arima_fits_in_time(fit_length, primary)
    if arima:
        fitted = _statsforecast(
            "AutoARIMA",
            values,
            origins_,
            horizon,
            primary,
            levels,
            fit_length,
            forms.get("AutoARIMA"),
        )
        if fitted is not None:
            out["AutoARIMA"] = fitted
    return out


def _seasonal_naive(
    values: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    season: int,
    levels: list[int],
    fit_length: int,
) -> BaselineForecast:
    history = values[:fit_length]
    sigma = _rms(history[season:] - history[:-season])
    mean = metrics.seasonal_naive(values, origins, horizon, season)
    sd = sigma * np.sqrt(np.arange(horizon) // season + 1)
    model = f"value one season ({season}) earlier"
    return BaselineForecast(mean, _normal_intervals(mean, sd, levels), model)


def _rms(residuals: np.ndarray) -> float:
    # FPP's sigma: sqrt(sum e^2 / (T - K - M)) with K = 0 parameters, i.e. over the residuals
    # that exist, not centred on their mean (a naive forecast is not corrected for drift).
    return float(np.sqrt(np.mean(residuals**2)))


def _normal_intervals(
    mean: np.ndarray, sd: np.ndarray, levels: list[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    intervals = {}
    for level in levels:
        half = norm.ppf(0.5 + level / 200) * sd
        intervals[level] = (mean - half, mean + half)
    return intervals


def _statsforecast(
    name: str,
    values: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    season: int,
    levels: list[int],
    fit_length: int,
    form: str | None = None,
) -> BaselineForecast | None:
    # A fixed form that cannot be estimated on this history (statsforecast fails on some
    # short ones) is selected anew rather than leaving the baseline out.
    attempts = [(length, form) for length in dict.fromkeys((season, 1))]
    attempts += [(length, None) for length in dict.fromkeys((season, 1))] if form else []
    failures = []
    for season_length, fixed in attempts:
        try:
            forecast = _fit_forward(
                name, values, origins, horizon, season_length, levels, fit_length, fixed
            )
        except Exception as error:  # statsforecast raises bare Exception for failed fits
            failures.append(f"season_length={season_length}: {type(error).__name__}: {error}")
            continue
        if failures:
            done = (
                f"fitted season_length={season_length} instead"
                if fixed == form
                else f"selected {forecast.model} anew on values[:{fit_length}]"
            )
            given = f"season_length={season}" + ("" if form is None else f" and form {form}")
            warnings.warn(
                f"{name}: fit with {given} failed ({failures[0]}); {done}",
                BaselineWarning,
                stacklevel=3,
            )
        return forecast
    warnings.warn(
        f"{name}: left out, no fit on values[:{fit_length}] succeeded ({'; '.join(failures)})",
        BaselineWarning,
        stacklevel=3,
    )
    return None


def _fit_forward(
    name: str,
    values: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    season_length: int,
    levels: list[int],
    fit_length: int,
    form: str | None = None,
) -> BaselineForecast:
    from statsforecast.arima import arima_string
    from statsforecast.models import AutoARIMA, AutoETS

    level = sorted(set(levels))
    model: Any = (
        _of_form(form, season_length)
        if form
        else (AutoETS if name == "AutoETS" else AutoARIMA)(season_length=season_length)
    )
    results = []
    # statsforecast and statsmodels warn about numerics on short or flat series (divide by
    # zero, non-convergence, no drift term); the forecasts below are checked for finiteness.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        model.fit(values[:fit_length])
        for origin in origins:
            if origin == fit_length:
                results.append(model.predict(h=horizon, level=level))
            else:
                results.append(model.forward(values[:origin], h=horizon, level=level))
    mean = _stack(results, "mean")
    intervals = {lv: (_stack(results, f"lo-{lv}"), _stack(results, f"hi-{lv}")) for lv in levels}
    arrays = [mean, *(bound for pair in intervals.values() for bound in pair)]
    if not all(np.isfinite(a).all() for a in arrays):
        raise FloatingPointError("non-finite forecasts")
    if name == "AutoETS":
        components = model.model_["components"]
        description = model.model_.get("method") or _ets_string(components)
        form = f"ETS:{components}"
    else:
        description = arima_string(model.model_, padding=False).strip()
        p, q, big_p, big_q, m, d, big_d = model.model_["arma"]
        coefficients = model.model_["coef"]
        extras = (int("intercept" in coefficients), int("drift" in coefficients))
        form = "ARIMA:" + ",".join(map(str, (p, d, q, big_p, big_d, big_q, m, *extras)))
    return BaselineForecast(mean, intervals, description, form)


def _of_form(form: str, season_length: int) -> Any:
    """A statsforecast model of a :attr:`BaselineForecast.form`, its parameters unfitted."""
    from statsforecast.models import ARIMA, AutoETS

    kind, _, spec = form.partition(":")
    if kind == "ETS" and len(spec) == 4:
        return AutoETS(season_length=season_length, model=spec[:3], damped=spec[3] == "D")
    numbers = [int(part) for part in spec.split(",") if part.isdigit()] if kind == "ARIMA" else []
    if len(numbers) != 9:
        raise ValueError(
            f"forms: expected 'ETS:' and 4 letters or 'ARIMA:p,d,q,P,D,Q,m,mean,drift', got "
            f"{form!r}"
        )
    p, d, q, big_p, big_d, big_q, m, mean, drift = numbers
    return ARIMA(
        order=(p, d, q),
        season_length=m,
        seasonal_order=(big_p, big_d, big_q),
        include_mean=bool(mean),
        include_drift=bool(drift),
    )


def _stack(results: list[dict[str, Any]], key: str) -> np.ndarray:
    # AutoARIMA returns its interval bounds as pandas Series
    return np.stack([np.asarray(r[key], dtype=np.float64) for r in results])


def _ets_string(components: str) -> str:
    # statsforecast only names the model it selected; a constant series skips selection
    error, trend, season, damped = components
    return f"ETS({error},{trend}{'d' if damped == 'D' else ''},{season})"


def _validate(
    values: Any,
    origins: Any,
    horizon: Any,
    seasons: Any,
    levels: Any,
    arima: Any,
) -> tuple[np.ndarray, np.ndarray, int, list[int], list[int]]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"values: expected a 1-D array of floats, got {type(values).__name__}"
        ) from None
    if array.ndim != 1:
        raise ValueError(f"values: expected a 1-D array (T,), got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise ValueError(
            f"values: expected finite values, got {len(bad)} non-finite (first at index {bad[0]})"
        )

    ints = _ints(origins)
    if ints is None or not ints:
        raise ValueError(f"origins: expected a non-empty sequence of ints, got {origins!r}")
    if np.any(np.diff(ints) <= 0):
        raise ValueError(f"origins: expected strictly increasing ints, got {ints}")
    if ints[0] < 2:
        raise ValueError(
            f"origins: expected origins[0] >= 2 (at least 2 points of history), got {ints[0]}"
        )
    if ints[-1] > len(array):
        raise ValueError(
            f"origins: expected each origin <= len(values) = {len(array)}, got {ints[-1]}"
        )

    horizon_ = _ints([horizon])
    if horizon_ is None or horizon_[0] < 1:
        raise ValueError(f"horizon: expected an int >= 1, got {horizon!r}")

    seasons_ = _ints(seasons)
    if seasons_ is None or not seasons_ or min(seasons_) < 1:
        raise ValueError(f"seasons: expected a non-empty sequence of ints >= 1, got {seasons!r}")

    levels_ = _ints(levels)
    if levels_ is None or any(not 0 < lv < 100 for lv in levels_):
        raise ValueError(f"levels: expected ints in (0, 100), got {levels!r}")

    if arima is not None and not isinstance(arima, (bool, np.bool_)):
        raise ValueError(f"arima: expected True, False or None, got {arima!r}")
    return array, np.asarray(ints), horizon_[0], seasons_, list(dict.fromkeys(levels_))


def _ints(items: Any) -> list[int] | None:
    """``items`` as a list of Python ints, or None if it is not a sequence of integers."""
    if isinstance(items, (str, bytes)):
        return None
    try:
        items = list(items)
    except TypeError:
        return None
    out = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            return None
        try:
            out.append(operator.index(item))
        except TypeError:
            return None
    return out
