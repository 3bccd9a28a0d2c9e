"""Time minGRU and minLSTM training on the CPU against torch.nn.LSTM / GRU and their own loop.

Work timed: one training step's forward and backward (``output.sum().backward()``, gradients
of all parameters, the input needs none), batch B=8, input and hidden size 128, lengths
T = 256, 1024 and 4096. Contenders, all in the same interleaved run per T: ``torch.nn.LSTM``,
``torch.nn.GRU``, :class:`rnnkit.nn.MinGRU` and :class:`rnnkit.nn.MinLSTM` in their parallel
mode (the default) and in their sequential mode (``parallel=False``, the layer's loop).

``--scans`` adds the recurrence alone (minGRU's, from a given projection ``(T, 8, 256)``,
forward + backward) for the methods that were measured to choose the parallel mode:

* ``fused``: :func:`rnnkit.functional.min_gru_scan`, what the cells run (chunked scan,
  gates and backward written out in one autograd function);
* ``linear_scan``: the gates under autograd, then the chunked scan with its written-out
  backward, :func:`rnnkit.functional.linear_scan`;
* ``log-space``: the gates under autograd, then the paper's log-space scan with the
  sign split, :func:`rnnkit.functional.linear_scan_log` (autograd backward);
* ``chunked-autograd``: a chunked scan in plain torch ops with a ``cumprod`` fix-up, traced
  by autograd (defined below);
* ``sequential``: the step loop, :func:`rnnkit.functional.scan` over
  ``MinGRUCell.step`` (the equations of :mod:`rnnkit.cells.mingru`).

Method: warm-up rounds, then ``--repeats`` rounds in which every contender runs once, in an
order rotated from round to round; the median of each contender's rounds is reported. A
speed-up is ``baseline ms / contender ms`` (above 1 is faster than the baseline). Before
timing, each contender's output is checked against a reference.

Usage::

    python benchmarks/bench_minimal.py [--repeats 7] [--threads 2] [--scans] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from bench_layers import available_cores, time_round_robin  # the same timing for every table
from rich.console import Console
from rich.table import Table

import rnnkit
import rnnkit.functional as RF
import rnnkit.nn

BATCH, FEATURES = 8, 128
LENGTHS = (256, 1024, 4096)
LAYERS: dict[str, Callable[[], torch.nn.Module]] = {
    "torch.nn.LSTM": lambda: torch.nn.LSTM(FEATURES, FEATURES),
    "torch.nn.GRU": lambda: torch.nn.GRU(FEATURES, FEATURES),
    "MinGRU": lambda: rnnkit.nn.MinGRU(FEATURES, FEATURES),
    "MinGRU sequential": lambda: rnnkit.nn.MinGRU(FEATURES, FEATURES, parallel=False),
    "MinLSTM": lambda: rnnkit.nn.MinLSTM(FEATURES, FEATURES),
    "MinLSTM sequential": lambda: rnnkit.nn.MinLSTM(FEATURES, FEATURES, parallel=False),
}
SEQUENTIAL = {"MinGRU": "MinGRU sequential", "MinLSTM": "MinLSTM sequential"}


@dataclass
class Result:
    table: str
    steps: int
    median_ms: dict[str, float]
    samples_ms: dict[str, list[float]]

    def speedup(self, contender: str, baseline: str) -> float:
        return self.median_ms[baseline] / self.median_ms[contender]


# -------------------------------------------------------------------------------- timing


def measure(
    table: str, steps: int, runners: dict[str, Callable[[], None]], repeats: int, warmup: int
) -> Result:
    samples = time_round_robin(runners, repeats, warmup)
    medians = {name: statistics.median(times) for name, times in samples.items()}
    return Result(table, steps, medians, samples)


# -------------------------------------------------------------------------------- layers


def layer_runners(steps: int) -> dict[str, Callable[[], None]]:
    """A training step for every layer; the two modes of each cell share their weights."""
    torch.manual_seed(0)
    modules = {name: make() for name, make in LAYERS.items()}
    for parallel, sequential in SEQUENTIAL.items():
        modules[sequential].load_state_dict(modules[parallel].state_dict())
    x = torch.randn(steps, BATCH, FEATURES, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for parallel, sequential in SEQUENTIAL.items():
            got, expected = modules[parallel](x)[0], modules[sequential](x)[0]
            if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                raise RuntimeError(f"{parallel} disagrees with its sequential mode")

    def runner(module: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            module.zero_grad(set_to_none=True)
            module(x)[0].sum().backward()

        return run

    return {name: runner(module) for name, module in modules.items()}


# --------------------------------------------------------------------------------- scans


def chunked_autograd_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + b_t`` in chunks, plain torch ops under autograd (L % C == 0).

    Local scans from 0 inside every chunk (a loop over the C positions), the carries across
    chunks (a loop over the K chunks), then ``h = local + cumprod(a) * carry`` in one pass.
    """
    length, batch, hidden = a.shape
    chunk = max(1, round((length / 3) ** 0.5))
    while length % chunk:
        chunk -= 1
    count = length // chunk
    av, bv = a.view(count, chunk, batch, hidden), b.view(count, chunk, batch, hidden)
    local = [bv[:, 0]]
    for j in range(1, chunk):
        local.append(torch.addcmul(bv[:, j], av[:, j], local[-1]))
    local_h = torch.stack(local, dim=1)  # (K, C, N, H)
    product = torch.cumprod(av, dim=1)  # (K, C, N, H)
    starts = [h0]
    for k in range(count - 1):
        starts.append(torch.addcmul(local_h[k, -1], product[k, -1], starts[-1]))
    h = torch.addcmul(local_h, product, torch.stack(starts).unsqueeze(1))
    return h.view(length, batch, hidden)


def scan_runners(steps: int) -> dict[str, Callable[[], None]]:
    """minGRU's recurrence alone, from a fixed projection, by each method."""
    generator = torch.Generator().manual_seed(2)
    projected = torch.randn(steps, BATCH, 2 * FEATURES, generator=generator).requires_grad_()
    h0 = torch.zeros(BATCH, FEATURES)

    def gates() -> tuple[torch.Tensor, torch.Tensor]:
        k_z, candidate = projected.chunk(2, dim=-1)  # minGRU: a = 1 - z, b = z * h~
        z = torch.sigmoid(k_z)
        return 1.0 - z, z * candidate

    step = rnnkit.nn.MinGRUCell(FEATURES, FEATURES).step  # reads only the projected x_t

    methods: dict[str, Callable[[], torch.Tensor]] = {
        "fused": lambda: RF.min_gru_scan(projected, h0)[0],
        "linear_scan": lambda: RF.linear_scan(*gates(), h0)[0],
        "log-space": lambda: RF.linear_scan_log(*gates(), h0)[0],
        "chunked-autograd": lambda: chunked_autograd_scan(*gates(), h0),
        "sequential": lambda: RF.scan(step, projected, (h0,))[0],
    }
    with torch.no_grad():
        expected = methods["sequential"]()
        for name, method in methods.items():
            error = (method() - expected).abs().max().item()
            # the log-space scan's error grows with T (see linear_scan_log); the others are exact
            if error > (1e-2 if name == "log-space" else 1e-4):
                raise RuntimeError(f"{name} disagrees with the sequential scan: {error:.1e}")

    def runner(method: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            projected.grad = None
            method().sum().backward()

        return run

    return {name: runner(method) for name, method in methods.items()}


# -------------------------------------------------------------------------------- output


def render_layers(results: list[Result], console: Console) -> None:
    table = Table(
        title=f"Training step (forward + backward), B={BATCH} I=H={FEATURES}: median ms and "
        "speed-up (baseline ms / ms)"
    )
    for column in ("T", "layer", "ms", "vs nn.LSTM", "vs nn.GRU", "vs own sequential"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for r in results:
        for name in r.median_ms:
            own = SEQUENTIAL.get(name)
            table.add_row(
                str(r.steps),
                name,
                f"{r.median_ms[name]:.1f}",
                f"{r.speedup(name, 'torch.nn.LSTM'):.2f}x",
                f"{r.speedup(name, 'torch.nn.GRU'):.2f}x",
                f"{r.speedup(name, own):.2f}x" if own else "",
            )
        table.add_section()
    console.print(table)


def render_scans(results: list[Result], console: Console) -> None:
    table = Table(
        title=f"minGRU recurrence alone (forward + backward), N={BATCH} H={FEATURES}: median ms "
        "and time relative to fused"
    )
    for column in ("T", "method", "ms", "x fused time"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for r in results:
        for name, ms in r.median_ms.items():
            table.add_row(str(r.steps), name, f"{ms:.1f}", f"{ms / r.median_ms['fused']:.2f}")
        table.add_section()
    console.print(table)


def environment(repeats: int, warmup: int) -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cores": available_cores(),
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "repeats": repeats,
        "warmup": warmup,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=list(LENGTHS), help="T values (256 1024 4096)"
    )
    parser.add_argument("--scans", action="store_true", help="also time the scan methods alone")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1 or min(args.lengths) < 1:
        parser.error("--repeats, --threads and --lengths must be >= 1, --warmup >= 0")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    meta = environment(args.repeats, args.warmup)
    console.print(
        f"torch {meta['torch']}, threads = {meta['threads']} (cores: {meta['cores']}, load "
        f"average {meta['load_average']}), repeats = {args.repeats}, warm-up = {args.warmup}"
    )
    load = meta["load_average"]
    if load and load[0] > meta["cores"] - args.threads + 0.5:
        console.print(
            f"warning: load average {load[0]:.1f} on {meta['cores']} cores: other processes "
            "compete for the CPU, and multi-threaded timings (torch.nn's per-step kernels "
            "most) suffer from it; compare ratios from a quiet machine",
            style="yellow",
        )
    start = time.perf_counter()
    layers = [
        measure("layers", steps, layer_runners(steps), args.repeats, args.warmup)
        for steps in args.lengths
    ]
    render_layers(layers, console)
    scans = []
    if args.scans:
        scans = [
            measure("scans", steps, scan_runners(steps), args.repeats, args.warmup)
            for steps in args.lengths
        ]
        render_scans(scans, console)
    console.print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        payload = {"environment": meta, "results": [asdict(r) for r in layers + scans]}
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
