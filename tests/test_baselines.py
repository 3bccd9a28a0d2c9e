"""rolling_baselines against hand computations, FPP's interval formulas, direct statsforecast
calls and simulated series whose best forecast is known."""

import math
import warnings
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats
from statsforecast.arima import arima_string
from statsforecast.models import AutoARIMA, AutoETS

from rnnkit.baselines import BaselineWarning, arima_fits_in_time, rolling_baselines

# Box & Jenkins' monthly international airline passengers (thousands), 1949-1960.
AIRLINE = np.array(
    [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118,
     115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140,
     145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166,
     171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194,
     196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201,
     204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
     242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278,
     284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306,
     315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336,
     340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337,
     360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405,
     417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432],
    dtype=float,
)  # fmt: skip
AIR_ORIGINS = [108, 120, 132]
LEVELS = [80, 95]


def quiet(call, *args, **kwargs):
    """A direct statsforecast call without its numerical warnings (errors under pytest here)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def z(level: int) -> float:
    return NormalDist().inv_cdf(0.5 + level / 200)


def test_naive_and_seasonal_naive_match_hand_computed_forecasts_and_fpp_intervals():
    values = np.array([1.0, 3, 2, 5, 4, 6, 8, 7, 9, 12, 10, 11])
    out = rolling_baselines(values, [8, 10], 4, seasons=(3, 2), levels=LEVELS, arima=False)
    assert list(out) == ["naive", "seasonal naive", "seasonal naive (2)", "AutoETS"]

    np.testing.assert_array_equal(out["naive"].mean, [[7, 7, 7, 7], [12, 12, 12, 12]])
    # values[5:8] = 6, 8, 7 then again; values[7:10] = 7, 9, 12 then again
    np.testing.assert_array_equal(out["seasonal naive"].mean, [[6, 8, 7, 6], [7, 9, 12, 7]])
    np.testing.assert_array_equal(out["seasonal naive (2)"].mean, [[8, 7, 8, 7], [9, 12, 9, 12]])
    assert out["seasonal naive"].model == "value one season (3) earlier"

    history = values[:8]  # residuals from before the first origin only
    h = np.arange(1, 5)
    sigma = {1: math.sqrt(sum((history[i] - history[i - 1]) ** 2 for i in range(1, 8)) / 7)}
    for m in (3, 2):
        sigma[m] = math.sqrt(sum((history[i] - history[i - m]) ** 2 for i in range(m, 8)) / (8 - m))
    expected_sd = {
        "naive": sigma[1] * np.sqrt(h),
        "seasonal naive": sigma[3] * np.sqrt((h - 1) // 3 + 1),
        "seasonal naive (2)": sigma[2] * np.sqrt((h - 1) // 2 + 1),
    }
    for name, sd in expected_sd.items():
        forecast = out[name]
        for level in LEVELS:
            lower, upper = forecast.intervals[level]
            np.testing.assert_allclose(upper - forecast.mean, np.tile(z(level) * sd, (2, 1)))
            np.testing.assert_allclose(forecast.mean - lower, np.tile(z(level) * sd, (2, 1)))
        lo80, hi80 = forecast.intervals[80]
        lo95, hi95 = forecast.intervals[95]
        assert np.all(lo95 < lo80) and np.all(hi80 < hi95)


def test_autoets_is_fitted_once_then_forwarded_like_direct_statsforecast_calls():
    h = 12
    out = rolling_baselines(AIRLINE, AIR_ORIGINS, h, seasons=(12,), arima=False)
    ets = out["AutoETS"]
    assert ets.mean.shape == (3, h)

    first = quiet(AutoETS(season_length=12).forecast, AIRLINE[:108], h=h, level=LEVELS)
    fitted = quiet(AutoETS(season_length=12).fit, AIRLINE[:108])
    assert ets.model == fitted.model_["method"]
    later = quiet(fitted.forward, AIRLINE[:132], h=h, level=LEVELS)
    for row, direct in ((0, first), (2, later)):
        np.testing.assert_allclose(ets.mean[row], direct["mean"], rtol=1e-10)
        for level in LEVELS:
            np.testing.assert_allclose(ets.intervals[level][0][row], direct[f"lo-{level}"])
            np.testing.assert_allclose(ets.intervals[level][1][row], direct[f"hi-{level}"])
    # a refit at the later origin would differ: the comparison above can tell the two apart
    refit = quiet(AutoETS(season_length=12).forecast, AIRLINE[:132], h=h)
    assert not np.allclose(ets.mean[2], refit["mean"], rtol=1e-6)


def test_autoarima_matches_direct_statsforecast_calls():
    h = 12
    out = rolling_baselines(AIRLINE, AIR_ORIGINS, h, seasons=(12,), arima=True)
    arima = out["AutoARIMA"]
    first = quiet(AutoARIMA(season_length=12).forecast, AIRLINE[:108], h=h, level=LEVELS)
    fitted = quiet(AutoARIMA(season_length=12).fit, AIRLINE[:108])
    assert arima.model == arima_string(fitted.model_, padding=False).strip()
    later = quiet(fitted.forward, AIRLINE[:120], h=h, level=LEVELS)
    for row, direct in ((0, first), (1, later)):
        np.testing.assert_allclose(arima.mean[row], direct["mean"], rtol=1e-8)
        for level in LEVELS:
            np.testing.assert_allclose(arima.intervals[level][0][row], direct[f"lo-{level}"])
            np.testing.assert_allclose(arima.intervals[level][1][row], direct[f"hi-{level}"])


def test_autoets_beats_seasonal_naive_on_a_trend_with_multiplicative_season():
    rng = np.random.default_rng(0)
    t = np.arange(216)
    values = (100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) * rng.lognormal(0, 0.03, t.size)
    origins = [168, 180, 192, 204]
    out = rolling_baselines(values, origins, 12, seasons=(12,), arima=False)
    truth = np.stack([values[o : o + 12] for o in origins])
    mae = {name: np.mean(np.abs(out[name].mean - truth)) for name in ("seasonal naive", "AutoETS")}
    # seasonal naive lags a year of growth (~12 per step); the noise alone is ~0.03 * 300 * 0.8
    assert mae["AutoETS"] < 0.7 * mae["seasonal naive"], mae


def test_naive_intervals_cover_random_walks_at_their_level():
    rng = np.random.default_rng(1)
    walks = 100 + np.cumsum(rng.normal(size=(400, 60)), axis=1)
    horizon, origin = 10, 50
    covered = {level: np.zeros((400, horizon), bool) for level in LEVELS}
    for i, walk in enumerate(walks):
        naive = rolling_baselines(walk, [origin], horizon, arima=False)["naive"]
        for level in LEVELS:
            lower, upper = naive.intervals[level]
            future = walk[origin : origin + horizon]
            covered[level][i] = (lower[0] <= future) & (future <= upper[0])
    for level in LEVELS:
        # sigma is estimated from 49 residuals, so (error / sigma_hat) is t with 49 degrees of
        # freedom at every step: its coverage sits a little below the level.
        expected = 2 * stats.t.cdf(z(level), df=origin - 1) - 1
        tolerance = 4 * math.sqrt(expected * (1 - expected) / 400)  # binomial standard error
        # walks are independent; steps of one walk are not, so test steps one at a time
        for step in (0, horizon - 1):
            assert abs(covered[level][:, step].mean() - expected) < tolerance, (level, step)


def test_season_one_fits_non_seasonal_models_and_runs_arima_when_cheap():
    rng = np.random.default_rng(2)
    values = 50 + np.cumsum(rng.normal(0.2, 1, 200))
    out = rolling_baselines(values, [150, 175], 25, seasons=(1,))
    assert list(out) == ["naive", "AutoETS", "AutoARIMA"]
    # a primary season of 1 means no seasonal naive at all, not even for further seasons
    assert list(rolling_baselines(values, [150], 5, seasons=(1, 12), arima=False)) == [
        "naive",
        "AutoETS",
    ]
    assert out["AutoETS"].model.endswith(",N)")
    assert "[" not in out["AutoARIMA"].model
    for forecast in out.values():
        assert forecast.mean.shape == (2, 25)
        assert set(forecast.intervals) == {80, 95}


def test_arima_rule_and_skipped_seasons():
    assert arima_fits_in_time(108, 12) and arima_fits_in_time(10_000, 1)
    assert not arima_fits_in_time(3_328, 48) and not arima_fits_in_time(1_480, 52)
    rng = np.random.default_rng(3)
    t = np.arange(130)
    values = 20 + 5 * np.sin(2 * np.pi * t / 52) + rng.normal(size=t.size)
    # 104 * 52 > 3000: no AutoARIMA; season 200 > origins[0]; the repeated 52 once only
    out = rolling_baselines(values, [104, 117], 13, seasons=(52, 7, 200, 52, 1))
    assert list(out) == ["naive", "seasonal naive", "seasonal naive (7)", "AutoETS"]
    np.testing.assert_array_equal(out["seasonal naive"].mean[1], values[65:78])


def test_short_and_constant_series_do_not_crash():
    values = np.array([3.0, 5, 4, 6, 5, 7, 6, 8, 7, 9])
    out = rolling_baselines(values, [8], 4, seasons=(4,))
    assert {"naive", "seasonal naive", "AutoETS"} <= set(out)
    for forecast in out.values():
        assert forecast.mean.shape == (1, 4) and np.isfinite(forecast.mean).all()

    with pytest.warns(BaselineWarning, match="AutoETS: left out"):
        out = rolling_baselines(values, [4, 6], 2, seasons=(1,), arima=False)
    assert list(out) == ["naive"]

    out = rolling_baselines(np.full(40, 7.0), [30, 35], 5, seasons=(12,))
    np.testing.assert_allclose(out["naive"].intervals[95][1], 7.0)  # zero residual spread
    np.testing.assert_allclose(out["AutoETS"].mean[0], 7.0)
    assert out["AutoETS"].model == "ETS(A,N,N)"


def test_a_failed_seasonal_fit_falls_back_to_a_non_seasonal_one(monkeypatch):
    fit = AutoETS.fit

    def fit_without_seasons(self, y, *args):
        if self.season_length > 1:
            raise ValueError("seasonal fit failed")
        return fit(self, y, *args)

    monkeypatch.setattr(AutoETS, "fit", fit_without_seasons)
    with pytest.warns(BaselineWarning, match="season_length=12 failed"):
        out = rolling_baselines(AIRLINE, AIR_ORIGINS, 12, seasons=(12,), arima=False)
    direct = quiet(AutoETS(season_length=1).forecast, AIRLINE[:108], h=12)
    np.testing.assert_allclose(out["AutoETS"].mean[0], direct["mean"], rtol=1e-10)


def test_a_form_that_cannot_be_estimated_is_selected_anew(monkeypatch):
    """A form kept from fit that statsforecast cannot estimate on a series' longer history
    (it happened on M1's yearly series T8) gives AICc's own choice there, not a missing
    baseline."""
    from statsforecast.models import ARIMA

    def fit_failing(self, y, *args):
        raise ValueError("zero-size array to reduction operation minimum")

    monkeypatch.setattr(ARIMA, "fit", fit_failing)  # a fixed form's model; not AutoARIMA's
    form = "ARIMA:1,1,1,0,0,0,1,0,1"
    with pytest.warns(BaselineWarning, match=r"form ARIMA:1,1,1,0,0,0,1,0,1 failed.* anew"):
        out = rolling_baselines(AIRLINE, AIR_ORIGINS, 12, seasons=(1,), arima=True,
                                forms={"AutoARIMA": form})  # fmt: skip
    direct = quiet(AutoARIMA(season_length=1).forecast, AIRLINE[:108], h=12)
    np.testing.assert_allclose(out["AutoARIMA"].mean[0], direct["mean"], rtol=1e-8)
    assert out["AutoARIMA"].form != form


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"values": np.ones((10, 2))}, "values"),
        ({"values": np.r_[np.ones(9), np.nan]}, "values"),
        ({"values": ["a"] * 10}, "values"),
        ({"origins": []}, "origins"),
        ({"origins": [6, 6]}, "origins"),
        ({"origins": [1, 5]}, "origins"),
        ({"origins": [5, 11]}, "origins"),
        ({"origins": [5.5]}, "origins"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2.0}, "horizon"),
        ({"seasons": (12, 0)}, "seasons"),
        ({"seasons": ()}, "seasons"),
        ({"levels": (80, 100)}, "levels"),
        ({"levels": (0,)}, "levels"),
        ({"arima": "yes"}, "arima"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_argument(kwargs, argument):
    call = {"values": np.arange(10.0), "origins": [5, 7], "horizon": 2} | kwargs
    with pytest.raises(ValueError, match=f"^{argument}: expected"):
        rolling_baselines(**call)


def test_a_fixed_form_keeps_the_model_and_reestimates_its_parameters():
    """forms= takes a fitted model's form back: on the same data the forecasts are the
    selected model's; on longer data the form stays while the parameters are estimated
    anew, as statsforecast's ETS and ARIMA of that form would estimate them."""
    h = 12
    selected = rolling_baselines(AIRLINE, [108], h, seasons=(12,), arima=True)
    forms = {name: selected[name].form for name in ("AutoETS", "AutoARIMA")}
    assert forms["AutoETS"].startswith("ETS:") and forms["AutoARIMA"].startswith("ARIMA:")
    again = rolling_baselines(AIRLINE, [108], h, seasons=(12,), arima=True, forms=forms)
    for name in forms:
        np.testing.assert_allclose(again[name].mean, selected[name].mean, rtol=1e-8)
    later = rolling_baselines(AIRLINE, [132], h, seasons=(12,), arima=True, forms=forms)
    error, trend, season, damped = forms["AutoETS"][4:]
    direct = quiet(
        AutoETS(season_length=12, model=error + trend + season, damped=damped == "D").forecast,
        AIRLINE[:132], h=h,
    )  # fmt: skip
    np.testing.assert_allclose(later["AutoETS"].mean[0], direct["mean"], rtol=1e-8)
    assert later["AutoETS"].model == selected["AutoETS"].model
    assert later["AutoARIMA"].form == forms["AutoARIMA"]
    # estimated anew: not the forecast of the parameters fitted on 108 steps
    forwarded = rolling_baselines(AIRLINE, [108, 132], h, seasons=(12,), arima=True)
    assert not np.allclose(later["AutoETS"].mean[0], forwarded["AutoETS"].mean[1], rtol=1e-6)


@pytest.mark.parametrize("form", ["ETS:MN", "ARIMA:1,1,0", "SARIMA:1,1,0,0,1,0,12,0,0"])
def test_a_malformed_form_is_refused(form: str):
    with pytest.raises(ValueError, match="forms: expected"):
        rolling_baselines(AIRLINE, [108], 12, seasons=(12,), forms={"AutoETS": form})


def test_a_given_arima_form_is_the_one_fitted():
    """The airline model's form, whatever AICc would select on these 108 steps."""
    form = "ARIMA:0,1,1,0,1,1,12,0,0"
    out = rolling_baselines(AIRLINE, [108], 12, seasons=(12,), arima=True,
                            forms={"AutoARIMA": form})  # fmt: skip
    assert out["AutoARIMA"].model == "ARIMA(0,1,1)(0,1,1)[12]"
    assert out["AutoARIMA"].form == form
