"""Forecast, training-curve and confusion-matrix figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rnnkit._atomic import atomic_file

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


def plot_confusion(
    matrix: np.ndarray,
    labels: Sequence[object],
    path: str | Path,
    title: str = "Confusion matrix",
) -> Path:
    """Counts of true classes (rows) against predicted classes (columns), written in cells.

    Args:
        matrix: ``(C, C)`` non-negative counts, e.g. ``evaluate(...)["confusion_matrix"]``.
        labels: the ``C`` class names, in the matrix's order.
    """
    matrix = np.asarray(matrix)
    if matrix.dtype.kind not in "biuf":
        raise TypeError(f"matrix: expected numeric counts, got dtype {matrix.dtype}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix: expected a non-empty square (C, C) array, got {matrix.shape}")
    if len(labels) != len(matrix):
        raise ValueError(f"labels: expected {len(matrix)} labels (C), got {len(labels)}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("matrix: expected finite non-negative counts")
    size = 2.5 + 0.45 * len(labels)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046)
    ticks = np.arange(len(labels))
    names = [str(label) for label in labels]
    axes.set(xticks=ticks, yticks=ticks, xticklabels=names, yticklabels=names, title=title,
             xlabel="predicted", ylabel="true")  # fmt: skip
    dark = matrix.max() / 2  # white text on dark cells
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, f"{count:g}", ha="center", va="center", fontsize=8,
                  color="white" if count > dark else "black")  # fmt: skip
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    """Write atomically: a temporary name, then a rename."""
    path = Path(path)
    figure.tight_layout()
    with atomic_file(path) as partial:
        figure.savefig(partial, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path
