"""``rnnkit demo`` and ``rnnkit forecast``: train a forecaster on a series (or a panel of them)
with sizes chosen from the data, compare it with the naive, seasonal-naive, AutoETS and
AutoARIMA baselines, plot and save it; and the forecaster's side of ``rnnkit predict`` /
``rnnkit evaluate``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from rnnkit.commands._common import (
    Devices,
    NumNodes,
    Resume,
    Strategy,
    TaskDefaults,
    console,
    evaluation_source,
    further_process,
    user_errors,
)

Option = typer.Option
MODEL = TaskDefaults("rnnkit.tasks.forecaster:ForecasterConfig")
TRAINING = TaskDefaults("rnnkit.tasks.forecaster:Forecaster.default_training")


@user_errors
def demo(
    out: Annotated[Path, Option(help="Folder for the figures and the model.")] = Path("runs/demo"),
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = TRAINING.max_epochs,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = MODEL.cell,
    resume: Resume = False,
    devices: Devices = TRAINING.devices,
    num_nodes: NumNodes = TRAINING.num_nodes,
    strategy: Strategy = TRAINING.strategy,
) -> None:
    """Forecast the bundled electricity demand a day ahead on each of its last 14 days
    (validated on the 14 before); compare with the baselines."""
    command(
        data="electricity",
        test_size=672,
        val_size=672,
        out=out,
        epochs=epochs,
        cell=cell,
        resume=resume,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
    )


@user_errors
def command(
    data: Annotated[str, Option(help="A bundled series (see `rnnkit datasets`) or a CSV file.")],
    target: Annotated[str | None, Option(help="Column to forecast (bundled: its own).")] = None,
    covariates: Annotated[str, Option(help="Comma-separated extra input columns.")] = "",
    date_column: Annotated[
        str | None, Option(help="ISO 8601 date column of a CSV (default: the first such column).")
    ] = None,
    id_column: Annotated[
        str | None,
        Option(help="Series id column of a long-format CSV: one global model over the panel."),
    ] = None,
    fill: Annotated[str | None, Option(help="Fill gaps: ffill, interpolate, zero.")] = None,
    horizon: Annotated[
        int | None, Option(min=1, help="Steps forecast at once (default: from the frequency).")
    ] = None,
    season: Annotated[
        int | None, Option(min=1, help="Steps per season; 1 for none (default: detect).")
    ] = None,
    lookback: Annotated[int | None, Option(min=1, help="Input steps per forecast.")] = None,
    test_size: Annotated[
        int | None, Option(min=1, help="Held-out final steps to evaluate on.")
    ] = None,
    val_size: Annotated[
        int | None, Option(min=1, help="Validation steps before the test part.")
    ] = None,
    stride: Annotated[int, Option(min=1, help="Steps between training windows.")] = MODEL.stride,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = MODEL.cell,
    hidden_size: Annotated[int, Option(min=1)] = MODEL.hidden_size,
    num_layers: Annotated[int, Option(min=1)] = MODEL.num_layers,
    blend: Annotated[
        bool, Option(help="Blend with AutoETS where validation says it helps.")
    ] = MODEL.blend,
    seeds: Annotated[
        int, Option(min=1, help="Networks trained with seeds seed, seed + 1, ..., averaged.")
    ] = MODEL.seeds,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = TRAINING.max_epochs,
    seed: Annotated[int, Option()] = TRAINING.seed,
    out: Annotated[Path, Option(help="Folder for the figures and the model.")] = Path(
        "runs/forecast"
    ),
    resume: Resume = False,
    devices: Devices = TRAINING.devices,
    num_nodes: NumNodes = TRAINING.num_nodes,
    strategy: Strategy = TRAINING.strategy,
) -> None:
    """Train a forecaster, evaluate it on the held-out end of the series against naive,
    seasonal-naive, AutoETS and AutoARIMA forecasts, plot and save it. Every size not
    given is chosen from the data, and the choice is printed."""
    from rnnkit.tasks import Forecaster
    from rnnkit.viz import plot_training

    if out.exists() and not out.is_dir():
        raise ValueError(f"out: expected a folder, got the file {str(out)!r} (Not a directory)")
    source = _series_source(data, target, covariates, date_column, fill, id_column)
    panel = _load_source(source)
    plan = _plan(panel, horizon, season, lookback, val_size, test_size)
    for line in plan.reasons:
        console.print(line, highlight=False)
    model = Forecaster(
        lookback=plan.lookback,
        horizon=plan.horizon,
        stride=stride,
        cell=cell,
        hidden_size=hidden_size,
        num_layers=num_layers,
        season=plan.season,
        blend=blend,
        seeds=seeds,
        training=replace(
            Forecaster.default_training,
            max_epochs=epochs,
            seed=seed,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
        ),
    )
    what = f"{len(panel)} series" if id_column else f"{len(panel[0])} steps"
    console.print(f"Training a {cell} forecaster on {Path(data).name} ({what}) ...")
    start = time.perf_counter()
    history = model.fit(
        [one.slice(stop=-plan.test_size) for one in panel],
        val_size=plan.val_size,
        log_dir=out / "logs",
        resume=resume,
    )
    seconds = time.perf_counter() - start
    if further_process():  # the baselines, figures and model come from global rank 0
        return
    if id_column:
        summary = _report_panel(model.evaluate_panel(panel, plan.test_size, plan.seasons))
        figure = None
    else:
        report = model.evaluate(panel[0], plan.test_size, plan.seasons)
        summary = _report(report, panel[0].columns[0], model)
        figure = _plot(out / "forecast.png", panel[0], report, Path(data).stem)
    curves = plot_training(out / "training.png", history.train_loss, history.val_loss)
    names = ("horizon", "season", "seasons", "lookback", "val_size")
    choices = {name: getattr(plan, name) for name in names}
    metadata = {
        "data": source,
        "test_size": plan.test_size,
        "plan": choices,
        "evaluation": summary,
        "seconds": seconds,
    }
    saved = model.save(out / "model", metadata=metadata)
    console.print(f"Trained in {seconds:.0f} s. Figures: {figure or ''} {curves}\nModel: {saved}")


@dataclass(frozen=True)
class _Plan:
    horizon: int
    season: int
    seasons: tuple[int, ...]  # further seasons, for their seasonal-naive baselines
    lookback: int
    val_size: int
    test_size: int
    reasons: list[str]


def _plan(
    panel: list[Any],
    horizon: int | None,
    season: int | None,
    lookback: int | None,
    val_size: int | None,
    test_size: int | None,
) -> _Plan:
    """Sizes and season from the data wherever the user gave none, each with its reason.

    The season is tested on the longest series without its last few horizons, so the test
    part never chooses it. A panel is tested on one horizon per series (its shortest series
    bounds the lookback)."""
    from rnnkit.data.frequency import best_season, choose_season, default_sizes, infer_frequency

    longest = max(panel, key=len)
    frequency = infer_frequency(longest.timestamps)
    reasons = [f"Frequency: {frequency.name}."]
    if horizon is None:
        horizon = frequency.horizon
        reasons.append(f"Horizon: {horizon} steps, the usual one for {frequency.name} data.")
    seasons: tuple[int, ...] = ()
    lookback_season = season or 1
    if season is None:
        provisional = default_sizes(len(longest), horizon, 1).test_size
        history = longest.targets[: len(longest) - provisional, 0]
        choice = choose_season(history, frequency)
        season = best_season(history, choice.seasons, provisional)
        seasons = tuple(s for s in choice.seasons if s != season)
        lookback_season = min(choice.seasons)
        why = (
            ""
            if len(choice.seasons) == 1
            else (
                f"; {season} as the base: its seasonal naive forecasts the last {provisional} "
                "steps before the test part best"
            )
        )
        reasons.append(f"Season: {season} ({choice.reason}{why}).")
    given = (lookback, val_size, test_size)
    if None not in given:
        chosen = given
    elif len(panel) == 1:
        sizes = default_sizes(len(longest), horizon, season)
        # the base already carries the longest season: the input needs the shortest one
        lookback = min(sizes.lookback, 2 * max(horizon, lookback_season))
        note = (
            f"; lookback {lookback} (two of the shortest season)"
            if lookback < sizes.lookback
            else ""
        )
        reason = f"{sizes.reason}{note}"
        chosen = (lookback, sizes.val_size, sizes.test_size)
    else:
        shortest = min(len(one) for one in panel)
        room = shortest - (test_size or horizon) - season
        chosen = (
            min(default_sizes(len(longest), horizon, season).lookback, room),
            horizon,
            horizon,
        )
        if chosen[0] < 1:
            raise ValueError(
                f"horizon: the shortest series has {shortest} steps, too few to test a "
                f"{horizon}-step forecast after {season} + 1 steps of input; use a shorter one"
            )
        reason = (
            f"test and validation one horizon ({horizon} steps) of each series; lookback "
            f"{chosen[0]} (the shortest series has {shortest} steps)"
        )
    lookback, val_size, test_size = (g or c for g, c in zip(given, chosen, strict=True))
    if given == (None, None, None):
        reasons.append(f"Sizes: {reason}.")
    elif None in given:
        final = zip(
            ("lookback", "validation", "test"), (lookback, val_size, test_size), given, strict=True
        )
        listed = ", ".join(f"{name} {size}{' (given)' if g else ''}" for name, size, g in final)
        reasons.append(f"Sizes: {listed}.")
    return _Plan(horizon, season, seasons, lookback, val_size, test_size, reasons)


def _series_source(
    data: str,
    target: str | None,
    covariates: str,
    date_column: str | None,
    fill: str | None,
    id_column: str | None = None,
) -> dict[str, Any]:
    from rnnkit.data import DATASETS, find_date_column

    if date_column is None and data not in DATASETS:
        date_column = find_date_column(data)
    return {
        "data": data,
        "target": target,
        "covariates": [c.strip() for c in covariates.split(",") if c.strip()],
        "date_column": date_column,
        "fill": fill,
        "id_column": id_column,
    }


def _load_source(source: dict[str, Any]) -> list[Any]:
    """The series a source names: one, or a panel's (with ``id_column``)."""
    from rnnkit.data import DATASETS, load_series, read_panel, read_series

    covariates = tuple(source["covariates"])
    if source["data"] in DATASETS:
        return [load_series(source["data"], source["target"], covariates)]
    if source["target"] is None:
        raise ValueError("target: a CSV file needs --target COLUMN")
    columns = (source["target"], covariates, source["date_column"], source["fill"])
    if source.get("id_column"):
        return read_panel(source["data"], source["id_column"], *columns)
    return [read_series(source["data"], *columns)]


def _report(report: Any, target: str, model: Any) -> dict[str, Any]:
    """Print the comparison table, the verdict and the interval coverage; return them."""
    table = Table(
        title=f"{target}: rolling {report.truth.shape[1]}-step forecasts "
        f"({len(report.origins)} origins, season {report.season})"
    )
    for column in ("method", "MAE", "RMSE", "MASE", "model"):
        table.add_column(column, justify="left" if column in ("method", "model") else "right")
    best = min(m["MASE"] for m in report.metrics.values())
    models = {"rnnkit": _describe(model)} | report.models
    for name, values in report.metrics.items():
        style = "bold green" if values["MASE"] == best else None
        cells = (f"{values[m]:,.3f}" for m in ("MAE", "RMSE", "MASE"))
        table.add_row(name, *cells, models.get(name, ""), style=style)
    console.print(table)
    console.print(report.verdict + ".", highlight=False)
    return {
        "MASE": {name: values["MASE"] for name, values in report.metrics.items()},
        "best_baseline": report.best_baseline,
        "beats_best_baseline": report.beats_best_baseline,
        "coverage": _print_coverage(report.coverage),
    }


def _describe(model: Any) -> str:
    """What the rnnkit forecast is made of, e.g. "lstm correcting AutoETS, on log values"."""
    fitted, config = model._require_fitted(), model.config
    parts = [config.cell]
    if config.seasonal_base:
        kept = model.network.corrects
        parts[0] += f" correcting {fitted.base}" if kept else f" (no correction beat {fitted.base})"
    if config.seeds > 1:
        parts.append(f"mean of {config.seeds} seeds")
    if fitted.transform != "none":
        parts.append(f"on {fitted.transform} values")
    if fitted.blend < 1:
        parts.append(f"{fitted.blend:.2f} x network + {1 - fitted.blend:.2f} x {fitted.partner}")
    return ", ".join(parts)


def _report_panel(report: Any) -> dict[str, Any]:
    table = Table(title=f"{len(report.reports)} series: MASE over the panel")
    for column in ("method", "mean MASE", "median MASE"):
        table.add_column(column, justify="left" if column == "method" else "right")
    best = min(m["mean MASE"] for m in report.metrics.values())
    for name, values in report.metrics.items():
        style = "bold green" if values["mean MASE"] == best else None
        table.add_row(
            name, *(f"{values[m]:.3f}" for m in ("mean MASE", "median MASE")), style=style
        )
    console.print(table)
    return {
        "mean MASE": {name: values["mean MASE"] for name, values in report.metrics.items()},
        "coverage": _print_coverage(report.coverage),
    }


def _print_coverage(coverage: dict[int, float]) -> dict[str, float]:
    """Print how often the intervals held the truth; return it keyed for JSON."""
    if coverage:
        claims = ", ".join(f"{level}%: {share:.0%}" for level, share in coverage.items())
        console.print(f"Prediction intervals cover the truth on the test origins: {claims}.")
    return {str(level): share for level, share in coverage.items()}


def _plot(path: Path, series: Any, report: Any, name: str) -> Path:
    from rnnkit.viz import plot_forecast

    first, horizon = report.origins[0], report.truth.shape[1]
    stop = first + len(report.origins) * horizon
    start = max(first - 4 * (stop - first), 0)  # history: four test windows' worth
    stamps = None if series.timestamps is None else series.timestamps[start:stop]
    return plot_forecast(
        path,
        series.targets[start:first, 0],
        report.truth[..., 0],
        {name: f[..., 0] for name, f in report.forecasts.items()},
        intervals={level: (lo[..., 0], hi[..., 0]) for level, (lo, hi) in report.intervals.items()},
        timestamps=stamps,
        title=f"{name}: {horizon}-step forecasts",
        ylabel=series.columns[0],
    )


def evaluate(model_dir: Path, test_size: int | None, data: str | None) -> None:
    """Re-evaluate a saved forecaster on the data it was trained on (``data``: its file),
    on its last ``test_size`` steps (default: as when it was trained)."""
    from rnnkit.tasks import Forecaster

    model = Forecaster.load(model_dir)
    source = evaluation_source(model_dir, model.metadata.get("data"), data)
    panel = _load_source(source)
    test_size = test_size or model.metadata.get("test_size") or model.config.horizon
    seasons = _recorded_seasons(model.metadata)
    if source.get("id_column"):
        _report_panel(model.evaluate_panel(panel, test_size, seasons))
    else:
        _report(model.evaluate(panel[0], test_size, seasons), panel[0].columns[0], model)


def _recorded_seasons(metadata: dict[str, Any]) -> tuple[int, ...]:
    """The further seasons a model folder's metadata records (ints >= 2), else none."""
    seasons = (metadata.get("plan") or {}).get("seasons") or []
    if not isinstance(seasons, list) or not all(type(s) is int and s >= 2 for s in seasons):
        raise ValueError(f"model_dir: its metadata records seasons {seasons!r}; expected ints >= 2")
    return tuple(seasons)


def predict(model_dir: Path, input: str) -> None:
    """Print the next ``horizon`` steps after the end of ``input`` (a CSV with the training
    columns, or a bundled series) and their prediction intervals as JSON: ``{column: [...],
    "column lower 80%": [...], "column upper 80%": [...], ...}`` (a panel's: by series id)."""
    from rnnkit.data import find_date_column
    from rnnkit.tasks import Forecaster

    model = Forecaster.load(model_dir)
    recorded = model.metadata.get("data") or {}
    if not isinstance(recorded, dict):
        raise ValueError(f"model_dir: its metadata records data {recorded!r}; expected a mapping")
    # a model saved from the API records no options: its own columns name them
    fitted = model._require_fitted()
    dates = find_date_column(input) if Path(input).is_file() else None
    source = {
        "target": fitted.columns[0],
        "covariates": list(fitted.columns[1:]),
        "date_column": dates,
        "fill": None,
        **recorded,
        "data": input,
    }
    panel = _load_source(source)
    results = {one.name: _forecast_json(model, one, model_dir) for one in panel}
    print(json.dumps(results if source.get("id_column") else results[panel[0].name]))


def _forecast_json(model: Any, series: Any, model_dir: Path) -> dict[str, list[float]]:
    forecast = model.forecast(series)
    if not np.isfinite(forecast.mean).all():
        values = forecast.mean
        raise ValueError(
            f"model_dir: {str(model_dir)!r} forecasts values that are not finite numbers "
            f"({values[~np.isfinite(values)][0]}): its weights or scaler are not usable"
        )
    result = {}
    for k, name in enumerate(series.columns[: forecast.mean.shape[-1]]):
        result[name] = forecast.mean[0, :, k].tolist()
        for level, (lower, upper) in forecast.intervals.items():
            result[f"{name} lower {level}%"] = lower[0, :, k].tolist()
            result[f"{name} upper {level}%"] = upper[0, :, k].tolist()
    return result
