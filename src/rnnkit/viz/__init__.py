"""Figures (matplotlib): forecasts, training curves, confusion matrices and what happens inside
a recurrent layer. Each function writes a PNG (or SVG, by the file's suffix) and returns the
figure's path."""

from rnnkit.viz.attention import plot_attention
from rnnkit.viz.dynamics import gradient_flow, gradient_norms, lstm_gates, plot_hidden_states
from rnnkit.viz.figures import plot_confusion, plot_forecast, plot_training

__all__ = [
    "gradient_flow",
    "gradient_norms",
    "lstm_gates",
    "plot_attention",
    "plot_confusion",
    "plot_forecast",
    "plot_hidden_states",
    "plot_training",
]
