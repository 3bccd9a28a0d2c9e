"""What a cell is, written once for every backend.

A module of :mod:`rnnkit.cells` defines one ``CELL = CellSpec(...)``: the cell's parameters
and their initialisation, its state, its options, and its equations as two functions written
against an *ops* namespace instead of a library:

* ``project(ops, p, x)``: the state-independent part of a step, for all steps at once,
  ``(L, N, H_in) -> (L, N, G)`` (or ``(N, H_in) -> (N, G)`` for one step);
* ``step(ops, p, x_t, state, mask)``: one step of the recurrence from the projected input
  ``x_t`` ``(N, G)`` and the state (a tuple of ``(N, H)`` values) to the new state, whose
  first value is the step's output. ``mask`` ``(N, H)`` is the variational recurrent
  dropout mask (Gal & Ghahramani 2016), given only in training: the cell multiplies it into
  the state that enters its recurrent weights.

``p`` holds the parameters by name (None where ``bias=False`` removes one), the options by
name, ``input_size`` and ``hidden_size``. The same two functions run as the reference path of
the torch layer (:mod:`rnnkit.nn`: ops on tensors, with autograd), in the torch-free
streaming runtime (:mod:`rnnkit.runtime`: ops on NumPy arrays) and as the body of an ONNX
``Scan`` (:func:`rnnkit.export.onnx.export_onnx`: ops that write graph nodes). Every backend's
values take ``+``, ``-`` and ``*`` (with each other and with Python numbers); the rest is
``ops``:

* ``ops.linear(v, w, b=None)``: ``v @ w.T + b``;
* ``ops.sigmoid(v)``, ``ops.tanh(v)``, ``ops.relu(v)``, ``ops.act(v, name)`` (one of
  :data:`ACTIVATIONS`);
* ``ops.split(v, parts)``: ``parts`` equal blocks of the last dimension;
  ``ops.concat(*values)``: the values side by side along the last dimension;
* ``ops.layer_norm(v, weight, bias, eps)``: over the last dimension (``bias`` may be None).

This package imports neither torch nor anything of rnnkit's above it, so the runtime can
read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

#: The activations ``ops.act`` knows, by name.
ACTIVATIONS = ("tanh", "relu", "sigmoid")


@dataclass(frozen=True)
class Param:
    """One parameter: its shape, and its initial values, ``U(-bound, bound)`` or ``fill``."""

    shape: tuple[int, ...]
    bound: float | None = None
    fill: float = 0.0


@dataclass(frozen=True)
class Option:
    """A cell option: its default, and the values it may take (``choices``, or any positive
    number with ``positive``)."""

    default: Any
    choices: tuple[Any, ...] | None = None
    positive: bool = False

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it is valid, else a one-line ``ValueError`` naming ``name``."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name}: expected one of {self.choices}, got {value!r}")
        if self.positive:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not value > 0 or value == float("inf"):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
            value = float(value)
        return value


Parameters = Callable[[int, int, bool, dict[str, Any]], dict[str, Param | None]]


@dataclass(frozen=True)
class CellSpec:
    """A cell: everything specific to it, for every backend (see the module docstring).

    Attributes:
        name: the registry key, the ``cell=`` of the tasks and ``--cell`` of the CLI.
        layer: the layer's class name in :mod:`rnnkit.nn` (the cell's is ``layer + "Cell"``).
        doc: the cell's docstring: its equations, reference, parameters and shapes.
        state: the names of the state tensors, each ``(N, H)``; the first is the output.
        parameters: ``(input_size, hidden_size, bias, options) -> {name: Param or None}``
            (None: absent, e.g. a bias without ``bias``).
        project, step: the equations (see the module docstring).
        options: the cell's options beyond ``bias``, by name.
        layer_norm: ``options -> bool``: whether the steps use ``ops.layer_norm`` (an ONNX
            export then needs opset 17).
    """

    name: str
    layer: str
    doc: str
    state: tuple[str, ...]
    parameters: Parameters
    project: Callable[..., Any]
    step: Callable[..., tuple[Any, ...]]
    options: dict[str, Option] = field(default_factory=dict)
    layer_norm: Callable[[dict[str, Any]], bool] = lambda options: False

    def check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every option, its default where not given; a one-line ``ValueError`` for an unknown
        name or a bad value."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise ValueError(
                f"{unknown[0]}: not an option of the {self.name} cell; its options are "
                f"bias{''.join(', ' + name for name in self.options)}"
            )
        return {
            name: option.check(name, given.get(name, option.default))
            for name, option in self.options.items()
        }

    def namespace(
        self,
        values: dict[str, Any],
        input_size: int,
        hidden_size: int,
        bias: bool,
        options: dict[str, Any],
    ) -> SimpleNamespace:
        """The equations' ``p``: each parameter's value from ``values`` (None where the cell
        has none, e.g. a bias without ``bias``), the options and the two sizes."""
        names = self.parameters(input_size, hidden_size, bias, options)
        return SimpleNamespace(
            **{name: values.get(name) for name in names},
            **options,
            input_size=input_size,
            hidden_size=hidden_size,
        )

    def state_sizes(self, hidden_size: int) -> tuple[int, ...]:
        """``(S_0, ...)``: the widths of the state tensors."""
        return (hidden_size,) * len(self.state)
