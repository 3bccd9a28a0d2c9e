"""Input preprocessing shared by training (torch) and the torch-free runtime (NumPy only):
the tokenisers of texts and the calendar features of timestamps. Nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]")


def char_tokens(text: str) -> list[str]:
    """Every character is a token (spaces and newlines included)."""
    return list(text)


def word_tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks."""
    return _WORD.findall(text.lower())


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"word": word_tokens, "char": char_tokens}


def calendar_features(timestamps: np.ndarray) -> np.ndarray:
    """Time of day and day of week as points on circles: ``(T,)`` datetimes -> ``(T, 4)``."""
    minutes = timestamps.astype("datetime64[m]").astype(np.int64)
    day = 2 * np.pi * (minutes % 1440) / 1440
    week = 2 * np.pi * ((minutes // 1440 + 3) % 7) / 7  # 1970-01-01 was a Thursday
    return np.stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=1)
