"""Recurrent dropout, zoneout, the learnable initial state and ``detach_state``.

Layers: ``rnnkit.nn.LSTM``/``GRU`` and ``Recurrent(LSTMCell | GRUCell)``, plus probe cells
whose state is known, run through ``Recurrent`` so that what each step reads can be recorded.

Random masks are checked with a 6-sigma binomial bound: ``n`` independent draws with rate
``p`` give an observed rate within ``6 * sqrt(p (1 - p) / n)`` of ``p`` except with probability
about ``2e-9``, while a rate that is off by more than that fails. Deterministic behaviour is
checked against independent references: ``torch.nn`` layers and cells run in plain loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import rnnkit.nn
from rnnkit.nn import GRUCell, LSTMCell, Recurrent, RecurrentCell, detach_state

F64 = torch.float64
TOL = {"atol": 1e-10, "rtol": 1e-8}
EXACT = {"atol": 1e-14, "rtol": 0.0}  # float64 rounding only
State = tuple[Tensor, ...]

LAYERS: dict[str, Callable[..., nn.Module]] = {
    "LSTM": lambda *args, **kw: rnnkit.nn.LSTM(*args, **kw, dtype=F64),
    "GRU": lambda *args, **kw: rnnkit.nn.GRU(*args, **kw, dtype=F64),
    "Recurrent(LSTMCell)": lambda *args, **kw: Recurrent(LSTMCell, *args, **kw, dtype=F64),
    "Recurrent(GRUCell)": lambda *args, **kw: Recurrent(GRUCell, *args, **kw, dtype=F64),
}
DEDICATED = ("LSTM", "GRU")
# (layer, fused): the dedicated layers with their fused kernel allowed or not; None for Recurrent
WITH_FUSED = [(name, fused) for name in DEDICATED for fused in (True, False)] + [
    (name, None) for name in LAYERS if name not in DEDICATED
]


def is_lstm(layer: nn.Module) -> bool:
    return len(layer.state_sizes) == 2


def as_tuple(state: Tensor | State) -> State:
    return (state,) if isinstance(state, Tensor) else tuple(state)


def as_hx(layer: nn.Module, state: State) -> Tensor | State:
    """The state in the form ``layer`` documents: a bare tensor for rnnkit.nn.GRU."""
    return state[0] if isinstance(layer, rnnkit.nn.GRU) else state


def torch_hx(state: State) -> Tensor | State:
    """The state as torch.nn takes it: a bare tensor for GRU."""
    return state[0] if len(state) == 1 else state


def our_name(layer: nn.Module, torch_name: str) -> str:
    """torch.nn's parameter name -> ``layer``'s (``weight_ih_l1_reverse`` -> ``cells.3...``)."""
    if not isinstance(layer, Recurrent):
        return torch_name
    stem, rest = torch_name.rsplit("_l", 1)
    index = int(rest.split("_")[0]) * layer.num_directions + rest.endswith("_reverse")
    return f"cells.{index}.{stem}"


def cell_weights(layer: nn.Module, layer_index: int = 0, direction: int = 0) -> dict[str, Tensor]:
    """``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` of one recurrence."""
    suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return {name: layer.get_parameter(our_name(layer, name + suffix)) for name in names}


def torch_twin(layer: nn.Module) -> nn.RNNBase:
    """``torch.nn.LSTM``/``GRU`` holding ``layer``'s weights (no regulariser, no learned h_0)."""
    kind = nn.LSTM if is_lstm(layer) else nn.GRU
    projection = getattr(layer, "proj_size", 0)
    twin = kind(
        layer.input_size,
        layer.hidden_size,
        layer.num_layers,
        batch_first=layer.batch_first,
        bidirectional=layer.bidirectional,
        dtype=F64,
        **({"proj_size": projection} if projection else {}),
    )
    with torch.no_grad():
        for name, theirs in twin.named_parameters():
            theirs.copy_(layer.get_parameter(our_name(layer, name)))
    return twin.train(layer.training)


def torch_cell(layer: nn.Module) -> nn.RNNCellBase:
    """``torch.nn.LSTMCell``/``GRUCell`` holding the weights of ``layer``'s first recurrence."""
    cell = (nn.LSTMCell if is_lstm(layer) else nn.GRUCell)(
        layer.input_size, layer.hidden_size, dtype=F64
    )
    cell.load_state_dict(cell_weights(layer))
    return cell


def torch_step(cell: nn.RNNCellBase, x_t: Tensor, state: State) -> State:
    return tuple(cell(x_t, state)) if isinstance(cell, nn.LSTMCell) else (cell(x_t, state[0]),)


def random_state(layer: nn.Module, *batch: int) -> State:
    rows = layer.num_directions * layer.num_layers
    return tuple(torch.randn(rows, *batch, size, dtype=F64) for size in layer.state_sizes)


def assert_rate(events: Tensor, p: float, what: str) -> None:
    """The fraction of True in ``events`` (independent draws) is ``p`` within 6 sigma."""
    n = events.numel()
    rate = events.double().mean().item()
    bound = 6 * math.sqrt(p * (1 - p) / n)
    assert abs(rate - p) <= bound, f"{what}: rate {rate:.4f}, expected {p} +- {bound:.4f} (n={n})"


def assert_independent(a: Tensor, b: Tensor, p: float, what: str) -> None:
    """Two boolean masks of rate ``p`` drawn independently agree at rate ``p^2 + (1-p)^2``.

    A mask reused (``a == b`` everywhere) fails, and so do strongly correlated masks.
    """
    assert_rate(a == b, p**2 + (1 - p) ** 2, what)


# ----------------------------------------------------------------------------- probe cells


class DropoutProbe(RecurrentCell):
    """Records what each step feeds its recurrent weights; every new state is ones.

    Started from ones, the true state is always 1, so the ``state[0]`` a step feeds its
    weights is exactly the recurrent-dropout mask and ``state[1]`` must stay 1.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, (hidden_size, hidden_size))
        self.one = nn.Parameter(torch.ones((), dtype=F64))
        self.reads: list[State] = []

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        recurrent_input = state[0] if dropout_mask is None else state[0] * dropout_mask
        self.reads.append(tuple(s.detach().clone() for s in (recurrent_input, *state[1:])))
        return tuple(self.one * torch.ones_like(s) for s in state)


class CounterProbe(RecurrentCell):
    """Records what each step reads; the new state is the old plus 1.

    Under zoneout a unit was kept at a step exactly when its value did not change.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, (hidden_size, hidden_size))
        self.one = nn.Parameter(torch.ones((), dtype=F64))
        self.reads: list[State] = []

    def step(self, x_t: Tensor, state: State) -> State:
        self.reads.append(tuple(s.detach().clone() for s in state))
        return tuple(s + self.one for s in state)


# ----------------------------------------------------------------------------- recurrent dropout

BATCH, HIDDEN = 64, 64


@pytest.mark.parametrize("start", ["hx", "learn_init"])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_recurrent_dropout_mask_measured_by_probe(p: float, start: str) -> None:
    layer = Recurrent(
        DropoutProbe,
        2,
        HIDDEN,
        num_layers=2,
        bidirectional=True,
        recurrent_dropout=p,
        learn_init=start == "learn_init",
    )
    x = torch.zeros(5, BATCH, 2, dtype=F64)
    ones = tuple(torch.ones(4, BATCH, HIDDEN, dtype=F64) for _ in range(2))
    if start == "learn_init":
        with torch.no_grad():
            for h0 in layer.initial_state:
                h0.fill_(1.0)
        layer(x)
    else:
        layer(x, ones)
    masks = []
    for cell in layer.cells:
        assert len(cell.reads) == 5
        first = cell.reads[0][0]
        for h_read, c_read in cell.reads:
            assert torch.equal(h_read, first)  # one mask per sequence, every step
            assert torch.equal(c_read, torch.ones_like(c_read))  # only state[0] is dropped
        kept = first != 0
        torch.testing.assert_close(first[kept], torch.full_like(first[kept], 1 / (1 - p)))
        masks.append(kept)
    masks = torch.stack(masks)  # (D * num_layers, N, H)
    assert_rate(~masks, p, "dropped fraction")
    assert_independent(masks[:, 0::2], masks[:, 1::2], p, "sequences of a batch")
    assert_independent(masks[0::2], masks[1::2], p, "recurrences of a stack")
    for cell in layer.cells:
        cell.reads.clear()
    layer(x, ones)
    again = torch.stack([cell.reads[0][0] != 0 for cell in layer.cells])
    assert_independent(masks, again, p, "two forward calls")


def make_update_gate_closed(layer: nn.Module) -> None:
    """GRU only: bias the update gate to ``z = 0`` so ``h' = n`` reads ``h`` only via W_hh.

    Then ``h`` reaches the output only through the masked matrix product, whether or not the
    carried term ``z * h`` is masked too.
    """
    if is_lstm(layer):
        return
    with torch.no_grad():
        for k in range(layer.num_layers):
            for d in range(layer.num_directions):
                cell_weights(layer, k, d)["bias_hh"][
                    layer.hidden_size : 2 * layer.hidden_size
                ] = -60.0


def kept_from_gradient(layer: nn.Module, x: Tensor, hx: State) -> tuple[Tensor, Tensor, State]:
    """Train-mode forward; the units of ``h_0`` whose gradient vanishes were dropped.

    ``h_0`` reaches the output only through ``(h_0 * mask) W_hh^T`` (see
    :func:`make_update_gate_closed`), so its gradient is zero exactly where the mask is.
    """
    h0 = hx[0].clone().requires_grad_()
    output, state = layer(x, as_hx(layer, (h0, *hx[1:])))
    (grad,) = torch.autograd.grad((output * torch.randn_like(output)).sum(), h0)
    return grad.abs() > 1e-12, output, as_tuple(state)


@pytest.mark.parametrize("name", LAYERS)
def test_recurrent_dropout_mask_statistics_from_gradients(name: str) -> None:
    p = 0.3
    layer = LAYERS[name](3, HIDDEN, 2, bidirectional=True, recurrent_dropout=p).train()
    make_update_gate_closed(layer)
    x = torch.randn(4, BATCH, 3, dtype=F64)
    kept, _, _ = kept_from_gradient(layer, x, random_state(layer, BATCH))  # (4, N, H)
    assert_rate(~kept, p, "dropped fraction")
    assert_independent(kept[:, 0::2], kept[:, 1::2], p, "sequences of a batch")
    assert_independent(kept[0::2], kept[1::2], p, "recurrences of a stack")


@pytest.mark.parametrize(("name", "fused"), WITH_FUSED)
def test_recurrent_dropout_one_scaled_mask_per_sequence(name: str, fused: bool | None) -> None:
    """The train-mode output is a plain torch.nn cell loop reading ``h * m`` at every step.

    ``m = kept / (1 - p)`` is read off the gradient, so a mask redrawn at each step or scaled
    otherwise would not match; ``fused=True`` must not bypass the regulariser.
    """
    p = 0.4
    options = {} if fused is None else {"fused": fused}
    layer = LAYERS[name](3, 8, recurrent_dropout=p, **options).train()
    make_update_gate_closed(layer)
    x = torch.randn(7, 5, 3, dtype=F64)
    hx = random_state(layer, 5)
    kept, output, final = kept_from_gradient(layer, x, hx)
    mask = kept[0].to(F64) / (1 - p)  # (N, H)
    cell = torch_cell(layer)
    state = tuple(s[0] for s in hx)
    expected = []
    for x_t in x:
        state = torch_step(cell, x_t, (state[0] * mask, *state[1:]))
        expected.append(state[0])
    torch.testing.assert_close(output, torch.stack(expected), **TOL)
    for got, want in zip(final, state, strict=True):
        torch.testing.assert_close(got[0], want, **TOL)
    plain = torch_twin(layer)(x, torch_hx(hx))[0]
    assert not torch.allclose(output, plain)


@pytest.mark.parametrize("name", ["GRU", "Recurrent(GRUCell)"])
def test_recurrent_dropout_leaves_gru_carry_alone(name: str) -> None:
    """Gal & Ghahramani (2016) drop ``h`` inside the gates' products, not in ``z * h``.

    With the update gate fully open (``z = 1``) a GRU copies its state, in training too.
    """
    layer = LAYERS[name](1, 8, recurrent_dropout=0.5).train()
    with torch.no_grad():
        for value in cell_weights(layer).values():
            value.zero_()
        cell_weights(layer)["bias_hh"][8:16] = 60.0  # z = sigmoid(60) = 1 in float64
    h0 = torch.randn(1, 3, 8, dtype=F64)
    _, h_n = layer(torch.zeros(10, 3, 1, dtype=F64), as_hx(layer, (h0,)))
    torch.testing.assert_close(as_tuple(h_n)[0], h0)


@pytest.mark.parametrize("name", LAYERS)
def test_recurrent_dropout_in_eval_is_the_plain_layer(name: str) -> None:
    regularised = LAYERS[name](3, 6, 2, bidirectional=True, recurrent_dropout=0.5)
    plain = LAYERS[name](3, 6, 2, bidirectional=True)
    plain.load_state_dict(regularised.state_dict())
    regularised.eval()
    plain.eval()
    x, hx = torch.randn(5, 4, 3, dtype=F64), random_state(plain, 4)
    out, state = regularised(x, as_hx(plain, hx))
    want_out, want_state = plain(x, as_hx(plain, hx))
    assert torch.equal(out, want_out)
    for got, want in zip(as_tuple(state), as_tuple(want_state), strict=True):
        torch.testing.assert_close(got, want, **EXACT)
    ref_out, ref_state = torch_twin(regularised)(x, torch_hx(hx))
    torch.testing.assert_close(out, ref_out, **TOL)
    for got, want in zip(as_tuple(state), as_tuple(ref_state), strict=True):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("name", LAYERS)
def test_regularised_train_mode_follows_the_seed(name: str) -> None:
    layer = LAYERS[name](3, 6, 2, recurrent_dropout=0.3, zoneout=0.2).train()
    x = torch.randn(5, 4, 3, dtype=F64)
    outputs = []
    for seed in (11, 11, 12):
        torch.manual_seed(seed)
        outputs.append(layer(x)[0])
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2])


@pytest.mark.parametrize("name", LAYERS)
def test_zero_rates_are_the_plain_layer(name: str) -> None:
    layer = LAYERS[name](3, 6, 2, bidirectional=True, recurrent_dropout=0, zoneout=0).train()
    x, hx = torch.randn(5, 4, 3, dtype=F64), random_state(layer, 4)
    out, state = layer(x, as_hx(layer, hx))
    want_out, want_state = torch_twin(layer)(x, torch_hx(hx))
    torch.testing.assert_close(out, want_out, **TOL)
    for got, want in zip(as_tuple(state), as_tuple(want_state), strict=True):
        torch.testing.assert_close(got, want, **TOL)


# ----------------------------------------------------------------------------- zoneout


@pytest.mark.parametrize("p", [0.15, 0.5])
def test_zoneout_keeps_each_unit_with_probability_p_per_step(p: float) -> None:
    steps = 12
    layer = Recurrent(CounterProbe, 1, HIDDEN, zoneout=p).train()
    hx = tuple(torch.zeros(1, BATCH, HIDDEN, dtype=F64) for _ in range(2))
    _, final = layer(torch.zeros(steps, BATCH, 1, dtype=F64), hx)
    (cell,) = layer.cells
    for k in range(2):
        path = torch.stack([read[k] for read in cell.reads] + [final[k][0]])  # (T + 1, N, H)
        kept = path[1:] == path[:-1]  # (T, N, H)
        assert torch.equal(path[1:][~kept], path[:-1][~kept] + 1)  # else the new value
        assert_rate(kept, p, f"state {k}: kept fraction")
        for t in range(steps):
            assert_rate(kept[t], p, f"state {k}: kept fraction at step {t}")
        assert_independent(kept[0::2], kept[1::2], p, f"state {k}: masks of successive steps")


@pytest.mark.parametrize("name", LAYERS)
def test_zoneout_step_is_old_or_new_per_unit(name: str) -> None:
    """Step by step, every unit of every state tensor is its old value or torch.nn's new one."""
    p = 0.3
    layer = LAYERS[name](3, HIDDEN, zoneout=p).train()
    cell = torch_cell(layer)
    state = tuple(s[0] for s in random_state(layer, BATCH))
    kept = [[] for _ in state]
    for _ in range(6):
        x_t = torch.randn(BATCH, 3, dtype=F64)
        _, new = layer(x_t[None], as_hx(layer, tuple(s[None] for s in state)))
        new = tuple(s[0] for s in as_tuple(new))
        candidate = torch_step(cell, x_t, state)
        for k, (old, got, want) in enumerate(zip(state, new, candidate, strict=True)):
            same = got == old
            assert torch.allclose(got[~same], want[~same], **TOL)
            kept[k].append(same)
        state = tuple(s.detach() for s in new)
    for k, masks in enumerate(kept):
        assert_rate(torch.stack(masks), p, f"state {k}: kept fraction")


@pytest.mark.parametrize("name", LAYERS)
def test_zoneout_masks_differ_across_steps_of_one_sequence(name: str) -> None:
    p = 0.3
    layer = LAYERS[name](3, HIDDEN, zoneout=p).train()
    h0 = random_state(layer, BATCH)
    output, _ = layer(torch.randn(9, BATCH, 3, dtype=F64), as_hx(layer, h0))
    path = torch.cat([h0[0], output])  # (T + 1, N, H): h itself
    kept = path[1:] == path[:-1]
    assert_rate(kept, p, "kept fraction of h")
    assert_independent(kept[0:-1:2], kept[1::2], p, "masks of successive steps")


def zoneout_expectation(
    layer: nn.Module, x: Tensor, hx: State, lengths: list[int], p: float
) -> tuple[Tensor, State]:
    """Plain loop of torch.nn cells: ``state = p * old + (1 - p) * new``, per sequence."""
    cell = torch_cell(layer)
    outputs, finals = torch.zeros(*x.shape[:2], layer.hidden_size, dtype=F64), []
    for b, n in enumerate(lengths):
        state = tuple(s[0, b : b + 1] for s in hx)
        for t in range(n):
            new = torch_step(cell, x[t, b : b + 1], state)
            state = tuple(p * old + (1 - p) * s for old, s in zip(state, new, strict=True))
            outputs[t, b] = state[0][0]
        finals.append(state)
    return outputs, tuple(torch.cat(f)[None] for f in zip(*finals, strict=True))


@pytest.mark.parametrize(("name", "fused"), WITH_FUSED)
def test_zoneout_eval_is_the_expectation(name: str, fused: bool | None) -> None:
    p = 0.35
    options = {} if fused is None else {"fused": fused}
    layer = LAYERS[name](3, 6, zoneout=p, **options).eval()
    x, hx, lengths = torch.randn(5, 3, 3, dtype=F64), random_state(layer, 3), [5, 2, 0]
    want_out, want_state = zoneout_expectation(layer, x, hx, lengths, p)
    out, state = layer(x, as_hx(layer, hx), lengths=lengths)
    torch.testing.assert_close(out, want_out, **TOL)
    for got, want in zip(as_tuple(state), want_state, strict=True):
        torch.testing.assert_close(got, want, **TOL)
    plain, _ = torch_twin(layer)(x, torch_hx(hx))
    assert not torch.allclose(out[:2, :1], plain[:2, :1])


# ----------------------------------------------------------------------------- learn_init


@pytest.mark.parametrize(
    ("build", "sizes"),
    [
        (lambda: rnnkit.nn.LSTM(3, 6, 2, bidirectional=True, learn_init=True, dtype=F64), (6, 6)),
        (
            lambda: rnnkit.nn.LSTM(
                3, 6, 2, bidirectional=True, proj_size=4, learn_init=True, dtype=F64
            ),
            (4, 6),
        ),
        (lambda: rnnkit.nn.GRU(3, 6, 2, bidirectional=True, learn_init=True, dtype=F64), (6,)),
        (lambda: LAYERS["Recurrent(LSTMCell)"](3, 6, 2, True, learn_init=True), (6, 6)),
        (lambda: LAYERS["Recurrent(GRUCell)"](3, 6, 2, True, learn_init=True), (6,)),
    ],
    ids=["LSTM", "LSTM-proj", "GRU", "Recurrent(LSTMCell)", "Recurrent(GRUCell)"],
)
def test_learn_init(build: Callable[[], nn.Module], sizes: tuple[int, ...]) -> None:
    layer = build()
    h0s = list(layer.initial_state)
    assert [tuple(h0.shape) for h0 in h0s] == [(4, s) for s in sizes]
    assert all(isinstance(h0, nn.Parameter) and h0.dtype == F64 for h0 in h0s)
    assert all(torch.equal(h0, torch.zeros_like(h0)) for h0 in h0s)  # zeros at first
    assert {id(h0) for h0 in h0s} <= {id(q) for q in layer.parameters()}
    with torch.no_grad():
        for h0 in h0s:
            h0.normal_()
    reference = torch_twin(layer)
    x = torch.randn(5, 3, 3, dtype=F64)

    # hx None: the learned state, broadcast over the batch; its gradient sums over the batch
    out, state = layer(x)
    explicit = tuple(h0.detach()[:, None].expand(-1, 3, -1).clone().requires_grad_() for h0 in h0s)
    want_out, want_state = reference(x, torch_hx(explicit))
    torch.testing.assert_close(out, want_out, **TOL)
    for got, want in zip(as_tuple(state), as_tuple(want_state), strict=True):
        torch.testing.assert_close(got, want, **TOL)
    weights = torch.randn_like(want_out)
    (out * weights).sum().backward()
    (want_out * weights).sum().backward()
    for h0, hx in zip(h0s, explicit, strict=True):
        torch.testing.assert_close(h0.grad, hx.grad.sum(1), **TOL)

    # unbatched input uses it too
    out, _ = layer(x[:, 0])
    plain_h0 = tuple(h0.detach() for h0 in h0s)
    want, _ = reference(x[:, 0], torch_hx(plain_h0))
    torch.testing.assert_close(out, want, **TOL)

    # hx given: the learned state is ignored and gets no gradient
    layer.zero_grad(set_to_none=True)
    hx = random_state(layer, 3)
    out, _ = layer(x, as_hx(layer, hx))
    torch.testing.assert_close(out, reference(x, torch_hx(hx))[0], **TOL)
    out.sum().backward()
    assert all(h0.grad is None for h0 in h0s)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_learn_init_state_dict_keys(kind: str) -> None:
    ours = getattr(rnnkit.nn, kind)(3, 5, 2, bidirectional=True, learn_init=True)
    theirs = getattr(nn, kind)(3, 5, 2, bidirectional=True)
    extra = [f"initial_state.{k}" for k in range(len(ours.state_sizes))]
    assert list(ours.state_dict()) == list(theirs.state_dict()) + extra
    result = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert (result.missing_keys, result.unexpected_keys) == ([], extra)
    result = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert (result.missing_keys, result.unexpected_keys) == (extra, [])
    plain = getattr(rnnkit.nn, kind)(3, 5, 2, bidirectional=True)
    assert list(plain.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        ours.initial_state[0].normal_()
    copy = getattr(rnnkit.nn, kind)(3, 5, 2, bidirectional=True, learn_init=True)
    copy.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 3)
    assert torch.equal(copy(x)[0], ours(x)[0])


# ----------------------------------------------------------------------------- detach_state


@pytest.mark.parametrize("name", LAYERS)
def test_detach_state_cuts_the_graph(name: str) -> None:
    layer = LAYERS[name](3, 6, 2)
    x1 = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)
    x2 = torch.randn(5, 2, 3, dtype=F64)
    _, state = layer(x1)
    carried = detach_state(state)
    assert type(carried) is type(state)
    for got, want in zip(as_tuple(carried), as_tuple(state), strict=True):
        assert torch.equal(got, want)
        assert not got.requires_grad
    out, _ = layer(x2, carried)
    twin = torch_twin(layer)
    names = [name for name, _ in twin.named_parameters()]
    ours = [layer.get_parameter(our_name(layer, name)) for name in names]
    grads = torch.autograd.grad(out.square().sum(), ours)
    assert x1.grad is None
    # the same gradients as chunk 2 alone from a constant initial state, via torch.nn
    constant = tuple(s.detach().clone() for s in as_tuple(state))
    want_out, _ = twin(x2, torch_hx(constant))
    want = torch.autograd.grad(want_out.square().sum(), list(twin.parameters()))
    torch.testing.assert_close(out, want_out, **TOL)
    for name, got, expected in zip(names, grads, want, strict=True):
        torch.testing.assert_close(got, expected, **TOL, msg=name)
    # without detaching, gradient reaches the first chunk
    out, _ = layer(x2, state)
    out.square().sum().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0


@pytest.mark.parametrize(("batch_first", "zoneout"), [(False, 0.0), (True, 0.0), (False, 0.2)])
@pytest.mark.parametrize("name", LAYERS)
def test_chunked_forward_equals_one_forward(name: str, batch_first: bool, zoneout: float) -> None:
    """Carrying the state across chunks is the same computation (zoneout: its eval form).

    Equal up to float64 rounding: BLAS may sum a product over fewer rows in another order.
    """
    layer = LAYERS[name](3, 6, 2, batch_first=batch_first, zoneout=zoneout).eval()
    x = torch.randn(2, 11, 3, dtype=F64)
    x = x if batch_first else x.transpose(0, 1)
    time_dim = 1 if batch_first else 0
    hx = as_hx(layer, random_state(layer, 2))
    want_out, want_state = layer(x, hx)
    state, outputs = hx, []
    for chunk in x.split([4, 1, 6], dim=time_dim):
        out, state = layer(chunk, state)
        outputs.append(out)
        state = detach_state(state)
    torch.testing.assert_close(torch.cat(outputs, time_dim), want_out, **EXACT)
    for got, want in zip(as_tuple(state), as_tuple(want_state), strict=True):
        torch.testing.assert_close(got, want, **EXACT)
