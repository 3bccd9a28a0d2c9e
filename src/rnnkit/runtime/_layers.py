"""A recurrent layer stack in NumPy: the cells' tensors, their checks, streaming and runs.

Shape letters: ``L`` sequence length, ``N`` batch (independent streams), ``H_in`` input
features, ``H`` hidden size, ``S_k`` the width of state tensor ``k`` (``S_0`` is the output
of one direction), ``D`` directions.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from rnnkit.cells import CELLS as SPECS
from rnnkit.runtime import _kernels
from rnnkit.runtime._file import field
from rnnkit.runtime._ops import step_kernel
from rnnkit.runtime.gates import ACTIVATIONS

Array = np.ndarray
State = tuple[Array, ...]

#: The cells the runtime runs: every cell of :data:`rnnkit.cells.CELLS` (the names are
#: :data:`rnnkit.nn.LAYERS`').
CELLS = tuple(SPECS)
BACKENDS = ("auto", "numba", "numpy")
DTYPES = ("float32", "float64")


def checked_options(cell: str, options: dict[str, Any], hidden: int) -> dict[str, Any]:
    """Every option of ``cell``, checked, its default where ``options`` (a file's) has none."""
    spec = SPECS[cell]
    if spec.torch_native and "nonlinearity" not in spec.options:
        # files written before LSTM and GRU were cells of rnnkit.cells give every torch.nn
        # layer a nonlinearity, "tanh" where it has none
        options = {k: v for k, v in options.items() if (k, v) != ("nonlinearity", "tanh")}
    return spec.check_options(options, hidden)


def state_sizes(cell: str, hidden: int, options: dict[str, Any]) -> tuple[int, ...]:
    """``(S_0, ...)``: the widths of a cell's state tensors."""
    return SPECS[cell].state_sizes(hidden, checked_options(cell, options, hidden))


def cell_tensors(
    cell: str, inputs: int, hidden: int, bias: bool, options: dict[str, Any]
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of one recurrence's tensors (torch's parameter names and layouts)."""
    checked = checked_options(cell, options, hidden)
    params = SPECS[cell].parameters(inputs, hidden, bias, checked)
    return {name: param.shape for name, param in params.items() if param is not None}


_F32 = np.float32

#: What the cells' ``runtime_kernel`` hooks build from (see :mod:`rnnkit.cells._spec`).
_COMPILED: SimpleNamespace | None = None
if _kernels.NUMBA is not None:
    _COMPILED = SimpleNamespace(
        **_kernels.NUMBA,
        T=lambda a: np.ascontiguousarray(a.T),
        zeros=lambda size: np.zeros(size, _F32),
        or_zeros=lambda a, size: np.zeros(size, _F32) if a is None else a,
        clip=np.clip,
        stack=np.stack,
        activation=ACTIVATIONS.index,
        min_flags=lambda lstm, positive: (False, lstm, positive, _F32(np.finfo(_F32).tiny), False),
    )


def kernels(backend: str, dtype: str = "float32") -> SimpleNamespace | None:
    """What the cells' ``runtime_kernel`` hooks build from where ``backend`` (``"auto"``:
    numba when installed and ``dtype`` is float32) runs compiled kernels in ``dtype``; None
    where every cell runs its NumPy step."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    if backend == "numba" and _COMPILED is None:
        raise ValueError("backend: 'numba' needs the numba package (pip install numba)")
    if backend == "numba" and dtype != "float32":
        # its tanh and sigmoid are accurate to float32 (runtime/activations.py): float64
        # state would still round as float32
        raise ValueError("backend: 'numba' computes in float32; dtype='float64' runs on 'numpy'")
    if backend == "numpy" or dtype != "float32":
        return None
    return _COMPILED


class StreamingRNN:
    """A stack of recurrences (one rnnkit or torch.nn layer) that runs without torch.

    Stream it one step at a time with :meth:`step` (it keeps its own :attr:`state`), or run
    whole sequences with :meth:`run` (which leaves the stream alone). ``N`` independent
    streams run together when ``step`` gets ``(N, H_in)``.

    Attributes:
        cell, input_size, hidden_size, num_layers, bidirectional, batch_first: as the layer.
        output_size: ``D * S_0``, the features of one output step.
        state_sizes: ``(S_0, ...)`` of one recurrence.
        dtype: the NumPy dtype it computes, returns and keeps its state in.

    Example:
        >>> model = rnnkit.runtime.load("sensor.rnnkit")                   # doctest: +SKIP
        >>> for reading in sensor:                                         # doctest: +SKIP
        ...     y = model.step(reading)          # (H_in,) -> (D * S_0,)
    """

    def __init__(
        self,
        spec: dict[str, Any],
        tensors: dict[str, Array],
        backend: str,
        where: str,
        dtype: str = "float32",
    ) -> None:
        """Build from the header's ``layer`` section and the tensors named ``layer.*``; the
        float32 weights are converted to ``dtype`` (see :func:`rnnkit.runtime.load`).

        Raises:
            KeyError, TypeError, ValueError: a missing or malformed field or tensor, for
                :func:`rnnkit.runtime.load` to report with the file's name.
        """
        self.cell = field(spec, "cell", str, where)
        if self.cell not in CELLS:
            raise ValueError(f"{where}.cell: expected one of {CELLS}, got {self.cell!r}")
        for name in ("input_size", "hidden_size", "num_layers"):
            if field(spec, name, int, where) < 1:
                raise ValueError(f"{where}.{name}: expected an int >= 1, got {spec[name]}")
        self.input_size, self.hidden_size = spec["input_size"], spec["hidden_size"]
        self.num_layers = spec["num_layers"]
        self.bidirectional = field(spec, "bidirectional", bool, where)
        self.batch_first = field(spec, "batch_first", bool, where)
        bias = field(spec, "bias", bool, where)
        options = checked_options(self.cell, field(spec, "options", dict, where), self.hidden_size)
        self.state_sizes = state_sizes(self.cell, self.hidden_size, options)
        directions = 2 if self.bidirectional else 1
        self.output_size = directions * self.state_sizes[0]
        compiled = kernels(backend, dtype)
        cell = SPECS[self.cell]
        self.dtype = np.dtype(dtype)
        self._recurrences: list[list[tuple[Callable[..., None], tuple]]] = []
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else self.output_size
            row = []
            for direction in range(directions):
                prefix = f"layer.{layer}.{direction}."
                shapes = cell_tensors(self.cell, inputs, self.hidden_size, bias, options)
                weights = {
                    n: _tensor(tensors, prefix + n, s).astype(dtype) for n, s in shapes.items()
                }
                if cell.runtime_kernel is not None and compiled is not None:
                    p = cell.namespace(weights, inputs, self.hidden_size, bias, options)
                    row.append(cell.runtime_kernel(compiled, p))
                else:  # its NumPy step
                    step = step_kernel(cell, weights, inputs, self.hidden_size, bias, options)
                    row.append((step, ()))
            self._recurrences.append(row)
        rows = directions * self.num_layers
        if field(spec, "learn_init", bool, where):
            self._initial = tuple(
                _tensor(tensors, f"layer.initial_state.{k}", (rows, size)).astype(dtype)
                for k, size in enumerate(self.state_sizes)
            )
        else:
            self._initial = tuple(np.zeros((rows, size), dtype) for size in self.state_sizes)
        self._state: list[list[Array]] | None = None  # [layer][k]: (N, S_k), forward only
        self._plan: list[tuple[Callable[..., None], tuple]] | None = None

    # ------------------------------------------------------------------ streaming

    def step(self, x_t: Any) -> Array:
        """Advance every stream by one step.

        Args:
            x_t: ``(H_in,)`` for one stream, or ``(N, H_in)`` for ``N`` streams.

        Returns:
            The top layer's output ``(S_0,)`` or ``(N, S_0)``, a new array.
        """
        x = np.ascontiguousarray(x_t, dtype=self.dtype)
        rows = x.reshape(1, -1) if x.ndim == 1 else x  # (N, H_in)
        if rows.ndim != 2 or rows.shape[1] != self.input_size or self.bidirectional:
            self._check_step(rows)
        plan = self._plan
        if plan is None:
            plan = self._start(self._fresh(rows.shape[0]))
        elif plan[0][1][0].shape[0] != rows.shape[0]:
            raise ValueError(
                f"x_t: expected {plan[0][1][0].shape[0]} streams (the state's batch), got "
                f"{rows.shape[0]}; call reset() to start new streams"
            )
        for kernel, arguments in plan:
            kernel(rows, *arguments)  # updates the layer's state in place
            rows = arguments[0]  # its output, state[0]
        return rows[0].copy() if x.ndim == 1 else rows.copy()

    def _check_step(self, rows: Array) -> None:
        if self.bidirectional:
            raise ValueError(
                "step: a bidirectional model needs the whole sequence (its backward direction "
                "starts at the end); use run(xs)"
            )
        raise ValueError(
            f"x_t: expected shape (H_in,) or (N, H_in) with H_in = {self.input_size}, "
            f"got {rows.shape}"
        )

    def _start(self, state: list[list[Array]] | None) -> list[tuple[Callable, tuple]] | None:
        """Make ``state`` (``[layer][k]`` ``(N, S_k)``) the streams' state; return the plan of
        per-layer kernel calls (with their arguments, state first) that update it in place."""
        self._state = state
        self._plan = None
        if state is not None:
            self._plan = [
                (kernel, (*layer_state, *weights))
                for ((kernel, weights),), layer_state in zip(self._recurrences, state, strict=True)
            ]
        return self._plan

    def reset(self) -> None:
        """Start over: the next :meth:`step` begins from the initial state."""
        self._start(None)

    @property
    def state(self) -> State | None:
        """The streams' state, ``(num_layers, N, S_k)`` per state tensor (copies), or None
        before the first :meth:`step`. Assign a value of that form (or ``(num_layers,
        S_k)`` for one stream) to resume a checkpointed stream; None resets."""
        if self._state is None:
            return None
        return tuple(
            np.stack([layer[k] for layer in self._state]) for k in range(len(self.state_sizes))
        )

    @state.setter
    def state(self, value: State | None) -> None:
        if value is None:
            self._start(None)
            return
        if self.bidirectional:
            raise ValueError("state: a bidirectional model has no stream state; use run(xs)")
        checked = self._check_state("state", value, self.num_layers)
        self._start([[s[layer].copy() for s in checked] for layer in range(self.num_layers)])

    # ------------------------------------------------------------------ sequences

    def run(self, xs: Any, state: State | None = None) -> tuple[Array, State]:
        """Run whole sequences (both directions when bidirectional); the stream is untouched.

        Args:
            xs: ``(L, N, H_in)`` (``(N, L, H_in)`` with ``batch_first``) or ``(L, H_in)``.
            state: initial state, ``(D * num_layers, N, S_k)`` per state tensor
                (``(D * num_layers, S_k)`` for ``(L, H_in)``); the initial state when None.

        Returns:
            ``(output, final_state)``: output ``(L, N, D * S_0)`` in the input's layout,
            final state shaped like ``state``, as torch's layers return them.
        """
        x = np.asarray(xs, dtype=self.dtype)
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size or 0 in x.shape:
            raise ValueError(
                f"xs: expected shape {layout} or (L, H_in), with L >= 1 and H_in = "
                f"{self.input_size}, got {x.shape}"
            )
        batched = x.ndim == 3
        x = x if batched else x[:, None]
        if batched and self.batch_first:
            x = x.transpose(1, 0, 2)
        x = np.ascontiguousarray(x)  # (L, N, H_in)
        length, batch = x.shape[:2]
        directions = 2 if self.bidirectional else 1
        rows = directions * self.num_layers
        if state is None:
            initial = tuple(np.repeat(s[:, None], batch, axis=1) for s in self._initial)
        else:
            initial = self._check_state("state", state, rows, batch)
        finals: list[list[Array]] = [[] for _ in self.state_sizes]
        for layer, recurrences in enumerate(self._recurrences):
            outputs = []
            for direction, (kernel, weights) in enumerate(recurrences):
                carried = [s[layer * directions + direction].copy() for s in initial]
                out = np.empty((length, batch, self.state_sizes[0]), self.dtype)
                steps = range(length - 1, -1, -1) if direction else range(length)
                arguments, output = (*carried, *weights), carried[0]
                for t in steps:
                    kernel(x[t], *arguments)  # updates carried in place
                    out[t] = output
                outputs.append(out)
                for k, s in enumerate(carried):
                    finals[k].append(s)
            x = np.concatenate(outputs, axis=-1) if directions == 2 else outputs[0]
        final = tuple(np.stack(f) for f in finals)
        if not batched:
            return x[:, 0], tuple(s[:, 0] for s in final)
        return (x.transpose(1, 0, 2) if self.batch_first else x), final

    # ------------------------------------------------------------------ helpers

    def _fresh(self, batch: int) -> list[list[Array]]:
        """The initial state of ``batch`` streams, ``[layer][k]`` ``(N, S_k)``."""
        return [
            [np.repeat(s[layer][None], batch, axis=0) for s in self._initial]
            for layer in range(self.num_layers)
        ]

    def _check_state(self, name: str, value: Any, rows: int, batch: int | None = None) -> State:
        """``value`` as ``(rows, N, S_k)`` arrays of :attr:`dtype`; ``(rows, S_k)`` means one
        stream."""
        sizes = self.state_sizes
        if not isinstance(value, (tuple, list)) or len(value) != len(sizes):
            raise ValueError(
                f"{name}: expected a tuple of {len(sizes)} arrays (rows, N, S_k) with S = "
                f"{sizes}, got {type(value).__name__}"
            )
        checked: list[Array] = []
        for k, (s, size) in enumerate(zip(value, sizes, strict=True)):
            s = np.asarray(s, dtype=self.dtype)
            s = s[:, None] if s.ndim == 2 else s
            streams = batch if batch is not None else checked[0].shape[1] if checked else None
            if (
                s.ndim != 3
                or s.shape[0] != rows
                or s.shape[2] != size
                or (streams is not None and s.shape[1] != streams)
            ):
                raise ValueError(
                    f"{name}[{k}]: expected shape ({rows}, N, {size}) (rows, streams, S_{k})"
                    f"{'' if streams is None else f' with N = {streams}'}, or ({rows}, {size}) "
                    f"for one stream, got {np.shape(value[k])}"
                )
            checked.append(s)
        return tuple(checked)


def _tensor(tensors: dict[str, Array], name: str, shape: tuple[int, ...]) -> Array:
    if name not in tensors:
        raise KeyError(f"tensor {name!r} is missing")
    value = tensors[name]
    if value.shape != shape or value.dtype != np.float32:
        raise ValueError(
            f"tensor {name!r}: expected float32 {shape}, got {value.dtype} {value.shape}"
        )
    return np.ascontiguousarray(value)
