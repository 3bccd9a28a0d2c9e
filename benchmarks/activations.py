"""The compiled ``tanh`` and ``sigmoid``: the shared approximation against the one it replaced.

:mod:`rnnkit.runtime.activations` holds the one approximation the runtime's kernels and the
engine's loops call: a rational ``tanh`` (Eigen's float ``ptanh``) and ``sigmoid(x) = 1/2 +
tanh(x/2)/2``. Until issue 22 the runtime had its own: ``exp`` by the Cephes polynomial
(``2**n`` built from the exponent bits, so in two passes over a row with scratch arrays),
``sigmoid = 1 / (1 + exp(-x))`` and ``tanh(x) = 2 sigmoid(2x) - 1``; it is kept here, as it
was in ``rnnkit/runtime/_kernels.py``, to be measured against. Both in float32:

- accuracy: the largest absolute and relative error against float64 ``tanh`` and an exact
  sigmoid, over a dense grid (and the saturated ends);
- speed: the runtime's row loop (``activate_`` of an LSTM step, sigmoid on ``i, f, o`` and
  tanh on ``g``) and the engine's point-wise LSTM update of a row (gates, ``c'``,
  ``tanh(c')``, ``h'``), each compiled by numba, one thread, ns a row, median of rounds.

Usage::

    python benchmarks/activations.py [--hidden 16,64,256] [--rows 1,8] [--rounds 7]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import numpy as np
from numba import njit

from rnnkit.runtime import _kernels
from rnnkit.runtime.activations import sigmoid, tanh

_F32 = np.float32


def _cephes_row_(row, start, stop, poly, scale, bits):
    """The runtime's activation before issue 22 on one row: sigmoid, tanh on ``[start,
    stop)``; ``poly``, ``scale`` scratch rows, ``bits`` ``scale`` as int32."""
    for k in range(row.shape[0]):
        # tanh(x) = 2 sigmoid(2x) - 1; exp(-x) = 2**n * exp(t), |t| <= ln(2) / 2.
        twice = start <= k < stop
        y = -row[k] * (_F32(2) if twice else _F32(1))
        y = min(max(y, _F32(-87.3)), _F32(88.3))
        n = np.floor(y * _F32(1.44269504088896341) + _F32(0.5))
        t = y - n * _F32(0.693359375) + n * _F32(2.12194440e-4)
        p = _F32(1.9875691500e-4)
        p = p * t + _F32(1.3981999507e-3)
        p = p * t + _F32(8.3334519073e-3)
        p = p * t + _F32(4.1665795894e-2)
        p = p * t + _F32(1.6666665459e-1)
        p = p * t + _F32(5.0000001201e-1)
        poly[k] = p * t * t + t + _F32(1)
        bits[k] = (np.int32(n) + np.int32(127)) << np.int32(23)
    for k in range(row.shape[0]):
        s = _F32(1) / (_F32(1) + poly[k] * scale[k])
        row[k] = _F32(2) * s - _F32(1) if start <= k < stop else s


COMPILE = njit(cache=False, nogil=True, error_model="numpy")
_cephes_row = njit(cache=False, nogil=True, error_model="numpy", inline="always")(_cephes_row_)


@COMPILE
def _cephes_activate_(v, start, stop):
    """The runtime's ``activate_`` before issue 22: its scratch made each call."""
    scratch = np.empty((2, v.shape[1]), dtype=np.float32)
    poly, scale = scratch[0], scratch[1]
    bits = scale.view(np.int32)
    for r in range(v.shape[0]):
        _cephes_row(v[r], start, stop, poly, scale, bits)


CEPHES = _cephes_activate_
SHARED = COMPILE(_kernels._loop_activate_)  # calls rnnkit.runtime.activations


@COMPILE
def _shared_all(x, out, which):
    for k in range(x.shape[0]):
        out[k] = tanh(x[k], False) if which == 0 else sigmoid(x[k], False)


@COMPILE
def _shared_lstm_rows(a, c, tc, h, hidden):
    """The engine's point-wise LSTM update (``_fused_numba._lstm_forward``) of each row."""
    for n in range(a.shape[0]):
        row, c_n, tc_n, h_n = a[n], c[n], tc[n], h[n]
        i, f, g, o = (
            row[:hidden],
            row[hidden : 2 * hidden],
            row[2 * hidden : 3 * hidden],
            row[3 * hidden :],
        )
        for j in range(2 * hidden):
            row[j] = sigmoid(row[j], False)
        for j in range(hidden):
            g[j] = tanh(g[j], False)
            c_n[j] = f[j] * c_n[j] + i[j] * g[j]
        for j in range(hidden):
            o[j] = sigmoid(o[j], False)
        for j in range(hidden):
            tc_n[j] = tanh(c_n[j], False)
            h_n[j] = o[j] * tc_n[j]


@COMPILE
def _cephes_lstm_rows(a, c, tc, h, hidden):
    """The same update with the Cephes activation, its scratch made once a call."""
    scratch = np.empty((2, a.shape[1]), dtype=np.float32)
    poly, scale = scratch[0], scratch[1]
    bits = scale.view(np.int32)
    for n in range(a.shape[0]):
        row, c_n, tc_n, h_n = a[n], c[n], tc[n], h[n]
        _cephes_row(row, 2 * hidden, 3 * hidden, poly, scale, bits)
        i, f, g = row[:hidden], row[hidden : 2 * hidden], row[2 * hidden : 3 * hidden]
        for j in range(hidden):
            c_n[j] = f[j] * c_n[j] + i[j] * g[j]
        tc_n[:] = c_n
        _cephes_row(tc_n, 0, hidden, poly, scale, bits)
        for j in range(hidden):
            h_n[j] = row[3 * hidden + j] * tc_n[j]


@COMPILE
def _nothing(*args):
    """The baseline: restoring the inputs each repetition, subtracted from both."""


@COMPILE
def _repeat_activate(activate, source, v, start, stop, reps):
    for _ in range(reps):
        v[:] = source
        activate(v, start, stop)


@COMPILE
def _repeat_lstm(update, source, a, c0, c, tc, h, hidden, reps):
    for _ in range(reps):
        a[:] = source
        c[:] = c0
        update(a, c, tc, h, hidden)


def _errors(x: np.ndarray) -> dict[str, tuple[float, float]]:
    """``name: (max abs error, max rel error)`` of each function over ``x`` (float32)."""
    x64 = x.astype(np.float64)
    e = np.exp(-np.abs(x64))
    exact = {"tanh": np.tanh(x64), "sigmoid": np.where(x64 >= 0, 1 / (1 + e), e / (1 + e))}
    normal = np.finfo(np.float32).tiny
    results = {}
    for name, which in (("tanh", 0), ("sigmoid", 1)):
        shared = np.empty_like(x)
        _shared_all(x, shared, which)
        cephes = x.reshape(1, -1).copy()
        CEPHES(cephes, 0, x.size if which == 0 else 0)
        for label, got in (("shared", shared), ("cephes", cephes[0])):
            err = np.abs(got.astype(np.float64) - exact[name])
            ref = np.abs(exact[name])
            rel = np.where(ref >= normal, err / np.maximum(ref, normal), 0.0)
            results[f"{name} {label}"] = (float(err.max()), float(rel.max()))
    return results


def _time(runs: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds of each ``run()`` over ``rounds``, the runs interleaved."""
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for run in runs.values():
        run()
    for _ in range(rounds):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            samples[label].append(time.perf_counter() - start)
    return {label: statistics.median(times) for label, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", default="16,64,256")
    parser.add_argument("--rows", default="1,8")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    grid = np.concatenate(
        [
            np.linspace(-20, 20, 4_000_001, dtype=np.float32),
            np.geomspace(1e-30, 1e4, 100_001).astype(np.float32),
            -np.geomspace(1e-30, 1e4, 100_001).astype(np.float32),
        ]
    )
    print("accuracy, float32 over [-20, 20] step 1e-5 and +-[1e-30, 1e4] geometric:")
    print(f"{'function':18} {'max abs err':>12} {'max rel err':>12}")
    for name, (abs_err, rel_err) in _errors(grid).items():
        print(f"{name:18} {abs_err:12.2e} {rel_err:12.2e}")
    rng = np.random.default_rng(0)
    print("\nspeed, ns a row (median of rounds, less restoring the inputs), float32, one thread:")
    print(f"{'loop':22} {'H':>4} {'rows':>4} {'shared':>8} {'cephes':>8} {'cephes/shared':>13}")
    for hidden in (int(h) for h in args.hidden.split(",")):
        for rows in (int(r) for r in args.rows.split(",")):
            reps = max(100, 2**22 // (rows * 4 * hidden))
            source = (2 * rng.standard_normal((rows, 4 * hidden))).astype(np.float32)
            v = source.copy()
            gates = (2 * hidden, 3 * hidden, reps)
            runs = {
                label: functools.partial(_repeat_activate, activate, source, v, *gates)
                for label, activate in (("shared", SHARED), ("cephes", CEPHES), ("copy", _nothing))
            }
            _print_row("runtime activate_", hidden, rows, _time(runs, args.rounds), reps * rows)
            c0 = rng.standard_normal((rows, hidden)).astype(np.float32)
            a, c = source.copy(), c0.copy()
            tc, h = np.empty_like(c0), np.empty_like(c0)
            buffers = (source, a, c0, c, tc, h, hidden, reps)
            runs = {
                label: functools.partial(_repeat_lstm, update, *buffers)
                for label, update in (
                    ("shared", _shared_lstm_rows),
                    ("cephes", _cephes_lstm_rows),
                    ("copy", _nothing),
                )
            }
            _print_row("engine LSTM update", hidden, rows, _time(runs, args.rounds), reps * rows)


def _print_row(loop: str, hidden: int, rows: int, times: dict[str, float], count: int) -> None:
    shared, cephes = (
        1e9 * (times[label] - times["copy"]) / count for label in ("shared", "cephes")
    )
    print(f"{loop:22} {hidden:4} {rows:4} {shared:8.1f} {cephes:8.1f} {cephes / shared:13.2f}")


if __name__ == "__main__":
    main()
