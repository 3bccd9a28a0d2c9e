"""Fresh buffers on the CPU: large ones ask Linux for transparent huge pages."""

from __future__ import annotations

import ctypes
import sys

from torch import Tensor

from rnnkit.functional import tuning

_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
_MADV_HUGEPAGE = 14  # <sys/mman.h>
_HUGE_PAGE = 2**21


def huge_pages(buffer: Tensor) -> Tensor:
    """``buffer``, untouched, its memory advised to Linux for transparent huge pages (from
    ``tuning.HUGE_PAGE_BYTES`` up): a fresh buffer (the loops' ``(L, N, G)`` in training, a
    projection over all steps) is otherwise faulted in 4 KiB page by page. Elsewhere, and on
    other systems, as it is."""
    if _LIBC is None or buffer.nbytes < tuning.HUGE_PAGE_BYTES or buffer.device.type != "cpu":
        return buffer
    start = buffer.data_ptr()
    first = -(-start // _HUGE_PAGE) * _HUGE_PAGE  # the huge pages wholly inside the buffer
    last = (start + buffer.nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if last > first:
        _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_HUGEPAGE)
    return buffer
