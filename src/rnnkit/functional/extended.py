"""The equations of the extended cells (Jordan), written
once.

As in :mod:`rnnkit.functional.cells`, each cell is split into a state-independent *input
projection*, computed for all ``L`` steps in one matrix product, and a *recurrence* that
takes the projection of one step and the previous state. The cells in
:mod:`rnnkit.nn._extended` and the tests call these functions; nothing here holds state.

Every recurrence takes an optional ``dropout_mask`` ``(N, S_0)`` (variational recurrent
dropout, Gal & Ghahramani 2016): it multiplies the copy of ``state[0]`` that enters the
recurrent weights, never the state carried forward.

Shape letters: ``L`` sequence length, ``N`` batch, ``H_in`` input features, ``H`` hidden size,
``O`` the output size of the Jordan network. Gate orders follow ``torch.nn``: LSTM
``(i, f, g, o)``, GRU ``(r, z, n)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.functional.cells import NONLINEARITIES


def _identity(x: Tensor) -> Tensor:
    return x


def _softmax(x: Tensor) -> Tensor:
    return torch.softmax(x, dim=-1)


def _masked(h: Tensor, dropout_mask: Tensor | None) -> Tensor:
    return h if dropout_mask is None else h * dropout_mask


#: Output non-linearities of the Jordan network (``softmax`` over the ``O`` features).
OUTPUT_NONLINEARITIES: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": _identity,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "softmax": _softmax,
}


def jordan_recurrence(
    gi: Tensor,
    y: Tensor,
    w_yh: Tensor,
    w_hy: Tensor,
    b_hy: Tensor | None,
    nonlinearity: str = "tanh",
    output_nonlinearity: str = "identity",
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """Jordan step (Jordan 1986): the hidden layer reads the previous *output*.

    ``h = act(gi + y @ W_yh.T)`` with ``gi = x @ W_ih.T + b_ih``;
    ``y' = out_act(h @ W_hy.T + b_hy)``.

    Args:
        gi: input projection ``(N, H)``.
        y: previous output ``(N, O)``.
        w_yh: ``(H, O)``; w_hy: ``(O, H)``; b_hy: ``(O,)`` or None.
        nonlinearity: ``act``, a key of :data:`rnnkit.functional.NONLINEARITIES`.
        output_nonlinearity: ``out_act``, a key of :data:`OUTPUT_NONLINEARITIES`.
        dropout_mask: ``(N, O)`` mask on the ``y`` that enters ``W_yh``, or None.

    Returns:
        The new output ``(N, O)``.
    """
    h = NONLINEARITIES[nonlinearity](gi + F.linear(_masked(y, dropout_mask), w_yh))  # (N, H)
    return OUTPUT_NONLINEARITIES[output_nonlinearity](F.linear(h, w_hy, b_hy))  # (N, O)
