"""The engine at two torch threads: work run side by side on torch's OpenMP threads.

Every test here sets two torch threads itself (the suite runs one), and is skipped where the
engine runs nothing side by side (no numba, or an OpenMP runtime without GNU's entry points).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rnnkit import nn
from rnnkit.functional import _numba_calls, tuning
from rnnkit.nn import _engine

pytestmark = pytest.mark.skipif(
    _numba_calls._gemm is None or _numba_calls._gemm.OPENMP_TEAM is None,
    reason="the engine runs side by side only with numba and torch's OpenMP",
)


@pytest.fixture
def two_threads() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def threads_in_process() -> int:
    return len(os.listdir("/proc/self/task"))


def test_side_by_side_runs_both_at_once_on_two_threads_in_the_callers_modes(
    two_threads,
) -> None:
    """``side_by_side_run`` runs its first callable on the calling thread and the second on
    another, at the same time (each waits until the other has started), both under the
    caller's grad mode; it returns both results and raises what either raised."""
    started = [threading.Event(), threading.Event()]

    def work(index: int) -> tuple[int, bool, bool]:
        started[index].set()
        met = started[1 - index].wait(timeout=10)
        return threading.get_ident(), met, torch.is_grad_enabled()

    with torch.no_grad():
        here, there = _numba_calls.side_by_side_run(lambda: work(0), lambda: work(1))
    assert here == (threading.get_ident(), True, False)
    assert there[0] != here[0] and there[1:] == (True, False)

    def fail() -> None:
        raise KeyError("from the other thread")

    with pytest.raises(KeyError, match="from the other thread"):
        _numba_calls.side_by_side_run(lambda: None, fail)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_work_side_by_side_starts_no_openmp_threads(two_threads) -> None:
    """A parallel torch op run side by side runs on its thread alone. An OpenMP team of its
    own would add threads to the process and, with more threads than cores, make GNU OpenMP
    stop spinning in every thread: torch's ops would then be slower for the rest of the
    process."""
    big = torch.rand(2**22)
    big.exp()  # this thread's OpenMP team, which exists from here on
    before = threads_in_process()
    here, there = _numba_calls.side_by_side_run(lambda: big.exp().sum(), lambda: big.exp().sum())
    assert torch.equal(here, there)
    assert threads_in_process() == before


NAMES = ["LayerNormLSTM", "PeepholeLSTM", "LSTM", "GRU", "LayerNormGRU", "IndRNN", "JordanRNN"]


@pytest.mark.parametrize("name", NAMES)
def test_a_one_direction_stack_runs_the_halves_of_its_batch_side_by_side(
    name: str, two_threads, monkeypatch
) -> None:
    """Inference of a one-direction stack runs the first half of the batch on the caller's
    thread and the second on another. Outputs and final states equal the reference path's in
    float64, with lengths, an odd batch and eval zoneout."""
    monkeypatch.setattr(tuning, "SPLIT_WORK", 1)
    halves: list[tuple[str, int]] = []
    whole_run = _engine._run

    def spy(layer, x, state, lengths):
        halves.append((threading.get_ident(), x.shape[1]))
        return whole_run(layer, x, state, lengths)

    monkeypatch.setattr(_engine, "_run", spy)
    torch.manual_seed(3)
    layer = getattr(nn, name)(3, 6, num_layers=2, zoneout=0.2, dtype=torch.float64).eval()
    x = torch.randn(7, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([3, 7, 1, 7, 5])
    with torch.no_grad():
        output, state = layer(x, lengths=lengths)
        layer.backend = "reference"
        expected_output, expected_state = layer(x, lengths=lengths)
    rows = dict(halves)  # thread -> rows of its half
    assert rows.pop(threading.get_ident()) == 2
    assert list(rows.values()) == [3]  # on another thread
    torch.testing.assert_close(output, expected_output, rtol=1e-10, atol=1e-12)
    state, expected_state = (
        (s,) if isinstance(s, torch.Tensor) else tuple(s) for s in (state, expected_state)
    )
    for got, want in zip(state, expected_state, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["grad", "training", "bidirectional"])
def test_the_batch_stays_whole_where_it_must(mode: str, two_threads, monkeypatch) -> None:
    """With gradients (the two halves would be two autograd records), in training mode (the
    random draws would come in another order) and for a bidirectional stack (its directions
    run side by side already) the batch runs whole."""
    monkeypatch.setattr(tuning, "SPLIT_WORK", 1)
    batches: list[int] = []
    whole_run = _engine._run
    monkeypatch.setattr(
        _engine,
        "_run",
        lambda layer, x, *rest: batches.append(x.shape[1]) or whole_run(layer, x, *rest),
    )
    layer = nn.LayerNormLSTM(3, 6, bidirectional=mode == "bidirectional").train(mode == "training")
    with torch.set_grad_enabled(mode == "grad"):
        layer(torch.randn(7, 4, 3))
    assert batches == [4]


@pytest.mark.skipif(
    _numba_calls._gemm is None or _numba_calls._gemm._SET_LOCAL_THREADS is None,
    reason="a thread-local cap of MKL's",
)
def test_the_loops_cap_mkl_at_one_thread_for_a_small_product_and_restore_it(
    two_threads,
) -> None:
    """``rnnkit_blas_threads`` is MKL's thread-local cap, and a loop whose step products are
    small (batch 8 > ``tuning.LOOP_TRANSPOSED_ROWS``: MKL's, below
    ``tuning.ONE_THREAD_PRODUCT``) sets it for each product and puts back what it found."""
    from numba import njit

    blas_threads = _numba_calls._gemm._blas_threads

    @njit
    def set_and_put_back(threads: int) -> tuple[int, int]:
        before = blas_threads(threads)
        return before, blas_threads(before)

    assert set_and_put_back(3)[1] == 3  # what it set, read back as it put the old one back
    x = torch.randn(6, 8, 4)
    assert tuning.ONE_THREAD_PRODUCT >= 8 * 16 * 64
    set_cap = _numba_calls._gemm._SET_LOCAL_THREADS
    for layer in (nn.LayerNormLSTM(4, 16).eval(), nn.LayerNormGRU(4, 16)):
        before = set_cap(3)
        try:
            with torch.no_grad():
                layer(x)
            layer.train()
            layer(x.requires_grad_())[0].sum().backward()
        finally:
            assert set_cap(before) == 3
