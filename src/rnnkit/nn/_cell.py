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

from rnnkit.checks import check_shape, check_state_structure, check_tensor_like
from rnnkit.functional import State, Step, scan
from rnnkit.functional.scan import Projection


def first_parameter(module: nn.Module) -> nn.Parameter | None:
    """``next(module.parameters(), None)`` (the same parameter, in the same order: the
    module's own, then each child's in turn), without building every module's dotted name on
    the way, which costs a layer call more than the rest of its checks."""
    for parameter in module._parameters.values():
        if parameter is not None:
            return parameter
    for child in module._modules.values():
        found = None if child is None else first_parameter(child)
        if found is not None:
            return found
    return None


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

    def _step_input(self, input: Tensor, hx: Tensor | State | None) -> tuple[Tensor, State, bool]:
        """Check the arguments of a one-step call from the raw input.

        Args:
            input: ``(N, H_in)`` or unbatched ``(H_in,)``.
            hx: a tuple of ``(N, S_k)`` (or ``(S_k,)``) tensors, a bare tensor for a
                one-tensor state, or None for zeros.

        Returns:
            ``x`` ``(N, H_in)``, the state as ``(N, S_k)`` tensors, and whether the input was
            batched.
        """
        weight = first_parameter(self)
        check_tensor_like("input", input, weight)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected shape (N, H_in) or unbatched (H_in,) with H_in = input_size "
                f"= {self.input_size}, got {tuple(input.shape)}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)  # (N, H_in)
        sizes = self.state_sizes
        if hx is None:
            return x, tuple(x.new_zeros(x.shape[0], size) for size in sizes), batched
        state = []
        for k, (h, size) in enumerate(
            zip(check_state_structure(hx, len(sizes)), sizes, strict=True)
        ):
            name = "hx" if len(sizes) == 1 else f"hx[{k}]"
            width = "H" if size == getattr(self, "hidden_size", None) else "S"  # the width's name
            check_tensor_like(name, h, weight)
            if batched:
                check_shape(name, h, (x.shape[0], size), f"(N, {width})")
            else:
                check_shape(name, h, (size,), f"({width},)")
            state.append(h if batched else h.unsqueeze(0))
        return x, tuple(state), batched


@dataclass(frozen=True)
class Recurrence:
    """A recurrence given as plain functions, for layers that keep their weights flat."""

    project: Projection
    step: Step

    def scan(
        self, inputs: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
    ) -> tuple[Tensor, State]:
        return scan(self.step, inputs, state, lengths, reverse)
