"""Forecast and training-curve figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

# Figures are built without pyplot: no global state and no display needed (servers, CI).


def plot_forecast(
    path: str | Path,
    history: np.ndarray,
    truth: np.ndarray,
    forecasts: dict[str, np.ndarray],
    title: str = "Forecast",
    ylabel: str = "value",
) -> Path:
    """History, truth and forecasts of one target.

    Args:
        history: ``(T_h,)`` steps before the forecasts.
        truth: ``(T_f,)`` actual values over the forecast period.
        forecasts: ``{label: (T_f,)}``; the first is drawn boldest.
    """
    figure = Figure(figsize=(11, 4))
    axes = figure.subplots()
    steps = np.arange(len(history) + len(truth))
    axes.plot(steps[: len(history)], history, color="0.55", lw=1, label="history")
    axes.plot(steps[len(history) :], truth, color="black", lw=1.4, label="truth")
    for i, (label, forecast) in enumerate(forecasts.items()):
        axes.plot(steps[len(history) :], forecast, lw=1.6 if i == 0 else 0.9, label=label)
    axes.axvline(len(history), color="0.3", ls=":", lw=1)
    axes.set(title=title, xlabel="step", ylabel=ylabel)
    axes.legend(loc="upper left", ncol=len(forecasts) + 2, fontsize=8)
    return _save(figure, path)


def plot_training(path: str | Path, train_loss: list[float], val_loss: list[float]) -> Path:
    """Training and validation loss per epoch, with the restored best epoch marked."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    epochs = np.arange(1, len(val_loss) + 1)
    axes.plot(epochs[: len(train_loss)], train_loss, marker="o", ms=3, label="train")
    axes.plot(epochs, val_loss, marker="o", ms=3, label="validation")
    if val_loss:
        best = int(np.argmin(val_loss))
        axes.scatter([epochs[best]], [val_loss[best]], s=80, facecolors="none", edgecolors="red",
                     label=f"best (epoch {epochs[best]})")  # fmt: skip
    axes.set(title="Training curves", xlabel="epoch", ylabel="loss (MSE, scaled)", yscale="log")
    axes.legend()
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    """Write atomically: a temporary name, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    figure.tight_layout()
    figure.savefig(partial, dpi=120, format=path.suffix.lstrip(".") or "png")
    partial.replace(path)
    return path
