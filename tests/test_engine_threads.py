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

from rnnkit.functional import fused

pytestmark = pytest.mark.skipif(
    fused._gemm is None or not fused._gemm.LOCAL_THREADS,
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
    with fused._gemm.one_thread_here():
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
    fused._worker.cache_clear()  # a fresh worker thread, which has started no team yet
    big = torch.rand(2**22)
    big.exp()  # this thread's OpenMP team, which exists from here on
    fused.side_by_side_run(lambda: None, lambda: None)[1].result()  # the worker thread
    before = threads_in_process()
    total, pending = fused.side_by_side_run(lambda: big.exp().sum(), lambda: big.exp().sum())
    assert torch.equal(total, pending.result())
    assert threads_in_process() == before
