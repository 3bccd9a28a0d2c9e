"""Shared test settings: deterministic seeds and a CI-sized hypothesis profile."""

import os

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
