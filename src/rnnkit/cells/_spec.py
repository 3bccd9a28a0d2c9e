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
* ``ops.layer_norm(v, weight, bias, eps)``: over the last dimension (``bias`` may be None);
* ``ops.softmax(v)``: over the last dimension; ``ops.clamp(v, low, high)``: ``v`` limited to
  ``[low, high]`` (no gradient outside it);
* ``ops.divide(a, b)``: ``a / b`` with ``b`` raised to its dtype's smallest normal number, so
  that a ``b`` underflowed to 0 gives ``a / tiny`` (0 where ``a <= b`` underflowed too), not
  NaN.

A cell may also hand its values to compiled kernels (the equations stay the reference):

* ``engine_kernel(engine, p)``: the training engine's fused recurrence, what
  :func:`rnnkit.nn._engine.run` takes (an ``engine.Fused``), or None for the reference loop.
  ``engine`` holds the kernel builders (``lstm_kernel``, ``gru_kernel``,
  ``one_state_kernel``, ``scan_kernel``, ``Fused``) and the recurrences they take
  (``fused_indrnn``, ``fused_jordan``, ``min_gru_scan``, ``min_lstm_scan``); ``p`` is the
  torch cell, whose ``project`` is the spec's (for a torch.nn drop-in layer, a namespace of
  one recurrence's flat weights with that ``project``).
* ``runtime_kernel(kernels, p)``: ``(kernel, arguments)`` for the streaming runtime's
  compiled kernels, ``kernel(x, *state, *arguments)`` updating the state in place.
  ``kernels`` holds the numba kernels of :mod:`rnnkit.runtime._kernels` by name and the
  helpers ``T(a)`` (``a`` transposed, contiguous), ``zeros(size)``, ``or_zeros(a, size)``,
  ``clip``, ``stack``, ``activation(name)`` (a nonlinearity's code) and ``min_flags(lstm,
  positive)``; ``p``'s parameters are float32 NumPy arrays. Where numba is missing or the
  runtime computes in float64, the spec's own step runs on NumPy.

Both hooks' kernels end in the same compiled equations, :mod:`rnnkit.runtime.gates`, so a
cell's equations exist twice: its ``step`` and those rows.

A cell without these runs its reference loop in training and its NumPy step in the runtime.

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
    """One parameter: its shape, and its initial values: ``U(-bound, bound)``, ``U(low,
    bound)`` where ``low`` is given, or ``fill`` without a ``bound``."""

    shape: tuple[int, ...]
    bound: float | None = None
    fill: float = 0.0
    low: float | None = None


class OptionError(ValueError, TypeError):
    """An argument the cell does not take: a ``ValueError`` like a bad option value, and the
    ``TypeError`` Python raises for an unexpected keyword argument."""


@dataclass(frozen=True)
class Option:
    """A cell option: its default, and the values it may take.

    Attributes:
        default: the value when the option is not given.
        choices: the values it may take, or None for any the flags below allow.
        positive: a finite number > 0 (kept as a float).
        integer: an ``int >= minimum``.
        minimum: the least value of an ``integer`` option.
        boolean: a ``bool``.
        optional: None is valid too (the cell says what it means, e.g. "no bound").
        none_is_hidden_size: None stands for ``hidden_size``, which the checked options
            hold instead.
    """

    default: Any
    choices: tuple[Any, ...] | None = None
    positive: bool = False
    integer: bool = False
    minimum: int = 1
    boolean: bool = False
    optional: bool = False
    none_is_hidden_size: bool = False

    def check(self, name: str, value: Any, hidden_size: int) -> Any:
        """``value`` if it is valid (None resolved where it stands for ``hidden_size``), else a
        one-line ``ValueError`` (a bad value) or ``TypeError`` (a bad type) naming ``name``."""
        if value is None and self.none_is_hidden_size:
            return hidden_size
        if value is None and self.optional:
            return None
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name}: expected one of {self.choices}, got {value!r}")
        kind = type(value).__name__
        if self.boolean and not isinstance(value, bool):
            raise TypeError(f"{name}: expected a bool, got {kind} {value!r}")
        if self.positive:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"{name}: expected a positive number, got {kind} {value!r}")
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
            value = float(value)
        if self.integer:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name}: expected an int, got {kind} {value!r}")
            if value < self.minimum:
                raise ValueError(f"{name}: expected an int >= {self.minimum}, got {value}")
        return value


Parameters = Callable[[int, int, bool, dict[str, Any]], dict[str, Param | None]]


@dataclass(frozen=True)
class CellSpec:
    """A cell: everything specific to it, for every backend (see the module docstring).

    Attributes:
        name: the registry key, the ``cell=`` of the tasks and ``--cell`` of the CLI.
        layer: the layer's class name in :mod:`rnnkit.nn`.
        cell_class: the cell's class name there, when it is not ``layer + "Cell"`` (see
            :attr:`cell_name`).
        doc: the cell's docstring: its equations, reference, parameters and shapes.
        state: the names of the state tensors; the first is the output.
        parameters: ``(input_size, hidden_size, bias, options) -> {name: Param or None}``
            (None: absent, e.g. a bias without ``bias``), in the order they are registered
            and initialised.
        project, step: the equations (see the module docstring).
        options: the cell's options beyond ``bias``, by name.
        positional: the cell's arguments after ``hidden_size`` that may be given by
            position, in order (``bias`` and options); the others are keyword-only.
        widths: ``(hidden_size, options) -> (S_0, ...)``, the state widths; None: each
            ``hidden_size``.
        layer_norm: ``options -> bool``: whether the steps use ``ops.layer_norm`` (an ONNX
            export then needs opset 17).
        engine_kernel, runtime_kernel: hooks for compiled kernels, or None (see the module
            docstring).
        recurrent_dropout: whether the cell takes recurrent dropout; False for a cell whose
            state enters no weights (minGRU): its torch ``step`` then has no ``dropout_mask``
            and the layer refuses ``recurrent_dropout``.
        torch_native: the torch classes are hand-written drop-ins for torch.nn's (RNN, LSTM,
            GRU): torch's flat parameter layout (``weight_ih_l0``, ...) and signatures, and
            torch's fused kernels. :mod:`rnnkit.nn` then generates no classes for the cell;
            its hand-written ones run this spec's equations on their reference path.
    """

    name: str
    layer: str
    doc: str
    state: tuple[str, ...]
    parameters: Parameters
    project: Callable[..., Any]
    step: Callable[..., tuple[Any, ...]]
    options: dict[str, Option] = field(default_factory=dict)
    positional: tuple[str, ...] = ("bias",)
    widths: Callable[[int, dict[str, Any]], tuple[int, ...]] | None = None
    layer_norm: Callable[[dict[str, Any]], bool] = lambda options: False
    engine_kernel: Callable[[Any, Any], Any] | None = None
    runtime_kernel: Callable[[Any, Any], tuple[Callable[..., None], tuple]] | None = None
    cell_class: str | None = None
    recurrent_dropout: bool = True
    torch_native: bool = False

    @property
    def cell_name(self) -> str:
        """The cell's class name in :mod:`rnnkit.nn` (e.g. ``SRUCell``)."""
        return self.cell_class or self.layer + "Cell"

    def check_options(self, given: dict[str, Any], hidden_size: int) -> dict[str, Any]:
        """Every option, its default where not given; a one-line :class:`OptionError` for an
        unknown name, a ``ValueError`` or ``TypeError`` for a bad value."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise OptionError(
                f"{unknown[0]}: not an option of the {self.name} cell; its options are "
                f"bias{''.join(', ' + name for name in self.options)} (got an unexpected "
                f"keyword argument {unknown[0]!r})"
            )
        return {
            name: option.check(name, given.get(name, option.default), hidden_size)
            for name, option in self.options.items()
        }

    def options_of(self, module: Any) -> dict[str, Any]:
        """The options as ``module`` holds them, as attributes (e.g. a torch cell's)."""
        return {name: getattr(module, name) for name in self.options}

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

    def state_sizes(self, hidden_size: int, options: dict[str, Any]) -> tuple[int, ...]:
        """``(S_0, ...)``: the widths of the state tensors, given the checked options."""
        if self.widths is not None:
            return self.widths(hidden_size, options)
        return (hidden_size,) * len(self.state)
