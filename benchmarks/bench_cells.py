"""Time the extended layers (and rnnkit's regularised LSTM) relative to torch.nn.LSTM on the CPU.

Contenders, all with the same input and hidden size: ``torch.nn.LSTM`` (the baseline),
``rnnkit.nn.LSTM`` with ``recurrent_dropout=0.25`` and with ``zoneout=0.1`` (both in train
mode, where the regularisers run), and ``JordanRNN``, ``PeepholeLSTM``, ``LayerNormLSTM``,
``LayerNormGRU`` and ``IndRNN`` with their default options. Every module is in train mode.
Each is timed for a forward pass under ``torch.no_grad()`` and for forward + backward of
``output.sum()``.

Method: warm-up rounds, then ``--repeats`` rounds in which every contender runs once, in an
order rotated from round to round (so machine noise hits all of them alike); the median of
each contender's rounds is reported with its ratio to torch.nn.LSTM's median.

On a shared machine with more busy processes than cores, run with
``OMP_WAIT_POLICY=PASSIVE``: with torch's default (spinning) OpenMP workers, every parallel
region then waits for a descheduled thread, and a 2-thread torch.nn.LSTM forward that takes
~0.1 s takes ~10 s (measured); the script warns when the load suggests this.

Usage::

    python benchmarks/bench_cells.py [--all] [--repeats 7] [--json results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from bench_layers import Config, make_runner, time_round_robin  # the same timing everywhere
from rich.console import Console
from rich.table import Table

import rnnkit
import rnnkit.nn as rnn

BASELINE = "torch.nn.LSTM"
MODES = ("forward", "forward+backward")
CONTENDERS: dict[str, Callable[[int, int], torch.nn.Module]] = {
    BASELINE: lambda i, h: torch.nn.LSTM(i, h),
    "LSTM recurrent_dropout=0.25": lambda i, h: rnn.LSTM(i, h, recurrent_dropout=0.25),
    "LSTM zoneout=0.1": lambda i, h: rnn.LSTM(i, h, zoneout=0.1),
    "JordanRNN": rnn.JordanRNN,
    "PeepholeLSTM": rnn.PeepholeLSTM,
    "LayerNormLSTM": rnn.LayerNormLSTM,
    "LayerNormGRU": rnn.LayerNormGRU,
    "IndRNN": rnn.IndRNN,
}


DEFAULT_CONFIG = Config(16, 256, 32, 128)
EXTRA_CONFIGS = (Config(1, 256, 32, 64), Config(64, 128, 64, 256))


@dataclass
class Result:
    contender: str
    config: str
    mode: str
    median_ms: float
    ratio: float  # median_ms / the baseline's median_ms
    samples_ms: list[float]


def benchmark(config: Config, repeats: int, warmup: int) -> list[Result]:
    torch.manual_seed(0)
    modules = {name: make(config.inputs, config.hidden) for name, make in CONTENDERS.items()}
    for module in modules.values():
        module.train()
    x = torch.randn(config.steps, config.batch, config.inputs)
    results = []
    for mode in MODES:
        runners = {name: make_runner(module, x, mode) for name, module in modules.items()}
        samples = time_round_robin(runners, repeats, warmup)
        base = statistics.median(samples[BASELINE])
        for name, times in samples.items():
            median = statistics.median(times)
            results.append(Result(name, str(config), mode, median, median / base, times))
    return results


def render(results: list[Result], console: Console) -> None:
    table = Table(
        title="median ms; ratio = contender / torch.nn.LSTM (same config and mode); "
        "fwd under no_grad, all in train mode"
    )
    table.add_column("layer")
    table.add_column("config")
    for mode in MODES:
        short = "fwd" if mode == "forward" else "fwd+bwd"
        table.add_column(f"{short} ms", justify="right")
        table.add_column(f"{short} ratio", justify="right")
    rows: dict[tuple[str, str], dict[str, Result]] = {}
    for r in results:
        rows.setdefault((r.contender, r.config), {})[r.mode] = r
    for (contender, config), by_mode in rows.items():
        cells = []
        for mode in MODES:
            cells += [f"{by_mode[mode].median_ms:.1f}", f"{by_mode[mode].ratio:.2f}x"]
        table.add_row(contender, config, *cells)
    console.print(table)


def environment(threads: int, repeats: int, warmup: int) -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--all", action="store_true", help=f"also {', '.join(map(str, EXTRA_CONFIGS))}"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=None if sys.stdout.isatty() else 120)
    meta = environment(torch.get_num_threads(), args.repeats, args.warmup)
    console.print(
        f"torch {meta['torch']}, threads = {meta['threads']}, repeats = {args.repeats}, "
        f"warm-up = {args.warmup}, load average (1 min) = {meta['load_average_1min']}, "
        f"OMP_WAIT_POLICY = {meta['OMP_WAIT_POLICY']}"
    )
    load = meta["load_average_1min"]
    if load is not None and load > (os.cpu_count() or 1) and not meta["OMP_WAIT_POLICY"]:
        console.print(
            "warning: the machine is busier than its cores; set OMP_WAIT_POLICY=PASSIVE "
            "(see the module docstring) or the timings mostly measure thread waits",
            style="yellow",
        )
    configs = (DEFAULT_CONFIG, *EXTRA_CONFIGS) if args.all else (DEFAULT_CONFIG,)
    start = time.perf_counter()
    results = []
    for config in configs:
        results += benchmark(config, args.repeats, args.warmup)
        console.print(f"  {config}: done", style="dim")
    render(results, console)
    console.print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        payload = {"environment": meta, "results": [asdict(r) for r in results]}
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(args.json)  # atomic: a killed run leaves no half-written file
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
