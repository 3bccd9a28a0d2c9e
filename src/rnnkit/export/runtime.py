"""Write runtime files from torch models: the torch side of :mod:`rnnkit.runtime`, which never
imports torch (nor this module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.nn import LAYERS, Recurrent, RecurrentBase, SpecCell
from rnnkit.runtime import cell_tensors, state_sizes, write_file
from rnnkit.train.io import CONFIG

#: The cells of torch.nn's own layers and of their drop-ins, by layer class.
_TORCH_LAYERS = {
    layer: name
    for name, spec in CELLS.items()
    if spec.torch_native
    for layer in (getattr(nn, spec.layer), LAYERS[name])
}
_RUNTIME_TASKS = ("forecaster", "generator", "classifier")


def export_runtime(model: nn.Module | str | Path | Any, path: str | Path) -> Path:
    """Write ``model`` to ``path`` as one runtime file for :func:`rnnkit.runtime.load`.

    Args:
        model: a recurrent layer (``rnnkit.nn.RNN``/``LSTM``/``GRU`` and every layer of
            :data:`rnnkit.nn.LAYERS`, stacked or bidirectional, or ``torch.nn.RNN``/``LSTM``/
            ``GRU``), a :class:`rnnkit.tasks.Forecaster`, :class:`rnnkit.tasks.Generator` or
            :class:`rnnkit.tasks.SequenceClassifier`, or the directory of a saved one.
        path: the file to write (atomically).

    Returns:
        ``path``.

    Raises:
        TypeError, ValueError: a model the runtime cannot run, naming what is unsupported.
    """
    from rnnkit.tasks import Forecaster, Generator, SequenceClassifier

    if isinstance(model, (str, Path)):
        model = _load_directory(Path(model))
    if isinstance(model, Forecaster):
        header, tensors = _forecaster(model)
    elif isinstance(model, Generator):
        header, tensors = _generator(model)
    elif isinstance(model, SequenceClassifier):
        header, tensors = _classifier(model)
    elif isinstance(model, nn.Module):
        spec, tensors = _layer_section(model)
        header = {"architecture": "layer", "layer": spec}
    else:
        raise TypeError(
            "model: expected a recurrent layer, a Forecaster, a Generator, a SequenceClassifier "
            "or a saved model directory, got "
            f"{type(model).__name__}"
        )
    return write_file(path, header, tensors)


def _layer_section(layer: nn.Module) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header's ``layer`` section and the tensors ``layer.{layer}.{direction}.{name}``."""
    torch_cell = next((c for t, c in _TORCH_LAYERS.items() if type(layer) is t), None)
    rnnkit_cell = next((c for c, t in LAYERS.items() if type(layer) is t), None)
    cell = torch_cell or rnnkit_cell
    if cell is None:
        names = ", ".join(sorted(LAYERS))
        raise TypeError(
            f"model: the runtime runs torch.nn.RNN/LSTM/GRU and rnnkit's layers ({names}), "
            f"got {type(layer).__name__}"
        )
    if isinstance(layer, RecurrentBase) and layer.zoneout > 0:
        raise ValueError(
            f"model: zoneout (here {layer.zoneout}) changes the eval-mode steps and is not "
            "supported by the runtime; export a layer without zoneout"
        )
    if torch_cell is not None:
        bias = bool(layer.bias)
        options = CELLS[cell].options_of(layer)

        def source(row: int, name: str) -> Tensor:
            suffix = f"_l{row // directions}" + ("_reverse" if row % directions else "")
            return getattr(layer, name + suffix)
    else:
        assert isinstance(layer, Recurrent)
        first = layer.cells[0]
        bias = bool(first.bias)
        options = _cell_options(first)

        def source(row: int, name: str) -> Tensor:
            return getattr(layer.cells[row], name)

    directions = 2 if layer.bidirectional else 1
    hidden = layer.hidden_size
    out = state_sizes(cell, hidden, options)[0]
    tensors = {}
    for row in range(layer.num_layers * directions):
        inputs = layer.input_size if row < directions else directions * out
        for name in cell_tensors(cell, inputs, hidden, bias, options):
            tensors[f"layer.{row // directions}.{row % directions}.{name}"] = _array(
                source(row, name)
            )
    initial = getattr(layer, "initial_state", None)
    for k, h0 in enumerate(initial or ()):
        tensors[f"layer.initial_state.{k}"] = _array(h0)
    spec = {
        "cell": cell,
        "input_size": layer.input_size,
        "hidden_size": hidden,
        "num_layers": layer.num_layers,
        "bidirectional": bool(layer.bidirectional),
        "batch_first": bool(layer.batch_first),
        "bias": bias,
        "learn_init": initial is not None,
        "options": options,
    }
    return spec, tensors


def _cell_options(first: nn.Module) -> dict[str, Any]:
    if isinstance(first, SpecCell):
        return dict(first.options)
    return {}


def _forecaster(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    network, fitted = model._require_network(), model._require_fitted()
    config = model.config
    extras = {
        "is a panel model (a scaler per series)": fitted.scaler is None,
        "forecasts log values": fitted.transform != "none",
        f"corrects {fitted.base}": config.seasonal_base and fitted.base != "seasonal naive",
        f"blends its network with {fitted.partner} (weight {fitted.blend})": fitted.blend < 1,
        f"averages {config.seeds} networks (seeds)": config.seeds > 1,
    }
    if any(extras.values()):
        raise ValueError(
            "model: the runtime streams the network's own forecast of one series, and this "
            f"forecaster {' and '.join(k for k, v in extras.items() if v)}; train it with "
            "Forecaster(transform='none', base='seasonal naive', blend=False, seeds=1) on one "
            "series to deploy it"
        )
    spec, tensors = _layer_section(network.encoder)
    columns, targets = len(fitted.columns), fitted.num_targets
    calendar = network.encoder.input_size - columns - targets * config.seasonal_base == 4
    tensors["head.weight"] = _array(network.head.weight)
    tensors["head.bias"] = _array(network.head.bias)
    header = {
        "architecture": "forecaster",
        "layer": spec,
        "forecaster": {
            "lookback": config.lookback,
            "horizon": config.horizon,
            "season": fitted.season,
            "seasonal_base": config.seasonal_base,
            "calendar": calendar,
            "columns": list(fitted.columns),
            "num_targets": targets,
            "scaler": {"mean": fitted.scaler.mean.tolist(), "std": fitted.scaler.std.tolist()},
        },
    }
    return header, tensors


def _generator(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    network = model._require_network()
    spec, tensors = _layer_section(network.layer)
    tensors["embedding.weight"] = _array(network.embedding.weight)
    tensors["head.weight"] = _array(network.head.weight)
    tensors["head.bias"] = _array(network.head.bias)
    vocabulary = list(model.vocabulary.tokens)
    return {
        "architecture": "generator",
        "layer": spec,
        "generator": {"vocabulary": vocabulary},
    }, tensors


def _classifier(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    network, fitted = model._require_network(), model._require_fitted()
    config = model.config
    if (
        config.members > 1
        or config.blend != "none"
        or config.front_end != "none"
        or (fitted.kind == "sequence" and config.stride > 1)
    ):
        raise ValueError(
            "model: the runtime runs one classifier network without a front end, stride or "
            f"blend; this one has members={config.members}, blend={config.blend!r}, "
            f"front_end={config.front_end!r}, stride={config.stride} (train with --members 1 "
            "--blend none --front-end none --stride 1 to export it)"
        )
    spec, tensors = _layer_section(network.encoder)
    tensors["head.weight"] = _array(network.head.weight)
    tensors["head.bias"] = _array(network.head.bias)
    section: dict[str, Any] = {
        "kind": fitted.kind,
        "classes": list(fitted.classes),
        "pooling": list(network.pooling),
        "max_length": model.config.max_length,
    }
    if fitted.vocabulary is not None:
        tensors["embedding.weight"] = _array(network.embedding.weight)
        section |= {"tokens": model.config.tokens, "vocabulary": list(fitted.vocabulary.tokens)}
    else:
        scaler = fitted.scaler
        section["scaler"] = {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()}
    return {"architecture": "classifier", "layer": spec, "classifier": section}, tensors


def _load_directory(directory: Path) -> Any:
    from rnnkit.tasks import Forecaster, Generator, SequenceClassifier

    try:
        task = json.loads((directory / CONFIG).read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        task = None  # load_model below reports what is wrong with the directory
    if task is not None and task not in _RUNTIME_TASKS:
        raise ValueError(
            f"model: {str(directory)!r} is a {task!r} model; the runtime runs "
            f"{', '.join(_RUNTIME_TASKS)} models and recurrent layers"
        )
    if task == "generator":
        return Generator.load(directory)
    if task == "classifier":
        return SequenceClassifier.load(directory)
    return Forecaster.load(directory)


def _array(tensor: Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy()
