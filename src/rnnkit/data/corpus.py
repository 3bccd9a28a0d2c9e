"""A text corpus larger than memory: its characters encoded once into a ``.npy`` file of
ids, and cut into training chunks when a batch asks for them.

:func:`encode_corpus` reads a UTF-8 file twice, a block of characters at a time: once to
count the characters (the vocabulary, ordered as :meth:`rnnkit.data.text.Vocabulary.build`
orders it), once to write their ids as a ``(T, 1)`` uint8 or uint16 array. :class:`DiskChunks`
then reads chunk ``i`` with one positioned read of ``length + 1`` ids (as
:class:`rnnkit.data.ondisk.DiskWindows` reads windows), so a process holds one batch of text
whatever the corpus's size, and under DDP reads only its shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnkit.atomic import atomic_file
from rnnkit.data.ondisk import _Rows
from rnnkit.data.text import PAD, UNK, Vocabulary

_BLOCK_CHARACTERS = 1 << 20  # 4 MB of code points: a block costs tens of MB at most


def _blocks(path: Path) -> Iterator[np.ndarray]:
    """The characters of the UTF-8 file ``path`` as blocks of Unicode code points
    ``(B,)`` uint32, read as ``Path.read_text`` reads it (universal newlines)."""
    try:
        with path.open(encoding="utf-8") as file:
            while block := file.read(_BLOCK_CHARACTERS):
                yield np.frombuffer(block.encode("utf-32-le"), np.uint32)
    except UnicodeDecodeError as error:
        raise ValueError(f"path: {str(path)!r} is not UTF-8 text ({error.reason})") from None


def corpus_vocabulary(path: str | Path) -> tuple[Vocabulary, int]:
    """The character vocabulary of the UTF-8 file ``path`` (most frequent first, ties by
    first appearance: ``Vocabulary.build([list(text)])`` of the whole text) and its length
    in characters, from one pass a block at a time."""
    counts: dict[int, int] = {}
    first: dict[int, int] = {}  # code point -> position of its first appearance
    seen = 0
    for codes in _blocks(Path(path)):
        number = np.bincount(codes)  # (max code + 1,)
        found = np.flatnonzero(number).tolist()
        if any(code not in counts for code in found):  # sort only a block with new ones
            uniques, where = np.unique(codes, return_index=True)
            for code, position in zip(uniques.tolist(), where.tolist(), strict=True):
                if code not in counts:
                    counts[code], first[code] = 0, seen + position
        for code in found:
            counts[code] += int(number[code])
        seen += len(codes)
    order = sorted(counts, key=lambda code: (-counts[code], first[code]))
    return Vocabulary((PAD, UNK, *map(chr, order))), seen


def encode_corpus(path: str | Path, out: str | Path) -> tuple[Vocabulary, Path]:
    """Write the character ids of the UTF-8 file ``path`` to the ``.npy`` file ``out``
    (atomically; a ``(T, 1)`` uint8 or uint16 array, the narrowest that holds the
    vocabulary), with the vocabulary beside it (``out`` with suffix ``.json``).

    Returns:
        The vocabulary and ``out``. Raises ValueError for a file that is not UTF-8 text,
        is empty, or has more than 65,534 distinct characters.
    """
    path, out = Path(path), Path(out)
    vocabulary, length = corpus_vocabulary(path)
    if length == 0:
        raise ValueError(f"path: {str(path)!r} holds no text")
    if len(vocabulary) > 1 << 16:
        raise ValueError(
            f"path: {str(path)!r} has {len(vocabulary) - 2} distinct characters; expected at "
            "most 65,534"
        )
    dtype = np.dtype(np.uint8 if len(vocabulary) <= 1 << 8 else np.uint16)
    codes = np.array([ord(token) for token in vocabulary.tokens[2:]], dtype=np.uint32)
    order = np.argsort(codes)
    keys, ids = codes[order], (order + 2).astype(dtype)  # code point -> id, by code point
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (length, 1),
    }
    with atomic_file(out.with_suffix(".json")) as staging:
        staging.write_text(json.dumps({"tokens": list(vocabulary.tokens)}), encoding="utf-8")
    with atomic_file(out) as staging, staging.open("wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        for block in _blocks(path):
            file.write(ids[np.searchsorted(keys, block)].tobytes())
    return vocabulary, out


def read_vocabulary(out: str | Path) -> Vocabulary:
    """The vocabulary :func:`encode_corpus` wrote beside ``out``."""
    tokens = json.loads(Path(out).with_suffix(".json").read_text(encoding="utf-8"))["tokens"]
    return Vocabulary(tuple(tokens))


class DiskChunks(Dataset):
    """Chunks of ``length`` character ids over ids ``[start, stop)`` of a file written by
    :func:`encode_corpus`, each ``(inputs (length,), next characters (length,))`` int64,
    read when asked for: chunk ``c`` starts at id ``start + c * length``.

    With ``streams``, the chunks are ordered as ``streams`` contiguous parts read a chunk
    at a time (item ``j`` is chunk ``j // streams`` of part ``j % streams``), and each item
    adds ``starts``, a bool, True on a part's first chunk: as the generator's in-memory
    streams (fewer chunks than ``streams``: each chunk is a part of its own).

    Raises:
        ValueError: the file is not a ``(T, 1)`` unsigned-int ``.npy`` array, or the range
            holds no chunk.
    """

    def __init__(
        self,
        path: str | Path,
        length: int,
        start: int = 0,
        stop: int | None = None,
        streams: int | None = None,
    ) -> None:
        self.rows = _Rows(path, kind="u")
        stop = self.rows.count if stop is None else min(stop, self.rows.count)
        self.length, self.start = length, start
        chunks = max(0, (stop - start - 1) // length)
        if chunks == 0:
            raise ValueError(
                f"start, stop: ids [{start}, {stop}) hold no chunk of length {length} + 1"
            )
        self.streams = None if streams is None else min(streams, chunks)
        self.per_stream = chunks if self.streams is None else chunks // self.streams
        self.count = chunks if self.streams is None else self.streams * self.per_stream

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        if not 0 <= index < self.count:
            raise IndexError(f"index: expected 0 <= index < {self.count}, got {index}")
        chunk = index
        if self.streams is not None:
            chunk = (index % self.streams) * self.per_stream + index // self.streams
        ids = self.rows.read(self.start + chunk * self.length, self.length + 1)[:, 0]
        ids = torch.from_numpy(ids.astype(np.int64))  # (length + 1,)
        if self.streams is None:
            return ids[:-1], ids[1:]
        return ids[:-1], ids[1:], torch.tensor(index < self.streams)
