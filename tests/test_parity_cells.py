"""Parity of ``rnnkit.nn.RNNCell``/``LSTMCell``/``GRUCell`` with the ``torch.nn`` cells.

The property test chains a few steps of each cell (so the state a cell returns is fed back
in), then compares every step's output and the gradients of a random weighted sum of all of
them with respect to the inputs, ``hx`` and every parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

import rnnkit.nn

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
CLASS_NAMES = {"rnn_tanh": "RNNCell", "rnn_relu": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}
TOLERANCES = {
    torch.float64: {"atol": 1e-10, "rtol": 1e-8},
    torch.float32: {"atol": 1e-5, "rtol": 1e-4},
}


@dataclass(frozen=True)
class CellConfig:
    kind: str
    input_size: int
    hidden_size: int
    bias: bool = True
    dtype: torch.dtype = torch.float64

    def build(self, library: object, **extra: object) -> nn.Module:
        """The cell from ``torch.nn`` or ``rnnkit.nn`` (``extra``: rnnkit-only options)."""
        kwargs = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "dtype": self.dtype,
        }
        if self.kind.startswith("rnn"):
            kwargs["nonlinearity"] = self.kind.removeprefix("rnn_")
        return getattr(library, CLASS_NAMES[self.kind])(**kwargs, **extra)

    @property
    def num_states(self) -> int:
        return 2 if self.kind == "lstm" else 1


@st.composite
def cell_configs(draw: st.DrawFn, kind: str | None = None) -> CellConfig:
    return CellConfig(
        kind=kind or draw(st.sampled_from(KINDS)),
        input_size=draw(st.integers(1, 6)),
        hidden_size=draw(st.integers(1, 6)),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from([torch.float64, torch.float32])),
    )


def run_steps(cell: nn.Module, inputs: list[Tensor], hx: tuple[Tensor, ...] | None) -> list[Tensor]:
    """Every state tensor of every step, feeding each step's state into the next."""
    results: list[Tensor] = []
    state: Tensor | tuple[Tensor, ...] | None = hx[0] if hx and len(hx) == 1 else hx
    for x in inputs:
        state = cell(x, state)
        results.extend(state if isinstance(state, tuple) else (state,))
    return results


def gradients(
    cell: nn.Module, leaves: dict[str, Tensor], results: list[Tensor]
) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(7)
    loss = sum((r * torch.randn(r.shape, generator=g, dtype=r.dtype)).sum() for r in results)
    named = leaves | dict(cell.named_parameters())
    grads = torch.autograd.grad(loss, list(named.values()))
    return dict(zip(named, grads, strict=True))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_matches_torch_nn(kind: str, fused: bool, data: st.DataObject) -> None:
    cfg = data.draw(cell_configs(kind))
    batch = data.draw(st.one_of(st.none(), st.integers(1, 4)))  # None: unbatched
    lead = () if batch is None else (batch,)
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    steps = data.draw(st.integers(1, 3))
    inputs = [
        torch.randn(*lead, cfg.input_size, generator=g, dtype=cfg.dtype).requires_grad_()
        for _ in range(steps)
    ]
    hx = None
    if data.draw(st.booleans()):
        shape = (*lead, cfg.hidden_size)
        hx = tuple(
            torch.randn(shape, generator=g, dtype=cfg.dtype).requires_grad_()
            for _ in range(cfg.num_states)
        )
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    reference = cfg.build(nn)
    cell = cfg.build(rnnkit.nn, fused=fused)
    cell.load_state_dict(reference.state_dict(), strict=True)

    got, want = run_steps(cell, inputs, hx), run_steps(reference, inputs, hx)
    for k, (a, e) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(a, e, **TOLERANCES[cfg.dtype], msg=f"result {k}")
    leaves = {f"input[{t}]": x for t, x in enumerate(inputs)}
    leaves |= {f"hx[{k}]": h for k, h in enumerate(hx or ())}
    got_grads, want_grads = gradients(cell, leaves, got), gradients(reference, leaves, want)
    assert got_grads.keys() == want_grads.keys()
    for name, grad in got_grads.items():
        torch.testing.assert_close(grad, want_grads[name], **TOLERANCES[cfg.dtype], msg=name)


@given(cfg=cell_configs())
def test_state_dicts_load_in_both_directions(cfg: CellConfig) -> None:
    """Same keys, shapes and dtypes; strict loading works both ways and keeps every value."""
    for source_library, target_library in ((nn, rnnkit.nn), (rnnkit.nn, nn)):
        source, target = cfg.build(source_library), cfg.build(target_library)
        assert list(source.state_dict()) == list(target.state_dict())
        target.load_state_dict(source.state_dict(), strict=True)
        for name, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[name], value), name
            assert target.state_dict()[name].dtype == cfg.dtype


@given(cfg=cell_configs(), seed=st.integers(0, 2**16))
def test_same_seed_gives_torch_nn_initial_parameters(cfg: CellConfig, seed: int) -> None:
    modules = []
    for library in (nn, rnnkit.nn):
        torch.manual_seed(seed)
        modules.append(cfg.build(library))
    expected, actual = (dict(m.named_parameters()) for m in modules)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name
    if not cfg.bias:
        assert modules[1].bias_ih is None and modules[1].bias_hh is None
