"""A user-defined cell in a few lines, trained through the generic ``Recurrent`` layer.

A Jordan-style cell (the previous *output* is fed back) learns the running average
``y_t = 0.5 * y_{t-1} + 0.5 * x_t`` of a noisy input; ``Recurrent`` adds stacking, lengths,
batching and the regularisers without the cell knowing about them.

    .venv/bin/python examples/custom_cell.py --steps 300
"""

from __future__ import annotations

import argparse

import torch

from rnnkit.nn import Recurrent, RecurrentCell


class JordanCell(RecurrentCell):
    def __init__(self, input_size: int, hidden_size: int, output_size: int = 1) -> None:
        super().__init__(input_size, (output_size,))  # the state is the previous output y
        self.ih = torch.nn.Linear(input_size, hidden_size)
        self.yh = torch.nn.Linear(output_size, hidden_size, bias=False)
        self.hy = torch.nn.Linear(hidden_size, output_size)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.ih(x)  # (L, N, H) for all steps at once

    def step(self, x_t, state, dropout_mask=None):
        (y,) = state
        if dropout_mask is not None:
            y = y * dropout_mask
        return (self.hy(torch.tanh(x_t + self.yh(y))),)


def running_average(n: int, length: int, generator: torch.Generator):
    """Inputs ``(L, N, 1)`` and targets ``y_t = 0.5 y_{t-1} + 0.5 x_t`` ``(L, N, 1)``."""
    x = torch.randn(length, n, 1, generator=generator)
    y, targets = torch.zeros(n, 1), []
    for x_t in x:
        y = 0.5 * y + 0.5 * x_t
        targets.append(y)
    return x, torch.stack(targets)


def main(steps: int = 300, hidden: int = 16, seed: int = 0) -> tuple[float, float]:
    """Train; return (test MSE of the model, test MSE of predicting 0)."""
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    layer = Recurrent(JordanCell, 1, hidden)
    optimiser = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = running_average(32, 20, data)
        loss = torch.nn.functional.mse_loss(layer(x)[0], y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    x, y = running_average(256, 50, data)
    with torch.no_grad():
        model = torch.nn.functional.mse_loss(layer(x)[0], y).item()
    return model, y.pow(2).mean().item()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=16)
    arguments = parser.parse_args()
    model, zero = main(arguments.steps, arguments.hidden)
    print(f"test MSE: JordanCell {model:.5f}, predicting 0 {zero:.5f}")
