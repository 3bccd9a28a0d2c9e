"""RNN, LSTM and GRU steps as functions of tensors: the cells' own equations, run on torch.

The equations live once, as the steps of :mod:`rnnkit.cells.rnn`, :mod:`rnnkit.cells.lstm`
and :mod:`rnnkit.cells.gru`; these functions run them with :data:`rnnkit.functional.ops.TORCH`
on weights given one by one, torch.nn.functional style. A step is split in two:

* an *input projection* ``gi = x @ W_ih.T + b_ih`` that does not depend on the state, so a
  layer can compute it for all time steps in one matrix product, and
* a *recurrence* that takes ``gi`` for one step and the previous state and returns the new
  state.

Shape letters: ``N`` batch, ``H_in`` input features, ``H`` hidden size, ``P`` projection
size (LSTM with ``proj_size > 0``; otherwise ``P = H``). Gate orders follow ``torch.nn``:
LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from torch import Tensor

from rnnkit.cells import CellSpec
from rnnkit.cells import gru as _gru
from rnnkit.cells import lstm as _lstm
from rnnkit.cells import rnn as _rnn
from rnnkit.functional.ops import TORCH

_RNN, _LSTM, _GRU = _rnn.CELL, _lstm.CELL, _gru.CELL

#: The RNN's nonlinearities by name.
NONLINEARITIES = {name: getattr(TORCH, name) for name in _RNN.options["nonlinearity"].choices}


def rnn_recurrence(
    gi: Tensor,
    h: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    nonlinearity: str = "tanh",
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """Elman step: ``h' = act(gi + h @ W_hh.T + b_hh)``.

    Args:
        gi: input projection ``(N, H)``.
        h: previous hidden state ``(N, H)``.
        w_hh: ``(H, H)``; b_hh: ``(H,)`` or None.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        dropout_mask: ``(N, H)`` variational recurrent dropout mask on the ``h`` that enters
            ``W_hh`` (Gal & Ghahramani 2016), or None. Every recurrence takes one.

    Returns:
        The new hidden state ``(N, H)``.
    """
    p = SimpleNamespace(weight_hh=w_hh, bias_hh=b_hh, nonlinearity=nonlinearity)
    return _RNN.step(TORCH, p, gi, (h,), dropout_mask)[0]


def lstm_recurrence(
    gi: Tensor,
    h: Tensor,
    c: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    ``i, f, g, o = split(gi + h @ W_hh.T + b_hh)``;
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``; ``h' = sigmoid(o) * tanh(c')``;
    with a projection (Sak et al. 2014) ``h' = h' @ W_hr.T``.

    Args:
        gi: input projection ``(N, 4H)``.
        h: previous hidden state ``(N, P)``; c: previous cell state ``(N, H)``.
        w_hh: ``(4H, P)``; b_hh: ``(4H,)`` or None; w_hr: ``(P, H)`` or None.
        dropout_mask: ``(N, P)`` or None, as in :func:`rnn_recurrence`.

    Returns:
        ``(h', c')`` of shapes ``(N, P)`` and ``(N, H)``.
    """
    p = SimpleNamespace(weight_hh=w_hh, bias_hh=b_hh, weight_hr=w_hr)
    h, c = _LSTM.step(TORCH, p, gi, (h, c), dropout_mask)
    return h, c


def lstm_gates(
    gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The LSTM's gate activations ``(i, f, g, o)``, each ``(N, H)``: sigmoid, sigmoid, tanh,
    sigmoid of ``split_4(gi + h @ W_hh.T + b_hh)``; arguments as in :func:`lstm_recurrence`."""
    return _lstm.gates(TORCH, SimpleNamespace(weight_hh=w_hh, bias_hh=b_hh), gi, h)


def gru_recurrence(
    gi: Tensor,
    h: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """GRU step (Cho et al. 2014), in torch.nn's form with ``b_hn`` inside the reset product.

    ``r = sigmoid(gi_r + gh_r)``, ``z = sigmoid(gi_z + gh_z)``,
    ``n = tanh(gi_n + r * gh_n)``, ``h' = (1 - z) * n + z * h``,
    where ``gh = h @ W_hh.T + b_hh``.

    Args:
        gi: input projection ``(N, 3H)``.
        h: previous hidden state ``(N, H)``.
        w_hh: ``(3H, H)``; b_hh: ``(3H,)`` or None.
        dropout_mask: ``(N, H)`` or None, as in :func:`rnn_recurrence`; the ``h`` carried
            through ``z`` is not masked.

    Returns:
        The new hidden state ``(N, H)``.
    """
    p = SimpleNamespace(weight_hh=w_hh, bias_hh=b_hh)
    return _GRU.step(TORCH, p, gi, (h,), dropout_mask)[0]


def rnn_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> Tensor:
    """One Elman step from the raw input ``x`` ``(N, H_in)``; returns ``h'`` ``(N, H)``."""
    return rnn_recurrence(_project(_RNN, x, w_ih, b_ih), h, w_hh, b_hh, nonlinearity)


def lstm_cell(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step from the raw input ``x`` ``(N, H_in)``; returns ``(h', c')``."""
    h, c = state
    return lstm_recurrence(_project(_LSTM, x, w_ih, b_ih), h, c, w_hh, b_hh, w_hr)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """One GRU step from the raw input ``x`` ``(N, H_in)``; returns ``h'`` ``(N, H)``."""
    return gru_recurrence(_project(_GRU, x, w_ih, b_ih), h, w_hh, b_hh)


def _project(spec: CellSpec, x: Tensor, w_ih: Tensor, b_ih: Tensor | None) -> Tensor:
    """``spec``'s input projection, ``(N, H_in) -> (N, G*H)``."""
    return spec.project(TORCH, SimpleNamespace(weight_ih=w_ih, bias_ih=b_ih), x)
