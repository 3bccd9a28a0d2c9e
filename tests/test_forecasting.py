"""Series loading, metrics, baselines and the Forecaster, on data with a known structure."""

import csv
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _model_files import rewrite_weights
from safetensors.torch import load_file
from typer.testing import CliRunner

from rnnkit import metrics
from rnnkit.atomic import atomic_file
from rnnkit.cli import app
from rnnkit.data import TimeSeries, load_series, read_series
from rnnkit.data.windows import Scaler, make_windows, window_origins
from rnnkit.tasks import Forecaster
from rnnkit.tasks.forecaster import ForecastNetwork
from rnnkit.train import DivergedError, ModelFileError, TrainConfig

SEASON = 24


def seasonal_ar_series(length: int = 960, seed: int = 0) -> np.ndarray:
    """A daily cycle plus a persistent AR(1) deviation (phi = 0.95), hourly steps.

    The seasonal-naive forecast cannot see the deviation's persistence; a model that reads
    the recent change from one season earlier can.
    """
    rng = np.random.default_rng(seed)
    deviation = np.zeros(length)
    for t in range(1, length):
        deviation[t] = 0.95 * deviation[t - 1] + rng.normal(scale=0.3)
    return 10 + 3 * np.sin(2 * np.pi * np.arange(length) / SEASON) + deviation


def write_csv(path: Path, columns: dict[str, list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
    return path


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    values = seasonal_ar_series()
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(len(values)) * np.timedelta64(1, "h")
    return write_csv(
        tmp_path / "load.csv",
        {"time": [str(s) for s in stamps], "load": values.round(6).tolist()},
    )


# ----------------------------------------------------------------------------- loading


def test_read_series_matches_the_file(series_csv: Path) -> None:
    series = read_series(series_csv, "load", date_column="time")
    np.testing.assert_allclose(series.values[:, 0], seasonal_ar_series().round(6))
    assert series.timestamps[1] - series.timestamps[0] == np.timedelta64(60, "m")


def test_bundled_series_goes_through_the_same_loader() -> None:
    series = load_series("electricity")
    assert series.values.shape == (4032, 1)  # 12 weeks of half-hours (DATA.md)
    assert np.all(np.diff(series.timestamps) == np.timedelta64(30, "m"))


@pytest.mark.parametrize(
    ("fill", "expected"),
    [
        ("ffill", [1.0, 1.0, 1.0, 4.0]),
        ("interpolate", [1.0, 2.0, 3.0, 4.0]),
        ("zero", [1, 0, 0, 4]),
    ],
)
def test_missing_values_are_filled_only_when_asked(tmp_path: Path, fill: str, expected) -> None:
    path = write_csv(tmp_path / "gaps.csv", {"y": [1, "", "NA", 4]})
    with pytest.raises(ValueError, match=r"column 'y' of gaps.csv: 2 missing values .*row 2"):
        read_series(path, "y")
    np.testing.assert_allclose(read_series(path, "y", fill=fill).values[:, 0], expected)


@pytest.mark.parametrize(
    ("columns", "target", "message"),
    [
        ({"y": [1, 2]}, "z", r"column 'z' not found in bad.csv; its columns are \['y'\]"),
        ({"y": [1, "high"]}, "y", r"column 'y' of bad.csv: expected numbers, got 'high' at"),
    ],
)
def test_bad_csv_files_name_the_problem(tmp_path: Path, columns, target, message) -> None:
    with pytest.raises(ValueError, match=message):
        read_series(write_csv(tmp_path / "bad.csv", columns), target)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file .*nothing\.csv"):
        read_series(tmp_path / "nothing.csv", "y")


# ----------------------------------------------------------------------------- metrics


def test_metrics_against_closed_forms() -> None:
    truth, forecast = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 1.0, 4.0])
    assert metrics.mae(forecast, truth) == pytest.approx(3 / 4)
    assert metrics.rmse(forecast, truth) == pytest.approx(np.sqrt(5 / 4))
    history = np.array([0.0, 1.0, 3.0, 6.0])  # naive (season 1) in-sample MAE = 2
    assert metrics.mase(forecast, truth, history, 1) == pytest.approx(3 / 8)


def test_baselines_are_exact_on_a_purely_seasonal_series() -> None:
    values = np.tile(np.array([5.0, 7.0, 6.0, 9.0]), 30)
    origins = metrics.rolling_origins(len(values), 24, 6)
    truth = np.stack([values[t : t + 6] for t in origins])
    np.testing.assert_allclose(metrics.seasonal_naive(values, origins, 6, 4), truth)


def test_windows_and_scaler() -> None:
    values = np.arange(20.0).reshape(10, 2)
    scaler = Scaler.fit(values[:6])
    np.testing.assert_allclose(scaler.transform(values[:6]).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaler.transform(values)), values)
    origins = window_origins(0, 10, 3, 2, 1)
    assert origins.tolist() == [3, 4, 5, 6, 7, 8]
    inputs, outputs = make_windows(values, values[:, :1], origins, 3, 2)
    np.testing.assert_array_equal(inputs[0], values[0:3])
    np.testing.assert_array_equal(outputs[-1, :, 0], values[8:10, 0])


# ----------------------------------------------------------------------------- forecaster


def tiny_forecaster(**options) -> Forecaster:
    return Forecaster(
        lookback=24, horizon=12, stride=2, hidden_size=16, season=SEASON, **options,
        training=TrainConfig(max_epochs=6, batch_size=32, learning_rate=1e-2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained() -> tuple[Forecaster, TimeSeries]:
    series = TimeSeries(seasonal_ar_series()[:, None], ("load",))
    model = tiny_forecaster()
    model.fit(series.slice(stop=-120), val_size=120, progress=False)
    return model, series


@pytest.fixture
def saved(trained, tmp_path: Path) -> Path:
    """The trained forecaster's model folder, the test's own to damage."""
    return trained[0].save(tmp_path / "model")


def test_forecaster_beats_seasonal_naive_where_the_deviation_persists(trained) -> None:
    model, series = trained
    report = model.evaluate(series, test_size=120)
    assert report.truth.shape == (10, 12, 1)
    ours, naive = report.metrics["rnnkit"], report.metrics["seasonal naive"]
    assert ours["MAE"] < 0.8 * naive["MAE"], report.metrics
    assert model.history.val_loss[model.history.best_epoch] == min(model.history.val_loss)


def test_save_load_gives_identical_predictions(trained, tmp_path: Path) -> None:
    model, series = trained
    model.save(tmp_path / "model")
    loaded = Forecaster.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(series), model.predict(series))
    assert not list(tmp_path.glob(".model*")), "no temporary folders left behind"


def test_same_seed_same_predictions(trained) -> None:
    model, series = trained
    again = tiny_forecaster()
    again.fit(series.slice(stop=-120), val_size=120, progress=False)
    np.testing.assert_allclose(again.predict(series), model.predict(series), rtol=1e-6)


def test_corrupt_or_foreign_model_directories_are_rejected(trained, tmp_path: Path) -> None:
    model, _ = trained
    with pytest.raises(ModelFileError, match="is not an rnnkit model"):
        Forecaster.load(tmp_path)
    saved = model.save(tmp_path / "model")
    rewrite_weights(saved, raw=b"\x00garbage")
    with pytest.raises(ModelFileError, match=r"weights\.safetensors .* missing or corrupt"):
        Forecaster.load(saved)
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps(config | {"task": "classifier"}))
    with pytest.raises(ModelFileError, match="is a 'classifier' model, expected 'forecaster'"):
        Forecaster.load(saved)


def test_a_model_folder_with_weights_that_are_not_finite_is_refused(saved: Path) -> None:
    weights = load_file(saved / "weights.safetensors")
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    rewrite_weights(saved, weights)
    with pytest.raises(ModelFileError, match=rf"is corrupt: {re.escape(name)} holds values that"):
        Forecaster.load(saved)
    result = CliRunner().invoke(app, ["predict", str(saved), "electricity"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "holds values that are not finite" in " ".join(result.output.split())


@pytest.mark.parametrize(("field", "value"), [("hidden_size", 10**6), ("num_layers", 3)])
def test_a_config_that_does_not_match_its_weights_is_refused_before_allocating(
    saved: Path, field: str, value: int
) -> None:
    """hidden_size 10**6 would ask for 16 TB: the folder is refused on the meta device."""
    config = json.loads((saved / "config.json").read_text())
    config["model"][field] = value
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ModelFileError, match=r"does not hold the weights its config.json describes"
    ):
        Forecaster.load(saved)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("scaler"), "has no 'scaler' field"),
        (lambda c: c.pop("model"), "has no 'model' field"),
        (lambda c: c["model"].update(hidden_size="wide"), "holds an invalid configuration"),
        (lambda c: c["training"].update(learning_rate=-1), "holds an invalid configuration"),
        (lambda c: c["scaler"].update(mean="abc"), "holds scaler .* expected mean and std"),
        (lambda c: c["scaler"].update(std=[0]), "holds scaler .* expected mean and std"),
        (lambda c: c.update(season=0), "holds season 0; expected an int >= 1"),
    ],
)
def test_a_config_json_with_missing_or_invalid_fields_is_one_model_file_error(
    saved: Path, change, message: str
) -> None:
    config = json.loads((saved / "config.json").read_text())
    change(config)
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=message):
        Forecaster.load(saved)
    result = CliRunner().invoke(app, ["predict", str(saved), "electricity"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_config_json_nested_beyond_any_use_is_refused(saved: Path) -> None:
    (saved / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelFileError, match="nests too deeply"):
        Forecaster.load(saved)


def test_saved_files_follow_the_umask_and_killed_writes_are_cleaned_up(
    trained, tmp_path: Path
) -> None:
    model, _ = trained
    mask = os.umask(0o027)
    try:
        saved = model.save(tmp_path / "model")
        leftover = tmp_path / "model" / ".weights.safetensors.killed.partial"
        leftover.write_bytes(b"half")
        with atomic_file(saved / "weights.safetensors") as staging:
            staging.write_bytes((saved / "weights.safetensors").read_bytes())
    finally:
        os.umask(mask)
    assert (saved.stat().st_mode & 0o777) == 0o750
    for name in ("config.json", "weights.safetensors"):
        assert ((saved / name).stat().st_mode & 0o777) == 0o640, name
    assert not leftover.exists()
    series = TimeSeries(seasonal_ar_series()[:, None], ("load",))
    np.testing.assert_array_equal(Forecaster.load(saved).predict(series), model.predict(series))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_saving_over_a_model_folder_swaps_it_in_one_step(
    trained, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Linux the new folder and the old one trade places atomically (no moment without a
    model folder, so no rename of the folder is needed), and a killed save's staging
    folders are removed."""
    model, series = trained
    leftovers = [saved.parent / ".model.k1ll3d_x", saved.parent / ".model.old.k1ll3d_x"]
    for leftover in leftovers:
        (leftover / "model").mkdir(parents=True)
    (saved / "stale").write_text("from the old folder")

    def no_renames(*args: object) -> None:
        raise AssertionError("the folder was renamed, not exchanged")

    monkeypatch.setattr(os, "replace", no_renames)
    model.save(saved)
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "weights.safetensors"]
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]
    np.testing.assert_array_equal(Forecaster.load(saved).predict(series), model.predict(series))


def test_a_series_too_short_for_the_windows_is_rejected() -> None:
    short = TimeSeries(seasonal_ar_series()[:60, None], ("load",))
    with pytest.raises(ValueError, match="60 steps are too few"):
        tiny_forecaster().fit(short, val_size=12, progress=False)


# ----------------------------------------------------------------------------- command line

runner = CliRunner()


def test_forecast_command_trains_plots_and_saves(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["forecast", "--data", str(series_csv), "--target", "load", "--date-column", "time",
            "--lookback", "24", "--horizon", "12", "--hidden-size", "8", "--epochs", "2",
            "--season", "24", "--test-size", "120", "--val-size", "120",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("rnnkit", "naive", "seasonal naive", "AutoETS"):
        assert name in result.stdout
    assert (out / "forecast.png").stat().st_size > 10_000
    assert (out / "training.png").stat().st_size > 10_000
    assert (out / "logs" / "metrics.csv").read_text().startswith("epoch")
    predicted = runner.invoke(app, ["predict", str(out / "model"), str(series_csv)])
    assert predicted.exit_code == 0, predicted.output
    assert len(json.loads(predicted.stdout)["load"]) == 12
    # The folder records the file it was trained on, but a model folder never chooses a
    # file to open (one pointing at /etc/passwd must not get it read): the user names it.
    evaluate = ["evaluate", str(out / "model"), "--test-size", "120"]
    refused = runner.invoke(app, evaluate)
    assert refused.exit_code == 2 and "pass it with --data FILE" in refused.stderr
    evaluated = runner.invoke(app, [*evaluate, "--data", str(series_csv)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "AutoETS" in evaluated.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv", "--target", "y"], "no such file 'missing.csv'"),
        (["--data", "electricity", "--target", "price"], "column 'price' not found"),
        # printed literally: neither rich markup nor an emoji code
        (["--data", "electricity", "--target", "[/x]:x:"], "column '[/x]:x:' not found"),
        # an output folder that is a file: the OS's words, in one line
        (["--data", "electricity", "--out", "{file}"], "Not a directory"),
        (["--data", "electricity", "--cell", "transformer"], "cell: expected one of"),
    ],
)
def test_forecast_errors_are_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")
    args = [a.format(file=tmp_path / "file") for a in args]
    result = runner.invoke(app, ["forecast", "--epochs", "1", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_demo_runs_the_main_job_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "seasonal naive" in result.stdout and "AutoETS" in result.stdout
    # weekly and daily seasons are confirmed; the week is the model's (its seasonal naive
    # forecasts best), and the day gets its own baseline
    assert "Season: 336 (" in result.stdout and "seasonal naive (48)" in result.stdout
    assert (out / "forecast.png").is_file() and (out / "model" / "weights.safetensors").is_file()
    evaluated = runner.invoke(app, ["evaluate", str(out / "model")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "AutoETS" in evaluated.stdout and "seasonal naive (48)" in evaluated.stdout


@pytest.mark.slow
def test_quality_bar_electricity_mase_below_the_baselines() -> None:
    """The bar: on the last two weeks, MASE below seasonal naive and AutoETS."""
    series = load_series("electricity")
    model = Forecaster(lookback=96)
    model.fit(series.slice(stop=-672), val_size=672, progress=False)
    scores = {name: m["MASE"] for name, m in model.evaluate(series, 672).metrics.items()}
    assert scores["rnnkit"] < min(scores["seasonal naive"], scores["AutoETS"]), scores


# ------------------------------------------------------------------------ failing training


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_series_with_a_value_that_is_not_finite_is_refused(bad: float) -> None:
    values = seasonal_ar_series()[:, None].copy()
    values[57, 0] = bad
    with pytest.raises(ValueError, match=rf"got {bad} in column 'load' at row 57 "):
        TimeSeries(values, ("load",))


def test_a_diverging_run_stops_at_once_and_keeps_finite_weights(tmp_path: Path) -> None:
    """A learning rate of 1e30 makes the first loss infinite or NaN: training stops there
    with a clear error, the network is back at finite weights and no checkpoint of the
    diverged weights is written."""
    series = TimeSeries(seasonal_ar_series()[:, None], ("load",))
    training = TrainConfig(max_epochs=3, batch_size=32, learning_rate=1e30)
    model = Forecaster(lookback=24, horizon=12, stride=2, hidden_size=16, season=SEASON,
                       training=training)  # fmt: skip
    with pytest.raises(DivergedError, match=r"^training: the (train|val) loss is (nan|inf)"):
        model.fit(series, val_size=120, log_dir=tmp_path, progress=False)
    assert all(bool(p.isfinite().all()) for p in model.network.parameters())
    checkpoint = tmp_path / "checkpoints" / "last.safetensors"
    assert not checkpoint.exists() or all(
        bool(t.isfinite().all()) for t in load_file(checkpoint).values() if t.is_floating_point()
    )


def test_the_cli_reports_a_diverging_run_in_one_line_and_saves_nothing(
    series_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode = ForecastNetwork.encode
    monkeypatch.setattr(ForecastNetwork, "encode", lambda *a, **k: encode(*a, **k) * np.nan)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "forecast", "--data", str(series_csv), "--target", "load", "--lookback", "24",
        "--horizon", "12", "--season", str(SEASON), "--epochs", "2", "--test-size", "120",
        "--val-size", "120", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code != 0
    assert "training: the" in result.output and "Traceback" not in result.output
    assert not (out / "model").exists()
