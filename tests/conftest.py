"""Shared test settings: deterministic seeds and a CI-sized hypothesis profile."""

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("RNNKIT_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("default")
# Tiny test tensors run fastest, and deterministically, on one thread.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], ModuleType]:
    """Import a script of benchmarks/ by name: with benchmarks/ on sys.path while it imports,
    as when it runs from there and imports its sibling scripts."""
    folder = str(Path(__file__).parents[1] / "benchmarks")

    def load(name: str) -> ModuleType:
        sys.path.insert(0, folder)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(folder)

    return load


@pytest.fixture
def bf16_lstm() -> None:
    """Skip where torch.nn.LSTM itself cannot run under bfloat16 autocast: oneDNN, its CPU
    kernel, has no bfloat16 LSTM for some CPUs (seen on an AVX2-only AMD EPYC)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 2)(torch.zeros(1, 1, 2))
    except RuntimeError as error:
        pytest.skip(f"torch.nn.LSTM cannot run bfloat16 on this CPU: {error}")


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every matplotlib Figure rnnkit.viz saves during the test, in order (still saved)."""
    import rnnkit.viz.figures as figures

    saved = []
    save = figures._save

    def capture(figure, path):
        saved.append(figure)
        return save(figure, path)

    monkeypatch.setattr(figures, "_save", capture)
    return saved


@pytest.fixture(scope="session")
def small_forecaster(tmp_path_factory: pytest.TempPathFactory):
    """A tiny trained forecaster (one column, calendar features, season 12): its saved
    folder, its runtime file and the series it was trained on (200 half-hour steps)."""
    import numpy as np

    from rnnkit.data import TimeSeries
    from rnnkit.export import export_runtime
    from rnnkit.tasks import Forecaster
    from rnnkit.train import TrainConfig

    rng = np.random.default_rng(7)
    steps = np.arange(200)
    load = 10 + 3 * np.sin(2 * np.pi * steps / 12) + rng.normal(0, 0.3, steps.size)
    stamps = np.datetime64("2024-03-01T00:00") + steps * np.timedelta64(30, "m")
    series = TimeSeries(load[:, None], ("load",), 1, stamps)
    model = Forecaster(
        lookback=8, horizon=4, stride=2, cell="gru", hidden_size=4, season=12,
        blend=False, transform="none", base="seasonal naive",
        training=TrainConfig(max_epochs=1, batch_size=32),
    )  # fmt: skip
    model.fit(series.slice(stop=-40), val_size=40, progress=False)
    folder = model.save(tmp_path_factory.mktemp("small_forecaster") / "model")
    return folder, export_runtime(folder, folder.parent / "model.rnnkit"), series
