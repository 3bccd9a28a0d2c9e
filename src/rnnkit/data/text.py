"""Text to integer sequences and back: tokenisers, a vocabulary and padded batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

PAD, UNK = "<pad>", "<unk>"


@dataclass(frozen=True)
class Vocabulary:
    """Tokens by index; index 0 is padding and index 1 stands for any unknown token.

    Built from training data only, so unseen tokens at test time map to ``<unk>``.
    """

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(f"tokens: expected to start with {PAD!r}, {UNK!r}")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The tokens seen at least ``min_count`` times, most frequent first (ties by first
        appearance), at most ``max_size`` of them (specials included)."""
        counts = Counter(token for sequence in sequences for token in sequence)
        kept = [t for t, n in counts.most_common() if n >= min_count and t not in (PAD, UNK)]
        if max_size is not None:
            kept = kept[: max(max_size - 2, 0)]
        return cls((PAD, UNK, *kept))

    @property
    def pad_index(self) -> int:
        return 0

    @property
    def unk_index(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index  # type: ignore[attr-defined]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        return [index.get(t, self.unk_index) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


def pad_batch(sequences: Sequence[Sequence[int] | Tensor], pad: int = 0) -> tuple[Tensor, Tensor]:
    """``N`` integer sequences -> ``(N, L_max)`` int64 padded with ``pad`` and lengths ``(N,)``."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    longest = int(lengths.max()) if len(sequences) else 0
    batch = torch.full((len(sequences), longest), pad, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        ids = torch.as_tensor(sequence)
        if ids.dtype.is_floating_point or ids.dtype.is_complex:
            raise TypeError(f"sequences: expected integer token ids, got {ids.dtype} in row {row}")
        batch[row, : len(sequence)] = ids
    return batch, lengths
