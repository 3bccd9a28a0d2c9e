"""plot_confusion draws the matrix it was given: cells, counts, labels, PNG or SVG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnkit.viz import plot_confusion

MATRIX = np.array([[5, 1, 0], [2, 7, 3], [0, 0, 9]])
LABELS = ["cat", "dog", "eel"]


def test_the_saved_axes_hold_the_matrix(saved_figures: list, tmp_path: Path) -> None:
    plot_confusion(MATRIX, LABELS, tmp_path / "confusion.png")
    axes = saved_figures[0].axes[0]
    np.testing.assert_array_equal(axes.images[0].get_array(), MATRIX)
    counts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
              for t in axes.texts}  # fmt: skip
    assert counts == {(r, c): str(v) for (r, c), v in np.ndenumerate(MATRIX)}
    assert [t.get_text() for t in axes.get_xticklabels()] == LABELS
    assert [t.get_text() for t in axes.get_yticklabels()] == LABELS
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted", "true")
    # Dark cells (above half the largest count) get white text.
    colours = {t.get_text(): t.get_color() for t in axes.texts}
    assert colours["9"] == "white" and colours["1"] == "black"


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_the_suffix_picks_the_format(tmp_path: Path, suffix: str, magic: bytes) -> None:
    path = plot_confusion(MATRIX, LABELS, tmp_path / "sub" / f"confusion{suffix}")
    assert path == tmp_path / "sub" / f"confusion{suffix}"
    assert path.read_bytes().startswith(magic)
    assert not list(path.parent.glob(".*.partial"))


@pytest.mark.parametrize(
    ("matrix", "labels", "message"),
    [
        (np.ones((2, 3)), ["a", "b"], r"matrix: expected a non-empty square \(C, C\) array"),
        (np.ones((2, 2)), ["a"], r"labels: expected 2 labels \(C\), got 1"),
        (-np.ones((2, 2)), ["a", "b"], "matrix: expected finite non-negative counts"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, matrix: np.ndarray, labels: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plot_confusion(matrix, labels, tmp_path / "x.png")


def test_non_numeric_counts_are_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="matrix: expected numeric counts, got dtype <U1"):
        plot_confusion([["a", "b"], ["c", "d"]], ["a", "b"], tmp_path / "x.png")
