"""Figures (matplotlib): forecasts and training curves. Each function writes a PNG (or SVG,
by the file's suffix) and returns the figure's path."""

from rnnkit.viz.figures import plot_forecast, plot_training

__all__ = ["plot_forecast", "plot_training"]
