"""Model directories: safetensors weights + a JSON config. No pickle, atomic writes.

A model directory holds ``config.json`` (``{"format": "rnnkit-model", "version": 1,
"task": ..., "weights_sha256": ..., ...}``) and ``weights.safetensors``. It is written to a
temporary sibling and renamed into place, so a killed run leaves either the old directory or
the new one. The SHA-256 of the weights file catches a file changed after it was saved (a
flipped bit in the tensors' data would otherwise load as other weights); folders written
before it was recorded load without the check.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rnnkit.atomic import exchange, follow_umask, fsync

FORMAT = "rnnkit-model"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
CHECKSUM = "weights_sha256"  # the field of config.json that holds the weights' SHA-256


class ModelFileError(ValueError):
    """A model directory that is missing, corrupt or not an rnnkit model of the right task."""


def first_difference(
    found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]
) -> str | None:
    """The first weight name (in sorted order) whose shape differs between two
    ``{name: shape}`` maps, or is in only one of them; None when they are equal."""
    differing = sorted(set(found.items()) ^ set(expected.items()))
    return differing[0][0] if differing else None


def save_model(
    directory: str | Path, task: str, config: dict[str, Any], weights: dict[str, Tensor]
) -> Path:
    """Write ``config`` (JSON-serialisable) and ``weights`` to ``directory`` atomically."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        follow_umask(staging, 0o777)
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, staging / WEIGHTS)
        follow_umask(staging / WEIGHTS)  # safetensors makes it private to the user
        header = {"format": FORMAT, "version": VERSION, "task": task, **config}
        header[CHECKSUM] = sha256(staging / WEIGHTS)
        (staging / CONFIG).write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
        for written in (staging / CONFIG, staging / WEIGHTS, staging):
            fsync(written)
        if not directory.exists():
            os.replace(staging, directory)
        elif not exchange(staging, directory):  # the old folder is now at staging
            # no atomic exchange here: two renames, with a moment without `directory`
            retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, retired / directory.name)
            os.replace(staging, directory)
            shutil.rmtree(retired)
        fsync(directory.parent)
        _remove_leftovers(directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return directory


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hexadecimal digits."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_leftovers(directory: Path) -> None:
    """Remove the staging folders a killed save of ``directory`` left (``tempfile``'s
    ``.{name}.XXXXXXXX`` and ``.{name}.old.XXXXXXXX``)."""
    pattern = re.compile(rf"\.{re.escape(directory.name)}\.(old\.)?[a-z0-9_]{{8}}")
    for sibling in directory.parent.iterdir():
        if sibling.is_dir() and pattern.fullmatch(sibling.name):
            shutil.rmtree(sibling, ignore_errors=True)


def read_config(directory: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of a model directory (its ``"task"`` says which task
    class loads it).

    Raises:
        ModelFileError: naming the directory and what is wrong with it.
    """
    directory = Path(directory)
    if not (directory / CONFIG).is_file():
        raise ModelFileError(f"model: {str(directory)!r} is not an rnnkit model (no {CONFIG})")
    try:
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"model: {CONFIG} in {str(directory)!r} is corrupt: {error}") from None
    except RecursionError:
        raise ModelFileError(f"model: {CONFIG} in {str(directory)!r} nests too deeply") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"model: {str(directory)!r} is not an rnnkit model")
    if config.get("version") != VERSION:
        raise ModelFileError(
            f"model: {str(directory)!r} has format version {config.get('version')!r}; "
            f"this rnnkit reads version {VERSION}"
        )
    return _Fields(config, directory=directory)


class _Fields(dict):
    """A ``config.json``'s fields: a missing one is a :class:`ModelFileError` naming it."""

    def __init__(self, fields: dict[str, Any], directory: Path) -> None:
        super().__init__(fields)
        self.directory = directory

    def __missing__(self, key: str) -> Any:
        raise ModelFileError(f"model: {CONFIG} in {str(self.directory)!r} has no {key!r} field")


def load_model(directory: str | Path, task: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read a directory written by :func:`save_model` for ``task``; never runs code from it.

    Raises:
        ModelFileError: naming the directory and what is wrong with it.
    """
    directory = Path(directory)
    config = read_config(directory)
    if config.get("task") != task:
        raise ModelFileError(
            f"model: {str(directory)!r} is a {config.get('task')!r} model, expected {task!r}"
        )
    if CHECKSUM in config:
        expected = config[CHECKSUM]
        if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise ModelFileError(
                f"model: {CONFIG} in {str(directory)!r}: {CHECKSUM} is not a SHA-256 (64 "
                f"hexadecimal digits), got {str(expected)[:80]!r}"
            )
        try:
            found = sha256(directory / WEIGHTS)
        except OSError as error:
            raise ModelFileError(
                f"model: {WEIGHTS} in {str(directory)!r} is missing or unreadable: {error}"
            ) from None
        if found != expected:
            raise ModelFileError(
                f"model: {WEIGHTS} in {str(directory)!r} does not match the {CHECKSUM} of its "
                f"{CONFIG}: the file changed after it was saved"
            )
    try:
        weights = load_file(directory / WEIGHTS)
    except (SafetensorError, FileNotFoundError, OSError) as error:
        raise ModelFileError(
            f"model: {WEIGHTS} in {str(directory)!r} is missing or corrupt: {error}"
        ) from None
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise ModelFileError(
                f"model: {WEIGHTS} in {str(directory)!r} is corrupt: {name} holds values that "
                "are not finite numbers"
            )
    return config, weights
