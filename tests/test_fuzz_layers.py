"""Fuzzing the layers of :mod:`rnnkit.nn`: constructor arguments and forward inputs.

Each case either raises rnnkit's documented error in one line that starts with the name of
the argument at fault (:class:`rnnkit.nn.InputError` or :class:`rnnkit.nn.InputDtypeError`
for a forward input, TypeError or ValueError for a constructor argument), or returns what
an independent reference returns: ``torch.nn``'s layer holding the same weights for the
drop-in RNN, LSTM and GRU (packed sequences for ``lengths``), the layer's own per-step
reference path (the fused engine switched off) for the others. NaN and inf must come out
where the reference puts them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from _fuzz import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.nn import LAYERS, InputError, _engine

PACKAGE = Path(rnnkit.__file__).resolve().parent

DROP_IN = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-2}


def one_line_naming(error: BaseException, *arguments: str) -> None:
    """``error``'s message is one line whose first part names one of ``arguments``."""
    text = str(error)
    assert "\n" not in text, text
    named = text.split(": ")[0]
    assert any(argument in named for argument in arguments), text


def raised_in_rnnkit(error: BaseException) -> None:
    """``error`` comes from rnnkit's own checks, not from a torch kernel it reached."""
    frame = error.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    raised_in = Path(frame.tb_frame.f_code.co_filename).resolve()
    assert raised_in.is_relative_to(PACKAGE), f"raised in {raised_in}: {error}"


def _as_tuple(state: Any) -> tuple[torch.Tensor, ...]:
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def assert_same(ours: tuple, theirs: tuple, dtype: torch.dtype) -> None:
    """Outputs and states equal to the tolerance of ``dtype``, NaN where the reference has
    NaN."""
    tolerance = TOLERANCE[dtype]
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance, equal_nan=True)


@st.composite
def forward_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A layer (name, sizes, options, dtype) and an input, state and lengths for it: mostly
    valid, with one hostile part often (shape, dtype, lengths, state, NaN/inf)."""
    case = {
        "name": draw(st.sampled_from(sorted(LAYERS))),
        "input_size": draw(st.integers(1, 4)),
        "hidden_size": draw(st.integers(1, 4)),
        "num_layers": draw(st.integers(1, 2)),
        "bidirectional": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "dtype": draw(st.sampled_from([torch.float32] * 4 + [torch.float64, torch.float16])),
        "steps": draw(st.integers(0, 5)),
        "batch": draw(st.integers(0, 3)),
        "seed": draw(st.integers(0, 2**16)),
    }
    case["fault"] = draw(
        st.sampled_from(
            ["none"] * 6
            + ["features", "rank", "dtype", "poison", "hx", "hx_shape", "hx_dtype"]
            + ["lengths", "lengths_zero", "lengths_long", "lengths_negative", "lengths_count"]
        )
    )
    case["poison"] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    case["where"] = draw(st.floats(0, 1, exclude_max=True))
    return case


def _build(case: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(case["seed"])
    layer = LAYERS[case["name"]](
        case["input_size"], case["hidden_size"], num_layers=case["num_layers"],
        bidirectional=case["bidirectional"], batch_first=case["batch_first"],
    )  # fmt: skip
    with torch.no_grad():  # off the initialisation (zero biases, unit LN gains)
        for parameter in layer.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return layer.to(case["dtype"]).eval()


def _inputs(case: dict[str, Any], layer: torch.nn.Module) -> tuple[Any, Any, Any]:
    """``(x, hx, lengths)`` for ``case``: ``x`` ``(L, N, H_in)`` (``(N, L, H_in)`` batch
    first), ``hx`` None or the layer's state tensors ``(D * num_layers, N, S_k)``."""
    fault, steps, batch = case["fault"], case["steps"], case["batch"]
    generator = torch.Generator().manual_seed(case["seed"])
    features = case["input_size"] + (1 if fault == "features" else 0)
    shape = (batch, steps, features) if case["batch_first"] else (steps, batch, features)
    if fault == "rank":
        shape = shape[1:] if case["seed"] % 2 else (1, *shape)
    x = torch.randn(shape, generator=generator).to(case["dtype"])
    if fault == "dtype":
        x = x.to(torch.float64 if case["dtype"] != torch.float64 else torch.float32)
    if fault == "poison" and x.numel():
        x.view(-1)[int(case["where"] * x.numel())] = case["poison"]
    hx = None
    if fault.startswith("hx"):
        rows = layer.num_directions * layer.num_layers
        extra = 1 if fault == "hx_shape" else 0
        hx = tuple(
            0.5 * torch.randn(rows, batch + extra, size, generator=generator).to(case["dtype"])
            for size in layer.state_sizes
        )
        if fault == "hx_dtype":
            hx = tuple(h.to(torch.float64 if case["dtype"] != torch.float64 else torch.float32)
                       for h in hx)  # fmt: skip
        hx = hx[0] if len(hx) == 1 else hx
    lengths = None
    if fault.startswith("lengths"):
        values = torch.randint(1, max(steps, 1) + 1, (batch,), generator=generator)
        if fault == "lengths_zero" and batch:
            values[0] = 0
        elif fault == "lengths_long" and batch:
            values[-1] = steps + 1
        elif fault == "lengths_negative" and batch:
            values[0] = -1
        elif fault == "lengths_count":
            values = torch.ones(batch + 1, dtype=torch.int64)
        lengths = values
    return x, hx, lengths


def _torch_reference(case: dict[str, Any], layer: torch.nn.Module, x, hx, lengths) -> tuple:
    """``torch.nn``'s layer with ``layer``'s weights on the same call; rows of length 0
    (which packing refuses) keep their initial state and output zeros."""
    reference = DROP_IN[case["name"]](
        case["input_size"], case["hidden_size"], num_layers=case["num_layers"],
        bidirectional=case["bidirectional"], batch_first=case["batch_first"],
        dtype=case["dtype"],
    )  # fmt: skip
    reference.load_state_dict(layer.state_dict())
    if lengths is None:
        with torch.no_grad():
            output, state = reference.eval()(x, hx)
        return output, *_as_tuple(state)
    batch_dim = 0 if case["batch_first"] else 1
    state0 = hx if hx is not None else None
    kept = (lengths > 0).nonzero().flatten()
    output = torch.zeros(*x.shape[:2], layer.num_directions * layer.state_sizes[0], dtype=x.dtype)
    rows = layer.num_directions * layer.num_layers
    zeros = tuple(
        torch.zeros(rows, x.shape[batch_dim], s, dtype=x.dtype) for s in layer.state_sizes
    )
    final = [s.clone() for s in (_as_tuple(state0) if state0 is not None else zeros)]
    if len(kept):
        packed = pack_padded_sequence(
            x.index_select(batch_dim, kept),
            lengths[kept],
            case["batch_first"],
            enforce_sorted=False,
        )
        sub_hx = None if state0 is None else tuple(s[:, kept] for s in _as_tuple(state0))
        if sub_hx is not None and len(sub_hx) == 1:
            sub_hx = sub_hx[0]
        with torch.no_grad():
            packed_out, state = reference.eval()(packed, sub_hx)
        padded, _ = pad_packed_sequence(
            packed_out, case["batch_first"], total_length=x.shape[1 - batch_dim]
        )
        output.index_copy_(batch_dim, kept, padded)
        for k, s in enumerate(_as_tuple(state)):
            final[k][:, kept] = s
    return output, *final


def _reference_path(layer: torch.nn.Module, x, hx, lengths) -> tuple:
    """The layer's own per-step loop: the fused engine switched off."""
    with pytest.MonkeyPatch.context() as patch, torch.no_grad():
        patch.setattr(_engine, "run", lambda *args: None)
        output, state = layer(x, hx, lengths=lengths)
    return output, *_as_tuple(state)


@fuzz_settings(400)
@given(case=forward_cases())
def test_forward_inputs(case) -> None:
    layer = _build(case)
    x, hx, lengths = _inputs(case, layer)
    try:
        with torch.no_grad():
            output, state = layer(x, hx, lengths=lengths)
    except (ValueError, TypeError) as error:  # InputError, InputDtypeError or for lengths
        raised_in_rnnkit(error)
        one_line_naming(error, "input", "hx", "lengths")
        event(f"refused: {str(error).split(':')[0]}")
        assert case["fault"] != "none" or case["steps"] == 0, str(error)
        return
    ours = (output, *_as_tuple(state))
    if case["name"] in DROP_IN and case["dtype"] != torch.float16:
        try:
            theirs = _torch_reference(case, layer, x, hx, lengths)
        except (RuntimeError, ValueError) as error:  # torch refuses what rnnkit takes
            event(f"torch.nn refuses: {type(error).__name__}")
            return
        event("equal to torch.nn")
    else:
        theirs = _reference_path(layer, x, hx, lengths)
        event("equal to the reference path")
    assert_same(ours, theirs, case["dtype"])


# ----------------------------------------------------------------- constructor arguments

HOSTILE_ARGUMENTS = {
    "input_size": [0, -1, 2.0, True, "3", None],
    "hidden_size": [0, -1, 2.5, False, "4", None],
    "num_layers": [0, -2, 1.0, True, "1", None],
    "bias": [1, 0, "yes", None, False],
    "batch_first": [1, "no", None, True],
    "bidirectional": [1, "true", None, True],
    "dropout": [-0.1, 1.5, math.nan, "0.2", None, True],
    "dtype": [torch.int64, torch.bool, "float32", 32],
}


@fuzz_settings(150)
@given(
    name=st.sampled_from(sorted(LAYERS)),
    argument=st.sampled_from(sorted(HOSTILE_ARGUMENTS)),
    choice=st.data(),
)
def test_constructor_arguments(name, argument, choice) -> None:
    value = choice.draw(st.sampled_from(HOSTILE_ARGUMENTS[argument]), label="value")
    arguments: dict[str, Any] = {"input_size": 3, "hidden_size": 4, argument: value}
    try:
        layer = LAYERS[name](**arguments)
    except (TypeError, ValueError) as error:
        assert not isinstance(error, InputError) or argument == "dtype"
        one_line_naming(error, argument)
        event("refused")
        return
    # only a flag that is a bool gets here; the layer then computes its reference path
    assert argument in ("bias", "batch_first", "bidirectional") and isinstance(value, bool)
    event(f"accepted {argument}={value!r}")
    x = torch.randn(4, 2, 3)
    if layer.batch_first:
        x = x.transpose(0, 1)
    with torch.no_grad():
        ours = (layer(x)[0],)
    assert_same(ours, _reference_path(layer, x, None, None)[:1], x.dtype)
