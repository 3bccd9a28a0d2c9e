"""Training checkpoints without pickle: Lightning's checkpoint dict as one safetensors file.

Lightning's own checkpoints go through ``torch.save`` (pickle), and loading a pickle can run
code. A checkpoint is a tree of dicts, lists, tuples, numbers, strings and tensors (weights,
optimiser moments, loop counters, callback states), so it fits a safetensors file exactly:
the tensors as tensors and the tree, with each tensor replaced by its name, as JSON in the
file's metadata. Loading rebuilds only those types; anything else is refused when saving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.fabric.plugins import CheckpointIO
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from rnnkit.atomic import atomic_file
from rnnkit.train.io import ModelFileError

FORMAT = "rnnkit-checkpoint"
_TREE = "tree"
_TAGS = ("__tensor__", "__tuple__", "__items__")  # JSON stand-ins for what JSON lacks


def _encode(node: Any, tensors: dict[str, Tensor], path: str) -> Any:
    """Replace tensors by their names (stored in ``tensors``), tuples and non-str-keyed
    dicts by tagged lists, so the tree is plain JSON."""
    if isinstance(node, Tensor):
        tensors[path] = node.detach().cpu().clone()  # clone: safetensors refuses shared memory
        return {"__tensor__": path}
    if isinstance(node, dict):
        items = [(key, _encode(value, tensors, f"{path}/{key}")) for key, value in node.items()]
        if all(isinstance(key, str) and key not in _TAGS for key, _ in items):
            return dict(items)
        return {"__items__": [[key, value] for key, value in items]}
    if isinstance(node, (list, tuple)):
        values = [_encode(value, tensors, f"{path}/{i}") for i, value in enumerate(node)]
        return {"__tuple__": values} if isinstance(node, tuple) else values
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise TypeError(f"checkpoint: cannot store a {type(node).__name__} at {path!r} without pickle")


def _decode(node: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(value, tensors) for value in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__tuple__" in node:
        return tuple(_decode(value, tensors) for value in node["__tuple__"])
    if "__items__" in node:
        return {_decode(key, tensors): _decode(value, tensors) for key, value in node["__items__"]}
    return {key: _decode(value, tensors) for key, value in node.items()}


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a killed run keeps the previous file)."""
    tensors: dict[str, Tensor] = {}
    tree = json.dumps(_encode(checkpoint, tensors, ""))
    with atomic_file(path) as staging:
        save_file(tensors, staging, metadata={"format": FORMAT, _TREE: tree})


@contextmanager
def _opened(path: str | Path) -> Iterator[Any]:
    """A checked checkpoint file open for reading (safetensors' lazy handle).

    Raises:
        ModelFileError: the file is missing, truncated, corrupt or not an rnnkit checkpoint.
    """
    try:
        with safe_open(path, framework="pt") as file:
            if (file.metadata() or {}).get("format") != FORMAT:
                raise ModelFileError(f"checkpoint: {str(path)!r} is not an rnnkit checkpoint")
            yield file
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as error:
        raise ModelFileError(f"checkpoint: {str(path)!r} is missing or corrupt: {error}") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_checkpoint`; never runs code from it.

    Raises:
        ModelFileError: the file is missing, truncated, corrupt or not an rnnkit checkpoint.
    """
    with _opened(path) as file:
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        tree = json.loads(file.metadata()[_TREE])
    return _decode(tree, tensors)


def weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The shapes of the checkpoint's model weights (its ``state_dict``), read from the
    file's header without loading any tensor."""
    prefix = "/state_dict/"  # where _encode puts them
    with _opened(path) as file:
        return {
            name.removeprefix(prefix): tuple(file.get_slice(name).get_shape())
            for name in file.keys()  # noqa: SIM118
            if name.startswith(prefix)
        }


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning plugin: checkpoints through :func:`save_checkpoint` / :func:`load_checkpoint`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        save_checkpoint(checkpoint, path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path)  # holds nothing but tensors and plain data either way

    def remove_checkpoint(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)
