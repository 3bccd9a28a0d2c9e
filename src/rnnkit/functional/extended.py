"""The equations of the extended cells (Jordan, layer-normalised GRU, IndRNN), written
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


def layer_norm_projection(
    x: Tensor, w_ih: Tensor, ln_weight: Tensor, ln_bias: Tensor | None, eps: float
) -> Tensor:
    """The input side of a layer-normalised cell: ``LN(x @ W_ih.T)`` over its last dimension.

    ``LN(a) = ln_weight * (a - mean(a)) / sqrt(var(a) + eps) + ln_bias``, with the mean and
    the (biased) variance taken over all ``G*H`` gate pre-activations of one step and one
    sequence (Ba, Kiros & Hinton 2016). ``W_ih`` has no bias of its own: ``ln_bias`` is it.

    Args:
        x: ``(..., H_in)``, usually all steps ``(L, N, H_in)``.
        w_ih: ``(G*H, H_in)``; ln_weight: ``(G*H,)``; ln_bias: ``(G*H,)`` or None.

    Returns:
        ``(..., G*H)``.
    """
    a = F.linear(x, w_ih)  # (..., G*H)
    # The gain and shift apart from layer_norm: its backward sums their gradients in one
    # buffer per thread, so they would change with the thread count; these sums do not.
    normalised = F.layer_norm(a, a.shape[-1:], None, None, eps) * ln_weight
    return normalised if ln_bias is None else normalised + ln_bias


def layer_norm_gru_recurrence(
    gi: Tensor,
    h: Tensor,
    w_hh: Tensor,
    ln_weight_hh: Tensor,
    ln_bias_hh: Tensor | None,
    eps: float,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """Layer-normalised GRU step, torch.nn's GRU with each side normalised.

    ``gh = LN_hh(h @ W_hh.T)`` and ``gi = LN_ih(x @ W_ih.T)``, each over all ``3H`` values,
    split into ``(r, z, n)`` parts; ``r = sigmoid(gi_r + gh_r)``, ``z = sigmoid(gi_z + gh_z)``,
    ``n = tanh(gi_n + r * gh_n)``, ``h' = (1 - z) * n + z * h``. As torch.nn keeps ``b_hn``
    inside the reset product, ``r`` multiplies the whole normalised ``gh_n``, its LN shift
    included.

    Args:
        gi: normalised input projection ``(N, 3H)``.
        h: previous hidden state ``(N, H)``.
        w_hh: ``(3H, H)``; ln_weight_hh: ``(3H,)``; ln_bias_hh: ``(3H,)`` or None.
        dropout_mask: ``(N, H)`` mask on the ``h`` that enters ``W_hh`` (before LN), or None;
            the ``h`` carried through ``z`` is not masked.

    Returns:
        The new hidden state ``(N, H)``.
    """
    gh = F.linear(_masked(h, dropout_mask), w_hh)  # (N, 3H)
    gh = F.layer_norm(gh, gh.shape[-1:], ln_weight_hh, ln_bias_hh, eps)
    gi_r, gi_z, gi_n = gi.chunk(3, dim=-1)
    gh_r, gh_z, gh_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(gi_r + gh_r)
    z = torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + r * gh_n)
    return n + z * (h - n)


def indrnn_recurrence(
    gi: Tensor,
    h: Tensor,
    w_hh: Tensor,
    nonlinearity: str = "relu",
    recurrent_max_abs: float | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """IndRNN step (Li et al. 2018): ``h' = act(gi + u * h)``, ``gi = x @ W_ih.T + b``.

    Each unit sees only its own past through one recurrent weight ``u`` (``w_hh``). With
    ``recurrent_max_abs = m`` the step uses ``clamp(u, -m, m)``: ``|u| <= m`` bounds how fast
    a unit's memory can grow (``m**T`` over ``T`` steps), the paper's constraint against
    exploding gradients.

    Args:
        gi: input projection ``(N, H)``.
        h: previous hidden state ``(N, H)``.
        w_hh: the recurrent weights ``u`` ``(H,)``.
        nonlinearity: ``"relu"`` or ``"tanh"``.
        recurrent_max_abs: the bound ``m > 0``, or None for no bound.
        dropout_mask: ``(N, H)`` mask on the ``h`` that ``u`` multiplies, or None.

    Returns:
        The new hidden state ``(N, H)``.
    """
    if recurrent_max_abs is not None:
        w_hh = w_hh.clamp(-recurrent_max_abs, recurrent_max_abs)
    return NONLINEARITIES[nonlinearity](gi + w_hh * _masked(h, dropout_mask))
