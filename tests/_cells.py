"""What every cell's test checks against its independent reference (tests/test_cell_*.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def assert_same_run(
    output: Tensor,
    expected: Tensor,
    inputs: tuple[Tensor, ...],
    loss: Callable[[Tensor], Tensor] = torch.sum,
) -> None:
    """``output`` equals ``expected`` (float64, 1e-12), and so do the gradients of ``loss`` of
    each with respect to ``inputs`` (the input and the layer's parameters, 1e-10)."""
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-12)
    ours = torch.autograd.grad(loss(output), inputs)
    theirs = torch.autograd.grad(loss(expected), inputs)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
