"""``RNN``, ``LSTM`` and ``GRU``: torch.nn's layers, rebuilt on rnnkit's gate equations.

Parameters, their names (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}``, ``weight_hr_l{k}``, with a ``_reverse`` suffix for the backward
direction), shapes, gate orders and initialisation are torch.nn's, so ``load_state_dict``
works in both directions and the same seed gives the same weights.

Each layer runs torch's fused kernel when it computes exactly the requested configuration
(``fused=True``, the default) and otherwise, or with ``fused=False``, the reference path:
the equations of their cells of :mod:`rnnkit.cells` (``rnn``, ``lstm``, ``gru``, each a
``CellSpec`` with ``torch_native``) through :func:`rnnkit.functional.scan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import ClassVar

import torch
from torch import Tensor, nn

from rnnkit.cells import CELLS, CellSpec
from rnnkit.checks import (
    check_bool,
    check_choice,
    check_dtype,
    check_int,
    check_rate,
)
from rnnkit.functional import State
from rnnkit.functional.ops import TORCH
from rnnkit.nn import _engine
from rnnkit.nn._base import RecurrentBase, RunResult
from rnnkit.nn._cell import Recurrence

_DROPOUT_RANGE = (
    "dropout should be a number in range [0, 1] representing the probability of an element "
    "being zeroed"
)


class _TorchLayout(RecurrentBase, nn.RNNBase):
    """Flat torch.nn parameters, torch.nn's initialisation and torch's fused kernels.

    Each layer is also a subclass of its torch.nn namesake: torch.nn.RNNBase builds the
    parameters and keeps ``_flat_weights`` (so ``flatten_parameters``, ``all_weights``,
    ``check_forward_args``, ``permute_hidden``, ``.to()`` and pickling are torch's own), and
    ``isinstance`` checks in other libraries (and torch.compile's treatment of RNN modules)
    see a torch.nn layer. rnnkit's :meth:`RecurrentBase.forward` replaces torch's. The
    equations are the layer's :attr:`spec`'s, on the flat weights of each recurrence.
    """

    spec: ClassVar[CellSpec]

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
        fused: bool,
        check_finite: bool,
        learn_init: bool,
        recurrent_dropout: float,
        zoneout: float,
    ) -> None:
        check_int("input_size", input_size, torch_says="input_size must be greater than zero")
        check_int("hidden_size", hidden_size, torch_says="hidden_size must be greater than zero")
        check_int("num_layers", num_layers, torch_says="num_layers must be greater than zero")
        check_bool("bias", bias, torch_checks=True)
        check_bool("batch_first", batch_first, torch_checks=True)
        check_rate("dropout", dropout, closed=True, torch_says=_DROPOUT_RANGE)
        check_bool("bidirectional", bidirectional)
        check_int(
            "proj_size",
            proj_size,
            minimum=0,
            torch_says="proj_size should be a positive integer or zero to disable projections",
        )
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size: expected an int < hidden_size = {hidden_size} (0 disables the "
                f"projection), got {proj_size} (proj_size has to be smaller than hidden_size)"
            )
        check_dtype(dtype)
        # torch.nn.RNNBase makes the parameters (torch's names, order and initialisation),
        # warns about dropout with one layer, and calls reset_parameters.
        nn.RNNBase.__init__(
            self,
            mode,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
            dtype=dtype,
        )
        self.fused = check_bool("fused", fused)
        self.check_finite = check_bool("check_finite", check_finite)
        self._init_options(learn_init, recurrent_dropout, zoneout, device, dtype)

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every weight ~ U(-1/sqrt(H), 1/sqrt(H)); ``h_0`` = 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self._current_weights():
            nn.init.uniform_(weight, -bound, bound)
        # torch.nn.RNNBase.__init__ calls this before _init_options makes initial_state
        for h0 in getattr(self, "initial_state", None) or ():
            nn.init.zeros_(h0)

    # torch.compile runs torch.nn's RNN modules, these among them, without tracing their
    # forward, but still compiles the frames below it one by one: the engine's numba loops
    # must stay out of those.
    @torch.compiler.disable
    def _on_engine(self, x: Tensor, state: State, lengths: Tensor | None) -> RunResult | None:
        return super()._on_engine(x, state, lengths)

    def _current_weights(self) -> list[Tensor]:
        """The flat weights as the module holds them now (``torch.func.functional_call`` and
        parametrizations replace them without updating ``_flat_weights``)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def _namespace(self, layer: int, direction: int) -> SimpleNamespace:
        """The spec's ``p`` of one recurrence: its flat weights (``weight_ih_l{layer}``, ...)
        under the cell's names (``weight_ih``, ...), the options and sizes, and ``project``,
        the spec's input projection on them."""
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        weights = {
            name.removesuffix(suffix): getattr(self, name)
            for name in self._flat_weights_names
            if name.endswith(suffix)
        }
        inputs = self.input_size if layer == 0 else self.num_directions * self.state_sizes[0]
        options = self.spec.options_of(self)
        p = self.spec.namespace(weights, inputs, self.hidden_size, self.bias, options)
        p.project = partial(self.spec.project, TORCH, p)
        return p

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.spec.state_sizes(self.hidden_size, self.spec.options_of(self))

    def recurrence(self, layer: int, direction: int) -> Recurrence:
        p = self._namespace(layer, direction)

        def step(gi: Tensor, state: State, dropout_mask: Tensor | None = None) -> State:
            return tuple(self.spec.step(TORCH, p, gi, state, dropout_mask))

        return Recurrence(p.project, step)

    def engine_kernel(self, layer: int, direction: int) -> _engine.Fused | None:
        hook = self.spec.engine_kernel
        if not self.fused or hook is None:
            return None
        return hook(_engine.HOOKS, self._namespace(layer, direction))

    @property
    def _kernel(self) -> Callable[..., tuple[Tensor, ...]]:
        raise NotImplementedError

    def _can_fuse(self) -> bool:
        return self.fused and self._plain()

    def _fused(self, x: Tensor, hx: State, batch_sizes: Tensor | None) -> RunResult:
        state = hx if len(hx) > 1 else hx[0]
        weights = self._current_weights()
        options = (self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if batch_sizes is None:
            result = self._kernel(x, state, weights, *options, False)
        else:
            result = self._kernel(x, batch_sizes, state, weights, *options)
        return result[0], tuple(result[1:])

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {
            "proj_size": 0,
            "num_layers": 1,
            "nonlinearity": "tanh",
            "bias": True,
            "batch_first": False,
            "dropout": 0.0,
            "bidirectional": False,
            "fused": True,
            "check_finite": False,
            "learn_init": False,
            "recurrent_dropout": 0.0,
            "zoneout": 0.0,
        }
        for name, default in defaults.items():
            value = getattr(self, name, default)
            if value != default:
                text += f", {name}={value!r}"
        return text


def _check_no_projection(proj_size: object) -> None:
    """RNN and GRU take ``proj_size=0`` (so generic code can pass it) and refuse the rest."""
    if proj_size != 0:
        raise ValueError(
            f"proj_size: expected 0 (projections are an LSTM option), got {proj_size!r} "
            "(proj_size argument is only supported for LSTM, not RNN or GRU)"
        )


class _SingleState(_TorchLayout):
    """RNN and GRU: one state tensor, returned bare as torch.nn does."""

    def _wrap_state(self, state: State) -> Tensor:
        return state[0]


class RNN(_SingleState, nn.RNN):
    r"""Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, ``act`` tanh or ReLU.

    A drop-in for :class:`torch.nn.RNN` (same arguments, inputs, outputs, parameter names
    and initialisation) that also accepts ``lengths=`` in :meth:`forward`.

    Args:
        input_size: ``H_in``, features per step.
        hidden_size: ``H_out``, features of the hidden state.
        num_layers: stacked layers; layer ``k > 0`` reads the output of layer ``k - 1``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: use ``b_ih`` and ``b_hh``.
        batch_first: input and output are ``(N, L, H)`` instead of ``(L, N, H)``.
        dropout: dropout on the outputs of every layer but the last, in ``[0, 1)``.
        bidirectional: add a backward direction (``D = 2``); outputs are concatenated.
        proj_size: only 0 (accepted so that code written for :class:`LSTM` can pass it).
        fused: use torch's fused kernel where it computes exactly this configuration.
        check_finite: raise ``ValueError`` on NaN/inf in ``input`` or ``hx``.
        learn_init, recurrent_dropout, zoneout: a learnable initial state and the recurrent
            regularisers, see :meth:`RecurrentBase._init_options`. Off by default; the
            regularisers run the reference path.

    Shapes: input ``(L, N, H_in)``, ``hx`` and ``h_n`` ``(D * num_layers, N, H_out)``,
    output ``(L, N, D * H_out)``; see :meth:`RecurrentBase.forward`.

    Example:
        >>> rnn = RNN(10, 20, num_layers=2)
        >>> output, h_n = rnn(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    spec = CELLS["rnn"]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        proj_size: int = 0,
        fused: bool = True,
        check_finite: bool = False,
        learn_init: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        check_choice(
            "nonlinearity",
            nonlinearity,
            ("tanh", "relu"),
            torch_says=f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.",
        )
        _check_no_projection(proj_size)
        self.nonlinearity = nonlinearity
        super().__init__(
            f"RNN_{nonlinearity.upper()}",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            fused,
            check_finite,
            learn_init,
            recurrent_dropout,
            zoneout,
        )

    @property
    def _kernel(self) -> Callable[..., tuple[Tensor, ...]]:
        return torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu


class LSTM(_TorchLayout, nn.LSTM):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997), torch.nn's formulation.

    .. math::
        a_t = x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh}, \quad
        (i, f, g, o) = (\sigma, \sigma, \tanh, \sigma)(\mathrm{split}_4(a_t))
        c_t = f \odot c_{t-1} + i \odot g, \quad h_t = o \odot \tanh(c_t)

    Gate order in ``weight_ih_l{k}`` ``(4H, H_in)`` and ``weight_hh_l{k}`` ``(4H, P)``:
    ``(i, f, g, o)``. With ``proj_size = P > 0``, ``h_t = (o * tanh(c_t)) W_hr^T`` with
    ``weight_hr_l{k}`` ``(P, H)`` (Sak et al. 2014); otherwise ``P = H``.

    A drop-in for :class:`torch.nn.LSTM`; arguments as in :class:`RNN` plus ``proj_size``.
    ``hx`` and the returned state are ``(h, c)`` with ``h`` ``(D * num_layers, N, P)`` and
    ``c`` ``(D * num_layers, N, H)``; output ``(L, N, D * P)``.

    Example:
        >>> lstm = LSTM(10, 20, batch_first=True)
        >>> output, (h_n, c_n) = lstm(torch.randn(3, 5, 10), lengths=torch.tensor([5, 2, 0]))
        >>> output.shape, h_n.shape
        (torch.Size([3, 5, 20]), torch.Size([1, 3, 20]))
    """

    spec = CELLS["lstm"]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        fused: bool = True,
        check_finite: bool = False,
        learn_init: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
            fused,
            check_finite,
            learn_init,
            recurrent_dropout,
            zoneout,
        )

    @property
    def _kernel(self) -> Callable[..., tuple[Tensor, ...]]:
        return torch.lstm


class GRU(_SingleState, nn.GRU):
    r"""Gated recurrent unit (Cho et al. 2014), torch.nn's formulation.

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad
        h' = (1 - z) \odot n + z \odot h

    Gate order in ``weight_ih_l{k}`` ``(3H, H_in)`` and ``weight_hh_l{k}`` ``(3H, H)``:
    ``(r, z, n)``. A drop-in for :class:`torch.nn.GRU`; arguments and shapes as in
    :class:`RNN`.
    """

    spec = CELLS["gru"]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        proj_size: int = 0,
        fused: bool = True,
        check_finite: bool = False,
        learn_init: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        _check_no_projection(proj_size)
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            fused,
            check_finite,
            learn_init,
            recurrent_dropout,
            zoneout,
        )

    @property
    def _kernel(self) -> Callable[..., tuple[Tensor, ...]]:
        return torch.gru
