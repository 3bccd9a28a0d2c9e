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


# An ISO 8601 time's UTC offset: "Z", "+02:00", "-0530" or "+02".
_OFFSET = re.compile(r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)$")


def utc_minutes(times: object) -> np.ndarray:
    """ISO 8601 times (strings or datetimes, any shape) as ``datetime64[m]`` of the same shape.

    A time with a UTC offset (``...T09:00+02:00``, ``...Z``) is converted to UTC, as NumPy
    itself does (but without its warning); one without is taken as it is. So a series whose
    offset changes (daylight saving time) stays in order.

    Raises:
        ValueError: a string that is not an ISO 8601 time, or an offset of 24 hours or more.
    """
    array = np.asarray(times)
    if array.dtype.kind not in "UO":
        return array.astype("datetime64[m]")
    texts = [str(text).strip() for text in array.ravel()]
    if not any(("T" in text or " " in text) and _OFFSET.search(text) for text in texts):
        return np.array(texts, dtype="datetime64[m]").reshape(array.shape)  # NumPy parses all
    parsed = [_utc(text) for text in texts]
    return np.array(parsed, dtype="datetime64[m]").reshape(array.shape)


def _utc(text: str) -> np.datetime64:
    found = _OFFSET.search(text) if "T" in text or " " in text else None
    if found is None:
        return np.datetime64(text, "m")
    offset = found.group(1)
    local = np.datetime64(text[: found.start()].rstrip(), "m")
    if offset == "Z":
        return local
    digits = offset[1:].replace(":", "").ljust(4, "0")
    hours, mins = int(digits[:2]), int(digits[2:])
    if hours > 23 or mins > 59:
        raise ValueError(f"{text!r}: a UTC offset of at most 23:59 expected")
    shift = np.timedelta64(60 * hours + mins, "m")
    return local - shift if offset[0] == "+" else local + shift
