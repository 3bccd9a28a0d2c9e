"""How long one fit of statsforecast's AutoARIMA and AutoETS takes, by history and season: the
figures behind ``rnnkit.baselines``' limits (``ARIMA_MAX_SEASONAL_WORK``,
``ARIMA_MAX_NONSEASONAL_LENGTH``, ``ETS_MAX_SEASON``).

Each fit is on a synthetic series of ``n`` points: a trend, a sine of period ``season`` and
Gaussian noise (seed 0), fitted as ``rnnkit.baselines`` fits, warnings silenced. A fit is timed
once (they take seconds; the first, warming numba's compiled code up, is run untimed).

Usage::

    python benchmarks/baseline_cost.py [--long]   # --long adds the fits of a minute or more
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from statsforecast.models import AutoARIMA, AutoETS

#: (model, season, points): around the limits, seasonal work ``season x points`` either side
#: of ``ARIMA_MAX_SEASONAL_WORK`` = 3,000, long non-seasonal histories, and ETS beyond 24.
FITS = [
    ("AutoARIMA", 12, 250),
    ("AutoARIMA", 24, 125),
    ("AutoARIMA", 12, 500),
    ("AutoARIMA", 24, 500),
    ("AutoARIMA", 1, 10_000),
    ("AutoETS", 24, 500),
]
LONG_FITS = [("AutoARIMA", 36, 500), ("AutoARIMA", 1, 20_000), ("AutoETS", 168, 2_000)]


def series(points: int, season: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(points)
    wave = np.sin(2 * np.pi * t / season) if season > 1 else 0.0
    return 10 + 0.01 * t + 2 * wave + rng.normal(0, 0.5, points)


def fit_seconds(model: str, season: int, points: int) -> float:
    """The seconds of one fit of ``model`` with ``season_length=season`` on ``points``."""
    kind = AutoETS if model == "AutoETS" else AutoARIMA
    values = series(points, season)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        kind(season_length=season).fit(values)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="add the fits of a minute or more")
    args = parser.parse_args()
    fit_seconds("AutoARIMA", 4, 40)  # numba's compilation, untimed
    fit_seconds("AutoETS", 4, 40)
    print("| model | season | points | season x points | seconds |")
    print("|---|---|---|---|---|")
    for model, season, points in FITS + (LONG_FITS if args.long else []):
        seconds = fit_seconds(model, season, points)
        print(f"| {model} | {season} | {points} | {season * points} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
