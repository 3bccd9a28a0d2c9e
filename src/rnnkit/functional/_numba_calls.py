"""How the engine calls its numba loops (:mod:`._fused_numba`) on tensors: whether they run,
the BLAS threads their products may use, two recurrences run at once on torch's OpenMP
threads, and each loop's wrapper, which hands it the tensors as NumPy arrays (views, not
copies) packed in the few tuples the loops take.

Shape letters as in :mod:`rnnkit.functional.fused`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from threadpoolctl import LibController, ThreadpoolController
from torch import Tensor

from rnnkit.functional import tuning
from rnnkit.runtime.gates import ACTIVATIONS

try:
    from rnnkit.functional import _fused_numba, _gemm
except ImportError:  # no numba for this platform: the layers run their reference path
    _fused_numba = _gemm = None

if TYPE_CHECKING:
    from rnnkit.functional.fused import Options

_log = logging.getLogger("rnnkit")


def numba_runs(x: Tensor) -> bool:
    """Whether the loops can take ``x`` ``(L, N, ...)``: a CPU tensor of float32 or float64
    (NumPy holds neither float16 nor bfloat16), with numba installed."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    if _fused_numba is None:
        _warn_no_numba()
        return False
    return True


@functools.cache
def _warn_no_numba() -> None:
    """Say once that the layers run without their compiled loops."""
    _log.warning(
        "numba is not installed: every extended layer runs its reference path, several "
        "times slower (pip install numba)"
    )


@functools.cache
def _blas() -> list[LibController]:
    """The BLAS libraries the numba loops call that the engine holds to one thread: none where
    the loops call torch's own BLAS, whose threads follow ``torch.set_num_threads`` as in
    ``torch.nn``; else SciPy's, which the loops call then (see :mod:`._gemm`)."""
    if _fused_numba is None or _gemm.SOURCE == "torch":
        return []
    import scipy.linalg.cython_blas  # noqa: F401  (loaded now so that the controller sees it)

    return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]


def engine_blas() -> str:
    """The BLAS the numba loops' products call (see ``tuning.LOOP_PRODUCT_ROWS``), in words:
    what a benchmark table names beside its numbers."""
    if _gemm is None:
        return "none: numba is not installed, the layers run their reference path"
    return _gemm.describe()


_held = threading.local()  # how deep this thread is in single_threaded_blas()


def single_threaded_blas() -> contextlib.AbstractContextManager[None]:
    """Hold SciPy's BLAS to one thread where the numba loops call it: their matmuls are a
    step's, too small to share, and OpenBLAS's threads woken at every step cost more than they
    save (torch's BLAS, which the loops call where it exports one, decides for itself, so
    there this returns a context that does nothing, without a generator's cost per call).
    Nested uses cost nothing, so a caller running many loops (chunks, layers) takes it once.
    The libraries' own setters are called directly: ``ThreadpoolController.limit`` costs
    about three times as much a call (benchmarks/README.md)."""
    return _one_blas_thread() if _blas() else contextlib.nullcontext()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """:func:`single_threaded_blas` where there is a BLAS to hold."""
    depth = getattr(_held, "depth", 0)
    _held.depth = depth + 1
    libraries = _blas() if depth == 0 else []
    before = [lib.get_num_threads() for lib in libraries]
    try:
        for lib in libraries:
            lib.set_num_threads(1)
        yield
    finally:
        for lib, threads in zip(libraries, before, strict=True):
            lib.set_num_threads(threads)
        _held.depth = depth


def run_loop(loop: Callable[..., None], *args: Any) -> None:
    """Run a numba loop with one BLAS thread."""
    with single_threaded_blas():
        loop(*args)


def side_by_side(x: Tensor) -> bool:
    """Whether two recurrences over ``x`` ``(L, N, H_in)`` (the directions of a bidirectional
    layer, the halves of a batch) run at once (:func:`side_by_side_run`): where torch has two
    threads or more, ``N`` reaches ``tuning.SIDE_BY_SIDE_BATCH``, the numba loops run (they
    release the GIL) and torch's OpenMP threads can take work."""
    return (
        torch.get_num_threads() >= 2
        and x.shape[1] >= tuning.SIDE_BY_SIDE_BATCH
        and numba_runs(x)
        and _gemm.OPENMP_TEAM is not None
        and not _forked.is_set()
    )


# GNU OpenMP in a forked child (a DataLoader worker) waits forever for the parent's threads
# once the parent has used them (torch's own parallel ops too): no work side by side there.
_forked = threading.Event()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked.set)
_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # the C type of an OpenMP region's function


def side_by_side_run(here: Callable[[], Any], there: Callable[[], Any]) -> tuple[Any, Any]:
    """``here()`` and ``there()`` at once, on two threads of the calling thread's OpenMP team
    (``here()`` on the calling thread), under the caller's grad and inference modes (torch
    keeps both per thread); returns both results. The team's threads are those of torch's
    parallel ops, which spin for a while after each op: work handed to them starts at once and
    finds no spinning thread on its core. Inside, torch's ops and MKL run on one thread each
    (parallel regions do not nest). Python runs one thread at a time, so the work should
    spend its time in the numba loops, which release the GIL. Requires
    :data:`rnnkit.functional._gemm.OPENMP_TEAM`."""
    start, member, size = _gemm.OPENMP_TEAM
    work, results = (here, there), [None, None]
    errors: list[BaseException] = []
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(index: int) -> None:
        try:
            # inference_mode(False) turns gradients on, so the grad mode is set inside it
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                results[index] = work[index]()
        except BaseException as error:  # raised in the caller's thread below
            errors.append(error)

    def body(_: int | None) -> None:
        if size() == 1:  # a team of one (a forked child's, or a region inside a region)
            run(0)
            run(1)
        elif member() < 2:
            run(member())

    callback = _BODY(body)  # alive until the region ends
    start(ctypes.cast(callback, ctypes.c_void_p), None, 2, 0)
    if errors:
        raise errors[0]
    return results[0], results[1]


def as_array(x: Tensor | None, dims: int, dtype: np.dtype) -> np.ndarray:
    """``x`` as a contiguous NumPy array (a view when it is contiguous already), or a
    1-element stand-in with ``dims`` dimensions for an absent option."""
    if x is None:
        return _stand_in(dims, dtype)
    return (x.detach() if x.requires_grad else x).contiguous().numpy()


@functools.cache
def _stand_in(dims: int, dtype: np.dtype | type) -> np.ndarray:
    """:func:`as_array`'s stand-in, made once: a loop never reads or writes what a flag says is
    absent, so every call may share it."""
    return np.zeros((1,) * dims, dtype=dtype)


class LoopInput(NamedTuple):
    """Where a numba forward loop takes each step's ``gi`` (see
    :func:`rnnkit.functional._fused_numba.lstm_forward`): ``source`` one of ``IN_ACT``,
    ``COPY`` (``x[t] + bias``), ``PROJECT`` (``x[t] @ w_ih^T + bias``)."""

    source: int
    x: Tensor | None = None
    w_ih: Tensor | None = None
    bias: Tensor | None = None

    def packed(self, gates: int, dtype: np.dtype) -> tuple:
        """``given`` of the loops, ``(source, x, w_ih, bias)``: stand-ins where absent, an
        absent bias as zeros."""
        bias = np.zeros(gates, dtype) if self.bias is None else as_array(self.bias, 1, dtype)
        return self.source, as_array(self.x, 3, dtype), as_array(self.w_ih, 2, dtype), bias


def walk_args(opt: Options) -> tuple[np.ndarray, bool]:
    """``walk`` of the numba loops: ``(rows, reverse)``."""
    return opt.plan.rows, opt.plan.reverse


def regulariser_args(
    opt: Options, mask: Tensor | None, keep: Tensor | None, dtype: np.dtype
) -> tuple:
    """``reg`` of the numba loops: ``(mask, keep, rate, zoned, use_mask, use_keep)``."""
    arrays = as_array(mask, 2, dtype), as_array(keep, 4, np.bool_)
    return *arrays, opt.rate, opt.zoned(keep), mask is not None, keep is not None


def norm_args(
    gain: Tensor | None, shift: Tensor | None, stats: Tensor | None, eps: float, dtype: np.dtype
) -> tuple:
    """A layer norm as the numba forward loops take it, ``(on, gain, shift, eps, stats)``:
    stand-ins without one (``gain`` None), a missing shift as zeros (the loop reads every
    entry)."""
    if shift is None and gain is not None:
        shift = torch.zeros_like(gain)
    return (
        gain is not None,
        as_array(gain, 1, dtype),
        as_array(shift, 1, dtype),
        eps,
        as_array(stats, 3, dtype),
    )


def norm_grad_args(
    x: Tensor | None,
    gain: Tensor | None,
    stats: Tensor | None,
    d_params: Sequence[Tensor] | None,
    dtype: np.dtype,
) -> tuple:
    """A layer norm as the numba backward loops take it, ``(on, x, gain, stats, d_gain,
    d_shift)``; ``d_params`` the gradients the loop adds to, None without the layer norm."""
    d_gain, d_shift = d_params or (None, None)
    arrays = (as_array(x, 3, dtype), as_array(gain, 1, dtype), as_array(stats, 3, dtype))
    return gain is not None, *arrays, as_array(d_gain, 1, dtype), as_array(d_shift, 1, dtype)


def lstm_forward(buffers, states, w_hh, w_peep, given, norms, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.lstm_forward` on NumPy views of the tensors:
    ``buffers`` ``(act, c_new, tanh_c, gh)``, ``gh`` None where ``h W_hh^T`` is not kept;
    ``states`` ``(hs, cs, h0, c0)``; ``w_hh`` ``(4H, H)``; ``norms`` the ``(gain, shift,
    stats)`` of ``LN_ih``, ``LN_hh`` and ``LN_c``, None gains where absent; ``given``: where
    the loop takes ``gi``."""
    act, c_new, tanh_c, gh = buffers
    hs, cs, h0, c0 = states
    dtype = act.numpy().dtype
    gh = act.new_empty(1, *act.shape[1:]) if gh is None else gh  # one slot to write into
    run_loop(
        _fused_numba.lstm_forward,
        (act.numpy(), c_new.numpy(), tanh_c.numpy(), gh.numpy()),
        (hs.numpy(), cs.numpy(), as_array(h0, 2, dtype), as_array(c0, 2, dtype)),
        (as_array(w_hh, 2, dtype), as_array(w_peep, 2, dtype), w_peep is not None),
        given.packed(act.shape[2], dtype),
        tuple(norm_args(*norm, opt.eps, dtype) for norm in norms),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        dtype == np.float64,
    )


def recurrent_products(hs, w, mask, keep, opt, out) -> None:
    """:func:`rnnkit.functional._fused_numba.recurrent_products` on NumPy views of the tensors:
    ``out`` ``(L, N, G)`` gets what entered ``w`` ``(G, H)`` at each step, from the states
    ``hs`` ``(L + 1, N, H)``, times ``w^T``."""
    dtype = hs.numpy().dtype
    run_loop(
        _fused_numba.recurrent_products,
        hs.numpy(),
        as_array(w.t(), 2, dtype),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        out.numpy(),
    )


def lstm_backward(grads, saved, w_hh, w_peep, norms, out, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.lstm_backward` on NumPy views of the tensors:
    ``grads`` ``(grads, dh, dc)``; ``saved`` ``(act, cs, tanh_c)``; ``norms`` the ``(x, gain,
    stats, d_params)`` of ``LN_ih``, ``LN_hh`` and ``LN_c`` (:func:`norm_grad_args`); ``out``
    ``(d_act, d_gh)``."""
    dtype = saved[0].numpy().dtype
    run_loop(
        _fused_numba.lstm_backward,
        tuple(x.numpy() for x in grads),
        tuple(x.numpy() for x in saved),
        (as_array(w_hh, 2, dtype), as_array(w_peep, 2, dtype), w_peep is not None),
        tuple(norm_grad_args(*norm, dtype) for norm in norms),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        tuple(x.numpy() for x in out),
    )


def gru_forward(buffers, states, w_hh, b_hh, norms, mask, keep, opt, given=None) -> None:
    """:func:`rnnkit.functional._fused_numba.gru_forward` on NumPy views of the tensors:
    ``buffers`` ``(gi, act, gh_n, gh)``, ``gh`` None without ``LN_hh``; ``states`` ``(hs,
    h0)``; ``w_hh`` ``(3H, H)``; ``norms`` the ``(gain, shift, stats)`` of ``LN_ih`` (``stats``
    None: kept nowhere) and ``LN_hh``, None gains where absent; ``given``: None (``gi`` holds
    the projections) or a ``PROJECT`` :class:`LoopInput`."""
    gi, act, gh_n, gh = buffers
    hs, h0 = states
    dtype = act.numpy().dtype
    given = given or LoopInput(_fused_numba.IN_ACT)
    # An absent bias is a zero one (the loop reads every entry).
    bias = b_hh if b_hh is not None or norms[1][0] is not None else act.new_zeros(act.shape[-1])
    run_loop(
        _fused_numba.gru_forward,
        (as_array(gi, 3, dtype), act.numpy(), gh_n.numpy(), as_array(gh, 3, dtype)),
        (hs.numpy(), as_array(h0, 2, dtype)),
        (as_array(w_hh, 2, dtype), as_array(bias, 1, dtype)),
        given.packed(act.shape[2], dtype),
        tuple(norm_args(*norm, opt.eps, dtype) for norm in norms),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        dtype == np.float64,
    )


def gru_backward(grads, saved, w_hh, ln_hh, out, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.gru_backward` on NumPy views of the tensors:
    ``grads`` ``(grads, dh)``; ``saved`` ``(act, gh_n, hs)``; ``ln_hh`` ``(gh, gain, stats,
    d_params)`` (:func:`norm_grad_args`); ``out`` ``(d_act, d_g, d_gh)``."""
    dtype = saved[0].numpy().dtype
    run_loop(
        _fused_numba.gru_backward,
        tuple(x.numpy() for x in grads),
        tuple(x.numpy() for x in saved),
        as_array(w_hh, 2, dtype),
        norm_grad_args(*ln_hh, dtype),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        tuple(x.numpy() for x in out),
    )


def indrnn_forward(gi, um, hs, h_new, h0, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.indrnn_forward` on NumPy views of the buffers."""
    dtype = hs.numpy().dtype
    run_loop(
        _fused_numba.indrnn_forward,
        as_array(gi, 3, dtype),
        as_array(um.reshape(-1, um.shape[-1]), 2, dtype),
        (hs.numpy(), as_array(h0, 2, dtype)),
        h_new.numpy(),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        activation(opt.nonlinearity),
        dtype == np.float64,
    )


def indrnn_backward(grads, dh, d_act, h_new, um, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.indrnn_backward` on NumPy views of the buffers."""
    dtype = h_new.numpy().dtype
    run_loop(
        _fused_numba.indrnn_backward,
        (grads.numpy(), dh.numpy()),
        h_new.numpy(),
        as_array(um.reshape(-1, um.shape[-1]), 2, dtype),
        d_act.numpy(),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        activation(opt.nonlinearity),
    )


def jordan_forward(gi, w_yh, w_hy, b_hy, hid, ys, y_new, y0, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.jordan_forward` on NumPy views of the buffers."""
    dtype = ys.numpy().dtype
    bias = b_hy if b_hy is not None else ys.new_zeros(ys.shape[-1])  # absent: a zero bias
    run_loop(
        _fused_numba.jordan_forward,
        as_array(gi, 3, dtype),
        (as_array(w_yh, 2, dtype), as_array(w_hy, 2, dtype), as_array(bias, 1, dtype)),
        (hid.numpy(), y_new.numpy()),
        (ys.numpy(), as_array(y0, 2, dtype)),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        (activation(opt.nonlinearity), activation(opt.output_nonlinearity)),
        dtype == np.float64,
    )


def jordan_backward(grads, saved, w_yh, w_hy, out, mask, keep, opt) -> None:
    """:func:`rnnkit.functional._fused_numba.jordan_backward` on NumPy views of the buffers:
    ``grads`` ``(grads, dy)``, ``saved`` ``(hid, y_new)``, ``out`` ``(d_act, d_z)``."""
    dtype = saved[0].numpy().dtype
    run_loop(
        _fused_numba.jordan_backward,
        tuple(x.numpy() for x in grads),
        tuple(x.numpy() for x in saved),
        (as_array(w_yh, 2, dtype), as_array(w_hy, 2, dtype)),
        regulariser_args(opt, mask, keep, dtype),
        walk_args(opt),
        (activation(opt.nonlinearity), activation(opt.output_nonlinearity)),
        tuple(x.numpy() for x in out),
    )


def activation(name: str) -> int:
    """The numba loops' code for the nonlinearity ``name``."""
    return ACTIVATIONS.index(name)


def min_arguments(projected: Tensor, h0: Tensor, lengths: Tensor | None, flags: tuple) -> tuple:
    """The first arguments of the minGRU / minLSTM loops: ``projected``, ``h0``, each
    sequence's length (all ``L`` without ``lengths``) and ``flags`` ``(reverse, lstm,
    positive)`` completed with the floor of ``f + i`` and whether to take exact activations."""
    dtype = np.dtype(np.float64 if projected.dtype == torch.float64 else np.float32)
    steps, batch = projected.shape[:2]
    if lengths is None:
        valid = np.full(batch, steps, dtype=np.int64)
    else:
        valid = lengths.to("cpu", torch.int64).numpy()
    tiny, exact = np.finfo(dtype).tiny, dtype == np.float64
    arrays = as_array(projected, 3, dtype), as_array(h0, 2, dtype), valid
    return *arrays, (*flags, dtype.type(tiny), exact)


def min_forward(projected: Tensor, h0: Tensor, lengths: Tensor | None, flags: tuple) -> tuple:
    """:func:`rnnkit.functional._fused_numba.min_forward`: returns the outputs ``(L, N, H)``
    and final states ``(N, H)``."""
    h = projected.new_empty(*projected.shape[:2], h0.shape[-1])
    final = projected.new_empty(h0.shape)
    arguments = min_arguments(projected, h0, lengths, flags)
    gates = np.empty((4, h0.shape[-1]), arguments[0].dtype)
    _fused_numba.min_forward(*arguments, h.numpy(), final.numpy(), gates)
    return h, final


def min_backward(
    projected: Tensor,
    h0: Tensor,
    lengths: Tensor | None,
    flags: tuple,
    h: Tensor,
    grad_h: Tensor,
    grad_final: Tensor,
) -> tuple[Tensor, Tensor]:
    """:func:`rnnkit.functional._fused_numba.min_backward`: returns the gradients of
    ``projected`` and ``h0``."""
    dtype = h.numpy().dtype
    carry = grad_final.to(h.dtype, memory_format=torch.contiguous_format, copy=True)
    grad = torch.empty_like(projected)
    arguments = min_arguments(projected, h0, lengths, flags)
    loop_arguments = (*arguments, h.numpy(), as_array(grad_h, 3, dtype))
    gates = np.empty((4, h0.shape[-1]), dtype)
    _fused_numba.min_backward(*loop_arguments, carry.numpy(), grad.numpy(), gates)
    return grad, carry
