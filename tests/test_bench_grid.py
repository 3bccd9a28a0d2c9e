"""benchmarks/bench_grid.py without timing anything: the grid it runs, its --quick subset and
filters, and the lengths it passes."""

from __future__ import annotations

from fractions import Fraction
from types import ModuleType

import pytest
import torch


@pytest.fixture(scope="module")
def bench_grid(benchmark_script) -> ModuleType:
    return benchmark_script("bench_grid")


def test_full_grid_is_the_issues_5x3x5(bench_grid: ModuleType) -> None:
    points = bench_grid.build_grid(bench_grid.BATCHES, bench_grid.STEPS, bench_grid.SIZES)
    assert len(points) == len(set(points)) == 5 * 3 * 5
    assert {p.batch for p in points} == {1, 4, 16, 64, 256}
    assert {p.steps for p in points} == {35, 128, 512}
    sizes = {(p.inputs, p.hidden) for p in points}
    assert sizes == {(4, 64), (32, 128), (200, 200), (256, 512), (650, 650)}


def test_quick_and_filters_are_subsets(bench_grid: ModuleType) -> None:
    def grid(*argv: str) -> set:
        args = bench_grid.parse_args(list(argv))
        return set(bench_grid.build_grid(args.batch, args.steps, args.sizes))

    full = grid()
    assert len(full) == 75
    quick = grid("--quick")
    assert quick < full
    quick_sizes = ((4, 64), (200, 200))
    assert quick == {bench_grid.Point(b, 35, i, h) for b in (1, 16) for i, h in quick_sizes}
    piece = grid("--batch", "64", "--steps", "128", "512", "--sizes", "650x650")
    assert piece == {bench_grid.Point(64, t, 650, 650) for t in (128, 512)}
    # A filter given with --quick replaces that one of --quick's sets.
    assert grid("--quick", "--batch", "4") == {
        bench_grid.Point(4, 35, i, h) for i, h in quick_sizes
    }


def test_sizes_must_be_input_x_hidden(bench_grid: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench_grid.parse_args(["--sizes", "200"])


@pytest.mark.parametrize("steps", [35, 128, 512])
@pytest.mark.parametrize("batch", [1, 2, 4, 16, 64, 256])
def test_lengths_spread_from_steps_down_to_one(
    bench_grid: ModuleType, batch: int, steps: int
) -> None:
    lengths = bench_grid.spread_lengths(batch, steps)
    assert lengths.dtype == torch.int64 and lengths.shape == (batch,)
    # Exact: T - (T - 1) k / (B - 1), rounded half to even; one sequence runs all T steps.
    if batch == 1:
        expected = [steps]
    else:
        expected = [round(steps - Fraction((steps - 1) * k, batch - 1)) for k in range(batch)]
    assert lengths.tolist() == expected
    assert all(1 <= n <= steps for n in expected)
    if batch > 1:
        assert expected[0] == steps and expected[-1] == 1
    # Descending, so it packs even with pack_padded_sequence's enforce_sorted=True.
    torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(steps, batch, 1), lengths)
