"""A step's matrix product at a few rows: the engine's own loops against torch's BLAS.

The numba loops multiply each step's ``(M, K)`` rows by a weight; up to
``tuning.LOOP_PRODUCT_ROWS`` rows (``LOOP_TRANSPOSED_ROWS`` for ``x @ W^T``) they run a loop
of their own, above it torch's BLAS (:mod:`rnnkit.functional._gemm`). This times both, one
thread, inside compiled loops of many steps (so no Python between products), interleaved, for
the two forms the loops use:
``x @ W^T`` (forward, ``W`` ``(4H, H)`` as the layer holds it: ``_fused_numba._row_dots``)
and ``x @ W`` (backward, ``(M, 4H) @ (4H, H)``: ``_fused_numba._axpy_rows``).

Usage::

    python benchmarks/loop_products.py [--rows 1,2,3,4,6] [--hidden 64,128,256,512]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from numba import njit

from rnnkit.functional._fused_numba import _axpy_rows, _row_dots
from rnnkit.functional._gemm import gemm


@njit(error_model="numpy")
def _steps(kind, x, w, out, steps):
    for _ in range(steps):
        if kind == 0:
            _row_dots(x, w, out)
        elif kind == 1:
            gemm(x, w, out, True)
        elif kind == 2:
            _axpy_rows(x, w, out)
        else:
            gemm(x, w, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,2,3,4,6")
    parser.add_argument("--hidden", default="64,128,256,512")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'form':8} {'M':>2} {'H':>4} {'loop us':>14} {'BLAS us':>14} {'loop/BLAS':>9}")
    for hidden in (int(h) for h in args.hidden.split(",")):
        for rows in (int(m) for m in args.rows.split(",")):
            w = rng.standard_normal((4 * hidden, hidden)).astype(np.float32)
            steps = max(4, 2**22 // w.size)
            forms = {
                "x @ W^T": (rng.standard_normal((rows, hidden)), np.zeros((rows, 4 * hidden))),
                "x @ W": (rng.standard_normal((rows, 4 * hidden)), np.zeros((rows, hidden))),
            }
            for form, (x, out) in forms.items():
                x, out = x.astype(np.float32), out.astype(np.float32)
                kinds = (0, 1) if form == "x @ W^T" else (2, 3)
                times: dict[int, list[float]] = {kind: [] for kind in kinds}
                for kind in kinds:
                    _steps(kind, x, w, out, 1)
                for _ in range(args.rounds):
                    for kind in kinds:
                        start = time.perf_counter()
                        _steps(kind, x, w, out, steps)
                        times[kind].append((time.perf_counter() - start) / steps * 1e6)
                loop, blas = (statistics.median(times[kind]) for kind in kinds)
                spans = [f"{min(times[k]):.2f}-{max(times[k]):.2f}" for k in kinds]
                print(
                    f"{form:8} {rows:2} {hidden:4} {spans[0]:>14} {spans[1]:>14} {loop / blas:9.2f}"
                )


if __name__ == "__main__":
    main()
