"""``rnnkit demo`` and ``rnnkit forecast``: train a forecaster on a series, compare it with the
seasonal-naive and Holt-Winters baselines, plot and save it; and the forecaster's side of
``rnnkit predict`` / ``rnnkit evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from rnnkit.commands._common import Resume, console, evaluation_source, user_errors

Option = typer.Option


@user_errors
def demo(
    out: Annotated[Path, Option(help="Folder for the figures and the model.")] = Path("runs/demo"),
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = 30,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = "lstm",
    resume: Resume = False,
) -> None:
    """Forecast the bundled electricity demand a day ahead; compare with two baselines."""
    command(data="electricity", out=out, epochs=epochs, cell=cell, resume=resume)


@user_errors
def command(
    data: Annotated[str, Option(help="A bundled series (see `rnnkit datasets`) or a CSV file.")],
    target: Annotated[str | None, Option(help="Column to forecast (bundled: its own).")] = None,
    covariates: Annotated[str, Option(help="Comma-separated extra input columns.")] = "",
    date_column: Annotated[str | None, Option(help="ISO 8601 date column of a CSV.")] = None,
    fill: Annotated[str | None, Option(help="Fill gaps: ffill, interpolate, zero.")] = None,
    lookback: Annotated[int, Option(min=1, help="Input steps per forecast.")] = 96,
    horizon: Annotated[int, Option(min=1, help="Steps forecast at once.")] = 48,
    stride: Annotated[int, Option(min=1, help="Steps between training windows.")] = 2,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = "lstm",
    hidden_size: Annotated[int, Option(min=1)] = 64,
    num_layers: Annotated[int, Option(min=1)] = 1,
    season: Annotated[int | None, Option(min=1, help="Steps per season (default: detect).")] = None,
    test_size: Annotated[int, Option(min=1, help="Held-out final steps to evaluate on.")] = 672,
    val_size: Annotated[int, Option(min=1, help="Validation steps before the test part.")] = 672,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = 30,
    seed: Annotated[int, Option()] = 0,
    out: Annotated[Path, Option(help="Folder for the figures and the model.")] = Path(
        "runs/forecast"
    ),
    resume: Resume = False,
) -> None:
    """Train a forecaster, evaluate it on the held-out end of the series, plot and save it."""
    from rnnkit.tasks import Forecaster
    from rnnkit.train import TrainConfig
    from rnnkit.viz import plot_forecast, plot_training

    source = _series_source(data, target, covariates, date_column, fill)
    series = _load_source(source)
    model = Forecaster(
        lookback=lookback, horizon=horizon, stride=stride, cell=cell, hidden_size=hidden_size,
        num_layers=num_layers, season=season,
        training=TrainConfig(max_epochs=epochs, seed=seed),
    )  # fmt: skip
    if len(series) <= test_size + val_size:
        raise ValueError(
            f"test_size: {test_size} + val_size {val_size} leave no training data in a series "
            f"of {len(series)} steps"
        )
    console.print(f"Training a {cell} forecaster on {data} ({len(series)} steps) ...")
    history = model.fit(
        series.slice(stop=-test_size), val_size=val_size, log_dir=out / "logs", resume=resume
    )
    report = model.evaluate(series, test_size)
    _print_report(report, series.columns[0])
    figure = plot_forecast(
        out / "forecast.png",
        series.targets[max(report.origins[0] - 2 * test_size, 0) : report.origins[0], 0],
        report.truth[..., 0].reshape(-1),
        {name: f[..., 0].reshape(-1) for name, f in report.forecasts.items()},
        title=f"{data}: {horizon}-step forecasts over the last {test_size} steps",
        ylabel=series.columns[0],
    )
    curves = plot_training(out / "training.png", history.train_loss, history.val_loss)
    saved = model.save(out / "model", metadata={"data": source})
    console.print(f"Figures: {figure}, {curves}\nModel: {saved}")


def _series_source(
    data: str, target: str | None, covariates: str, date_column: str | None, fill: str | None
) -> dict[str, Any]:
    return {
        "data": data,
        "target": target,
        "covariates": [c.strip() for c in covariates.split(",") if c.strip()],
        "date_column": date_column,
        "fill": fill,
    }


def _load_source(source: dict[str, Any]) -> Any:
    from rnnkit.data import DATASETS, load_series, read_series

    covariates = tuple(source["covariates"])
    if source["data"] in DATASETS:
        return load_series(source["data"], source["target"], covariates)
    if source["target"] is None:
        raise ValueError("target: a CSV file needs --target COLUMN")
    return read_series(
        source["data"], source["target"], covariates, source["date_column"], source["fill"]
    )


def _print_report(report: Any, target: str) -> None:
    table = Table(title=f"{target}: rolling {report.truth.shape[1]}-step forecasts "
                  f"({len(report.origins)} origins, season {report.season})")  # fmt: skip
    table.add_column("method")
    for metric in ("MAE", "RMSE", "MASE"):
        table.add_column(metric, justify="right")
    best = min(report.metrics.values(), key=lambda m: m["MASE"])["MASE"]
    for name, values in report.metrics.items():
        style = "bold green" if values["MASE"] == best else None
        table.add_row(name, *(f"{values[m]:,.3f}" for m in ("MAE", "RMSE", "MASE")), style=style)
    console.print(table)


def evaluate(model_dir: Path, test_size: int, data: str | None) -> None:
    """Re-evaluate a saved forecaster on the data it was trained on (``data``: its file)."""
    from rnnkit.tasks import Forecaster

    model = Forecaster.load(model_dir)
    series = _load_source(evaluation_source(model_dir, model.metadata.get("data"), data))
    _print_report(model.evaluate(series, test_size), series.columns[0])


def predict(model_dir: Path, input: str) -> None:
    """Print the next ``horizon`` steps after the end of ``input`` (a CSV with the training
    columns, or a bundled series) as JSON."""
    from rnnkit.tasks import Forecaster

    model = Forecaster.load(model_dir)
    source = dict(model.metadata.get("data") or {}, data=input)
    series = _load_source(source)
    values = model.predict(series)
    if not np.isfinite(values).all():
        raise ValueError(
            f"model_dir: {str(model_dir)!r} forecasts values that are not finite numbers "
            f"({values[~np.isfinite(values)][0]}): its weights or scaler are not usable"
        )
    columns = series.columns[: values.shape[1]]
    print(json.dumps({name: values[:, k].tolist() for k, name in enumerate(columns)}))
