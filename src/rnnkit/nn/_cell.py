"""The cell protocol: what one recurrence must provide to run inside a layer.

A cell computes **one time step** and holds no state between calls. The layer
(:class:`rnnkit.nn.Recurrent` or the torch.nn-compatible layers) owns the time loop,
lengths, directions, stacking, dropout masks and the initial state. A cell provides:

* ``input_size`` and ``state_sizes``: the widths ``S_k`` of its state tensors. The state is
  always a tuple, and its first tensor is the cell's output at that step, so ``S_0`` is the
  output width.
* ``project(x)``: the part of the step that does not depend on the state, for all steps at
  once, ``(L, N, H_in) -> (L, N, *)`` (one matrix product instead of ``L`` small ones).
* ``step(x_t, state, dropout_mask=None) -> new_state``: one step from the projected input
  ``x_t`` ``(N, *)``. ``dropout_mask`` ``(N, S_0)`` is given only when the layer applies
  variational recurrent dropout: multiply the ``state[0]`` that enters the recurrent
  weights by it, not the state carried forward (a GRU's ``z * h`` stays unmasked).
* optionally ``scan(inputs, state, lengths, reverse)``: a faster whole-sequence version of
  the loop (e.g. a parallel scan); it must give the same numbers as looping ``step``.

A user-defined cell in a few lines::

    class JordanCell(rnnkit.nn.RecurrentCell):
        def __init__(self, input_size, hidden_size, output_size=1):
            super().__init__(input_size, (output_size,))
            self.ih = torch.nn.Linear(input_size, hidden_size)
            self.yh = torch.nn.Linear(output_size, hidden_size, bias=False)
            self.hy = torch.nn.Linear(hidden_size, output_size)

        def project(self, x):
            return self.ih(x)

        def step(self, x_t, state, dropout_mask=None):
            (y,) = state
            if dropout_mask is not None:
                y = y * dropout_mask
            return (self.hy(torch.tanh(x_t + self.yh(y))),)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rnnkit.functional import State, Step, scan
from rnnkit.functional.scan import Projection


class RecurrentCell(nn.Module):
    """Base class of cells that run inside :class:`rnnkit.nn.Recurrent`; see the module doc.

    Args:
        input_size: ``H_in``, features of the raw input per step.
        state_sizes: widths ``S_k`` of the state tensors; ``S_0`` is the output width.
    """

    def __init__(self, input_size: int, state_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.input_size = input_size
        self._state_sizes = tuple(state_sizes)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self._state_sizes

    @property
    def output_size(self) -> int:
        return self.state_sizes[0]

    def project(self, x: Tensor) -> Tensor:
        """The state-independent part of a step for all steps: ``(L, N, H_in) -> (L, N, *)``."""
        return x

    def step(self, x_t: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
        """One step: projected input ``(N, *)`` and state ``(N, S_k)``... -> new state."""
        raise NotImplementedError

    def scan(
        self, inputs: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
    ) -> tuple[Tensor, State]:
        """The whole sequence; see :func:`rnnkit.functional.scan` for the arguments."""
        return scan(self.step, inputs, state, lengths, reverse)


@dataclass(frozen=True)
class Recurrence:
    """A recurrence given as plain functions, for layers that keep their weights flat."""

    project: Projection
    step: Step

    def scan(
        self, inputs: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
    ) -> tuple[Tensor, State]:
        return scan(self.step, inputs, state, lengths, reverse)
