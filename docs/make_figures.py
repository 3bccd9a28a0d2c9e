"""Draw the tutorial's figures into docs/figures/ (PNG, small, about two CPU-minutes).

Run from the repository root: .venv/bin/python docs/make_figures.py
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from rnnkit.experiments import adding_problem
from rnnkit.experiments.adding import LastStepRegressor
from rnnkit.viz import gradient_flow, gradient_norms, plot_hidden_states
from rnnkit.viz.figures import _save

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"

# (title, applications, steps, steps with an input, steps with an output, first decoder step)
TOPOLOGIES = [
    ("one-to-one", "feed-forward", 1, {0}, {0}, None),
    ("one-to-many", "captioning, music", 4, {0}, {0, 1, 2, 3}, None),
    ("many-to-one", "sentiment, stock, digits", 4, {0, 1, 2, 3}, {3}, None),
    ("many-to-many", "tagging, frame labels", 4, {0, 1, 2, 3}, {0, 1, 2, 3}, None),
    ("seq2seq", "translation, chatbots", 6, {0, 1, 2}, {3, 4, 5}, 3),
]


def topologies(path: Path) -> Path:
    """Unrolled networks: inputs x (bottom), the recurrent cell at each step (middle, the same
    weights every step), outputs y (top)."""
    figure = Figure(figsize=(13, 3.2))
    axes = figure.subplots(1, len(TOPOLOGIES), width_ratios=[2, 4, 4, 4, 6])
    for ax, (title, uses, steps, inputs, outputs, decoder) in zip(axes, TOPOLOGIES, strict=True):
        for t in range(steps):
            colour = "#f4b183" if decoder is not None and t >= decoder else "#9dc3e6"
            _box(ax, t, 1, "h", colour)
            if t in inputs:
                _box(ax, t, 0, "x", "#c5e0b4")
                _arrow(ax, (t, 0.3), (t, 0.7))
            if t in outputs:
                _box(ax, t, 2, "y", "#ffe699")
                _arrow(ax, (t, 1.3), (t, 1.7))
            if t > 0:
                _arrow(ax, (t - 0.7, 1), (t - 0.3, 1))
        ax.set(xlim=(-0.6, steps - 0.4), ylim=(-0.6, 2.6), aspect="equal")
        ax.set_title(f"{title}\n({uses})", fontsize=10)
        ax.set_axis_off()
    figure.suptitle("Topologies, unrolled in time: one cell, the same weights at every step "
                    "(orange: a decoder with its own weights)", fontsize=10)  # fmt: skip
    return _save(figure, path)


def _box(ax: Axes, x: float, y: float, label: str, colour: str) -> None:
    ax.add_patch(FancyBboxPatch((x - 0.3, y - 0.3), 0.6, 0.6, boxstyle="round,pad=0.02",
                                facecolor=colour, edgecolor="0.3"))  # fmt: skip
    ax.text(x, y, label, ha="center", va="center", fontsize=10)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", end, start, arrowprops={"arrowstyle": "->", "color": "0.3"})


def lstm_on_the_adding_problem(path: Path, steps: int = 800, length: int = 30) -> Path:
    """Gates and states of a small LSTM trained on the adding problem, over one test sequence:
    the gates react at the two marked steps and the cell state keeps what was written."""
    torch.manual_seed(0)
    model = LastStepRegressor("lstm", 2, 8, gate_bias=3.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        x, y = adding_problem(length, 32, seed=step + 1)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
    x, y = adding_problem(length, 1000, seed=-1)  # never a training batch
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model(x), y).item()
    markers = torch.nonzero(x[0, :, 1]).flatten().tolist()
    title = (f"An LSTM (8 units) trained on the adding problem (test MSE {mse:.4f}, guessing "
             f"the mean 0.167) reads one sequence; marked steps {markers}")  # fmt: skip
    return plot_hidden_states(path, model.layer, x[0], title=title)


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    written = [
        topologies(FIGURES / "topologies.png"),
        gradient_flow(
            FIGURES / "vanishing_gradients.png",
            gradient_norms(gate_bias=1.0),
            reference=gradient_norms(("lstm", "gru"), gate_bias=0.0),
        ),
        lstm_on_the_adding_problem(FIGURES / "lstm_gates.png"),
    ]
    for name in ("digits", "stock"):
        out = FIGURES / f"{name}.png"
        example(name).main(["--out", str(out)])
        written.append(out)
    for path in written:
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
