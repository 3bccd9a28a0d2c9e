"""Seed exercise 4: the last 30 days of open/high/low/close predict the next day's close,
against the naive forecast "tomorrow's close = today's close".

The bundled Microsoft daily prices (1986-2017) are cut to their last ``--days`` days; the last
``--test`` days are the test period, the ``--test`` days before them validate (early
stopping), the rest train. Two LSTM forecasters (``rnnkit.tasks.Forecaster``, lookback 30,
horizon 1, four input features standardised with training statistics) are compared:

* "levels" predicts the price itself. Test prices lie above every price it trained on, so its
  standardised inputs leave the training range and it cannot follow them.
* "change" (``seasonal_base=True, season=1``) predicts the change from today's close: the naive
  forecast plus a learned correction.

The honest lesson: daily closes are close to a random walk, whose best forecast is today's
close. Neither network beats naive; a learned correction mostly adds noise. Next-day prices
are a poor showcase for an RNN; seasonal series are a good one (``make demo``).

Writes the test period's forecasts to ``--out`` (default runs/examples/stock.png).

Run: python examples/stock.py [--days 2000] [--test 250] [--epochs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnnkit import metrics
from rnnkit.data import load_series
from rnnkit.tasks import Forecaster
from rnnkit.train import TrainConfig
from rnnkit.viz import plot_forecast

LOOKBACK = 30


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2000, help="use the last DAYS days")
    parser.add_argument("--test", type=int, default=250, help="test (and validation) days")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/stock.png"))
    args = parser.parse_args(argv)

    # Columns: close (the target) first, then open, high, low as covariates: (T, 4).
    series = load_series("msft", covariates=("open", "high", "low")).slice(start=-args.days)
    origins = np.arange(len(series) - args.test, len(series))  # forecast the close at each t
    close = series.targets[:, 0]  # (T,)
    truth, naive = close[origins], close[origins - 1]
    forecasts = {}
    for name, seasonal_base in (("LSTM (change)", True), ("LSTM (levels)", False)):
        model = Forecaster(
            lookback=LOOKBACK, horizon=1, stride=1, calendar=False, season=1,
            seasonal_base=seasonal_base, hidden_size=args.hidden, blend=False, transform="none",
            base="seasonal naive",
            training=TrainConfig(max_epochs=args.epochs, seed=args.seed),
        )  # fmt: skip
        model.fit(series.slice(stop=-args.test), val_size=args.test, progress=False)
        forecasts[name] = model.predict(series, origins.tolist())[:, 0, 0]  # (M,)
    forecasts["naive (today's close)"] = naive

    first, last = series.timestamps[origins[[0, -1]]].astype("datetime64[D]")
    highest = close[: -2 * args.test].max()
    print(f"test: {args.test} days {first} .. {last}, close {truth.min():.2f} .. "
          f"{truth.max():.2f} (highest close in training: {highest:.2f})")  # fmt: skip
    errors = {}
    for name, forecast in forecasts.items():
        errors[name] = metrics.mae(forecast, truth)
        print(f"{name:22s} MAE {errors[name]:7.3f}  RMSE {metrics.rmse(forecast, truth):7.3f}")
    figure = plot_forecast(args.out, close[origins[0] - 60 : origins[0]], truth, forecasts,
                           title="MSFT next-day close", ylabel="close (USD)")  # fmt: skip
    ratio = errors["LSTM (change)"] / errors["naive (today's close)"]
    print(f"LSTM (change) / naive MAE = {ratio:.2f}: beating 'tomorrow = today' on prices is hard")
    print(f"figure: {figure}")
    return {
        "change": errors["LSTM (change)"],
        "levels": errors["LSTM (levels)"],
        "naive": errors["naive (today's close)"],
        "mean_change": float(np.mean(np.abs(np.diff(close[origins[0] - 1 :])))),
        "constant": metrics.mae(np.full_like(truth, close[origins[0] - 1]), truth),
    }


if __name__ == "__main__":
    main()
