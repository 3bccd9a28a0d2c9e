"""The runtime file: safetensors tensors plus one JSON header, read and written without torch.

The header lives in the safetensors metadata under the key ``"rnnkit"``::

    {"format": "rnnkit-runtime", "version": 1, "architecture": "layer" | "forecaster",
     "layer": {"cell", "input_size", "hidden_size", "num_layers", "bidirectional",
               "batch_first", "bias", "learn_init", "options": {...}}, ...task fields}

Reading never executes anything from the file: safetensors holds raw arrays, the header is
JSON, and every tensor the header implies is checked for presence, shape and dtype.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from rnnkit.atomic import atomic_file

FORMAT = "rnnkit-runtime"
VERSION = 1
HEADER_KEY = "rnnkit"
#: The most steps a header may ask a stream to keep (a forecaster's lookback, season, horizon):
#: checked before anything is allocated, for a file is untrusted input.
MAX_STEPS = 10**6


class RuntimeFileError(ValueError):
    """A runtime file that is missing, truncated, corrupt, foreign or inconsistent."""


def write_file(path: str | Path, header: dict[str, Any], tensors: dict[str, np.ndarray]) -> Path:
    """Write ``tensors`` and ``header`` (JSON-serialisable) to ``path`` atomically."""
    metadata = {HEADER_KEY: json.dumps({"format": FORMAT, "version": VERSION, **header})}
    arrays = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    with atomic_file(path) as staging:
        save_file(arrays, staging, metadata=metadata)
    return Path(path)


def read_file(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the tensors of a runtime file, checked for format, version and finite
    values only.

    Raises:
        RuntimeFileError: naming the file and what is wrong with it.
    """
    name = repr(str(path))
    if not Path(path).is_file():
        raise RuntimeFileError(f"runtime file {name}: no such file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise RuntimeFileError(
            f"runtime file {name}: truncated, corrupt or not a safetensors file ({error})"
        ) from None
    if HEADER_KEY not in metadata:
        raise RuntimeFileError(
            f"runtime file {name}: a safetensors file without an rnnkit header; write one "
            "with `rnnkit export` or rnnkit.export.export_runtime"
        )
    try:
        header = json.loads(metadata[HEADER_KEY])
    except json.JSONDecodeError as error:
        raise RuntimeFileError(f"runtime file {name}: corrupt header ({error})") from None
    except RecursionError:
        raise RuntimeFileError(f"runtime file {name}: header nests too deeply") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RuntimeFileError(f"runtime file {name}: not an {FORMAT!r} file")
    if header.get("version") != VERSION:
        raise RuntimeFileError(
            f"runtime file {name}: format version {header.get('version')!r}; this rnnkit "
            f"reads version {VERSION}"
        )
    for key, value in tensors.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise RuntimeFileError(
                f"runtime file {name}: tensor {key!r} holds values that are not finite numbers"
            )
    return header, tensors


def field(header: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``header[key]`` if it has type ``kind`` (ints never pass for bools, nor bools for
    ints); raises KeyError/TypeError that :func:`rnnkit.runtime.load` reports."""
    if key not in header:
        raise KeyError(f"{where}.{key} is missing")
    value = header[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds):
        raise TypeError(f"{where}.{key}: expected {kind}, got {value!r}")
    return value
