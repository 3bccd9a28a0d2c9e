"""JANET against an independent step-by-step reference written from the paper's equations
(van der Westhuizen & Lasenby 2018, eqs. 9-12), and against what its tied gates imply."""

from __future__ import annotations

import pytest
import torch
from _cells import assert_same_run
from torch import Tensor

from rnnkit import nn

F64 = torch.float64


def reference(cell: nn.JANETCell, x: Tensor, h0: Tensor) -> Tensor:
    """``x`` ``(L, N, H_in)``, ``h0`` ``(N, H)`` -> ``h`` ``(L, N, H)``."""
    size = cell.hidden_size
    w_f, w_c = cell.weight_ih[:size], cell.weight_ih[size:]
    u_f, u_c = cell.weight_hh[:size], cell.weight_hh[size:]
    b_f = 0 if cell.bias_f is None else cell.bias_f
    b_c = 0 if cell.bias_c is None else cell.bias_c
    c, cs = h0, []
    for x_t in x:
        s = x_t @ w_f.T + c @ u_f.T + b_f
        c_tilde = torch.tanh(x_t @ w_c.T + c @ u_c.T + b_c)
        c = torch.sigmoid(s) * c + (1 - torch.sigmoid(s - cell.beta)) * c_tilde
        cs.append(c)
    return torch.stack(cs)


@pytest.mark.parametrize("options", [{}, {"beta": 2.5}, {"bias": False}], ids=str)
def test_layer_matches_the_paper_in_values_and_gradients(options):
    torch.manual_seed(0)
    layer = nn.JANET(4, 6, dtype=F64, **options)
    x = torch.randn(8, 3, 4, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 3, 6, dtype=F64)
    out, (h_n,) = layer(x, h0)
    expected = reference(layer.cells[0], x, h0[0])
    torch.testing.assert_close(h_n[0], expected[-1], rtol=0, atol=1e-12)
    assert_same_run(out, expected, (x, *layer.parameters()))


def test_a_saturated_forget_gate_keeps_the_memory():
    """With ``s`` large, ``sigma(s) = 1`` and ``1 - sigma(s - beta) = 0``: the state is kept."""
    layer = nn.JANET(3, 4, dtype=F64)
    with torch.no_grad():
        layer.cells[0].bias_f.fill_(60.0)
    h0 = torch.randn(1, 2, 4, dtype=F64)
    out, _ = layer(torch.randn(10, 2, 3, dtype=F64), h0)
    torch.testing.assert_close(out[-1], h0[0], rtol=0, atol=1e-12)


def test_the_forget_bias_starts_at_one():
    cell = nn.JANETCell(3, 4)
    assert torch.equal(cell.bias_f, torch.ones(4)) and not cell.bias_c.any()
