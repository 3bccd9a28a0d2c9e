"""SRU against an independent step-by-step reference: the loop of the authors' own
pure-PyTorch implementation (``elementwise_recurrence_naive`` in the ``sru`` package, 2.6.0,
MIT), written here with plain tensors, in its own form (``c = u0 + (c - u0) * f``,
``h = x' + (c - x') * r``) and its own weight layout reading."""

from __future__ import annotations

import pytest
import torch
from _cells import assert_same_run
from torch import Tensor

from rnnkit import nn

F64 = torch.float64


def authors_loop(cell: nn.SRUCell, x: Tensor, c0: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` ``(L, N, H_in)``, ``c0`` ``(N, H)`` -> ``h`` ``(L, N, H)``, final ``c``."""
    d = cell.hidden_size
    u = x @ cell.weight_ih.T  # (L, N, kH): blocks x~, f, r[, s]
    u0, u1, u2 = u[..., :d], u[..., d : 2 * d], u[..., 2 * d : 3 * d]
    if cell.bias_f is not None:
        u1, u2 = u1 + cell.bias_f, u2 + cell.bias_r
    x_prime = x if u.shape[-1] == 3 * d else u[..., 3 * d :]
    c_prev, hs = c0, []
    for t in range(x.shape[0]):
        forget = (u1[t] + c_prev * cell.weight_cf).sigmoid()
        reset = (u2[t] + c_prev * cell.weight_cr).sigmoid()
        c_prev = u0[t] + (c_prev - u0[t]) * forget
        hs.append(x_prime[t] + (c_prev - x_prime[t]) * reset)
    return torch.stack(hs), c_prev


@pytest.mark.parametrize(("input_size", "bias"), [(6, True), (4, True), (6, False)])
def test_layer_matches_the_authors_loop_in_values_and_gradients(input_size, bias):
    torch.manual_seed(0)
    layer = nn.SRU(input_size, 6, bias=bias, dtype=F64)
    with torch.no_grad():
        for p in layer.parameters():  # nothing at its initial zero, every term counts
            p.uniform_(-1, 1)
    x = torch.randn(9, 3, input_size, dtype=F64, requires_grad=True)
    h0, c0 = torch.zeros(1, 3, 6, dtype=F64), torch.randn(1, 3, 6, dtype=F64)
    out, (h_n, c_n) = layer(x, (h0, c0))
    expected, c_final = authors_loop(layer.cells[0], x, c0[0])
    torch.testing.assert_close(h_n[0], expected[-1], rtol=0, atol=1e-12)
    torch.testing.assert_close(c_n[0], c_final, rtol=0, atol=1e-12)
    # a loss that weighs each output by its own value, not the plain sum
    assert_same_run(out, expected, (x, *layer.parameters()), lambda v: v.square().sum())


def test_shapes_and_initialisation_follow_the_paper():
    torch.manual_seed(0)
    cell = nn.SRUCell(400, 300)
    assert cell.weight_ih.shape == (4 * 300, 400)  # H_in != H: a highway projection W_s
    assert nn.SRUCell(300, 300).weight_ih.shape == (3 * 300, 300)
    # variance 1 / H_in (the paper's), so a unit's pre-activation starts at unit variance
    assert cell.weight_ih.var().item() == pytest.approx(1 / 400, rel=0.02)
    assert not cell.bias_f.any() and not cell.bias_r.any()


def test_the_step_has_no_matrix_product():
    """What makes SRU fast: once projected, a step is element-wise, so unit k of the state
    depends on unit k of the projection only."""
    torch.manual_seed(0)
    cell = nn.SRUCell(5, 5, dtype=F64)
    projected = torch.randn(2, 4 * 5, dtype=F64, requires_grad=True)
    state = (torch.zeros(2, 5, dtype=F64), torch.randn(2, 5, dtype=F64))
    h, _ = cell.step(projected, state)
    (grad,) = torch.autograd.grad(h[:, 2].sum(), projected)
    touched = grad.abs().sum(0).nonzero().flatten().tolist()
    assert touched == [2, 7, 12, 17]  # unit 2 of each of the four blocks
