"""Attention maps: where an encoder-decoder looked in the source for each output token."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from rnnkit.viz.figures import _save

BASE_FONT = "DejaVu Sans"  # matplotlib's own; it has no Hangul or CJK glyphs


def plot_attention(
    weights: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | Path,
    title: str = "Attention",
) -> Path:
    """A heat map of attention weights: output tokens as rows, source tokens as columns.

    Args:
        weights: ``(T, S)``, row ``t`` the attention while emitting ``target_tokens[t]``
            (e.g. from :meth:`rnnkit.tasks.Seq2Seq.attention`).
        source_tokens: the ``S`` source tokens.
        target_tokens: the ``T`` output tokens.

    Characters that no installed font can draw are written as ``U+XXXX``.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or 0 in weights.shape:
        raise ValueError(f"weights: expected a non-empty (T, S) array, got shape {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("weights: expected finite values")
    for name, tokens, size in (
        ("source_tokens", source_tokens, weights.shape[1]),
        ("target_tokens", target_tokens, weights.shape[0]),
    ):
        if len(tokens) != size:
            raise ValueError(
                f"{name}: expected {size} tokens (weights {weights.shape}), got {len(tokens)}"
            )
    labels, families = _labels([*source_tokens, *target_tokens])
    columns, rows = labels[: len(source_tokens)], labels[len(source_tokens) :]
    figure = Figure(figsize=(2 + 0.32 * len(columns), 1.5 + 0.32 * len(rows)))
    axes = figure.subplots()
    image = axes.imshow(
        weights,
        cmap="Greys",
        vmin=0,
        vmax=max(float(weights.max()), 1e-12),
        aspect="equal",
        interpolation="nearest",
    )
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    axes.set_xticks(np.arange(len(columns)), columns, fontfamily=families, rotation=90)
    axes.set_yticks(np.arange(len(rows)), rows, fontfamily=families)
    axes.tick_params(labelsize=9, length=0)
    axes.xaxis.tick_top()
    axes.set_title(title, pad=12)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    return _save(figure, path)


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    """The code points the font file at ``path`` can draw (empty if unreadable)."""
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):
        return frozenset()


def _covered(points: set[int]) -> dict[str, frozenset[int]]:
    """Installed families (besides the base font) that draw some of ``points``, with the
    points each draws; matplotlib's "Last Resort" font only draws placeholder boxes."""
    found: dict[str, frozenset[int]] = {}
    for entry in font_manager.fontManager.ttflist:
        if entry.name != BASE_FONT and not entry.name.startswith("Last Resort"):
            drawn = points & _charmap(entry.fname)
            if drawn:
                found[entry.name] = found.get(entry.name, frozenset()) | drawn
    return found


def _base_points() -> frozenset[int]:
    return _charmap(font_manager.findfont(BASE_FONT))


def _labels(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tick labels (a space token as an open box; characters no installed font draws as
    ``U+XXXX``) and the font families that draw them, the base font first."""
    shown = ["\u2423" if token == " " else token for token in tokens]  # a blank label hides
    missing = {ord(c) for text in shown for c in text if not c.isspace()} - _base_points()
    extra = _covered(missing) if missing else {}
    drawable = _base_points().union(*extra.values())
    labels = [
        "".join(c if c.isspace() or ord(c) in drawable else f"U+{ord(c):04X}" for c in text)
        for text in shown
    ]
    return labels, [BASE_FONT, *sorted(extra)]
