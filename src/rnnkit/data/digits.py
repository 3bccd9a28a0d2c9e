"""Images composed from scikit-learn's real 8x8 handwritten digits: captions and strips.

The 1,797 digits of ``sklearn.datasets.load_digits`` (DATA.md) are first split into
disjoint training and test *source* images, so no handwritten digit seen in training ever
appears in a test image. From either part, seeded generators compose:

* :func:`caption_grids`: 16x16 images, a 2x2 grid with 1-4 of its cells holding a digit,
  captioned in reading order, e.g. ``"three digits: seven two nine"``;
* :func:`digit_strips`: ``(8, W)`` strips of 3-8 digits side by side with random gaps
  (0 to ``max_gap`` blank columns, so neighbours may touch) and their labels, e.g. ``"7290"``.

Pixels are floats in ``[0, 1]`` (the original 0-16 divided by 16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.checks import check_int, check_rate

SIZE = 8  # pixels per side of one digit
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class DigitImages:
    """Real handwritten digits: ``images`` ``(M, 8, 8)`` float32 in [0, 1], ``digits`` ``(M,)``."""

    images: np.ndarray
    digits: np.ndarray

    def __len__(self) -> int:
        return len(self.digits)


def load_digit_split(test_fraction: float = 0.25, seed: int = 0) -> tuple[DigitImages, DigitImages]:
    """scikit-learn's digits split into disjoint ``(train, test)`` source images, seeded and
    stratified by digit."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if check_rate("test_fraction", test_fraction) == 0:
        raise ValueError(f"test_fraction: expected a float in (0, 1), got {test_fraction}")
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    kept, held = train_test_split(
        np.arange(len(data.target)),
        test_size=test_fraction,
        stratify=data.target,
        random_state=seed,
    )
    return (
        DigitImages(images[kept], data.target[kept]),
        DigitImages(images[held], data.target[held]),
    )


def caption(digits: list[int]) -> str:
    """``[7, 2, 9]`` -> ``"three digits: seven two nine"``."""
    if not digits:
        raise ValueError("digits: expected at least one digit, got none")
    count = f"{DIGIT_NAMES[len(digits)]} digit{'s' if len(digits) > 1 else ''}:"
    return " ".join([count, *(DIGIT_NAMES[d] for d in digits)])


def caption_grids(
    source: DigitImages, count: int, seed: int = 0, max_digits: int = 4
) -> tuple[np.ndarray, list[str]]:
    """``count`` 2x2 grids of digits from ``source`` and their captions.

    Each image holds ``k`` digits, ``k`` uniform in ``[1, max_digits]`` (at most 4), in
    ``k`` random cells; the caption names them in reading order (left to right, top to
    bottom).

    Returns:
        images ``(count, 16, 16)`` float32 and ``count`` captions.
    """
    check_int("count", count)
    if check_int("max_digits", max_digits) > 4:
        raise ValueError(f"max_digits: expected an int in [1, 4] (a 2x2 grid), got {max_digits}")
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 2 * SIZE, 2 * SIZE), dtype=np.float32)
    captions = []
    for n in range(count):
        cells = np.sort(rng.choice(4, size=rng.integers(1, max_digits + 1), replace=False))
        picks = rng.integers(0, len(source), size=len(cells))
        for cell, pick in zip(cells, picks, strict=True):
            row, column = divmod(int(cell), 2)
            images[n, row * SIZE : (row + 1) * SIZE, column * SIZE : (column + 1) * SIZE] = (
                source.images[pick]
            )
        captions.append(caption([int(source.digits[p]) for p in picks]))
    return images, captions


def strip_width(max_digits: int = 8, max_gap: int = 3) -> int:
    """Columns of a strip that fits ``max_digits`` digits, ``max_gap`` blank columns before,
    between and after them."""
    return max_digits * SIZE + (max_digits + 1) * max_gap


def digit_strips(
    source: DigitImages,
    count: int,
    seed: int = 0,
    min_digits: int = 3,
    max_digits: int = 8,
    max_gap: int = 3,
) -> tuple[np.ndarray, list[str]]:
    """``count`` horizontal strips of digits from ``source`` and their labels.

    Each strip holds ``k`` digits, ``k`` uniform in ``[min_digits, max_digits]``, after a
    left margin and with gaps of 0 to ``max_gap`` blank columns (uniform); the rest of the
    :func:`strip_width` columns is blank.

    Returns:
        images ``(count, 8, strip_width(max_digits, max_gap))`` float32 and ``count`` labels
        such as ``"7290"``.
    """
    check_int("count", count)
    check_int("min_digits", min_digits)
    if check_int("max_digits", max_digits) < min_digits:
        raise ValueError(f"max_digits: expected >= min_digits = {min_digits}, got {max_digits}")
    check_int("max_gap", max_gap, minimum=0)
    rng = np.random.default_rng(seed)
    images = np.zeros((count, SIZE, strip_width(max_digits, max_gap)), dtype=np.float32)
    labels = []
    for n in range(count):
        picks = rng.integers(0, len(source), size=rng.integers(min_digits, max_digits + 1))
        x = 0
        for pick in picks:
            x += int(rng.integers(0, max_gap + 1))
            images[n, :, x : x + SIZE] = source.images[pick]
            x += SIZE
        labels.append("".join(str(int(source.digits[p])) for p in picks))
    return images, labels


# ---------------------------------------------------------------------- baselines


def fit_digit_classifier(source: DigitImages) -> Any:
    """Logistic regression on the 64 pixels of single digits (scikit-learn): the reader the
    baselines below share."""
    from sklearn.linear_model import LogisticRegression

    pixels = source.images.reshape(len(source), -1)  # (M, 64)
    return LogisticRegression(max_iter=5000).fit(pixels, source.digits)


def read_grids(classifier: Any, images: np.ndarray) -> list[str]:
    """Caption 2x2 grids ``(N, 16, 16)`` knowing how they were made: classify every cell
    that has ink, in reading order."""
    cells = images.reshape(len(images), 2, SIZE, 2, SIZE).transpose(0, 1, 3, 2, 4)
    cells = cells.reshape(len(images), 4, SIZE * SIZE)  # (N, 4, 64) in reading order
    inked = cells.max(-1) > 0  # (N, 4)
    digits = classifier.predict(cells.reshape(-1, SIZE * SIZE)).reshape(len(images), 4)
    return [caption(row[mask].tolist()) for row, mask in zip(digits, inked, strict=True)]


def read_strips(classifier: Any, images: np.ndarray) -> list[str]:
    """Read strips ``(N, 8, W)`` by segmentation: cut at blank columns, split a piece wider
    than a digit into equal parts (digits that touch), classify each part centred in 8
    columns."""
    labels = []
    for image in images:
        inked = np.flatnonzero(image.max(0) > 0)
        pieces = np.split(inked, np.flatnonzero(np.diff(inked) > 1) + 1) if len(inked) else []
        crops = []
        for piece in pieces:
            parts = max(1, round(len(piece) / SIZE))
            for columns in np.array_split(np.arange(piece[0], piece[-1] + 1), parts):
                crop = np.zeros((SIZE, SIZE), dtype=image.dtype)
                width = min(len(columns), SIZE)
                left = (SIZE - width) // 2
                crop[:, left : left + width] = image[:, columns[:width]]
                crops.append(crop.reshape(-1))
        digits = classifier.predict(np.array(crops)) if crops else []
        labels.append("".join(str(int(d)) for d in digits))
    return labels
