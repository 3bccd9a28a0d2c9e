"""A sequence's input projection and its backward: torch's layout against the transposed one.

A layer projects all steps at once, ``gi = x W^T + b`` over ``M = L x N`` rows, and its
backward takes ``d W = d^T x`` and ``d x = d W``. :mod:`rnnkit.functional.linear` computes the
backward's products as ``(x^T d)^T`` and ``(W^T d^T)^T`` for inputs up to
``tuning.NARROW_INPUT`` features, from ``tuning.LINEAR_ROWS`` rows, and gives the forward's
output huge pages from ``tuning.HUGE_PAGE_BYTES``. This times each pair on random float32
tensors, medians of repeated calls, and prints milliseconds.

Usage::

    python benchmarks/projection_layouts.py [--threads 1] [--rows 256,8192,32768]
        [--gates 256] [--features 1,2,4,8,12,16,24,32,64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rnnkit.functional.memory import huge_pages


def timed(work: Callable[[], object], calls: int) -> float:
    """Median milliseconds of ``calls`` calls of ``work`` after three warm-up calls."""
    for _ in range(3):
        work()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def row(rows: int, gates: int, features: int) -> str:
    """One line of the table: the three pairs at ``M = rows``, ``I = features``."""
    calls = max(5, min(200, 2**22 // (rows * gates)))
    d, x = torch.randn(rows, gates), torch.randn(rows, features)
    w, b = torch.randn(gates, features), torch.randn(gates)

    def advised() -> torch.Tensor:
        out = huge_pages(x.new_empty(rows, gates))
        return torch.addmm(b, x, w.t(), out=out)

    pairs = [
        (lambda: d.t() @ x, lambda: (x.t() @ d).t()),
        (lambda: d @ w, lambda: (w.t() @ d.t()).t().contiguous()),
        (lambda: torch.addmm(b, x, w.t()), advised),
    ]
    cells = [" ".join(f"{timed(f, calls):.3f}" for f in pair) for pair in pairs]
    return f"{rows} {features} | " + " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default="256,8192,32768")
    parser.add_argument("--gates", type=int, default=256)
    parser.add_argument("--features", default="1,2,4,8,12,16,24,32,64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), G={args.gates}, ms (medians)")
    print("M I | dW: d^T x, (x^T d)^T | dx: d W, (W^T d^T)^T | forward: addmm, huge-page output")
    for rows in (int(v) for v in args.rows.split(",")):
        for features in (int(v) for v in args.features.split(",")):
            print(row(rows, args.gates, features))


if __name__ == "__main__":
    main()
