"""The gate equations, written once.

Every recurrent cell in rnnkit is split into two pure pieces:

* an *input projection* ``gi = x @ W_ih.T + b_ih`` that does not depend on the state, so a
  layer can compute it for all time steps in one matrix product, and
* a *recurrence* that takes ``gi`` for one step and the previous state and returns the new
  state.

The layers' reference path, the cells, the streaming runtime and the tests all call these
functions, so the maths lives in this one file.

Shape letters: ``N`` batch, ``H_in`` input features, ``H`` hidden size, ``P`` projection
size (LSTM with ``proj_size > 0``; otherwise ``P = H``). Gate orders follow ``torch.nn``:
LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


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
    return NONLINEARITIES[nonlinearity](gi + F.linear(_masked(h, dropout_mask), w_hh, b_hh))


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
    i, f, g, o = lstm_gates(gi, _masked(h, dropout_mask), w_hh, b_hh)
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def lstm_gates(
    gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The LSTM's gate activations ``(i, f, g, o)``, each ``(N, H)``: sigmoid, sigmoid, tanh,
    sigmoid of ``split_4(gi + h @ W_hh.T + b_hh)``; arguments as in :func:`lstm_recurrence`."""
    i, f, g, o = (gi + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)


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
    gi_r, gi_z, gi_n = gi.chunk(3, dim=-1)
    gh_r, gh_z, gh_n = F.linear(_masked(h, dropout_mask), w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(gi_r + gh_r)
    z = torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + r * gh_n)
    return n + z * (h - n)


def _masked(h: Tensor, dropout_mask: Tensor | None) -> Tensor:
    return h if dropout_mask is None else h * dropout_mask


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
    return rnn_recurrence(F.linear(x, w_ih, b_ih), h, w_hh, b_hh, nonlinearity)


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
    return lstm_recurrence(F.linear(x, w_ih, b_ih), h, c, w_hh, b_hh, w_hr)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """One GRU step from the raw input ``x`` ``(N, H_in)``; returns ``h'`` ``(N, H)``."""
    return gru_recurrence(F.linear(x, w_ih, b_ih), h, w_hh, b_hh)
