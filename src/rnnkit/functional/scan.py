"""The time loop: run one recurrence over a sequence, honouring per-sequence lengths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

State = tuple[Tensor, ...]
Projection = Callable[[Tensor], Tensor]


class Step(Protocol):
    """One step of a recurrence: ``step(x_t, state, dropout_mask=None) -> new_state``.

    ``dropout_mask`` ``(N, S_0)``, when given, multiplies the copy of ``state[0]`` that
    enters the recurrent weights (variational recurrent dropout), never the carried state.
    """

    def __call__(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State: ...


def scan(
    step: Step,
    inputs: Tensor,
    state: State,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Apply ``step`` over the time axis of ``inputs``; a step outputs its new ``state[0]``.

    Args:
        step: ``step(x_t, state) -> new_state`` with ``x_t`` ``(N, *)`` and ``state`` a tuple of
            ``(N, S_k)`` tensors.
        inputs: ``(L, N, *)`` per-step inputs, usually the input projections of all steps.
        state: the initial state, a tuple of ``(N, S_k)`` tensors.
        lengths: ``(N,)`` integer tensor on the device of ``inputs``, or None when every
            sequence has length ``L``. Steps ``t >= lengths[b]`` leave sequence ``b``'s state
            unchanged and output zeros, so a length of 0 returns the initial state.
        reverse: run from ``t = L - 1`` down to ``0``. With ``lengths`` each sequence then
            starts at its own last valid step, as a backward direction over a packed batch does.

    Returns:
        ``(outputs, final_state)``: ``(L, N, S_0)`` and a tuple like ``state``.
    """
    length = inputs.shape[0]
    # Steps every sequence takes need no masking; only the ragged tail does.
    full_steps = length if lengths is None else int(lengths.min())
    steps = inputs.unbind(0)  # one autograd node; inputs[t] per step would make backward O(L^2)
    outputs: list[Tensor] = [inputs] * length
    for t in range(length - 1, -1, -1) if reverse else range(length):
        new_state = step(steps[t], state)
        output = new_state[0]
        if t >= full_steps:
            valid = (t < lengths).unsqueeze(-1)  # (N, 1)
            output = torch.where(valid, output, torch.zeros_like(output))
            new_state = tuple(
                torch.where(valid, n, s) for n, s in zip(new_state, state, strict=True)
            )
        outputs[t] = output
        state = new_state
    return torch.stack(outputs), state
