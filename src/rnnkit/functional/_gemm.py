"""The matrix product inside the engine's compiled loops: the BLAS torch itself runs on.

``torch.nn.LSTM`` does its products with the BLAS its wheel links (MKL on x86-64), tuned
for the host CPU and set by ``torch.set_num_threads``. The compiled loops call that same
library's ``sgemm``/``dgemm``, so their speed does not hang on whichever OpenBLAS SciPy ships
or the kernels ``OPENBLAS_CORETYPE`` forces on it, and a ratio to ``torch.nn`` compares the
same products. Where torch's library exports no Fortran BLAS (a build on another BLAS that
keeps its symbols hidden), or the environment sets ``RNNKIT_ENGINE_BLAS=scipy``, SciPy's is
called instead, the one NumPy's ``np.dot`` would use.

The function is reached by name: :func:`gemm` declares ``rnnkit_sgemm``/``rnnkit_dgemm`` in
the compiled code and this module binds those names to the library's entry points at import,
before any loop is compiled or loaded from numba's cache (a cached loop holds the name, not
an address that changes from process to process); so is ``rnnkit_blas_threads``, MKL's
thread-local cap, which :func:`gemm` sets to one around a small product. numba's cache does
not notice a change to :func:`gemm` in the loops that inline it from another file: after
editing this module, delete ``src/rnnkit/functional/__pycache__/*.nb[ic]``.

The module also finds, in torch's library, the OpenMP entry points that run two recurrences
at once on torch's own threads (:data:`OPENMP_TEAM`).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import llvmlite.binding as llvm
import torch
from llvmlite import ir
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.functional.tuning import ONE_THREAD_PRODUCT

_SYMBOLS = {"sgemm_": "rnnkit_sgemm", "dgemm_": "rnnkit_dgemm"}


def _torch_library_name() -> str:
    """The file name of torch's CPU library on this platform."""
    names = {"darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}
    return names.get(sys.platform, "libtorch_cpu.so")


def _torch_library() -> ctypes.CDLL | None:
    """torch's CPU library, which holds (or links) the BLAS of its matmuls."""
    path = Path(torch.__file__).parent / "lib" / _torch_library_name()
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def _torch_entry_points() -> dict[str, int] | None:
    """The addresses of ``sgemm_`` and ``dgemm_`` in torch's library, if it exports both."""
    library = _torch_library()
    if library is None or not all(hasattr(library, name) for name in _SYMBOLS):
        return None
    return {name: ctypes.cast(getattr(library, name), ctypes.c_void_p).value for name in _SYMBOLS}


def _scipy_entry_points() -> dict[str, int]:
    """The addresses of SciPy's ``sgemm`` and ``dgemm`` (its Cython BLAS capsules)."""
    from scipy.linalg import cython_blas

    name_of, pointer = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
    name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    capsules = {name: cython_blas.__pyx_capi__[name.rstrip("_")] for name in _SYMBOLS}
    return {name: pointer(capsule, name_of(capsule)) for name, capsule in capsules.items()}


def _bind() -> str:
    """Bind the compiled code's names to a BLAS, torch's unless the environment variable
    ``RNNKIT_ENGINE_BLAS`` says ``scipy``; return which one it is."""
    wanted = os.environ.get("RNNKIT_ENGINE_BLAS", "torch")
    if wanted not in ("torch", "scipy"):
        raise ValueError(f"RNNKIT_ENGINE_BLAS: expected 'torch' or 'scipy', got {wanted!r}")
    addresses, source = _torch_entry_points() if wanted == "torch" else None, "torch"
    if addresses is None:
        addresses, source = _scipy_entry_points(), "scipy"
    for name, address in addresses.items():
        llvm.add_symbol(_SYMBOLS[name], address)
    return source


#: The library whose BLAS the compiled loops call: ``"torch"`` (its threads follow
#: ``torch.set_num_threads``) or ``"scipy"`` (the caller holds it to one thread).
SOURCE = _bind()


def _local_thread_setter() -> Callable[[int], int] | None:
    """MKL's ``MKL_Set_Num_Threads_Local`` from torch's library, where the loops call torch's
    BLAS and it is MKL: the calling thread's own cap on MKL's threads (0: the global setting),
    returning the cap it replaces. (The lower-case ``mkl_set_num_threads_local`` is the Fortran
    interface, which takes the number by address.)"""
    library = _torch_library() if SOURCE == "torch" else None
    setter = getattr(library, "MKL_Set_Num_Threads_Local", None)
    if setter is not None:
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
    return setter


def _openmp_team() -> tuple[Callable, Callable, Callable] | None:
    """``GOMP_parallel``, ``omp_get_thread_num`` and ``omp_get_num_threads`` of the OpenMP
    runtime torch's library links (GNU's, or another that offers GNU's entry points)."""
    library = _torch_library()
    functions = [getattr(library, name, None) for name in _TEAM]
    if any(f is None for f in functions):
        return None
    start, member, size = functions
    start.restype = None
    start.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    member.restype = size.restype = ctypes.c_int
    return start, member, size


_TEAM = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")
_SET_LOCAL_THREADS = _local_thread_setter()

#: ``(GOMP_parallel, omp_get_thread_num, omp_get_num_threads)`` of torch's OpenMP runtime, to
#: run work on the threads of torch's parallel ops; None where it has none.
OPENMP_TEAM = _openmp_team()


def _threads_unchanged(threads: int) -> int:
    """What ``rnnkit_blas_threads`` calls where the BLAS is not MKL: nothing (the engine holds
    SciPy's BLAS to one thread around its loops, and another BLAS in torch decides alone)."""
    return 0


def _bind_thread_cap() -> None:
    """Bind the compiled code's ``rnnkit_blas_threads(n) -> previous`` to MKL's
    ``MKL_Set_Num_Threads_Local`` where the loops call torch's MKL, else to
    :func:`_threads_unchanged`, compiled only then."""
    if _SET_LOCAL_THREADS is not None:
        address = ctypes.cast(_SET_LOCAL_THREADS, ctypes.c_void_p).value
    else:
        address = cfunc(types.int32(types.int32), cache=True)(_threads_unchanged).address
    llvm.add_symbol("rnnkit_blas_threads", address)


_bind_thread_cap()
_blas_threads = types.ExternalFunction("rnnkit_blas_threads", types.int32(types.int32))


def describe() -> str:
    """The BLAS the compiled loops call, in words, for benchmark reports: torch's build
    setting ``BLAS_INFO`` (threadpoolctl cannot see a BLAS linked into torch), or SciPy's
    OpenBLAS with the kernels threadpoolctl reports."""
    if SOURCE == "torch":
        found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        return f"torch's BLAS ({found.group(1) if found else 'unnamed'}, {_torch_library_name()})"
    from threadpoolctl import threadpool_info

    for library in threadpool_info():  # a wheel's own libraries lie in scipy.libs
        if library["user_api"] == "blas" and "scipy" in Path(library["filepath"]).parent.name:
            return (
                f"SciPy's {library['internal_api']} {library['version']} "
                f"({library.get('architecture')} kernels)"
            )
    return "SciPy's BLAS"


@intrinsic
def _fortran_gemm(typingctx, transa, m, n, k, a, lda, b, ldb, c, ldc, like):
    """``C = op(A) B`` in column-major Fortran terms (``op`` as the character code
    ``transa`` says, ``'N'`` or ``'T'``; ``alpha = 1``, ``beta = 0``): sizes and leading
    dimensions are integers, ``a``, ``b``, ``c`` addresses, and ``like`` an array whose dtype,
    float32 or float64, picks ``sgemm`` or ``dgemm``. Every argument goes by address, from a
    slot on the caller's stack."""
    if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
        return None
    symbol = _SYMBOLS["sgemm_" if like.dtype == types.float32 else "dgemm_"]

    def codegen(context, builder, signature, args):
        transa, m, n, k, a, lda, b, ldb, c, ldc, _ = args
        byte = ir.IntType(8)
        address = ir.PointerType(byte)
        int32 = ir.IntType(32)
        real = context.get_value_type(like.dtype)

        def slot(kind: ir.Type, value: ir.Value) -> ir.Value:
            place = cgutils.alloca_once(builder, kind)
            builder.store(value, place)
            return builder.bitcast(place, address)

        def integer(value: ir.Value) -> ir.Value:
            return slot(int32, builder.trunc(value, int32))

        no_transpose = slot(byte, ir.Constant(byte, ord("N")))
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [address] * 13), symbol
        )
        arguments = [slot(byte, builder.trunc(transa, byte)), no_transpose]
        arguments += [integer(m), integer(n), integer(k)]
        arguments += [slot(real, ir.Constant(real, 1.0)), builder.inttoptr(a, address)]
        arguments += [integer(lda), builder.inttoptr(b, address), integer(ldb)]
        arguments += [slot(real, ir.Constant(real, 0.0)), builder.inttoptr(c, address)]
        builder.call(function, [*arguments, integer(ldc)])
        return context.get_dummy_value()

    return types.none(transa, m, n, k, a, lda, b, ldb, c, ldc, like), codegen


@njit(cache=True, inline="always")
def gemm(x, w, out, transposed=False):
    """``out = x @ w`` for ``x`` ``(M, K)``, ``w`` ``(K, N)`` (``transposed``: ``x @ w^T`` for
    ``w`` ``(N, K)``, read as it lies), ``out`` ``(M, N)``, all of one float dtype, each with
    contiguous rows (any row stride). Row-major ``out`` is column-major ``out^T = w^T x^T``:
    the operands swap places, and a ``w`` to transpose is BLAS's ``'T'`` on its rows as they
    lie."""
    rows, inner = x.shape
    columns = w.shape[0] if transposed else w.shape[1]
    if rows == 0 or columns == 0:
        return
    if inner == 0:  # an empty sum; MKL returns without writing ``out``
        out[:] = 0
        return
    size = out.itemsize
    w_rows = inner if transposed else columns  # the length of a row of ``w``
    # leading dimensions: each operand's row stride in elements, at least its row's length
    lda, ldb = max(w_rows, w.strides[0] // size), max(inner, x.strides[0] // size)
    ldc = max(columns, out.strides[0] // size)
    operation = ord("T") if transposed else ord("N")
    # A small product in MKL's threads costs more in waking them than it saves.
    one_thread = rows * inner * columns <= ONE_THREAD_PRODUCT
    threads = _blas_threads(1) if one_thread else 0
    _fortran_gemm(
        operation,
        columns,
        rows,
        inner,
        w.ctypes.data,
        lda,
        x.ctypes.data,
        ldb,
        out.ctypes.data,
        ldc,
        out,
    )
    if one_thread:
        _blas_threads(threads)
