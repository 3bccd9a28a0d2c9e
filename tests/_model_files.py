"""Crafting model folders the way a hostile or hand-edited one would be made."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor

from rnnkit.train.io import CHECKSUM, CONFIG, WEIGHTS, sha256


def rewrite_weights(
    folder: Path, tensors: dict[str, Tensor] | None = None, raw: bytes = b""
) -> None:
    """Replace ``folder``'s weights by ``tensors`` (or the bytes ``raw``) and record their
    checksum in its config, so that what the loader sees is the content, not a mismatch."""
    if tensors is not None:
        save_file(tensors, folder / WEIGHTS)
    else:
        (folder / WEIGHTS).write_bytes(raw)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    config[CHECKSUM] = sha256(folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
