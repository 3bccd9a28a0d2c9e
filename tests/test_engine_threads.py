"""The engine at two torch threads: work run side by side in the engine's worker thread.

Every test here sets two torch threads itself (the suite runs one), and is skipped where the
engine runs nothing side by side (no numba, or torch's BLAS is not MKL).
"""

from __future__ import annotations

import ctypes
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
    _numba_calls._gemm is None or not _numba_calls._gemm.LOCAL_THREADS,
    reason="the engine runs side by side only with numba and torch's MKL",
)


@pytest.fixture
def two_threads() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def mkl_threads() -> int:
    """The threads torch's MKL would start for a call from this thread."""
    library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    return library.MKL_Get_Max_Threads()


def threads_in_process() -> int:
    return len(os.listdir("/proc/self/task"))


def test_one_thread_here_holds_only_the_calling_thread(two_threads) -> None:
    """Inside, torch's parallel ops and its MKL get one thread in this thread; a thread running
    meanwhile keeps two; on the way out this thread gets two back."""
    seen = {}
    with _numba_calls._gemm.one_thread_here():
        seen["here"] = torch.get_num_threads(), mkl_threads()
        other = threading.Thread(
            target=lambda: seen.setdefault("other", (torch.get_num_threads(), mkl_threads()))
        )
        other.start()
        other.join()
    assert seen == {"here": (1, 1), "other": (2, 2)}
    assert (torch.get_num_threads(), mkl_threads()) == (2, 2)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_work_side_by_side_starts_no_openmp_threads(two_threads) -> None:
    """A parallel torch op in the worker thread runs on that thread alone. An OpenMP team of
    its own would add threads to the process and, with more threads than cores, make GNU
    OpenMP stop spinning in every thread: torch's ops would then be slower for the rest of
    the process."""
    _numba_calls._worker.cache_clear()  # a fresh worker thread, which has started no team yet
    big = torch.rand(2**22)
    big.exp()  # this thread's OpenMP team, which exists from here on
    _numba_calls.side_by_side_run(lambda: None, lambda: None)[1].result()  # the worker thread
    before = threads_in_process()
    total, pending = _numba_calls.side_by_side_run(lambda: big.exp().sum(), lambda: big.exp().sum())
    assert torch.equal(total, pending.result())
    assert threads_in_process() == before


NAMES = ["LayerNormLSTM", "PeepholeLSTM", "LSTM", "GRU", "LayerNormGRU", "IndRNN", "JordanRNN"]


@pytest.mark.parametrize("name", NAMES)
def test_a_one_direction_stack_runs_the_halves_of_its_batch_side_by_side(
    name: str, two_threads, monkeypatch
) -> None:
    """Inference of a one-direction stack runs the first half of the batch in the worker
    thread and the second in the caller's. Outputs and final states equal the reference
    path's in float64, with lengths, an odd batch and eval zoneout."""
    monkeypatch.setattr(tuning, "SPLIT_WORK", 1)
    monkeypatch.setattr(tuning, "NUMBA_MAX_BATCH", 10**6)
    halves: list[tuple[str, int]] = []
    whole_run = _engine._run

    def spy(layer, x, state, lengths):
        halves.append((threading.current_thread().name, x.shape[1]))
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
    assert rows.pop(threading.current_thread().name) == 3
    assert [(thread.startswith("rnnkit-engine"), n) for thread, n in rows.items()] == [(True, 2)]
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
    monkeypatch.setattr(tuning, "NUMBA_MAX_BATCH", 10**6)
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
