"""Truncated backpropagation through time (TBPTT) on one long series, with ``detach_state``.

The bundled series holds 4,032 half-hourly electricity demands (12 weeks): too long to
backpropagate through in one piece. TBPTT cuts it into chunks of ``--chunk`` steps (96 = two
days). The LSTM state is carried from one chunk into the next, so the model still sees the
whole past, but ``detach_state`` cuts the graph at each boundary, so every backward pass
covers one chunk and its cost does not grow with the length of the series.

A next-step predictor trains on the first 80% (standardised by its mean and std) and runs on
through the last 20%; its validation MSE is printed beside "next = current" and the mean.

Run: python examples/tbptt_long_series.py [--epochs 8] [--hidden 32] [--chunk 96]
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.nn import LSTM, detach_state


def load_series() -> torch.Tensor:
    """Demand in MW, ``(T,)``."""
    path = importlib.resources.files("rnnkit") / "data/files/electricity_taylor.csv"
    with path.open(newline="") as file:
        return torch.tensor([float(row["demand_mw"]) for row in csv.DictReader(file)])


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=96, help="steps per truncated backward")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    series = load_series()
    split = int(0.8 * len(series))
    mean, std = series[:split].mean(), series[:split].std()
    z = ((series - mean) / std).view(-1, 1, 1)  # (T, N = 1, 1)
    lstm, head = LSTM(1, args.hidden), nn.Linear(args.hidden, 1)
    optimiser = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-2)

    for epoch in range(args.epochs):
        state, total = None, 0.0
        for start in range(0, split - 1, args.chunk):
            stop = min(start + args.chunk, split - 1)
            output, state = lstm(z[start:stop], state)  # (L, 1, H), state carried in
            loss = F.mse_loss(head(output), z[start + 1 : stop + 1])  # next-step targets
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            state = detach_state(state)  # keep the values, drop the graph behind them
            total += loss.item() * (stop - start)
        print(f"epoch {epoch + 1}: train MSE {total / (split - 1):.4f}")

    with torch.no_grad():  # one pass over everything: the state is warm when validation starts
        prediction = head(lstm(z[:-1])[0])  # prediction[t] forecasts z[t + 1]
    target = z[split:]
    results = {
        "val_mse": F.mse_loss(prediction[split - 1 :], target).item(),
        "naive_mse": F.mse_loss(z[split - 1 : -1], target).item(),
        "mean_mse": target.square().mean().item(),  # the training mean is 0 after scaling
    }
    print(f"validation MSE (standardised): LSTM {results['val_mse']:.4f}, "
          f"naive next = current {results['naive_mse']:.4f}, training mean "
          f"{results['mean_mse']:.4f}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
