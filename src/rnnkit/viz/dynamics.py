"""What happens inside a recurrent layer: gradient flow through time and hidden activity.

* :func:`gradient_norms` / :func:`gradient_flow`: ``||dL/dh_t||`` against ``t`` for a loss on
  the last output only. In a simple RNN the gradient is multiplied by ``W_hh^T diag(tanh')``
  at every step back and shrinks geometrically (Bengio et al. 1994; Hochreiter 1991). In an
  LSTM it also flows along the cell state, multiplied only by the forget gate, and in a GRU
  by the update gate ``z``, so it survives as long as those gates stay open.
* :func:`lstm_gates` / :func:`plot_hidden_states`: hidden units over time, and an LSTM's
  gate activations recomputed from its weights.

Shape letters: ``N`` batch, ``L`` length, ``H_in`` input features, ``H`` hidden size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from rnnkit.checks import check_int, check_shape
from rnnkit.experiments.adding import adding_problem, set_memory_gate_bias
from rnnkit.functional.cells import lstm_gates as lstm_gates_of
from rnnkit.nn import LSTM, RecurrentBase, make_layer
from rnnkit.viz.figures import _save

LSTM_GATES = ("i", "f", "g", "o")  # torch.nn's order of the gate blocks


def gradient_norms(
    cells: Sequence[str] = ("rnn", "lstm", "gru"),
    length: int = 100,
    hidden_size: int = 32,
    batch_size: int = 32,
    gate_bias: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Mean over the batch of ``||dL/dh_t||`` for ``t = 0 .. L-1``, per untrained cell.

    Every cell gets the same seeded adding-problem batch (:func:`adding_problem`), the same
    hidden size and a seeded linear read-out of ``h_{L-1}``; ``L`` is the read-out's MSE
    against the target, so only the last step is scored. The per-step states come from the
    layer's own recurrence (``layer.recurrence(0, 0)``), stepped one at a time so autograd
    keeps each ``h_t``. Everything runs in float64: an RNN's gradient at ``t = 0`` falls
    below float32's range after about 100 steps.

    Args:
        gate_bias: added to the memory gate's bias of LSTM (``f``) and GRU (``z``); see
            :func:`rnnkit.experiments.set_memory_gate_bias`. 0 keeps torch.nn's
            initialisation, whose half-open gates forget about as fast as an RNN does.

    Returns:
        ``{cell: (L,)}`` float64 arrays.
    """
    check_int("length", length)
    check_int("hidden_size", hidden_size)
    check_int("batch_size", batch_size)
    x, y = adding_problem(max(length, 2), batch_size, seed=seed)
    x, y = x[:, :length].double(), y.double()  # (N, L, 2), (N,)
    norms = {}
    for cell in cells:
        torch.manual_seed(seed)
        layer = make_layer(cell, 2, hidden_size).double()
        set_memory_gate_bias(layer, cell, gate_bias)
        readout = torch.nn.Linear(layer.state_sizes[0], 1).double()
        states = _step_states(layer, x)
        loss = F.mse_loss(readout(states[-1]).squeeze(-1), y)
        grads = torch.autograd.grad(loss, states)
        norms[cell] = torch.stack([g.norm(dim=-1).mean() for g in grads]).numpy()
    return norms


def _step_states(layer: RecurrentBase, x: Tensor) -> list[Tensor]:
    """``h_t`` ``(N, H)`` for every step of ``x`` ``(N, L, H_in)``, each a node of the graph."""
    recurrence = layer.recurrence(0, 0)
    inputs = recurrence.project(x.transpose(0, 1))  # (L, N, G)
    state = tuple(x.new_zeros(x.shape[0], size) for size in layer.state_sizes)
    states = []
    for gi in inputs.unbind(0):
        state = recurrence.step(gi, state)
        states.append(state[0])
    return states


def decay_ratio(norms: np.ndarray) -> float:
    """``||dL/dh_0|| / ||dL/dh_{L-1}||``: how much of the gradient reaches the first step."""
    return float(norms[0] / norms[-1])


def gradient_flow(
    path: str | Path,
    norms: dict[str, np.ndarray] | None = None,
    reference: dict[str, np.ndarray] | None = None,
    **options: object,
) -> Path:
    """Plot ``||dL/dh_t||`` against ``t`` on a log scale, one line per cell.

    Args:
        norms: ``{label: (L,)}`` from :func:`gradient_norms`; computed with ``options``
            when None.
        reference: drawn dashed and faint, e.g. the gated cells with ``gate_bias=0``.
    """
    if norms is None:
        norms = gradient_norms(**options)  # type: ignore[arg-type]
    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    colours = {}
    for label, series in norms.items():
        (line,) = axes.plot(_positive(series), lw=1.8, label=label)
        colours[label] = line.get_color()
    for label, series in (reference or {}).items():
        axes.plot(
            _positive(series),
            lw=1.2,
            ls="--",
            alpha=0.6,
            color=colours.get(label),
            label=f"{label} (gate bias 0)",
        )
    length = len(next(iter(norms.values())))
    axes.set(
        title="Gradient of a last-step loss reaching each earlier step (untrained cells)",
        xlabel="time step t",
        ylabel="||dL/dh_t||  (mean over the batch)",
        yscale="log",
        xlim=(0, length - 1),
    )
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def _positive(series: np.ndarray) -> np.ndarray:
    """Zeros (underflow) cannot be drawn on a log axis: leave a gap instead."""
    return np.where(series > 0, series, np.nan)


def _check_sequence(x: Tensor) -> None:
    if x.dim() != 2 or x.shape[0] == 0:
        shape = tuple(x.shape)
        raise ValueError(f"x: expected a non-empty sequence of shape (L, H_in), got {shape}")


@torch.no_grad()
def lstm_gates(layer: LSTM, x: Tensor) -> dict[str, np.ndarray]:
    """Hidden state and gate activations of the first layer of an LSTM over one sequence.

    The states come from the layer's own recurrence; the gates are recomputed from its
    weights as ``split_4(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` through sigmoid
    (``i, f, o``) and tanh (``g``), the equations of
    :func:`rnnkit.functional.lstm_recurrence`.

    Args:
        layer: an :class:`rnnkit.nn.LSTM` (a projection, ``proj_size > 0``, is allowed).
        x: one sequence ``(L, H_in)``.

    Returns:
        ``{"h": (L, P), "c": (L, H), "i" | "f" | "g" | "o": (L, H)}`` arrays.
    """
    if not isinstance(layer, LSTM):
        raise TypeError(f"layer: expected an rnnkit.nn.LSTM, got {type(layer).__name__}")
    _check_sequence(x)
    check_shape("x", x, (x.shape[0], layer.input_size), "(L, H_in)")
    recurrence = layer.recurrence(0, 0)
    w_hh, b_hh = layer.weight_hh_l0, getattr(layer, "bias_hh_l0", None)
    inputs = recurrence.project(x.unsqueeze(1).to(w_hh.dtype))  # (L, 1, 4H)
    state = tuple(inputs.new_zeros(1, size) for size in layer.state_sizes)
    record: dict[str, list[Tensor]] = {name: [] for name in ("h", "c", *LSTM_GATES)}
    for gi in inputs.unbind(0):
        gates = dict(zip(LSTM_GATES, lstm_gates_of(gi, state[0], w_hh, b_hh), strict=True))
        for name in LSTM_GATES:
            record[name].append(gates[name])  # (1, H)
        state = recurrence.step(gi, state)
        record["h"].append(state[0])
        record["c"].append(state[1])
    return {name: torch.cat(values).cpu().numpy() for name, values in record.items()}


@torch.no_grad()
def plot_hidden_states(
    path: str | Path, layer: RecurrentBase, x: Tensor, title: str = "Hidden units over time"
) -> Path:
    """Heatmap of the hidden units (rows) over time (columns) for one sequence; for an LSTM,
    the gates ``i, f, g, o`` and the cell state beside it.

    Args:
        layer: any rnnkit layer (the first layer, forward direction, is shown).
        x: one sequence ``(L, H_in)``.
    """
    if isinstance(layer, LSTM):
        panels = lstm_gates(layer, x)
        names = ["h", "c", "i", "f", "g", "o"]
    else:
        _check_sequence(x)
        states = _step_states(layer, x.unsqueeze(0).to(next(layer.parameters()).dtype))
        panels = {"h": torch.cat(states).cpu().numpy()}
        names = ["h"]
    labels = {
        "h": "hidden state h",
        "c": "cell state c",
        "i": "input gate i",
        "f": "forget gate f",
        "g": "candidate g",
        "o": "output gate o",
    }
    columns = 2 if len(names) > 1 else 1
    rows = (len(names) + columns - 1) // columns
    figure = Figure(figsize=(6 * columns, 2.6 * rows + 0.6))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        values = panels[name].T  # (units, L)
        limits = (0.0, 1.0) if name in ("i", "f", "o") else (-1.0, 1.0)
        if name == "c":
            bound = float(np.abs(values).max()) or 1.0
            limits = (-bound, bound)
        cmap = "viridis" if name in ("i", "f", "o") else "RdBu_r"
        image = ax.imshow(
            values,
            aspect="auto",
            cmap=cmap,
            vmin=limits[0],
            vmax=limits[1],
            interpolation="nearest",
        )
        ax.set(title=labels[name], xlabel="time step", ylabel="unit")
        figure.colorbar(image, ax=ax, fraction=0.04)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    figure.suptitle(title)
    return _save(figure, path)
