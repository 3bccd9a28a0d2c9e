"""``rnnkit.functional.linear``: a sequence's projection with its products laid out as the CPU
runs them fastest computes what ``F.linear`` computes, and is ``F.linear`` wherever torch must
see its own op."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit import nn
from rnnkit.functional import tuning
from rnnkit.functional.linear import _Linear, linear, weight_grad

ROWS = tuning.LINEAR_ROWS  # steps x batch from which the layout applies
NARROW = tuning.NARROW_INPUT


def tensors(steps: int, batch: int, features: int, gates: int, dtype=torch.float64):
    x = torch.randn(steps, batch, features, dtype=dtype, requires_grad=True)
    w = torch.randn(gates, features, dtype=dtype, requires_grad=True)
    b = torch.randn(gates, dtype=dtype, requires_grad=True)
    return x, w, b


def ours(y: torch.Tensor) -> bool:
    """Whether ``y`` came from :class:`_Linear` (else from ``F.linear``)."""
    return type(y.grad_fn).__name__ == "_LinearBackward"


@pytest.mark.parametrize("features", [1, 4, NARROW, NARROW + 5])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_f_linear(features: int, bias: bool) -> None:
    """Output and the three gradients, narrow inputs (the transposed products) and wider ones
    (``F.linear`` itself below the huge-page size), against ``F.linear`` under autograd."""
    x, w, b = tensors(ROWS // 8, 8, features, 24)
    b = b if bias else None
    y = linear(x, w, b)
    assert ours(y) == (features <= NARROW)
    expected = F.linear(x, w, b)
    g = torch.randn_like(expected)
    leaves = [x, w] + ([b] if bias else [])
    got = torch.autograd.grad(y, leaves, g)
    want = torch.autograd.grad(expected, leaves, g)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    for a, e in zip(got, want, strict=True):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


def test_large_outputs_take_the_function_and_equal_f_linear(monkeypatch) -> None:
    """Wide inputs whose output reaches ``tuning.HUGE_PAGE_BYTES`` take :class:`_Linear` (its
    output advised for huge pages) and the plain products in the backward; float32."""
    monkeypatch.setattr(tuning, "HUGE_PAGE_BYTES", 64 * 1024)
    x, w, b = tensors(32, 16, 40, 48, torch.float32)
    y = linear(x, w, b)
    assert ours(y) and y.nbytes >= tuning.HUGE_PAGE_BYTES
    expected = F.linear(x, w, b)
    torch.testing.assert_close(y, expected)
    got = torch.autograd.grad(y.square().sum(), (x, w, b))
    want = torch.autograd.grad(expected.square().sum(), (x, w, b))
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_second_order_and_forward_mode_gradients(monkeypatch) -> None:
    """The backward is written in torch ops, so it has a backward of its own (``gradgradcheck``),
    and the forward-mode rule agrees with finite differences (``check_forward_ad``)."""
    monkeypatch.setattr(tuning, "LINEAR_ROWS", 1)
    x, w, b = tensors(3, 2, 3, 5)
    assert ours(linear(x, w, b))
    assert torch.autograd.gradcheck(_Linear.apply, (x, w, b), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(_Linear.apply, (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: _Linear.apply(x, w, None), (x, w))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
def test_f_linear_where_torch_must_see_its_own_op() -> None:
    """Few rows, no gradients (and an output below the huge-page size), float16, autocast,
    ``torch.func``'s transforms and tracing all get ``F.linear``, and the same values."""
    x, w, b = tensors(ROWS // 8, 8, 4, 24)
    assert not ours(linear(x[:1], w, b))  # 8 rows
    with torch.no_grad():
        assert torch.equal(linear(x, w, b), F.linear(x, w, b))
    half = [t.detach().half().requires_grad_() for t in (x, w, b)]
    assert not ours(linear(*half))
    x32, w32, b32 = (t.float() for t in (x, w, b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = linear(x32, w32, b32)
        assert not ours(auto) and auto.dtype == F.linear(x32, w32, b32).dtype == torch.bfloat16
    batched = torch.func.vmap(lambda row: linear(row, w, b))(x)
    torch.testing.assert_close(batched, F.linear(x, w, b), rtol=1e-12, atol=1e-12)
    grad = torch.func.grad(lambda v: linear(x.detach(), v, b.detach()).sum())(w.detach())
    torch.testing.assert_close(grad, x.detach().sum((0, 1)).expand(24, 4), rtol=1e-12, atol=1e-12)
    w0, b0 = w.detach(), b.detach()
    traced = torch.jit.trace(lambda x: linear(x, w0, b0), (x.detach(),))
    assert "aten::linear" in str(traced.graph)


@pytest.mark.parametrize("features", [3, NARROW + 20])
def test_weight_grad_sums_over_rows(features: int) -> None:
    """``sum over steps and rows of d^T x``, against an explicit sum of outer products."""
    d = torch.randn(5, 4, 7, dtype=torch.float64)
    x = torch.randn(5, 4, features, dtype=torch.float64)
    expected = sum(torch.outer(d[t, n], x[t, n]) for t in range(5) for n in range(4))
    torch.testing.assert_close(weight_grad(d, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["LayerNormLSTM", "PeepholeLSTM", "LayerNormGRU", "IndRNN"])
def test_layers_project_through_it_and_train_as_with_f_linear(name: str, monkeypatch) -> None:
    """The engine's and the cells' projections go through :func:`linear`: a narrow input over
    ``tuning.LINEAR_ROWS`` rows gives the layer's output and every gradient that ``F.linear``
    (``LINEAR_ROWS`` out of reach) gives."""
    torch.manual_seed(0)
    layer = getattr(nn, name)(3, 8).double()
    x = torch.randn(ROWS // 4, 4, 3, dtype=torch.float64, requires_grad=True)

    def run() -> list[torch.Tensor]:
        out = layer(x)[0]
        out.pow(2).sum().backward()
        grads = [x.grad.clone(), *(p.grad.clone() for p in layer.parameters())]
        layer.zero_grad()
        x.grad = None
        return [out.detach(), *grads]

    calls = []
    monkeypatch.setattr(_Linear, "apply", lambda *a, f=_Linear.apply: calls.append(1) or f(*a))
    fast = run()
    assert calls  # the layout ran
    monkeypatch.setattr(tuning, "LINEAR_ROWS", 10**9)
    calls.clear()
    plain = run()
    assert not calls
    for a, e in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)
