"""Worked exercises from the seed documents, small enough to run in seconds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.nn import LSTM


class SequenceRegressor(nn.Module):
    """Many-to-one regression: an LSTM reads ``(N, L, 1)``, a linear head maps ``h_L`` to ``y``."""

    def __init__(self, hidden_size: int = 16) -> None:
        super().__init__()
        self.lstm = LSTM(1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(N, L, 1)`` -> ``(N,)``."""
        _, (h_n, _) = self.lstm(x)  # h_n: (1, N, H)
        return self.head(h_n[-1]).squeeze(-1)


@dataclass
class NumberSequenceResult:
    final_loss: float
    predictions: dict[tuple[float, ...], float]


def arithmetic_windows(starts: Tensor, length: int = 3, step: float = 0.1) -> tuple[Tensor, Tensor]:
    """Windows ``a, a + step, ...`` and their next value: ``(N, length, 1)`` and ``(N,)``."""
    offsets = step * torch.arange(length + 1, dtype=starts.dtype)
    series = starts[:, None] + offsets  # (N, length + 1)
    return series[:, :length, None], series[:, length]


def number_sequence(
    queries: tuple[tuple[float, ...], ...] = ((0.1, 0.2, 0.3), (0.5, 0.6, 0.7)),
    epochs: int = 300,
    seed: int = 0,
) -> NumberSequenceResult:
    """Seed exercise 1: learn "0.1, 0.2, 0.3 -> 0.4" with MSE, then predict ``queries``.

    Trains on windows that start anywhere in ``[0, 0.5]`` (targets up to 0.8), so
    ``0.5, 0.6, 0.7 -> 0.8`` sits at the edge of what the model has seen.
    """
    torch.manual_seed(seed)
    x, y = arithmetic_windows(torch.rand(256) * 0.5)
    model = SequenceRegressor()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        query = torch.tensor(queries).unsqueeze(-1)  # (Q, L, 1)
        predicted = model(query).tolist()
    return NumberSequenceResult(loss.item(), dict(zip(queries, predicted, strict=True)))
