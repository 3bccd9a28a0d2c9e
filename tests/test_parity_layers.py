"""Parity of ``rnnkit.nn.RNN``/``LSTM``/``GRU`` with ``torch.nn`` on every input form.

Each property test draws a layer configuration and an input (plain tensor, batched or not;
``PackedSequence``; padded tensor with ``lengths=``), runs rnnkit and an independent
expectation built from ``torch.nn`` (or, for the path-agreement test, from rnnkit's other
path), and compares outputs, final states and the gradients of a random weighted sum of both
with respect to the input, ``hx`` and every parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit.nn

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
CLASS_NAMES = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
FORMS = ("tensor", "packed", "lengths")
DTYPES = (torch.float64, torch.float32)
TOLERANCES = {
    torch.float64: {"atol": 1e-10, "rtol": 1e-8},
    torch.float32: {"atol": 1e-5, "rtol": 1e-4},
}
# torch's fused CPU kernel warns once per process for fp32 LSTMs with projections; which test
# runs first is arbitrary, so the warning is allowed everywhere in this file.
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning"
)
FORWARD_SEED = 1234  # reset before every forward, so dropout masks line up where they should


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class LayerConfig:
    kind: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0
    dtype: torch.dtype = torch.float64

    def build(self, library: object, **extra: object) -> nn.Module:
        """The layer from ``torch.nn`` or ``rnnkit.nn`` (``extra``: rnnkit-only options)."""
        kwargs = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "dtype": self.dtype,
        }
        if self.kind.startswith("rnn"):
            kwargs["nonlinearity"] = self.kind.removeprefix("rnn_")
        if self.kind == "lstm":
            kwargs["proj_size"] = self.proj_size
        return getattr(library, CLASS_NAMES[self.kind])(**kwargs, **extra)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_sizes(self) -> tuple[int, ...]:
        if self.kind == "lstm":
            return (self.proj_size or self.hidden_size, self.hidden_size)
        return (self.hidden_size,)

    @property
    def batch_dim(self) -> int:
        return 0 if self.batch_first else 1

    @property
    def time_dim(self) -> int:
        return 1 - self.batch_dim


@dataclass(frozen=True)
class Case:
    """One input: ``x`` padded in the layer's layout (``(L, H_in)`` when unbatched)."""

    x: Tensor
    hx: tuple[Tensor, ...] | None
    form: str
    lengths: list[int] | None = None
    lengths_as_tensor: bool = True

    @property
    def leaves(self) -> list[Tensor]:
        return [self.x, *(self.hx or ())]


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def layer_configs(
    draw: st.DrawFn,
    kind: str | None = None,
    min_layers: int = 1,
    dropouts: tuple[float, ...] = (0.0,),
) -> LayerConfig:
    """A random configuration; the dropout rate is drawn from ``dropouts`` when stacked."""
    kind = kind or draw(st.sampled_from(KINDS))
    hidden_size = draw(st.integers(1, 6))
    num_layers = draw(st.integers(min_layers, 3))
    return LayerConfig(
        kind=kind,
        input_size=draw(st.integers(1, 6)),
        hidden_size=hidden_size,
        num_layers=num_layers,
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        proj_size=draw(st.integers(0, hidden_size - 1)) if kind == "lstm" else 0,
        dropout=draw(st.sampled_from(dropouts)) if num_layers > 1 else 0.0,
        dtype=draw(st.sampled_from(DTYPES)),
    )


@st.composite
def cases(draw: st.DrawFn, cfg: LayerConfig, forms: tuple[str, ...] = FORMS) -> Case:
    form = draw(st.sampled_from(forms))
    length, batch = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    batched = form != "tensor" or draw(st.booleans())
    g = generator(draw(st.integers(0, 2**31 - 1)))
    lead = ((batch, length) if cfg.batch_first else (length, batch)) if batched else (length,)
    x = torch.randn(*lead, cfg.input_size, generator=g, dtype=cfg.dtype)
    hx = None
    if draw(st.booleans()):
        rows = (cfg.directions * cfg.num_layers,) + ((batch,) if batched else ())
        hx = tuple(torch.randn(*rows, s, generator=g, dtype=cfg.dtype) for s in cfg.state_sizes)
    lengths = None
    if form != "tensor":
        lowest = 0 if form == "lengths" else 1
        lengths = draw(st.lists(st.integers(lowest, length), min_size=batch, max_size=batch))
    return Case(
        x.requires_grad_(),
        tuple(h.requires_grad_() for h in hx) if hx else None,
        form,
        lengths,
        draw(st.booleans()),
    )


def copy_module(cfg: LayerConfig, source: nn.Module, library: object, **extra: object) -> nn.Module:
    """A fresh layer of ``library`` holding ``source``'s weights and training mode."""
    target = cfg.build(library, **extra)
    target.load_state_dict(source.state_dict(), strict=True)
    return target.train(source.training)


# ----------------------------------------------------------------------------- running


Result = tuple[Tensor, tuple[Tensor, ...], tuple[Tensor | None, ...]]
Runner = Callable[[nn.Module, LayerConfig, Case], Result]


def as_hx(hx: tuple[Tensor, ...] | None) -> Tensor | tuple[Tensor, ...] | None:
    """``hx`` as torch.nn takes it: a bare tensor for RNN/GRU, a tuple for LSTM."""
    return hx[0] if hx is not None and len(hx) == 1 else hx


def flatten(result: tuple[Tensor | PackedSequence, Tensor | tuple[Tensor, ...]]) -> Result:
    """``(output, state)`` -> output tensor, state tuple and the packing metadata."""
    output, state = result
    meta: tuple[Tensor | None, ...] = ()
    if isinstance(output, PackedSequence):
        meta = (output.batch_sizes, output.sorted_indices, output.unsorted_indices)
        output = output.data
    return output, (state,) if isinstance(state, Tensor) else tuple(state), meta


def pack(cfg: LayerConfig, x: Tensor, lengths: list[int] | Tensor) -> PackedSequence:
    lengths = torch.as_tensor(lengths)
    return pack_padded_sequence(x, lengths, batch_first=cfg.batch_first, enforce_sorted=False)


def run_direct(module: nn.Module, cfg: LayerConfig, case: Case) -> Result:
    """Feed the case to ``module`` as it is (``lengths=`` only for rnnkit modules)."""
    torch.manual_seed(FORWARD_SEED)
    if case.form == "packed":
        return flatten(module(pack(cfg, case.x, case.lengths), as_hx(case.hx)))
    if case.form == "lengths":
        lengths = torch.tensor(case.lengths) if case.lengths_as_tensor else case.lengths
        return flatten(module(case.x, as_hx(case.hx), lengths=lengths))
    return flatten(module(case.x, as_hx(case.hx)))


def run_torch(module: nn.Module, cfg: LayerConfig, case: Case) -> Result:
    """torch.nn's answer; a ``lengths`` case becomes a packed batch of the non-empty rows.

    Rows of length 0 get the contract's answer: zero outputs and the initial state.
    """
    if case.form != "lengths":
        return run_direct(module, cfg, case)
    lengths = torch.tensor(case.lengths)
    keep = (lengths > 0).nonzero().flatten()
    batch = lengths.numel()
    rows = cfg.directions * cfg.num_layers
    out_shape = (*case.x.shape[:2], cfg.directions * cfg.state_sizes[0])
    output = case.x.new_zeros(out_shape)
    state = case.hx or tuple(case.x.new_zeros(rows, batch, s) for s in cfg.state_sizes)
    if keep.numel() == 0:
        return output, state, ()
    kept_hx = None if case.hx is None else tuple(h.index_select(1, keep) for h in case.hx)
    torch.manual_seed(FORWARD_SEED)
    packed = pack(cfg, case.x.index_select(cfg.batch_dim, keep), lengths[keep])
    kept_out, kept_state, _ = flatten(module(packed, as_hx(kept_hx)))
    kept_out, _ = pad_packed_sequence(
        PackedSequence(kept_out, *packed[1:]),
        batch_first=cfg.batch_first,
        total_length=case.x.shape[cfg.time_dim],
    )
    output = output.index_copy(cfg.batch_dim, keep, kept_out)
    state = tuple(s.index_copy(1, keep, k) for s, k in zip(state, kept_state, strict=True))
    return output, state, ()


def weighted_sum(result: Result, g: torch.Generator) -> Tensor:
    tensors = [result[0], *result[1]]
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in tensors)


def gradients(module: nn.Module, case: Case, result: Result) -> dict[str, Tensor]:
    """Gradients of a random weighted sum of outputs and states, by leaf/parameter name."""
    names = ["input"] + [f"hx[{k}]" for k in range(len(case.hx or ()))]
    named = dict(zip(names, case.leaves, strict=True)) | dict(module.named_parameters())
    loss = weighted_sum(result, generator(7))
    if not loss.requires_grad:  # nothing depends on any leaf (every length is 0)
        return {name: torch.zeros_like(t) for name, t in named.items()}
    grads = torch.autograd.grad(
        loss, list(named.values()), allow_unused=True, materialize_grads=True
    )
    return dict(zip(named, grads, strict=True))


def assert_close(actual: Tensor, expected: Tensor, what: str) -> None:
    torch.testing.assert_close(actual, expected, **TOLERANCES[expected.dtype], msg=what)


def assert_same_run(
    cfg: LayerConfig,
    case: Case,
    actual: nn.Module,
    expected: nn.Module,
    expected_runner: Runner,
) -> None:
    """rnnkit's ``actual`` on ``case`` matches ``expected_runner(expected)``: values and grads."""
    got, want = run_direct(actual, cfg, case), expected_runner(expected, cfg, case)
    assert_close(got[0], want[0], "output")
    for k, (g, w) in enumerate(zip(got[1], want[1], strict=True)):
        assert_close(g, w, f"final state {k}")
    for g, w in zip(got[2], want[2], strict=True):
        assert (g is None and w is None) or torch.equal(g, w), "packing metadata"
    got_grads, want_grads = gradients(actual, case, got), gradients(expected, case, want)
    assert got_grads.keys() == want_grads.keys()
    for name, grad in got_grads.items():
        assert_close(grad, want_grads[name], f"gradient of {name}")


def build_pair(cfg: LayerConfig, seed: int, fused: bool, train: bool) -> tuple[nn.Module, ...]:
    """``(torch.nn layer, rnnkit layer with its weights)`` in the requested mode."""
    torch.manual_seed(seed)
    reference = cfg.build(nn).train(train)
    return reference, copy_module(cfg, reference, rnnkit.nn, fused=fused)


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_matches_torch_nn(kind: str, fused: bool, data: st.DataObject) -> None:
    """Outputs, states and all gradients equal torch.nn's, on every input form.

    A drawn dropout > 0 runs in eval mode, where it must be a no-op on both paths.
    """
    cfg = data.draw(layer_configs(kind, dropouts=(0.0, 0.5)))
    case = data.draw(cases(cfg))
    train = cfg.dropout == 0 and data.draw(st.booleans())
    reference, layer = build_pair(cfg, data.draw(st.integers(0, 2**16)), fused, train)
    assert_same_run(cfg, case, layer, reference, run_torch)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_fused_and_reference_paths_agree(kind: str, data: st.DataObject) -> None:
    """The two paths of rnnkit give the same answer (values and gradients) on every form."""
    cfg = data.draw(layer_configs(kind))
    case = data.draw(cases(cfg))
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    fused = cfg.build(rnnkit.nn, fused=True)
    reference = copy_module(cfg, fused, rnnkit.nn, fused=False)
    assert_same_run(cfg, case, reference, fused, run_direct)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_fused_training_dropout_matches_torch_nn(kind: str, data: st.DataObject) -> None:
    """In train mode the fused path runs torch's kernel: the same seed, the same dropout masks."""
    cfg = data.draw(layer_configs(kind, min_layers=2, dropouts=(0.25, 0.5)))
    case = data.draw(cases(cfg, forms=("tensor", "packed")))
    reference, layer = build_pair(cfg, data.draw(st.integers(0, 2**16)), True, train=True)
    assert_same_run(cfg, case, layer, reference, run_torch)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_zero_lengths_follow_the_contract(kind: str, batch_first: bool, fused: bool) -> None:
    """Rows of length 0 output zeros and return ``hx`` (zeros without one), exactly; the
    other rows match torch.nn on the packed non-empty rows."""
    proj_size = 2 if kind == "lstm" else 0
    cfg = LayerConfig(kind, 3, 4, 2, True, batch_first, bidirectional=True, proj_size=proj_size)
    length, batch = 5, 4
    g = generator(3)
    x = torch.randn(batch, length, 3, generator=g, dtype=cfg.dtype)
    x = (x if batch_first else x.transpose(0, 1)).requires_grad_()
    hx = tuple(torch.randn(4, batch, s, generator=g, dtype=cfg.dtype) for s in cfg.state_sizes)
    hx = tuple(h.requires_grad_() for h in hx)
    for lengths, initial in (([5, 0, 2, 0], hx), ([0, 3, 0, 1], None), ([0, 0, 0, 0], hx)):
        case = Case(x, initial, "lengths", lengths)
        reference, layer = build_pair(cfg, 0, fused, train=True)
        output, state, _ = run_direct(layer, cfg, case)
        empty = torch.tensor(lengths) == 0
        assert not output.index_select(cfg.batch_dim, empty.nonzero().flatten()).any()
        for s, h in zip(state, initial or [torch.zeros_like(s) for s in state], strict=True):
            assert torch.equal(s[:, empty], h[:, empty])
        assert_same_run(cfg, case, layer, reference, run_torch)


@pytest.mark.parametrize("p", [0.2, 0.5])
@pytest.mark.parametrize("num_layers", [2, 3])
def test_reference_dropout_drops_the_expected_fraction(num_layers: int, p: float) -> None:
    """The reference path's inter-layer dropout, observed through identity layers.

    A bias-free ReLU RNN with ``W_ih = I`` and ``W_hh = 0`` copies a positive input through
    every layer, so its output is ``x`` times the product of the ``num_layers - 1`` dropout
    masks, each scaled by ``1 / (1 - p)``. Every element must be 0 or exactly that rescaled
    ``x``; the kept fraction must be ``q = (1 - p) ** (num_layers - 1)`` within 5 standard
    deviations of a binomial count (no mask after the last layer, none before the first);
    and neighbours along time, batch and features must both survive with probability ``q**2``
    (independent elementwise masks, as torch.nn draws them) within 5 standard deviations.
    """
    size, length, batch = 8, 40, 40
    layer = rnnkit.nn.RNN(size, size, num_layers, "relu", False, dropout=p, fused=False)
    with torch.no_grad():
        for name, weight in layer.named_parameters():
            weight.copy_(torch.eye(size) if name.startswith("weight_ih") else 0.0)
    x = torch.rand(length, batch, size) + 1.0
    torch.testing.assert_close(layer.eval()(x)[0], x)  # the identity layers really copy x
    output, _ = layer.train()(x)
    kept = output != 0
    q = (1 - p) ** (num_layers - 1)
    torch.testing.assert_close(output[kept], x[kept] / q)
    assert_binomial_fraction(kept.double().mean().item(), q, kept.numel(), pair_overlap=0.0)
    for dim in range(3):
        pairs = kept.narrow(dim, 1, kept.shape[dim] - 1) & kept.narrow(dim, 0, kept.shape[dim] - 1)
        assert_binomial_fraction(pairs.double().mean().item(), q**2, pairs.numel(), q**3 - q**4)


def assert_binomial_fraction(observed: float, q: float, n: int, pair_overlap: float) -> None:
    """``observed`` is a mean of ``n`` Bernoulli(``q``) indicators within 5 standard deviations.

    Neighbouring pairs along one axis share an element, adding covariance ``pair_overlap``
    between consecutive indicators; the bound ``n (q (1 - q) + 2 pair_overlap)`` on the
    variance of the count covers it.
    """
    sigma = math.sqrt((q * (1 - q) + 2 * pair_overlap) / n)
    assert abs(observed - q) < 5 * sigma, (
        f"fraction {observed:.4f}, expected {q:.4f} +- {sigma:.4f}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_with_one_layer_warns_like_torch_nn(kind: str) -> None:
    cfg = LayerConfig(kind, 2, 3, num_layers=1, dropout=0.3)
    for library in (nn, rnnkit.nn):
        with pytest.warns(UserWarning, match="num_layers greater than 1"):
            cfg.build(library)


@given(cfg=layer_configs())
def test_state_dicts_load_in_both_directions(cfg: LayerConfig) -> None:
    """Same keys, shapes and dtypes; strict loading works both ways and keeps every value."""
    for source_library, target_library in ((nn, rnnkit.nn), (rnnkit.nn, nn)):
        source, target = cfg.build(source_library), cfg.build(target_library)
        assert list(source.state_dict()) == list(target.state_dict())
        target.load_state_dict(source.state_dict(), strict=True)
        for name, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[name], value), name
            assert target.state_dict()[name].dtype == cfg.dtype


@given(cfg=layer_configs(), seed=st.integers(0, 2**16))
def test_same_seed_gives_torch_nn_initial_parameters(cfg: LayerConfig, seed: int) -> None:
    modules = []
    for library in (nn, rnnkit.nn):
        torch.manual_seed(seed)
        modules.append(cfg.build(library))
    expected, actual = (dict(m.named_parameters()) for m in modules)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("layout", ["time_first", "batch_first", "unbatched"])
@pytest.mark.parametrize("kind", KINDS)
def test_empty_sequence_raises(kind: str, layout: str, fused: bool) -> None:
    cfg = LayerConfig(kind, 2, 3, batch_first=layout == "batch_first")
    shape = {"time_first": (0, 2, 2), "batch_first": (2, 0, 2), "unbatched": (0, 2)}[layout]
    layer = cfg.build(rnnkit.nn, fused=fused)
    with pytest.raises(ValueError, match="L >= 1"):
        layer(torch.zeros(shape, dtype=cfg.dtype))
