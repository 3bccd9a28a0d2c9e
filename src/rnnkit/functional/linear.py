"""``F.linear`` over a whole sequence on the CPU, with its products laid out as torch's BLAS
runs them fastest.

A recurrent layer projects every step's input at once, ``(L, N, I) -> (L, N, G)``, and its
backward takes ``d W = d^T x`` and ``d x = d W`` over all ``L x N`` rows. With few input
features (a forecaster's 1-8) torch's CPU product is several times slower in that layout than
in the transposed one, ``(x^T d)^T`` and ``(W^T d^T)^T``, which computes the same sums; and
the projection's output, tens of MB at large ``L x N``, is fresh memory faulted in 4 KiB page
by page. :func:`linear` takes both where they apply (``tuning.LINEAR_ROWS``,
``tuning.NARROW_INPUT``, ``tuning.HUGE_PAGE_BYTES``) and is ``F.linear`` everywhere else:
another device, compilation, tracing and export see ``F.linear`` itself.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.functional import tuning
from rnnkit.functional.memory import huge_pages


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``: ``x`` ``(..., I)``, ``weight`` ``(G, I)``, ``bias``
    ``(G,)`` or None -> ``(..., G)``; the same values and gradients, by :class:`_Linear`
    where it is faster (module docstring)."""
    if (
        _recorded()
        or x.numel() < tuning.LINEAR_ROWS * max(1, x.shape[-1])
        or not _plain_cpu(x, weight)
    ):
        return F.linear(x, weight, bias)
    rows = x.numel() // x.shape[-1]
    narrow = x.shape[-1] <= tuning.NARROW_INPUT and torch.is_grad_enabled()
    if not narrow and rows * weight.shape[0] * x.element_size() < tuning.HUGE_PAGE_BYTES:
        return F.linear(x, weight, bias)
    return _Linear.apply(x, weight, bias)


def _recorded() -> bool:
    """Whether torch ops are being recorded (compilation, tracing, export), which must see
    ``F.linear`` itself; asked first, before anything reads a shape."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.compiler.is_exporting()


def _plain_cpu(x: Tensor, weight: Tensor) -> bool:
    """Whether ``x`` and ``weight`` are CPU float32 or float64 tensors of one dtype, outside
    autocast and ``torch.func``'s transforms (where ``F.linear`` must be what runs)."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and not torch.is_autocast_enabled("cpu")
        and not wrapped(x)
        and not wrapped(weight)
    )


def weight_grad(d_out: Tensor, inputs: Tensor) -> Tensor:
    """``sum over rows of d_out^T inputs``: ``(..., G)``, ``(..., I)`` -> ``(G, I)``; for
    narrow ``inputs`` as ``(inputs^T d_out)^T`` (module docstring)."""
    d, x = d_out.reshape(-1, d_out.shape[-1]), inputs.reshape(-1, inputs.shape[-1])
    return (x.t() @ d).t() if x.shape[1] <= tuning.NARROW_INPUT else d.t() @ x


class _Linear(torch.autograd.Function):
    """``F.linear`` whose output asks for huge pages and whose backward takes the transposed
    products for narrow inputs; written in torch ops, so that its backward has a backward, and
    with a forward-mode rule (``torch.autograd.forward_ad``)."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = huge_pages(flat.new_empty(flat.shape[0], weight.shape[0]))
        if bias is None:
            torch.mm(flat, weight.t(), out=out)
        else:
            torch.addmm(bias, flat, weight.t(), out=out)
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        d = grad.reshape(-1, grad.shape[-1])  # (rows, G)
        d_x = d_weight = d_bias = None
        if ctx.needs_input_grad[0]:
            if x.shape[-1] <= tuning.NARROW_INPUT:
                d_x = (weight.t() @ d.t()).t().contiguous()
            else:
                d_x = d @ weight
            d_x = d_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            d_weight = weight_grad(grad, x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            d_bias = d.sum(0)
        return d_x, d_weight, d_bias

    @staticmethod
    def jvp(ctx: Any, d_x: Tensor | None, d_weight: Tensor | None, d_bias: Tensor | None) -> Tensor:
        x, weight = ctx.saved_tensors
        parts = []
        if d_x is not None:
            parts.append(F.linear(d_x, weight))
        if d_weight is not None:
            parts.append(F.linear(x, d_weight))
        if d_bias is not None:
            parts.append(d_bias.expand(*x.shape[:-1], d_bias.shape[0]))
        return sum(parts[1:], parts[0])
