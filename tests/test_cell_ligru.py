"""Li-GRU against an independent step-by-step reference, written from the paper's equations
(Ravanelli et al. 2018, eqs. 8-11) with SpeechBrain's layer norm of the whole ``2H``
projection (its ``LiGRU_Layer``), and against the properties that distinguish it from a GRU."""

from __future__ import annotations

import pytest
import torch
from _cells import assert_same_run
from torch import Tensor

from rnnkit import nn

F64 = torch.float64


def reference(cell: nn.LiGRUCell, x: Tensor, h0: Tensor) -> Tensor:
    """``x`` ``(L, N, H_in)``, ``h0`` ``(N, H)`` -> ``h`` ``(L, N, H)``."""
    w = x @ cell.weight_ih.T  # (L, N, 2H)
    if cell.normalization == "layernorm":
        mean = w.mean(-1, keepdim=True)
        var = w.var(-1, unbiased=False, keepdim=True)
        w = (w - mean) / torch.sqrt(var + cell.eps) * cell.ln_weight_ih
        w = w if cell.ln_bias_ih is None else w + cell.ln_bias_ih
    elif cell.bias_ih is not None:
        w = w + cell.bias_ih
    size = cell.hidden_size
    u_z, u_h = cell.weight_hh[:size], cell.weight_hh[size:]
    act = torch.relu if cell.nonlinearity == "relu" else torch.tanh
    h, hs = h0, []
    for t in range(x.shape[0]):
        z = torch.sigmoid(w[t, :, :size] + h @ u_z.T)  # update gate, no reset gate
        candidate = act(w[t, :, size:] + h @ u_h.T)
        h = z * h + (1 - z) * candidate
        hs.append(h)
    return torch.stack(hs)


OPTIONS = [
    {},
    {"nonlinearity": "tanh"},
    {"normalization": "none"},
    {"normalization": "none", "bias": False},
    {"bias": False, "eps": 1e-3},
]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_layer_matches_the_reference_in_values_and_gradients(options):
    torch.manual_seed(0)
    layer = nn.LiGRU(4, 6, dtype=F64, **options)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-1, 1)
    x = torch.randn(8, 3, 4, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 3, 6, dtype=F64)
    out, (h_n,) = layer(x, h0)
    expected = reference(layer.cells[0], x, h0[0])
    torch.testing.assert_close(h_n[0], expected[-1], rtol=0, atol=1e-12)
    assert_same_run(out, expected, (x, *layer.parameters()))


def test_parameters_are_a_gru_without_the_reset_gate():
    cell = nn.LiGRUCell(4, 6)
    shapes = {name: tuple(p.shape) for name, p in cell.named_parameters()}
    assert shapes == {
        "weight_ih": (12, 4),
        "weight_hh": (12, 6),  # two blocks (z, n), where torch.nn.GRUCell has three
        "ln_weight_ih": (12,),
        "ln_bias_ih": (12,),
    }
    assert set(dict(nn.LiGRUCell(4, 6, normalization="none").named_parameters())) == {
        "weight_ih",
        "weight_hh",
        "bias_ih",
    }


def test_the_input_side_is_invariant_to_the_input_scale():
    """Layer norm on the projection: scaling the input (all of a step) changes nothing (but
    for ``eps``, made negligible here)."""
    torch.manual_seed(0)
    layer = nn.LiGRU(4, 6, dtype=F64, eps=1e-12)
    x = torch.randn(5, 2, 4, dtype=F64)
    torch.testing.assert_close(layer(x)[0], layer(37.0 * x)[0], rtol=0, atol=1e-9)
    plain = nn.LiGRU(4, 6, dtype=F64, normalization="none")
    assert not torch.allclose(plain(x)[0], plain(37.0 * x)[0])


def test_relu_candidate_keeps_the_state_non_negative_from_zero():
    torch.manual_seed(0)
    out, _ = nn.LiGRU(3, 8)(torch.randn(20, 4, 3))
    assert (out >= 0).all()  # a convex mix of 0 and ReLU values
    out, _ = nn.LiGRU(3, 8, nonlinearity="tanh")(torch.randn(20, 4, 3))
    assert (out < 0).any()
