"""ONNX export of recurrent layers and task models, for onnxruntime and other ONNX runtimes.

:func:`export_onnx` writes one ``.onnx`` file whose batch size ``N`` and sequence length
``L`` stay dynamic, the time loops running inside the runtime: plain RNN, LSTM and GRU
layers become ONNX's own ``RNN``, ``LSTM`` and ``GRU`` operators; every other rnnkit layer
(the cells of :mod:`rnnkit.cells`, MinGRU and MinLSTM among them; and RNN/LSTM/GRU with ``zoneout``,
``fused=False`` or ``proj_size``) becomes ONNX ``Scan`` loops whose body is one step of its
cell, written from the cell's own step in :mod:`rnnkit.cells` (how and why:
:mod:`rnnkit.export._onnx_scan`).

What exports, and the graph it gets:

* a layer of :data:`rnnkit.nn.LAYERS` (any options) or torch.nn's RNN, LSTM or GRU
  (stacked, bidirectional, ``batch_first``): ``input``, ``h0`` [, ``c0``] -> ``output``,
  ``hn`` [, ``cn``], shaped as the layer's ``forward`` (``input`` ``(L, N, H_in)`` or
  ``(N, L, H_in)`` with ``batch_first``; one state input and output per state tensor,
  ``(D * num_layers, N, S_k)``: ``h`` and ``c`` for the LSTMs, the output ``y`` for
  Jordan, ``h`` otherwise; a layer with ``learn_init`` is given its ``initial_state`` as
  ``h0`` by the caller);
* a task model (an object or the directory its ``save()`` wrote): the network only, with
  its preprocessing (scaler, season, vocabulary) left in the directory's ``config.json``:

  - forecaster: ``input`` ``(N, L, F)`` scaled features -> ``output`` ``(N, horizon, K)``,
    the scaled change from the seasonal base (see :mod:`rnnkit.tasks.forecaster`; with
    ``seeds > 1``, the mean of the networks' changes);
  - classifier: ``input`` token ids ``(N, L)`` int64 or features ``(N, L, F)``, ``lengths``
    ``(N,)`` int64 in ``[1, L]`` -> ``output`` logits ``(N, C)``;
  - tagger: ``input`` ``(N, L)`` int64, ``lengths`` ``(N,)`` -> ``output`` ``(N, L, T)``;
  - generator: ``input`` ``(N, L)`` int64, ``h0`` [, ``c0``] -> ``output`` logits
    ``(N, L, V)``, ``hn`` [, ``cn``] (feed ``hn`` back to continue a text);

* any other ``nn.Module``, given ``example_inputs`` (and, for dynamic sizes, the names and
  ``dynamic_axes`` of :func:`torch.onnx.export`).

Exported in eval mode, as the model computes there: no dropout; zoneout as its eval-mode
expectation. What does not export, with a ``ValueError`` naming the layer: a
:class:`rnnkit.nn.Recurrent` built on a cell of one's own (the exporter writes the steps of
rnnkit's cells only); ``torch.nn.LSTM`` with ``proj_size`` (ONNX's ``LSTM`` has no
projection; ``rnnkit.nn.LSTM`` takes the same ``state_dict`` and exports); layer-normalised
cells below opset 17 (``LayerNormalization``).

Unbatched inputs, ``lengths`` (other than the classifier's and tagger's) and
``PackedSequence`` are not part of the graphs. onnxruntime's CPU ``LSTM``, ``GRU`` and
``RNN`` run float32 only: a float64 layer exports, but onnxruntime refuses to run it.

Why torch's TorchScript-based exporter (``dynamo=False``): in torch 2.13 the torch.export-based
one (the default) specialises the sequence length of every recurrent layer, torch.nn's
included (``torch.export`` fails with "Constraints violated (L)" and the exporter falls
back to a graph fixed to the example's length), so only the TorchScript exporter gives a
model whose length is dynamic. It is deprecated; its warnings are silenced here only.

Shape letters: ``L`` sequence length, ``N`` batch, ``H_in`` input features, ``H`` hidden
size, ``D`` directions, ``F`` features, ``K`` targets, ``C`` classes, ``T`` tags, ``V``
vocabulary.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.atomic import atomic_file
from rnnkit.export import _onnx_scan
from rnnkit.nn import RecurrentBase
from rnnkit.tasks import Forecaster, Generator, SequenceClassifier, SequenceTagger, Task
from rnnkit.train.io import CONFIG, ModelFileError

OPSET = 17
TASKS: dict[str, type[Task]] = {
    "forecaster": Forecaster,
    "classifier": SequenceClassifier,
    "tagger": SequenceTagger,
    "generator": Generator,
}
_LAYERS = (RecurrentBase, nn.RNNBase)
_OWN_CODE = (str(Path(__file__).parents[1]), str(Path(torch.__file__).parent))

# (module, example inputs, input names, output names, dynamic axes) for torch.onnx.export
Graph = tuple[nn.Module, tuple[Tensor, ...], list[str], list[str], dict[str, dict[int, str]]]


def export_onnx(
    source: nn.Module | Task | str | Path,
    path: str | Path,
    *,
    example_inputs: tuple[Tensor, ...] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset_version: int = OPSET,
) -> Path:
    """Write ``source`` to ``path`` as a validated ONNX model (see the module docstring).

    Args:
        source: a recurrent layer, a task model, a task model directory, or any
            ``nn.Module`` (which then needs ``example_inputs``).
        path: the ``.onnx`` file to write (atomically: a killed run leaves no partial file).
        example_inputs, input_names, output_names, dynamic_axes: for a plain ``nn.Module``
            only, passed to :func:`torch.onnx.export`; layers and tasks define their own.
        opset_version: the ONNX opset (>= 14, where ``LSTM`` gained ``layout``).

    Returns:
        ``path``.

    Raises:
        TypeError: an unsupported ``source`` type, or a plain module without
            ``example_inputs``.
        ValueError: a layer that cannot export (see the module docstring), or a
            directory that is not a model of a supported task (:class:`ModelFileError`).
    """
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "export_onnx: needs the onnx package: pip install 'rnnkit[onnx]'"
        ) from None
    if isinstance(opset_version, bool) or not isinstance(opset_version, int):
        raise TypeError(f"opset_version: expected an int, got {opset_version!r}")
    if opset_version < 14:
        raise ValueError(f"opset_version: expected an int >= 14, got {opset_version}")
    custom = (example_inputs, input_names, output_names, dynamic_axes)
    if isinstance(source, nn.Module):
        check_exportable(source, opset_version)
    if isinstance(source, nn.Module) and not isinstance(source, _LAYERS):
        if example_inputs is None:
            raise TypeError(
                f"example_inputs: expected a tuple of tensors to trace a "
                f"{type(source).__name__} with (layers and task models need none), got None"
            )
        graph: Graph = (
            source,
            tuple(example_inputs),
            list(input_names or []),
            list(output_names or []),
            dict(dynamic_axes or {}),
        )
    else:
        if any(value is not None for value in custom):
            raise TypeError(
                "example_inputs, input_names, output_names, dynamic_axes: expected None for a "
                f"layer or task model (they define their own), got them for a "
                f"{type(source).__name__}"
            )
        graph = _graph(source)
        check_exportable(graph[0], opset_version)  # a task's network
    module, inputs, in_names, out_names, axes = graph

    path = Path(path)
    modes = [(sub, sub.training) for sub in module.modules()]
    module.eval()
    try:
        with atomic_file(path) as temporary:
            with (
                torch.no_grad(),
                warnings.catch_warnings(record=True) as caught,
                _onnx_scan.placeholders(module) as scanned,
            ):
                warnings.simplefilter("always")
                torch.onnx.export(
                    module,
                    inputs,
                    temporary,
                    dynamo=False,
                    input_names=in_names or None,
                    output_names=out_names or None,
                    dynamic_axes=axes or None,
                    opset_version=opset_version,
                )
            _check_trace_warnings(caught)
            if scanned:
                model = onnx.load(temporary)
                _onnx_scan.rewrite(model, scanned)
                onnx.save(model, temporary)
            onnx.checker.check_model(temporary, full_check=True)
    finally:
        for sub, training in modes:
            sub.training = training
    return path


def check_exportable(module: nn.Module, opset_version: int = OPSET) -> None:
    """Raise ``ValueError`` if a recurrent layer inside ``module`` cannot export with a
    dynamic sequence length at ``opset_version`` (see the module docstring)."""
    for name, layer in module.named_modules():
        kind = type(layer).__name__
        where = f"{type(module).__name__}.{name} ({kind})" if name else kind
        reason = None
        cell = _onnx_scan.unknown_cell(layer) if isinstance(layer, RecurrentBase) else None
        if cell is not None:
            reason = f"its cell {cell} is not one of rnnkit's, whose steps the exporter writes"
        elif (
            isinstance(layer, nn.RNNBase)
            and not isinstance(layer, RecurrentBase)
            and layer.proj_size
        ):
            reason = (
                f"proj_size={layer.proj_size}: ONNX's LSTM operator has no projection "
                "(rnnkit.nn.LSTM loads the same state_dict and exports it)"
            )
        elif (
            isinstance(layer, RecurrentBase)
            and opset_version < _onnx_scan.LAYER_NORM_OPSET
            and _onnx_scan.needs_layer_norm(layer)
        ):
            reason = (
                f"its LayerNormalization needs opset_version >= {_onnx_scan.LAYER_NORM_OPSET}, "
                f"got {opset_version}"
            )
        if reason:
            raise ValueError(
                f"source: {where} is not exportable to ONNX: {reason}. Exportable: the layers "
                "of rnnkit.nn.LAYERS and torch.nn's RNN, LSTM and GRU without proj_size"
            )


def load_task(directory: str | Path) -> Task:
    """The task model saved in ``directory`` (any of :data:`TASKS`)."""
    directory = Path(directory)
    config = directory / CONFIG
    if not config.is_file():
        raise ModelFileError(f"source: {str(directory)!r} is not an rnnkit model (no {CONFIG})")
    try:
        task = json.loads(config.read_text(encoding="utf-8")).get("task")
    except (ValueError, AttributeError):
        task = None
    if task not in TASKS:
        raise ModelFileError(
            f"source: {str(directory)!r} holds a {task!r} model; ONNX export supports "
            f"{', '.join(TASKS)}"
        )
    return TASKS[task].load(directory)


# ----------------------------------------------------------------------------- graphs


def _graph(source: object) -> Graph:
    if isinstance(source, _LAYERS):
        return _layer_graph(source)
    if isinstance(source, (str, Path)):
        source = load_task(source)
    if isinstance(source, Forecaster):
        return _forecaster_graph(source)
    if isinstance(source, (SequenceClassifier, SequenceTagger)):
        return _lengths_graph(source)
    if isinstance(source, Generator):
        return _generator_graph(source)
    raise TypeError(
        "source: expected a recurrent layer (rnnkit.nn or torch.nn), a task model (Forecaster, "
        "SequenceClassifier, SequenceTagger, Generator), a model directory or an nn.Module, "
        f"got {type(source).__name__}"
    )


class _StateGraph(nn.Module):
    """``module(input, state)`` with its state as separate tensors in and out:
    ``(input, h0[, c0]) -> (output, hn[, cn])``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, input: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        output, final = self.module(input, state if len(state) > 1 else state[0])
        return (output, *(final if isinstance(final, tuple) else (final,)))


def _state_sizes(layer: nn.Module) -> tuple[int, ...]:
    """``S_k`` of each state tensor (a torch.nn layer has no proj_size: see check_exportable)."""
    if isinstance(layer, RecurrentBase):
        return layer.state_sizes
    return (layer.hidden_size,) * (2 if isinstance(layer, nn.LSTM) else 1)


def _state_names(layer: nn.Module) -> tuple[list[str], list[str]]:
    count = len(_state_sizes(layer))
    return ["h0", "c0"][:count], ["hn", "cn"][:count]


def _initial_state(layer: nn.Module, batch: int, weight: Tensor) -> tuple[Tensor, ...]:
    """Zeros ``(D * num_layers, N, S_k)`` per state tensor."""
    rows = (2 if layer.bidirectional else 1) * layer.num_layers
    return tuple(weight.new_zeros(rows, batch, size) for size in _state_sizes(layer))


def _layer_graph(layer: nn.Module) -> Graph:
    weight = next(layer.parameters())
    length, batch = 3, 2
    if layer.batch_first:
        x = weight.new_zeros(batch, length, layer.input_size)
        sequence_axes = {0: "N", 1: "L"}
    else:
        x = weight.new_zeros(length, batch, layer.input_size)
        sequence_axes = {0: "L", 1: "N"}
    state_in, state_out = _state_names(layer)
    axes = {"input": sequence_axes, "output": sequence_axes}
    axes |= {name: {1: "N"} for name in state_in + state_out}
    inputs = (x, *_initial_state(layer, batch, weight))
    return _StateGraph(layer), inputs, ["input", *state_in], ["output", *state_out], axes


def _forecaster_graph(model: Forecaster) -> Graph:
    network = model._require_network()
    x = torch.zeros(2, model.config.lookback, network.input_size)
    axes = {"input": {0: "N", 1: "L"}, "output": {0: "N"}}
    return network, (x,), ["input"], ["output"], axes


def _lengths_graph(model: SequenceClassifier | SequenceTagger) -> Graph:
    network = model._require_network()
    if getattr(model.config, "blend", "none") != "none":  # ROCKET's features run in NumPy
        raise ValueError(
            "source: a classifier blended with ROCKET does not export to ONNX (ROCKET's "
            "features run in NumPy); train it with --blend none (blend='none') to export it"
        )
    # Distinct lengths below L, none 0: the trace then takes the masked path, which is
    # right for every batch (full-length batches included); a length of 0 is not supported.
    lengths = torch.tensor([4, 2, 3])
    if network.embedding is not None:
        x: Tensor = torch.full((3, 4), 2, dtype=torch.long)  # (N, L) token ids
    else:
        x = torch.zeros(3, 4, network.encoder.input_size)  # (N, L, F)
    tagger = isinstance(model, SequenceTagger)
    axes = {
        "input": {0: "N", 1: "L"},
        "lengths": {0: "N"},
        "output": {0: "N", 1: "L"} if tagger else {0: "N"},
    }
    return network, (x, lengths), ["input", "lengths"], ["output"], axes


def _generator_graph(model: Generator) -> Graph:
    network = model._require_network()
    ids = torch.zeros(2, 3, dtype=torch.long)  # (N, L)
    state_in, state_out = _state_names(network.layer)
    axes = {"input": {0: "N", 1: "L"}, "output": {0: "N", 1: "L"}}
    axes |= {name: {1: "N"} for name in state_in + state_out}
    state = _initial_state(network.layer, 2, next(network.parameters()))
    return _StateGraph(network), (ids, *state), ["input", *state_in], ["output", *state_out], axes


# ----------------------------------------------------------------------------- warnings


def _check_trace_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Raise for a trace that fixed the batch size; re-issue what the exporter did not expect.

    ``len(tensor)`` returns a plain int to the tracer, so the exported graph would only run
    at the example's batch size. Expected here: tracer warnings from rnnkit's and torch's
    own code (shape checks, which hold for every size, and branches the example inputs are
    chosen for), the exporter's deprecation notices, and its notice that a recurrent layer
    without its initial state fixes the batch size (every graph here reads or builds the
    state from the input's batch size; the tests run other sizes). Tracer warnings from
    other code (a user's module) are passed on.
    """
    for warning in caught:
        message = str(warning.message)
        if message.startswith("Using len to get tensor shape"):
            raise ValueError(
                f"source: its forward calls len() on a tensor ({warning.filename}:"
                f"{warning.lineno}), which fixes the exported batch size; use "
                "tensor.shape[0] there"
            )
        expected = (
            (
                issubclass(warning.category, torch.jit.TracerWarning)
                and warning.filename.startswith(_OWN_CODE)
            )
            or (
                issubclass(warning.category, DeprecationWarning)
                and ("TorchScript-based ONNX export" in message or "will be removed" in message)
            )
            or message.startswith("Exporting a model to ONNX with a batch_size other than 1")
        )
        if not expected:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
