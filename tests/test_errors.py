"""Bad inputs fail early, in rnnkit's own checks, with one wording for every error.

Every rejection is a ``TypeError`` (wrong kind of value) or a ``ValueError`` (right kind, bad
value) whose message reads ``"<argument>: expected ..., got ..."`` and names what was
received. :func:`rejects` asserts that wording and that the exception was raised inside the
rnnkit package (not by a torch kernel that happened to choke on the value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.nn.utils.rnn import pack_sequence

import rnnkit
from rnnkit import nn

PACKAGE = Path(rnnkit.__file__).resolve().parent
LAYERS = [nn.RNN, nn.LSTM, nn.GRU]
CELLS = [nn.RNNCell, nn.LSTMCell, nn.GRUCell]
L, N, H_IN, H = 5, 2, 3, 4  # sequence length, batch, input features, hidden features

# ---------------------------------------------------------------------------- helpers


def _assert_raised_in_rnnkit(info: pytest.ExceptionInfo[BaseException]) -> None:
    raised_in = Path(str(info.traceback[-1].path)).resolve()
    assert raised_in.is_relative_to(PACKAGE), f"raised by {raised_in}, not by rnnkit's checks"


@contextmanager
def rejects(
    exc: type[Exception], argument: str, received: str
) -> Iterator[pytest.ExceptionInfo[Exception]]:
    """Expect ``exc("<argument>: expected ..., got ...<received>...")`` from rnnkit itself."""
    # ``received`` must appear whole after "got" ("0" does not match "10" or "0.5").
    pattern = rf"^{re.escape(argument)}: expected .+, got (?:.*\W)?{re.escape(received)}(?![\w.])"
    with pytest.raises(exc, match=pattern) as info:
        yield info
    _assert_raised_in_rnnkit(info)


@contextmanager
def names_argument(exc: type[Exception], argument: str) -> Iterator[None]:
    """Weaker than :func:`rejects`, for messages that are not in the standard wording yet."""
    with pytest.raises(exc, match=rf"^{re.escape(argument)}: ") as info:
        yield
    _assert_raised_in_rnnkit(info)


def data(shape: tuple[int, ...] = (L, N, H_IN), fill: float | None = None, **kwargs) -> Tensor:
    """A float32 tensor, by default a layer input ``(L, N, H_IN)``; random or all ``fill``."""
    if fill is None:
        return torch.randn(shape, **kwargs)
    return torch.full(shape, fill, **kwargs)


def valid_call(module_type: type) -> tuple[Tensor, Tensor]:
    """A valid input and one valid state tensor for a layer (``(L, N, H_IN)``) or a cell."""
    if module_type in CELLS:
        return data((N, H_IN)), torch.zeros(N, H)
    return data(), torch.zeros(1, N, H)


def state_for(module_type: type, h: Tensor) -> Tensor | tuple[Tensor, Tensor]:
    """``hx`` built around ``h``: ``(h, c)`` for LSTM(Cell), with ``c`` shaped like ``h``."""
    return (h, h.clone()) if module_type in (nn.LSTM, nn.LSTMCell) else h


def state_name(module_type: type) -> str:
    """How error messages name the first state tensor: ``hx``, or ``hx[0]`` for LSTM(Cell)."""
    return "hx[0]" if module_type in (nn.LSTM, nn.LSTMCell) else "hx"


# ------------------------------------------------------------- constructor arguments

BAD_SIZES = [
    (ValueError, 0, "0"),
    (ValueError, -3, "-3"),
    (TypeError, 2.0, "float 2.0"),
    (TypeError, True, "bool True"),
    (TypeError, "4", "str '4'"),
    (TypeError, None, "NoneType None"),
]
BAD_FLAGS = [1, 0, "yes", None]
SIZE_ARGUMENTS = ("input_size", "hidden_size")
FLAG_ARGUMENTS = ("bias", "fused", "check_finite")


def build(module_type: type, **overrides: object) -> torch.nn.Module:
    """Construct ``module_type(H_IN, H)`` with keyword ``overrides`` (sizes included)."""
    arguments: dict[str, object] = {"input_size": H_IN, "hidden_size": H} | overrides
    return module_type(**arguments)


@pytest.mark.parametrize("module_type", LAYERS + CELLS)
@pytest.mark.parametrize("argument", SIZE_ARGUMENTS)
@pytest.mark.parametrize(("exc", "value", "received"), BAD_SIZES)
def test_sizes_must_be_positive_ints(module_type, argument, exc, value, received):
    if module_type in CELLS and argument == "hidden_size" and value == 0:
        pytest.skip("torch.nn's cells take hidden_size=0: test_cells_take_hidden_size_zero")
    with rejects(exc, argument, received):
        build(module_type, **{argument: value})


@pytest.mark.parametrize("cell", CELLS)
def test_cells_take_hidden_size_zero(cell):
    """As torch.nn's cells: no parameters to speak of, an ``(N, 0)`` state."""
    x = data((N, H_IN))
    ours, theirs = build(cell, hidden_size=0), getattr(torch.nn, cell.__name__)(H_IN, 0)
    for a, b in zip(torch.utils._pytree.tree_leaves(ours(x)),
                    torch.utils._pytree.tree_leaves(theirs(x)), strict=True):  # fmt: skip
        assert a.shape == b.shape == (N, 0)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(("exc", "value", "received"), BAD_SIZES)
def test_num_layers_must_be_a_positive_int(layer, exc, value, received):
    with rejects(exc, "num_layers", received):
        build(layer, num_layers=value)


@given(size=st.integers(max_value=0))
def test_every_non_positive_size_is_rejected(size):
    with rejects(ValueError, "hidden_size", str(size)):
        nn.GRU(H_IN, size)


@pytest.mark.parametrize("module_type", LAYERS + CELLS)
@pytest.mark.parametrize("argument", FLAG_ARGUMENTS)
@pytest.mark.parametrize("value", BAD_FLAGS)
def test_flags_must_be_bools(module_type, argument, value):
    if module_type in CELLS and argument == "bias":
        pytest.skip("torch.nn's cells take any bias: test_cells_warn_of_a_bias_that_is_no_bool")
    with rejects(TypeError, argument, f"{type(value).__name__} {value!r}"):
        build(module_type, **{argument: value})


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("value", ["relu", 0])
def test_cells_warn_of_a_bias_that_is_no_bool(cell, value):
    """torch.nn's cells take ``RNNCell(10, 20, "relu")`` (bias "relu", so bias on); rnnkit's
    take it the same way but say so."""
    with pytest.warns(UserWarning, match=rf"^bias: expected a bool, got .* taken as {bool(value)}"):
        ours = cell(H_IN, H, value)
    theirs = getattr(torch.nn, cell.__name__)(H_IN, H, value)
    assert {n for n, _ in ours.named_parameters()} == {n for n, _ in theirs.named_parameters()}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("argument", ["batch_first", "bidirectional", "learn_init"])
@pytest.mark.parametrize("value", BAD_FLAGS)
def test_layer_flags_must_be_bools(layer, argument, value):
    with rejects(TypeError, argument, f"{type(value).__name__} {value!r}"):
        build(layer, **{argument: value})


RATE_ARGUMENTS = ("dropout", "recurrent_dropout", "zoneout")
BAD_RATE_TYPES = ["0.5", True, [0.5]]


BAD_RATES = [-0.1, 1.0, 1.5, math.inf, math.nan]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    ("argument", "value"),
    # torch.nn's layers take dropout=1 (test_dropout_of_one_is_torchs)
    [(a, v) for a in RATE_ARGUMENTS for v in BAD_RATES if (a, v) != ("dropout", 1.0)],
)
def test_rates_must_be_in_unit_interval(layer, argument, value):
    with rejects(ValueError, argument, str(value)):
        build(layer, num_layers=2, **{argument: value})


@pytest.mark.parametrize("layer", LAYERS)
def test_dropout_of_one_is_torchs(layer):
    """dropout=1 zeroes every layer's input but the first's, as in torch.nn."""
    torch.manual_seed(0)
    ours = build(layer, num_layers=2, dropout=1.0)
    theirs = getattr(torch.nn, layer.__name__)(H_IN, H, num_layers=2, dropout=1.0)
    theirs.load_state_dict(ours.state_dict())
    x = data()
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    layer_2_alone = build(layer, input_size=H)
    layer_2_alone.load_state_dict({k[:-1] + "0": v for k, v in ours.state_dict().items()
                                   if k.endswith("l1")})  # fmt: skip
    torch.testing.assert_close(ours(x)[0], layer_2_alone(torch.zeros(L, N, H))[0])


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("argument", RATE_ARGUMENTS)
@pytest.mark.parametrize("value", BAD_RATE_TYPES)
def test_rates_must_be_numbers(layer, argument, value):
    with names_argument(TypeError, argument):
        build(layer, num_layers=2, **{argument: value})


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("value", BAD_RATE_TYPES)
def test_rate_type_error_names_the_value(layer, value):
    with rejects(TypeError, "dropout", repr(value)):
        build(layer, num_layers=2, dropout=value)


@pytest.mark.parametrize(
    ("exc", "proj_size", "received"),
    [
        (ValueError, -1, "-1"),
        (ValueError, H, str(H)),
        (ValueError, H + 3, str(H + 3)),
        (TypeError, 1.0, "float 1.0"),
        (TypeError, True, "bool True"),
    ],
)
def test_proj_size_must_be_an_int_in_zero_to_hidden_size(exc, proj_size, received):
    with rejects(exc, "proj_size", received):
        nn.LSTM(H_IN, H, proj_size=proj_size)


@pytest.mark.parametrize("rnn_type", [nn.RNN, nn.RNNCell])
@pytest.mark.parametrize("value", ["sigmoid", "Tanh", "", None])
def test_nonlinearity_must_be_tanh_or_relu(rnn_type, value):
    with rejects(ValueError, "nonlinearity", repr(value)):
        build(rnn_type, nonlinearity=value)


EXTENDED = [
    getattr(nn, name)
    for name in nn.__all__
    if name.endswith("Cell")
    and name not in ("RecurrentCell", "SpecCell", "RNNCell", "LSTMCell", "GRUCell")
] + [layer for name, layer in nn.LAYERS.items() if name not in ("rnn", "lstm", "gru")]


@pytest.mark.parametrize("module_type", LAYERS + CELLS + EXTENDED, ids=lambda t: t.__name__)
def test_dtype_must_be_floating_point(module_type):
    with rejects(TypeError, "dtype", "torch.int64"):
        build(module_type, dtype=torch.int64)


# ------------------------------------------------------------------- layer: input


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", [(H_IN,), (L, N, 1, H_IN), (1, L, N, H_IN, 1)])
def test_layer_input_rank(layer, shape):
    with rejects(ValueError, "input", str(shape)):
        layer(H_IN, H)(data(shape))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    ("batch_first", "shape"),
    [(False, (L, N, H_IN + 1)), (True, (N, L, H_IN + 1)), (False, (L, H_IN - 1))],
    ids=["batched", "batch_first", "unbatched"],
)
def test_layer_feature_size(layer, batch_first, shape):
    with rejects(ValueError, "input", str(shape)):
        layer(H_IN, H, batch_first=batch_first)(data(shape))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64, torch.int32])
def test_layer_input_dtype(layer, dtype):
    with rejects(TypeError, "input", str(dtype)):
        layer(H_IN, H)(torch.zeros(L, N, H_IN, dtype=dtype))


def test_layer_input_dtype_follows_the_module():
    """A float64 module rejects float32 input just as a float32 module rejects float64."""
    with rejects(TypeError, "input", "torch.float32"):
        nn.LSTM(H_IN, H, dtype=torch.float64)(data())


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("value", [[[[0.0] * H_IN]], None, 1.0])
def test_layer_input_must_be_a_tensor(layer, value):
    with rejects(TypeError, "input", type(value).__name__):
        layer(H_IN, H)(value)


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_input_on_another_device(layer):
    """The meta device stands in for a GPU: the check compares devices, not data."""
    with rejects(ValueError, "input", "meta"):
        layer(H_IN, H)(data(device="meta"))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    ("batch_first", "shape"),
    [(False, (0, N, H_IN)), (True, (N, 0, H_IN)), (False, (0, H_IN))],
    ids=["batched", "batch_first", "unbatched"],
)
def test_layer_empty_sequence(layer, batch_first, shape):
    with rejects(ValueError, "input", str(shape)):
        layer(H_IN, H, batch_first=batch_first)(data(shape))


@pytest.mark.parametrize("layer", LAYERS)
def test_packed_input_checks(layer):
    module = layer(H_IN, H)
    with rejects(TypeError, "input", "torch.float64"):
        module(pack_sequence([data((L, H_IN), dtype=torch.float64)]))
    with rejects(ValueError, "input", str((L, H_IN + 1))):
        module(pack_sequence([data((L, H_IN + 1))]))


# ---------------------------------------------------------------------- layer: hx


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    ("input_shape", "hx_shape"),
    [
        ((L, N, H_IN), (2, N, H)),  # rows != D * num_layers
        ((L, N, H_IN), (1, N + 1, H)),  # batch
        ((L, N, H_IN), (1, N, H + 1)),  # width
        ((L, N, H_IN), (N, H)),  # unbatched hx for a batched input
        ((L, H_IN), (1, 1, H)),  # batched hx for an unbatched input
        ((L, H_IN), (2, H)),  # unbatched rows
        ((L, H_IN), (1, H - 1)),  # unbatched width
    ],
)
def test_layer_hx_shape(layer, input_shape, hx_shape):
    with rejects(ValueError, state_name(layer), str(hx_shape)):
        layer(H_IN, H)(data(input_shape), state_for(layer, torch.zeros(hx_shape)))


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_hx_rows_count_directions_and_layers(layer):
    module = layer(H_IN, H, num_layers=2, bidirectional=True)
    with rejects(ValueError, state_name(layer), str((2, N, H))):
        module(data(), state_for(layer, torch.zeros(2, N, H)))


def test_lstm_c_shape():
    h = torch.zeros(1, N, H)
    with rejects(ValueError, "hx[1]", str((1, N, H + 1))):
        nn.LSTM(H_IN, H)(data(), (h, torch.zeros(1, N, H + 1)))


def test_lstm_projected_state_width():
    """With proj_size = P, h is (D * num_layers, N, P) while c keeps H."""
    full_width = torch.zeros(1, N, H)
    with rejects(ValueError, "hx[0]", str((1, N, H))):
        nn.LSTM(H_IN, H, proj_size=2)(data(), (full_width, full_width))


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_hx_dtype_and_device(layer):
    module = layer(H_IN, H)
    with rejects(TypeError, state_name(layer), "torch.float64"):
        module(data(), state_for(layer, torch.zeros(1, N, H, dtype=torch.float64)))
    with rejects(ValueError, state_name(layer), "meta"):
        module(data(), state_for(layer, torch.zeros(1, N, H, device="meta")))


HX_CONTAINERS = {
    "tensor": (lambda h: h, "a tensor"),
    "1-tuple": (lambda h: (h,), "a tuple of 1"),
    "2-tuple": (lambda h: (h, h), "a tuple of 2"),
    "3-tuple": (lambda h: (h,) * 3, "a tuple of 3"),
    "2-list": (lambda h: [h, h], "a list of 2"),
    "3-list": (lambda h: [h] * 3, "a list of 3"),
    "float": (lambda h: 0.0, "float"),
    "dict": (lambda h: {"h": h}, "dict"),
}


def wrong_containers(module_type: type) -> list:
    """The entries of :data:`HX_CONTAINERS` that do not hold ``module_type``'s state count."""
    count = 2 if module_type in (nn.LSTM, nn.LSTMCell) else 1
    valid = {"tensor", "1-tuple"} if count == 1 else {"2-tuple", "2-list"}
    return [
        pytest.param(module_type, *HX_CONTAINERS[key], id=f"{module_type.__name__}-{key}")
        for key in HX_CONTAINERS
        if key not in valid
    ]


@pytest.mark.parametrize(
    ("module_type", "wrap", "received"),
    [case for module_type in LAYERS + CELLS for case in wrong_containers(module_type)],
)
def test_hx_container(module_type, wrap, received):
    x, h = valid_call(module_type)
    with rejects(TypeError, "hx", received):
        module_type(H_IN, H)(x, wrap(h))


@pytest.mark.parametrize(
    ("hx", "received"),
    [((torch.zeros(1, N, H), None), "NoneType"), ((torch.zeros(1, N, H), 0.0), "float")],
    ids=["none-c", "float-c"],
)
def test_lstm_hx_items_must_be_tensors(hx, received):
    with rejects(TypeError, "hx[1]", received):
        nn.LSTM(H_IN, H)(data(), hx)


# ----------------------------------------------------------------- layer: lengths


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(
    ("lengths", "received"),
    [([-1, L], "min -1"), ([L + 1, 1], f"max {L + 1}"), ([-2, L + 4], "min -2 and max 9")],
    ids=["negative", "too-long", "both"],
)
def test_lengths_range(layer, batch_first, lengths, received):
    x = data((N, L, H_IN)) if batch_first else data()
    module = layer(H_IN, H, batch_first=batch_first)
    with rejects(ValueError, "lengths", received):
        module(x, lengths=torch.tensor(lengths))
    with rejects(ValueError, "lengths", received):
        module(x, lengths=lengths)


@given(
    lengths=st.lists(st.integers(-50, 50), min_size=N, max_size=N).filter(
        lambda values: not all(0 <= n <= L for n in values)
    )
)
def test_every_out_of_range_length_is_rejected(lengths):
    with rejects(ValueError, "lengths", f"min {min(lengths)} and max {max(lengths)}"):
        nn.RNN(H_IN, H)(data(), lengths=torch.tensor(lengths))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    "lengths",
    [torch.tensor([L] * (N + 1)), torch.tensor([L]), torch.tensor([[L], [L]]), torch.tensor(L)],
    ids=["batch+1", "batch-1", "2-D", "0-D"],
)
def test_lengths_shape(layer, lengths):
    with rejects(ValueError, "lengths", str(tuple(lengths.shape))):
        layer(H_IN, H)(data(), lengths=lengths)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.complex64])
def test_lengths_dtype(layer, dtype):
    with rejects(TypeError, "lengths", str(dtype)):
        layer(H_IN, H)(data(), lengths=torch.ones(N, dtype=dtype))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    ("lengths", "received"),
    [([L, 2.0], "[5, 2.0]"), ([True, L], "[True, 5]"), ("55", "str"), ({L: L}, "dict")],
    ids=["float-item", "bool-item", "str", "dict"],
)
def test_lengths_type(layer, lengths, received):
    with rejects(TypeError, "lengths", received):
        layer(H_IN, H)(data(), lengths=lengths)


@pytest.mark.parametrize("layer", LAYERS)
def test_lengths_with_packed_sequence(layer):
    with rejects(ValueError, "lengths", "[5]"):
        layer(H_IN, H)(pack_sequence([data((L, H_IN))]), lengths=[L])


@pytest.mark.parametrize("layer", LAYERS)
def test_lengths_with_packed_sequence_still_rejected(layer):
    with names_argument(ValueError, "lengths"):
        layer(H_IN, H)(pack_sequence([data((L, H_IN))]), lengths=[L])


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("fused", [True, False])
def test_empty_batch_with_lengths_is_not_an_error(layer, fused):
    """N = 0 is accepted without lengths; with the matching empty lengths it must be too."""
    module = layer(H_IN, H, fused=fused)
    output, _ = module(data((L, 0, H_IN)), lengths=torch.zeros(0, dtype=torch.int64))
    assert output.shape == (L, 0, H)


# ------------------------------------------------------------------ check_finite

NON_FINITE = [math.nan, math.inf, -math.inf]


def poisoned_calls(module_type: type, value: float, check: bool) -> dict[str, Callable[[], object]]:
    """``label -> call`` that puts ``value`` into one checked argument of a fresh module.

    The label starts with the argument's name in error messages (``input``, ``hx``, ``hx[k]``).
    """
    module = module_type(H_IN, H, check_finite=check)
    x, h = valid_call(module_type)
    bad_h = h.clone().index_fill_(-1, torch.tensor([1]), value)
    calls = {"input": lambda: module(torch.full_like(x, value))}
    if module_type in LAYERS:
        bad_packed = pack_sequence([data((L, H_IN), fill=value)])
        calls["input (packed)"] = lambda: module(bad_packed)
    if module_type in (nn.LSTM, nn.LSTMCell):
        calls["hx[0]"] = lambda: module(x, (bad_h, h))
        calls["hx[1]"] = lambda: module(x, (h, bad_h))
    else:
        calls["hx"] = lambda: module(x, bad_h)
    return calls


def poisoned_cases(check: bool, values: list[float] = NON_FINITE) -> list:
    return [
        pytest.param(call, label.split()[0], value, id=f"{module_type.__name__}-{label}-{value}")
        for value in values
        for module_type in LAYERS + CELLS
        for label, call in poisoned_calls(module_type, value, check).items()
    ]


@pytest.mark.parametrize(("call", "argument", "value"), poisoned_cases(check=True))
def test_check_finite_rejects_nan_and_inf(call, argument, value):
    with names_argument(ValueError, argument):
        call()


@pytest.mark.parametrize(("call", "argument", "value"), poisoned_cases(True, [math.nan]))
def test_check_finite_message_wording(call, argument, value):
    with rejects(ValueError, argument, str(value)):
        call()


@pytest.mark.parametrize(("call", "argument", "value"), poisoned_cases(check=False))
def test_without_check_finite_nothing_is_raised(call, argument, value):
    call()


@pytest.mark.parametrize("module_type", LAYERS + CELLS)
@pytest.mark.parametrize("fused", [True, False])
def test_without_check_finite_nan_flows_through(module_type, fused):
    x, _ = valid_call(module_type)
    result = module_type(H_IN, H, fused=fused)(torch.full_like(x, math.nan))
    output = result[0] if isinstance(result, tuple) else result
    assert bool(output.isnan().all())


# --------------------------------------------------------------------------- cells


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(), (N, 1, H_IN), (L, N, H_IN)])
def test_cell_input_rank(cell, shape):
    with rejects(ValueError, "input", str(shape)):
        cell(H_IN, H)(data(shape))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(N, H_IN + 1), (H_IN - 1,)])
def test_cell_feature_size(cell, shape):
    with rejects(ValueError, "input", str(shape)):
        cell(H_IN, H)(data(shape))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.int64])
def test_cell_input_dtype(cell, dtype):
    with rejects(TypeError, "input", str(dtype)):
        cell(H_IN, H)(torch.zeros(N, H_IN, dtype=dtype))


@pytest.mark.parametrize("cell", CELLS)
def test_cell_input_must_be_a_tensor(cell):
    with rejects(TypeError, "input", "list"):
        cell(H_IN, H)([0.0] * H_IN)


@pytest.mark.parametrize("cell", CELLS)
def test_cell_device_mix(cell):
    module = cell(H_IN, H)
    x, h = valid_call(cell)
    with rejects(ValueError, "input", "meta"):
        module(x.to("meta"))
    with rejects(ValueError, state_name(cell), "meta"):
        module(x, state_for(cell, h.to("meta")))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    ("input_shape", "hx_shape"),
    [
        ((N, H_IN), (N + 1, H)),
        ((N, H_IN), (N, H + 1)),
        ((N, H_IN), (H,)),  # unbatched hx for a batched input
        ((H_IN,), (1, H)),  # batched hx for an unbatched input
        ((H_IN,), (H + 1,)),
    ],
)
def test_cell_hx_shape(cell, input_shape, hx_shape):
    with rejects(ValueError, state_name(cell), str(hx_shape)):
        cell(H_IN, H)(data(input_shape), state_for(cell, torch.zeros(hx_shape)))


def test_lstm_cell_hx_dtype():
    h = torch.zeros(N, H)
    with rejects(TypeError, "hx[1]", "torch.float64"):
        nn.LSTMCell(H_IN, H)(data((N, H_IN)), (h, h.double()))
