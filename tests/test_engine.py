"""The fused engine (:mod:`rnnkit.nn._engine`) against the reference path, and gradcheck.

The reference is each layer's own per-step loop (:meth:`RecurrentBase._run_reference`,
autograd through every step), reached by switching the engine off. The two must agree on
the output, the final state and every gradient (input, ``hx`` and each parameter), through
stacking, both directions, lengths (0 and full included), a given ``hx``, packed input and
the recurrent regularisers in training (the same seed gives the same random draws).
``torch.autograd.gradcheck`` checks the hand-written backward against finite differences.
"""

from __future__ import annotations

import copy
import ctypes
import multiprocessing
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import llvmlite.binding
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit import nn
from rnnkit.functional import _numba_calls, fused, tuning
from rnnkit.nn import _engine

Factory = Callable[..., torch.nn.Module]

# name -> factory(input_size, hidden_size, **layer options); every cell the engine covers
LAYERS: dict[str, Factory] = {
    "LSTM": nn.LSTM,
    "GRU": nn.GRU,
    "PeepholeLSTM": nn.PeepholeLSTM,
    "LayerNormLSTM": nn.LayerNormLSTM,
    "LayerNormLSTM-nobias": lambda i, h, **o: nn.LayerNormLSTM(i, h, bias=False, eps=0.3, **o),
    "LayerNormGRU": nn.LayerNormGRU,
    "LayerNormGRU-nobias": lambda i, h, **o: nn.LayerNormGRU(i, h, bias=False, eps=0.3, **o),
    "IndRNN-relu": lambda i, h, **o: nn.IndRNN(i, h, recurrent_max_abs=0.9, **o),
    "IndRNN-tanh": lambda i, h, **o: nn.IndRNN(i, h, nonlinearity="tanh", **o),
    "Jordan-softmax": lambda i, h, **o: nn.JordanRNN(
        i, h, output_size=3, output_nonlinearity="softmax", **o
    ),
    "Jordan-relu-sigmoid": lambda i, h, **o: nn.JordanRNN(
        i, h, nonlinearity="relu", output_nonlinearity="sigmoid", **o
    ),
    "Jordan-nobias": lambda i, h, **o: nn.JordanRNN(i, h, bias=False, **o),
    "Recurrent-LSTMCell": lambda i, h, **o: nn.Recurrent(nn.LSTMCell, i, h, **o),
    "Recurrent-GRUCell": lambda i, h, **o: nn.Recurrent(nn.GRUCell, i, h, **o),
}


@contextmanager
def reference(layer: nn.RecurrentBase) -> Iterator[None]:
    """Run ``layer`` on its reference path (a loop over its cells' steps) inside."""
    layer.backend = "reference"
    try:
        yield
    finally:
        layer.backend = "auto"


# name -> (training, layer options)
MODES = {
    "eval": (False, {}),
    "eval-zoneout": (False, {"zoneout": 0.3}),
    "train-regularised": (True, {"recurrent_dropout": 0.3, "zoneout": 0.2, "dropout": 0.25}),
}


def make(name: str, input_size: int, hidden: int, mode: str, dtype: torch.dtype) -> torch.nn.Module:
    training, options = MODES[mode]
    torch.manual_seed(1)
    layer = LAYERS[name](
        input_size, hidden, num_layers=2, bidirectional=True, dtype=dtype, **options
    )
    with torch.no_grad():  # move LN gains, shifts and every other parameter off its init
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer.train(training)


def initial_state(layer: torch.nn.Module, batch: int, dtype: torch.dtype) -> tuple:
    rows = layer.num_directions * layer.num_layers
    sizes = layer.state_sizes
    return tuple(0.5 * torch.randn(rows, batch, s, dtype=dtype) for s in sizes)


def run(layer, x, hx, lengths, engine: bool) -> tuple:
    """Output, final state and the gradients of a random projection of both."""
    with nullcontext() if engine else reference(layer):
        torch.manual_seed(7)  # the same regulariser draws on both paths
        out, state = layer(x, hx, lengths=lengths)
    state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
    torch.manual_seed(8)  # drawn in float64 whatever the dtype, so that dtypes compare
    loss = sum((t * torch.randn(t.shape, dtype=torch.float64).to(t.dtype)).sum()
               for t in (out, *state))  # fmt: skip
    inputs = [x, *hx, *layer.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return (
        out,
        state,
        [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads, strict=True)],
    )


def leaves(result: tuple) -> list[torch.Tensor]:
    """Output, final state and gradients of :func:`run`, detached."""
    return [t.detach() for t in (result[0], *result[1], *result[2])]


def norm(t: torch.Tensor) -> float:
    return float(torch.linalg.norm(t.double()))


# fp32: both paths round differently at every step, and 40 steps of layer norms (1/std)
# amplify it; float64 shows the two compute the same function.
PRECISIONS = {"fp32": (torch.float32, 1e-3), "fp64": (torch.float64, 1e-10)}
MODE_PRECISIONS = [
    (m, p) for m in MODES for p in PRECISIONS if p == "fp32" or m.startswith("train")
]


@pytest.mark.parametrize(("mode", "precision"), MODE_PRECISIONS)
@pytest.mark.parametrize("name", LAYERS)
def test_engine_equals_reference(name: str, mode: str, precision: str) -> None:
    dtype, tolerance = PRECISIONS[precision]
    steps, batch, features, hidden = 40, 7, 5, 16  # 40 > the backward's 32-step chunks
    layer = make(name, features, hidden, mode, dtype)
    x = torch.randn(steps, batch, features, dtype=dtype, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in initial_state(layer, batch, dtype))
    lengths = torch.tensor([40, 3, 0, 33, 40, 1, 9])
    fast = leaves(run(layer, x, hx, lengths, True))
    slow = leaves(run(layer, x, hx, lengths, False))
    exact = slow  # Outputs, final states and every gradient, each relative to its size:
    if dtype == torch.float32 and not layer.training:
        # Small LN gains over 40 steps amplify float32 rounding past 1e-3 in some draws, on
        # either path. So each path is measured against the reference path in float64, and
        # the engine may err as much as 3 times the reference path does in float32.
        x64 = x.detach().double().requires_grad_()
        hx64 = tuple(h.detach().double().requires_grad_() for h in hx)
        exact = leaves(run(copy.deepcopy(layer).double(), x64, hx64, lengths, False))
    for a, b, e in zip(fast, slow, exact, strict=True):
        bound = tolerance * norm(e) if exact is slow else max(tolerance * norm(e), 3 * norm(b - e))
        assert norm(a - e) <= 1e-6 + bound
    assert not fast[0][:, 2].any()  # a length-0 sequence outputs zeros


# chunks of one step each; of 4, 4 and 1 steps (H = 16, float64); lengths: no chunks
@pytest.mark.parametrize(("chunk_bytes", "lengths"),
                         [(1, None), (4 * 4 * 5 * 16 * 8, None), (1, [9, 3, 0, 9, 5])])  # fmt: skip
@pytest.mark.parametrize("name", LAYERS)
def test_inference_equals_reference(
    name: str, chunk_bytes: int, lengths: list | None, monkeypatch
) -> None:
    """Under ``no_grad`` the engine runs in chunks of steps, writes over its own buffers and
    returns views of them (``Options.scratch``); the result is still the reference path's,
    and the caller's input and state are left as they were."""
    monkeypatch.setattr(tuning, "CHUNK_BYTES", chunk_bytes)
    layer = make(name, 5, 16, "eval-zoneout", torch.float64)
    x = torch.randn(9, 5, 5, dtype=torch.float64)
    hx = initial_state(layer, 5, torch.float64)
    given = (x.clone(), *(s.clone() for s in hx))
    lengths = None if lengths is None else torch.tensor(lengths)
    with torch.no_grad():
        fast = layer(x, hx, lengths=lengths)
        with reference(layer):
            slow = layer(x, hx, lengths=lengths)
    for a, b in zip(torch.utils._pytree.tree_leaves(fast), torch.utils._pytree.tree_leaves(slow),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for before, after in zip(given, (x, *hx), strict=True):
        assert torch.equal(before, after)


@pytest.mark.parametrize("name", ["LSTM", "LayerNormGRU", "Recurrent-LSTMCell", "Jordan-nobias"])
def test_reference_path_in_chunks_equals_whole(name: str, monkeypatch) -> None:
    """The step loops project and run their input in chunks of steps
    (``rnnkit.functional.in_chunks``); in chunks of one step they compute what they compute
    in one chunk: outputs, states and gradients, with lengths, both directions and every
    random regulariser."""
    layer = make(name, 3, 8, "train-regularised", torch.float64)
    x = torch.randn(9, 5, 3, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in initial_state(layer, 5, torch.float64))
    lengths = torch.tensor([9, 3, 0, 7, 1])
    results = []
    for chunk_bytes in (1, 2**30):
        monkeypatch.setattr(tuning, "CHUNK_BYTES", chunk_bytes)
        out, state, grads = run(layer, x, hx, lengths, False)
        results.append([out, *state, *grads])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["LayerNormLSTM", "LSTM", "LayerNormGRU"])
def test_numba_products_of_both_kinds_equal_reference(name: str) -> None:
    """A step's matmul (``_fused_numba._dot``) is the engine's own loop while at most
    ``tuning.LOOP_PRODUCT_ROWS`` sequences run and torch's BLAS above: lengths that leave
    8, 3, then 1 sequence running take both, forward and backward, with the recurrent
    regularisers on."""
    assert tuning.LOOP_PRODUCT_ROWS in range(1, 8)
    steps, features, hidden, batch = 8, 4, 24, 8
    layer = make(name, features, hidden, "train-regularised", torch.float64)
    x = torch.randn(steps, batch, features, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in initial_state(layer, batch, torch.float64))
    lengths = torch.tensor([8, 3, 3, 1, 1, 1, 1, 1])
    fast = run(layer, x, hx, lengths, True)
    slow = run(layer, x, hx, lengths, False)
    for a, b in zip((fast[0], *fast[1], *fast[2]), (slow[0], *slow[1], *slow[2]), strict=True):
        a, b = a.detach(), b.detach()
        assert float(torch.linalg.norm(a - b)) <= 1e-10 * float(torch.linalg.norm(b))


@pytest.mark.parametrize("transposed", [False, True], ids=["x @ w", "x @ w^T"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_product_equals_numpy(dtype: type, transposed: bool) -> None:
    """``_dot`` and ``_dot_t`` (``w`` ``(N, K)`` read as it lies, as the loops read ``W_hh``)
    against NumPy in float64, on both sides of ``tuning.LOOP_PRODUCT_ROWS``, for operands whose
    rows lie apart in a larger array (a batch's first rows, a step's slice, a weight's block)
    and for an empty inner size (a product of zeros)."""
    if fused._fused_numba is None:
        pytest.skip("numba is not installed")
    rng, rtol = np.random.default_rng(0), 1e-12 if dtype == np.float64 else 1e-5
    product = fused._fused_numba._dot_t if transposed else fused._fused_numba._dot
    for rows, inner, cols in ((1, 7, 5), (2, 64, 256), (3, 4, 5), (40, 300, 1000), (5, 0, 3)):
        x = rng.standard_normal((rows + 2, inner + 3)).astype(dtype)[1:-1, 2 : 2 + inner]
        w = rng.standard_normal((inner, cols)).astype(dtype)
        given = w.T.copy() if transposed else w  # (N, K) or (K, N)
        laid_out = np.zeros((given.shape[0], given.shape[1] + 3), dtype)  # rows apart
        laid_out[:, 1 : 1 + given.shape[1]] = given
        out = np.full((rows + 1, cols + 2), np.nan, dtype)
        product(x, laid_out[:, 1 : 1 + given.shape[1]], out[:rows, 1 : 1 + cols])
        expected = x.astype(np.float64) @ w.astype(np.float64)
        np.testing.assert_allclose(out[:rows, 1 : 1 + cols], expected, rtol=rtol, atol=rtol * 10)
        assert np.isnan(out[rows:]).all() and np.isnan(out[:, [0, -1]]).all()
    empty, out = np.empty((3, 0), dtype), np.full((3, 4), np.nan, dtype)  # rows of stride 0
    product(empty, np.empty((4, 0) if transposed else (0, 4), dtype), out)
    assert (out == 0).all()


def mkl_threads() -> int:
    """The threads torch's MKL would start for a call from this thread."""
    return torch_library().MKL_Get_Max_Threads()


def torch_library() -> ctypes.CDLL:
    return ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))


@pytest.mark.parametrize("name", ["LayerNormLSTM", "PeepholeLSTM", "GRU", "LayerNormGRU",
                                  "IndRNN-relu", "Jordan-softmax"])  # fmt: skip
@pytest.mark.parametrize("mode", ["eval-zoneout", "train-regularised"])
def test_the_two_directions_side_by_side_equal_reference(name: str, mode: str, monkeypatch) -> None:
    """With two torch threads a bidirectional layer runs its two directions at once, the
    backward one on another of torch's OpenMP threads, inside the parallel region (where
    torch's ops and MKL run one thread each), and the caller's thread keeps its MKL setting.
    Outputs, final states and every gradient still equal the reference path's in float64,
    with lengths and the random regularisers drawn in the reference path's order, and a
    second run gives the same bits."""
    if _numba_calls._gemm.OPENMP_TEAM is None:
        pytest.skip("no GNU OpenMP in torch: the directions run one after the other")
    monkeypatch.setattr(tuning, "SIDE_BY_SIDE_BATCH", 1)
    seen: list[tuple[str, int]] = []
    for kernel in [k for k in dir(fused._fused_numba) if k.endswith(("_forward", "_backward"))]:
        if not kernel.startswith("_"):
            loop_function = getattr(fused._fused_numba, kernel)

            def spy(*args, loop_function=loop_function) -> None:
                seen.append((threading.get_ident(), torch_library().omp_in_parallel()))
                loop_function(*args)

            monkeypatch.setattr(fused._fused_numba, kernel, spy)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer = make(name, 3, 7, mode, torch.float64)
        x = torch.randn(6, 4, 3, dtype=torch.float64, requires_grad=True)
        hx = tuple(s.requires_grad_() for s in initial_state(layer, 4, torch.float64))
        lengths = torch.tensor([6, 2, 0, 5])
        fast, again = (leaves(run(layer, x, hx, lengths, True)) for _ in range(2))
        assert mkl_threads() == 2
    finally:
        torch.set_num_threads(previous)
    slow = leaves(run(layer, x, hx, lengths, False))
    elsewhere = [in_region for thread, in_region in seen if thread != threading.get_ident()]
    assert elsewhere and all(elsewhere)
    for a, b, c in zip(fast, slow, again, strict=True):
        assert norm(a - b) <= 1e-10 * norm(b)
        assert torch.equal(a, c)


@pytest.mark.parametrize("grad_mode", ["no_grad", "inference_mode"])
def test_side_by_side_inference_keeps_the_callers_grad_mode(grad_mode: str, monkeypatch) -> None:
    """Under ``no_grad`` or ``inference_mode`` the direction run on the other thread runs
    without gradients too: the one-loop inference (one loop per recurrence, not the training
    kernel's chunks), and no output that requires grad."""
    if _numba_calls._gemm.OPENMP_TEAM is None:
        pytest.skip("no GNU OpenMP in torch: the directions run one after the other")
    monkeypatch.setattr(tuning, "SIDE_BY_SIDE_BATCH", 1)
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 1)  # the training kernel would run per step
    loops = spy_on(monkeypatch, "lstm_forward")
    layer = make("LayerNormLSTM", 3, 7, "eval", torch.float64)
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with getattr(torch, grad_mode)():
            output, state = layer(x)
    finally:
        torch.set_num_threads(previous)
    assert len(loops) == 4  # 2 layers x 2 directions
    assert not output.requires_grad and not any(s.requires_grad for s in state)
    with torch.no_grad(), reference(layer):
        expected = layer(x)[0]
    assert norm(output - expected) <= 1e-10 * norm(expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_the_directions_side_by_side(monkeypatch) -> None:
    """A process forked after the directions ran side by side on torch's OpenMP threads (a
    ``DataLoader`` worker, a fork-based pool) has none of those threads: it gets the parent's
    result, instead of waiting for the parent's threads forever."""
    if _numba_calls._gemm is None or _numba_calls._gemm.OPENMP_TEAM is None:
        pytest.skip("the directions run side by side only with numba and torch's OpenMP")
    monkeypatch.setattr(tuning, "SIDE_BY_SIDE_BATCH", 1)
    context = multiprocessing.get_context("fork")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer, x = nn.LayerNormLSTM(3, 5, bidirectional=True), torch.randn(4, 6, 3)
        with torch.no_grad():
            expected = layer(x)[0]
        answers = context.Queue()

        def child() -> None:
            with torch.no_grad():
                answers.put(torch.equal(layer(x)[0], expected))

        with warnings.catch_warnings():  # Python 3.12+ warns of fork in a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            process = context.Process(target=child)
            process.start()
        try:
            assert answers.get(timeout=120) is True
        finally:
            process.join(10)
            process.kill()
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("name", ["LSTM", "PeepholeLSTM", "LayerNormLSTM", "GRU", "LayerNormGRU",
                                  "Jordan-softmax"])  # fmt: skip
@pytest.mark.parametrize(
    "batch",
    sorted(
        {1, tuning.LOOP_PRODUCT_ROWS, tuning.LOOP_PRODUCT_ROWS + 1}
        | {tuning.LOOP_TRANSPOSED_ROWS, tuning.LOOP_TRANSPOSED_ROWS + 1}
        | {tuning.LOOP_PROJECTION_BATCH + 1}
    ),
)
def test_the_loops_read_the_weights_as_the_layer_holds_them(name: str, batch: int) -> None:
    """The loops take ``W_hh`` ``(G, H)``, ``W_ih`` ``(G, H_in)`` (inference) and Jordan's
    ``W_yh``, ``W_hy`` as the layer holds them, multiplying by their transposes in the
    engine's own loop up to ``tuning.LOOP_TRANSPOSED_ROWS`` rows and in BLAS above (inference
    projects in the loop from ``tuning.LOOP_PROJECTION_BATCH`` rows). Every size differs from
    every other (``H_in`` 3, ``H`` 7, ``G`` 28 or 21, Jordan's output 3 against 7, a second
    layer's input 14), so a weight read in the wrong layout breaks the match with the reference
    path in float64: outputs, final states and every gradient in training, outputs and states
    in inference."""
    assert max(tuning.LOOP_PRODUCT_ROWS, tuning.LOOP_TRANSPOSED_ROWS) + 1 < (
        tuning.LOOP_PROJECTION_BATCH
    )
    layer = make(name, 3, 7, "train-regularised", torch.float64)
    x = torch.randn(5, batch, 3, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in initial_state(layer, batch, torch.float64))
    fast = leaves(run(layer, x, hx, None, True))
    slow = leaves(run(layer, x, hx, None, False))
    layer.eval()
    with torch.no_grad():
        fast += torch.utils._pytree.tree_leaves(layer(x, hx))
        with reference(layer):
            slow += torch.utils._pytree.tree_leaves(layer(x, hx))
    for a, b in zip(fast, slow, strict=True):
        assert norm(a - b) <= 1e-10 * norm(b)


_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

_HUGE_PAGES = """
import sys, torch
from pathlib import Path
from rnnkit.functional import fused, tuning


def huge_kib(buffer):
    # KiB of buffer's mappings (/proc/self/smaps; advice splits a mapping) on huge pages
    first, last = buffer.data_ptr(), buffer.data_ptr() + buffer.nbytes
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        span = line.split()[0]
        if "-" in span and not span.endswith(":"):  # a mapping's first line
            start, stop = (int(v, 16) for v in span.split("-"))
            inside = start < last and first < stop
        elif inside and span == "AnonHugePages:":
            total += int(line.split()[1])
    return total


size = 64 * 2**20
assert size >= tuning.HUGE_PAGE_BYTES
advised = fused.Plan(64, 512, None, False).empty(64, 512, 512, like=torch.zeros(1)).fill_(1.0)
plain = torch.empty(64, 512, 512).fill_(1.0)
assert advised.nbytes == plain.nbytes == size and bool((advised == 1.0).all())
print(huge_kib(advised), huge_kib(plain), (size - 2 * 2**21) // 1024)
"""


@pytest.mark.skipif(
    not _THP.exists() or "[never]" in _THP.read_text(), reason="no transparent huge pages"
)
def test_large_loop_buffers_take_huge_pages() -> None:
    """The loops' buffers from ``tuning.HUGE_PAGE_BYTES`` up are advised for transparent huge
    pages before anything touches them, over the 2 MiB pages inside them, and hold their values
    as any buffer; where THP serves only advised memory (``madvise``), a plain buffer of the
    same size gets none. In a fresh process: one that ran many tests may find no free 2 MiB
    blocks, and then the buffers take 4 KiB pages as before. 64 MiB: above glibc's largest
    threshold for a fresh mapping (32 MiB), so neither buffer is memory touched before."""
    run = [sys.executable, "-c", _HUGE_PAGES]
    advised, plain, expected = (int(v) for v in subprocess.check_output(run, text=True).split())
    assert advised >= expected
    if "[madvise]" in _THP.read_text():
        assert plain == 0


def test_the_loops_call_torchs_own_blas() -> None:
    """Where torch's CPU library exports the Fortran ``sgemm_`` (as its x86-64 wheels do, from
    MKL), the loops' products call that very function, and the layers then hold no BLAS."""
    if _numba_calls._gemm is None:
        pytest.skip("numba is not installed")
    library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    if not hasattr(library, "sgemm_"):
        pytest.skip("this torch exports no sgemm_")
    address = ctypes.cast(library.sgemm_, ctypes.c_void_p).value
    assert _numba_calls._gemm.SOURCE == "torch"
    assert llvmlite.binding.address_of_symbol("rnnkit_sgemm") == address
    assert _numba_calls._blas() == [] and "mkl" in _numba_calls.engine_blas().lower()


SCIPY_ENGINE = """
import torch
from rnnkit import nn
from rnnkit.functional import _gemm, engine_blas
assert _gemm.SOURCE == "scipy", _gemm.SOURCE
print(engine_blas())
torch.manual_seed(0)
layer = nn.LayerNormLSTM(3, 16).double()
x = torch.randn(5, 8, 3, dtype=torch.float64, requires_grad=True)
fast = layer(x)[0]
fast.sum().backward()
layer.backend = "reference"
slow = layer(x)[0]
torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
"""


def test_scipy_blas_on_request() -> None:
    """``RNNKIT_ENGINE_BLAS=scipy`` (also the fallback where torch exports no BLAS) binds the
    loops to SciPy's BLAS, which gives the reference path's numbers; any other value is refused
    by name."""
    if _numba_calls._gemm is None:
        pytest.skip("numba is not installed")
    environment = {**os.environ, "RNNKIT_ENGINE_BLAS": "scipy"}
    done = subprocess.run([sys.executable, "-c", SCIPY_ENGINE], env=environment,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SciPy's")
    environment["RNNKIT_ENGINE_BLAS"] = "openblas"
    done = subprocess.run([sys.executable, "-c", "import rnnkit.functional"], env=environment,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "RNNKIT_ENGINE_BLAS: expected 'torch' or 'scipy', got 'openblas'" in done.stderr


def spy_on(monkeypatch, kernel: str) -> list[tuple]:
    """The arguments of every call of the numba loop ``kernel``, as the calls come."""
    calls, run = [], getattr(fused._fused_numba, kernel)
    monkeypatch.setattr(fused._fused_numba, kernel, lambda *a: calls.append(a) or run(*a))
    return calls


class RecordedLibrary:
    """A BLAS library of :func:`_numba_calls._blas` whose thread-count settings are recorded."""

    def __init__(self, library, calls: list[int]) -> None:
        self.library, self.calls = library, calls

    def get_num_threads(self) -> int:
        return self.library.get_num_threads()

    def set_num_threads(self, threads: int) -> None:
        self.calls.append(threads)
        self.library.set_num_threads(threads)


def spy_on_blas(monkeypatch) -> list[int]:
    """The thread counts :func:`_numba_calls.single_threaded_blas` sets, library by library, where
    the loops call SciPy's BLAS (torch's needs no hold)."""
    monkeypatch.setattr(_numba_calls._gemm, "SOURCE", "scipy")
    libraries, calls = _numba_calls._blas.__wrapped__(), []
    if not libraries:
        pytest.skip("no BLAS library that threadpoolctl can see")
    recorded = [RecordedLibrary(lib, calls) for lib in libraries]
    monkeypatch.setattr(_numba_calls, "_blas", lambda: recorded)
    return calls


def test_single_threaded_blas_limits_once_and_restores(monkeypatch) -> None:
    """Inside, every BLAS library runs one thread; a nested use sets no limit of its own (the
    point: a stack of loops pays for one); the outer exit gives back the caller's setting,
    also when the body raises."""
    calls, libraries = spy_on_blas(monkeypatch), _numba_calls._blas()
    threads = lambda: [lib.get_num_threads() for lib in libraries]  # noqa: E731
    with threadpool_limits(limits=2, user_api="blas"):
        before = threads()  # 2 each, unless the library caps it at the machine's cores
        with pytest.raises(RuntimeError), _numba_calls.single_threaded_blas():
            with _numba_calls.single_threaded_blas():
                assert set(threads()) == {1}
            assert set(threads()) == {1}
            raise RuntimeError
        assert threads() == before
    assert calls == [1] * len(libraries) + before


def test_a_layer_call_sets_the_blas_limit_once(monkeypatch) -> None:
    """Inference of a 2-layer bidirectional stack in one-step chunks runs 4 x 5 numba loops,
    under one BLAS limit."""
    if fused._fused_numba is None:
        pytest.skip("numba is not installed")
    calls = spy_on_blas(monkeypatch)
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 1)
    loops = spy_on(monkeypatch, "indrnn_forward")
    layer = make("IndRNN-tanh", 2, 3, "eval", torch.float32)
    with torch.no_grad():
        layer(torch.randn(5, 2, 2))
    libraries = len(_numba_calls._blas())
    assert len(loops) == 20
    assert len(calls) == 2 * libraries and calls[:libraries] == [1] * libraries  # set, restored


@pytest.mark.parametrize("name", ["LSTM", "PeepholeLSTM", "LayerNormLSTM", "LayerNormLSTM-nobias",
                                  "Recurrent-LSTMCell", "GRU", "LayerNormGRU",
                                  "LayerNormGRU-nobias", "Recurrent-GRUCell"])  # fmt: skip
@pytest.mark.parametrize(("features", "hidden", "batch"), [(5, 16, 2), (5, 16, 7), (320, 320, 40)])
@pytest.mark.parametrize("precision", ["fp32", "fp64"])
@pytest.mark.parametrize("chunk_bytes", [1, tuning.CHUNK_BYTES])
def test_inference_in_one_loop_equals_reference(
    name: str,
    features: int,
    hidden: int,
    batch: int,
    precision: str,
    chunk_bytes: int,
    monkeypatch,
) -> None:
    """LSTM- and GRU-family inference (:func:`fused.lstm_inference`,
    :func:`fused.gru_inference`) projects each step's input in its numba loop (below
    ``tuning.LOOP_PROJECTION_BATCH``, all steps before it when they fit a chunk): one loop per
    recurrence whatever the chunk size, equal to the reference path."""
    dtype, tolerance = PRECISIONS[precision]
    monkeypatch.setattr(tuning, "CHUNK_BYTES", chunk_bytes)
    loops = spy_on(monkeypatch, "gru_forward" if "GRU" in name else "lstm_forward")
    layer = make(name, features, hidden, "eval-zoneout", dtype)
    x = torch.randn(6, batch, features, dtype=dtype)
    hx = initial_state(layer, batch, dtype)
    with torch.no_grad():
        fast = layer(x, hx)
        with reference(layer):
            slow = layer(x, hx)
    assert len(loops) == 4  # 2 layers x 2 directions, each one loop over all 6 steps
    gates = (3 if "GRU" in name else 4) * hidden
    upfront = 6 * batch * gates * x.element_size() <= chunk_bytes
    slots = 6 if batch < tuning.LOOP_PROJECTION_BATCH and upfront else 1  # (L, N, G) or a step's
    assert all(call[0][0].shape[0] == slots for call in loops)  # buffers[0]: act or gi
    for a, b in zip(torch.utils._pytree.tree_leaves(fast), torch.utils._pytree.tree_leaves(slow),
                    strict=True):  # fmt: skip
        assert float(torch.linalg.norm(a - b)) <= 1e-6 + tolerance * float(torch.linalg.norm(b))


@pytest.mark.parametrize("name", ["LSTM", "PeepholeLSTM", "LayerNormLSTM", "GRU", "LayerNormGRU"])
@pytest.mark.parametrize("batch", [5, 40])
def test_inference_with_lengths_in_one_loop_equals_reference(
    name: str, batch: int, monkeypatch
) -> None:
    """Inference with ``lengths`` runs the one-loop inference too (each sequence's state
    carried in the loops' slots to its last step, both directions, 2 layers): outputs zero
    past each length and final states equal the reference path's, at a batch that projects
    every step first and one that projects in the loop."""
    loops = spy_on(monkeypatch, "gru_forward" if "GRU" in name else "lstm_forward")
    layer = make(name, 3, 8, "eval-zoneout", torch.float64)
    x = torch.randn(7, batch, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 1, 5, 7, 3, 4, 6][:batch] * (batch // 5))[:batch]
    hx = initial_state(layer, batch, torch.float64)
    with torch.no_grad():
        fast = layer(x, hx, lengths=lengths)
        with reference(layer):
            slow = layer(x, hx, lengths=lengths)
    # the inference loops' state buffers: c in two slots (LSTM: states[1]), gh_n in one (GRU:
    # buffers[2])
    carried, slots = ((0, 2), 1) if "GRU" in name else ((1, 1), 2)
    assert len(loops) == 4
    assert all(call[carried[0]][carried[1]].shape[0] == slots for call in loops)
    for a, b in zip(torch.utils._pytree.tree_leaves(fast), torch.utils._pytree.tree_leaves(slow),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    past = torch.arange(7).unsqueeze(1) >= lengths  # (L, N): steps past each length
    assert fast[0][past].abs().max() == 0


@pytest.mark.parametrize("name", LAYERS)
def test_a_second_backward_gives_the_same_gradients(name: str) -> None:
    """``backward(retain_graph=True)`` twice adds the same gradients twice (the numba
    LayerNormLSTM backward overwrites the ``h W_hh^T`` it kept, and must not read it again)."""
    layer = make(name, 3, 8, "train-regularised", torch.float64)
    x = torch.randn(6, 4, 3, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    out, _ = layer(x, lengths=torch.tensor([6, 2, 5, 6]))
    loss = (out * torch.randn_like(out)).sum()
    first = torch.autograd.grad(loss, [x, *layer.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *layer.parameters()])
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["LSTM", "LayerNormLSTM", "LayerNormGRU", "IndRNN-tanh"])
def test_without_numba_the_reference_path_runs(name: str, monkeypatch, caplog) -> None:
    """Without numba (a platform it has no wheel for) every layer takes its reference path,
    in inference and training, and says so once on the ``rnnkit`` logger."""
    monkeypatch.setattr(_numba_calls, "_fused_numba", None)
    _numba_calls._warn_no_numba.cache_clear()
    layer = make(name, 3, 8, "eval-zoneout", torch.float64)
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    hx = initial_state(layer, 4, torch.float64)
    with caplog.at_level("WARNING", logger="rnnkit"):
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                assert _engine.run(layer, x, hx, None) is None
                auto = torch.utils._pytree.tree_leaves(layer(x, hx))
                with reference(layer):
                    looped = torch.utils._pytree.tree_leaves(layer(x, hx))
            assert all(torch.equal(a, b) for a, b in zip(auto, looped, strict=True))
    assert caplog.text.count("numba is not installed") == 1


def test_inference_declines_and_rejects() -> None:
    """``lstm_inference`` and ``gru_inference`` return None where their loops do not run
    (gradients on, float16), so the caller takes the general path; with lengths they run; an
    LSTM layer norm over ``gi`` with a ``b_hh`` is an error naming both, and so is a tensor the
    training loops cannot take."""
    if fused._fused_numba is None:
        pytest.skip("numba is not installed")
    x, h = torch.randn(3, 2, 4), torch.zeros(2, 5)
    w_ih, w_hh, b = torch.randn(20, 4), torch.randn(20, 5), torch.randn(20)
    args = (x, (h, h), w_ih, None, w_hh)
    assert fused.lstm_inference(*args) is None  # gradients enabled
    assert fused.gru_inference(x, h, w_ih[:15], None, w_hh[:15]) is None
    with torch.no_grad():
        assert fused.lstm_inference(*args) is not None
        ragged = fused.Options(fused.Plan(3, 2, [3, 1], False))
        out, _ = fused.lstm_inference(*args, options=ragged)
        assert out[1:, 1].abs().max() == 0 < out[1:, 0].abs().max()  # zero past length 1
        half = (x.half(), (h.half(), h.half()), w_ih.half(), None, w_hh.half())
        assert fused.lstm_inference(*half) is None
        with pytest.raises(ValueError, match="b_hh=None with ln_ih"):
            fused.lstm_inference(*args, b_hh=b, ln_ih=(b, None))
    with pytest.raises(ValueError, match=r"^fused_lstm: gi: expected a CPU float32 or float64"):
        fused.fused_lstm(half[0] @ half[2].t(), half[1], half[4])


@pytest.mark.parametrize("name", LAYERS)
def test_engine_gradcheck_float64(name: str) -> None:
    """Finite differences against the hand-written backward, regularisers on (training,
    the draws fixed by reseeding inside the function), lengths and ``hx`` given."""
    layer = make(name, 2, 3, "train-regularised", torch.float64)
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in initial_state(layer, 3, torch.float64))
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    lengths = torch.tensor([4, 0, 2])

    def f(x, *rest):
        h, weights = rest[: len(hx)], rest[len(hx) :]
        torch.manual_seed(3)
        out, state = functional_call(
            layer, dict(zip(names, weights, strict=True)), (x, h), {"lengths": lengths}
        )
        state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        return (out, *state)

    assert _engine.run(layer, x.detach(), tuple(s.detach() for s in hx), lengths) is not None
    assert torch.autograd.gradcheck(f, (x, *hx, *params), fast_mode=True)


def test_the_loops_run_up_to_the_training_batch_and_inference_above(monkeypatch) -> None:
    """Each family's forward and backward run in numba in training at a batch of
    ``tuning.MAX_TRAINING_BATCH``; one row more, training takes the reference path (no loop
    runs) and inference still runs the forward loops."""
    calls = set()
    for family in ("lstm", "gru", "indrnn", "jordan"):
        for part in ("forward", "backward"):
            name = f"{family}_{part}"
            kernel = getattr(fused._fused_numba, name)
            spy = lambda *args, kernel=kernel, name=name: calls.add(name) or kernel(*args)  # noqa: E731
            monkeypatch.setattr(fused._fused_numba, name, spy)
    names = ("LSTM", "GRU", "IndRNN-relu", "Jordan-softmax")
    layers = [make(name, 2, 3, "train-regularised", torch.float32) for name in names]
    for batch, expected in [(0, 8), (1, 0)]:
        calls.clear()
        x = torch.randn(3, tuning.MAX_TRAINING_BATCH + batch, 2)
        for layer in layers:
            out, _ = layer(x)
            out.sum().backward()
        assert len(calls) == expected, sorted(calls)
    with torch.no_grad():
        for layer in layers:
            layer.eval()(x)
    assert calls == {f"{family}_forward" for family in ("lstm", "gru", "indrnn", "jordan")}


@pytest.mark.parametrize("name", ["LSTM", "LayerNormLSTM", "Jordan-softmax"])
def test_packed_input_matches_reference(name: str) -> None:
    layer = make(name, 4, 6, "eval-zoneout", torch.float32)
    x = torch.randn(9, 5, 4)
    lengths = torch.tensor([9, 2, 7, 1, 9])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    results = []
    for engine in (True, False):
        with nullcontext() if engine else reference(layer):
            out, state = layer(packed)
        state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        results.append((pad_packed_sequence(out)[0], *state))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_engine_covers_known_cells_only() -> None:
    """A subclass may change a step, so only the exact cell classes run fused; anything
    else (here a subclass, MinGRU's step loop, and MinGRU's scan under zoneout, which it
    does not take) takes the reference path."""

    class ScaledLSTMCell(nn.LSTMCell):
        def step(self, x_t, state, dropout_mask=None):
            return tuple(2 * s for s in super().step(x_t, state, dropout_mask))

    x = torch.randn(3, 2, 4)
    skipped = [nn.MinGRU(4, 5, parallel=False), nn.MinGRU(4, 5, zoneout=0.1)]
    for layer in (nn.Recurrent(ScaledLSTMCell, 4, 5), *skipped):
        state = tuple(torch.zeros(1, 2, s) for s in layer.state_sizes)
        assert _engine.run(layer, x, state, None) is None
    for layer in (nn.MinGRU(4, 5), nn.Recurrent(nn.LSTMCell, 4, 5)):  # the LSTM state below
        state = tuple(torch.zeros(1, 2, s) for s in layer.state_sizes)
        assert _engine.run(layer, x, state, None) is not None
    assert _engine.run(nn.LSTM(4, 5, fused=False, zoneout=0.1), x, state, None) is None


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("name", LAYERS)
def test_nan_propagates_as_on_the_reference_path(name: str, grad: bool) -> None:
    """A NaN in the input reaches the same outputs and states on every path (a ReLU in the
    numba loops once made it 0)."""
    layer = make(name, 5, 8, "eval", torch.float32)
    x = torch.randn(6, 3, 5)
    x[2, 1, 0] = float("nan")
    hx = initial_state(layer, 3, torch.float32)
    results = []
    for engine in (True, False):
        with torch.set_grad_enabled(grad), nullcontext() if engine else reference(layer):
            results.append(torch.utils._pytree.tree_leaves(layer(x, hx)))
    for fast, slow in zip(*results, strict=True):
        assert fast.isnan().any()
        assert torch.equal(fast.isnan(), slow.isnan())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", LAYERS)
def test_half_precision_trains_on_the_reference_path(name: str, dtype: torch.dtype) -> None:
    """float16 and bfloat16 layers (NumPy holds neither) take the reference path, training
    included: the engine declines them, and what the layer computes is the reference path's
    to the bit."""
    layer = make(name, 5, 8, "train-regularised", dtype)
    x = torch.randn(6, 3, 5, dtype=dtype, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in initial_state(layer, 3, dtype))
    assert _engine.run(layer, x.detach(), tuple(h.detach() for h in hx), None) is None
    fast = leaves(run(layer, x, hx, None, True))
    slow = leaves(run(layer, x, hx, None, False))
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == dtype
        assert torch.equal(a, b)


_TRAIN_AND_HASH = """
import hashlib, sys, torch, rnnkit.nn as nn
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
layer = nn.LayerNormGRU(8, 32, zoneout=0.1)
head = torch.nn.Linear(32, 1)
optimiser = torch.optim.Adam([*layer.parameters(), *head.parameters()], 1e-2)
x, y = torch.randn(20, int(sys.argv[2]), 8), torch.randn(20, int(sys.argv[2]), 1)
for _ in range(3):
    optimiser.zero_grad()
    (head(layer(x)[0]) - y).square().mean().backward()
    optimiser.step()
weights = b"".join(p.detach().numpy().tobytes() for p in layer.parameters())
print(hashlib.sha256(weights).hexdigest())
"""


@pytest.mark.parametrize("batch", [16, tuning.MAX_TRAINING_BATCH + 1], ids=["engine", "reference"])
def test_training_does_not_depend_on_the_thread_count(batch: int) -> None:
    """LayerNormGRU's layer-norm gain and shift gradients once came from torch's layer-norm
    backward, which sums them in one buffer per thread."""

    def digest(threads: int) -> str:
        command = [sys.executable, "-c", _TRAIN_AND_HASH, str(threads), str(batch)]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    assert digest(1) == digest(2)


def _outputs_and_gradients(threads: int) -> dict[str, np.ndarray]:
    """Every layer's output and parameter gradients ``(P,)`` at ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    values = {}
    try:
        for name, layer_class in sorted(nn.LAYERS.items()):
            torch.manual_seed(0)
            layer, x = layer_class(8, 16), torch.randn(12, 7, 8)
            output = layer(x)[0]
            output.square().mean().backward()
            parts = [output.detach().flatten()] + [p.grad.flatten() for p in layer.parameters()]
            values[name] = torch.cat(parts).numpy()
    finally:
        torch.set_num_threads(previous)
    return values


def test_every_layer_is_reproducible_and_differs_by_rounding_across_thread_counts() -> None:
    """Two runs at one thread count agree bit for bit. Across thread counts torch's own
    kernels (MKL's products of 5 to 9 rows, oneDNN's LSTM) sum in another order, so results
    may differ, but only by float32 rounding (docs/training.md, Reproducibility; the hostile
    probe checks the same in separate processes)."""
    one, two, again = (_outputs_and_gradients(threads) for threads in (1, 2, 2))
    assert sorted(one) == sorted(nn.LAYERS)
    for name in one:
        assert np.array_equal(two[name], again[name]), name
        assert np.abs(one[name] - two[name]).max() <= 1e-5 * np.abs(one[name]).max(), name


def test_backend_reference_skips_every_fast_path(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(_engine, "run", lambda *args: calls.append("engine"))
    x = torch.randn(5, 2, 4)
    layers = [nn.LayerNormLSTM(4, 5), nn.MinLSTM(4, 5), nn.LSTM(4, 5)]
    for layer in layers:
        layer.backend = "reference"
        layer(x)
    assert calls == []
    with torch.no_grad():
        looped = layers[2](x)
        layers[2].backend = "auto"
        torch.testing.assert_close(layers[2](x), looped)  # torch's kernel, the same numbers
    layers[0].backend = "auto"
    layers[0](x)
    assert calls == ["engine"]
    with pytest.raises(ValueError, match=r"^backend: expected one of \('auto', 'reference'\)"):
        layers[0].backend = "fast"
    assert nn.Recurrent(nn.LSTMCell, 4, 5, backend="reference").backend == "reference"


@pytest.mark.parametrize("name", LAYERS)
def test_a_call_after_an_in_place_weight_change_reads_the_new_weights(name: str) -> None:
    """Whatever the engine keeps between calls, an optimiser step, ``load_state_dict`` or
    any in-place change, through ``.data`` too (which moves no version counter, so a cache
    keyed on it would miss the change), gives the next call the new weights, in inference
    and in training alike."""
    layer = make(name, 5, 8, "eval", torch.float64)
    x = torch.randn(6, 3, 5, dtype=torch.float64, requires_grad=True)
    other = make(name, 5, 8, "eval", torch.float64)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    for change in ("in place", "through .data", "load_state_dict", "optimiser step"):
        with torch.no_grad():
            before = layer(x)[0]
            if change == "in place":
                for p in layer.parameters():
                    p.add_(0.25)
            elif change == "through .data":  # moves no version counter
                for p in layer.parameters():
                    p.data.mul_(0.75)
            elif change == "load_state_dict":
                layer.load_state_dict(other.state_dict())
        if change == "optimiser step":
            optimiser = torch.optim.SGD(layer.parameters(), 0.5)
            layer(x)[0].square().sum().backward()
            optimiser.step()
        hx = tuple(s.requires_grad_() for s in initial_state(layer, 3, torch.float64))
        with torch.no_grad():
            inferred = layer(x, hx)[0]
            with reference(layer):
                expected = layer(x, hx)[0]
        torch.testing.assert_close(inferred, expected, msg=change)
        assert not torch.equal(inferred, before), change
        fast = leaves(run(layer, x, hx, None, True))
        slow = leaves(run(layer, x, hx, None, False))
        for a, b in zip(fast, slow, strict=True):
            torch.testing.assert_close(a, b, msg=change)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_nn_layers_take_lengths_in_inference_on_the_engine(
    kind: str, dtype: torch.dtype, monkeypatch
) -> None:
    """rnnkit's ``LSTM`` and ``GRU``, which run torch's own kernel, take ``lengths=`` in
    inference on the engine (no packing, no steps past the lengths) up to
    ``tuning.ENGINE_LENGTHS_WORK``, both directions, two layers, a length of 0: outputs and
    final states equal torch.nn's layer on the packed batch. With gradients, and above the
    work limit, torch's packed kernel runs."""
    if fused._fused_numba is None:
        pytest.skip("numba is not installed")
    calls: list[int] = []
    whole_run = _engine.run
    monkeypatch.setattr(_engine, "run", lambda *args: calls.append(1) or whole_run(*args))
    torch.manual_seed(0)
    ours = getattr(nn, kind)(3, 6, num_layers=2, bidirectional=True, dtype=dtype).eval()
    theirs = getattr(torch.nn, kind)(3, 6, num_layers=2, bidirectional=True, dtype=dtype)
    theirs.load_state_dict(ours.state_dict())
    x, lengths = torch.randn(9, 5, 3, dtype=dtype), torch.tensor([9, 4, 0, 1, 7])
    with torch.no_grad():
        output, state = ours(x, lengths=lengths)
        packed = pack_padded_sequence(x, lengths.clamp(min=1), enforce_sorted=False)
        expected, expected_state = theirs(packed)
        expected = pad_packed_sequence(expected, total_length=9)[0].masked_fill(
            (lengths == 0).view(1, -1, 1), 0.0
        )
    assert len(calls) == 1
    tolerance = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {}
    torch.testing.assert_close(output, expected, **tolerance)
    state, expected_state = (s if isinstance(s, tuple) else (s,) for s in (state, expected_state))
    for got, want in zip(state, expected_state, strict=True):  # the empty sequence's: h0 = 0
        want = want.masked_fill((lengths == 0).view(1, -1, 1), 0.0)
        torch.testing.assert_close(got, want, **tolerance)
    ours(x, lengths=lengths)  # gradients on
    monkeypatch.setattr(tuning, "ENGINE_LENGTHS_WORK", 5 * 6 * 6 - 1)
    with torch.no_grad():
        again, _ = ours(x, lengths=lengths)
    assert len(calls) == 1
    torch.testing.assert_close(again, output, **tolerance)
