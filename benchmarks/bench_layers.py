"""Time rnnkit's layers against torch.nn's on the CPU.

For each layer type and configuration, three contenders share the same weights
(``load_state_dict``): ``torch.nn``, rnnkit's default path (``fused=True``: torch's fused
kernel behind rnnkit's checks) and rnnkit's reference path (``fused=False``: the Python time
loop over :mod:`rnnkit.functional`). Each is timed for a forward pass under
``torch.no_grad()`` and for forward + backward of ``output.sum()``.

Method: warm-up runs, then ``--repeats`` rounds in which every contender runs once, in an
order rotated from round to round (so machine noise and cache effects hit all of them alike);
the median of each contender's rounds is reported, with the ratio rnnkit / torch.nn.

By default LSTM runs on every configuration and GRU and RNN on the first one (``--all``:
every layer on every configuration; ``--quick``: every layer on the first configuration
with 3 rounds, a smoke test).

Usage::

    python benchmarks/bench_layers.py [--repeats 10] [--quick | --all] [--json results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import rnnkit
import rnnkit.nn

LAYERS: dict[str, tuple[type[torch.nn.Module], type[torch.nn.Module]]] = {
    "LSTM": (torch.nn.LSTM, rnnkit.nn.LSTM),
    "GRU": (torch.nn.GRU, rnnkit.nn.GRU),
    "RNN": (torch.nn.RNN, rnnkit.nn.RNN),
}
MODES = ("forward", "forward+backward")
BASELINE, DEFAULT, REFERENCE = "torch.nn", "rnnkit", "rnnkit-reference"


@dataclass(frozen=True)
class Config:
    batch: int
    steps: int
    inputs: int
    hidden: int

    def __str__(self) -> str:
        return f"B={self.batch} T={self.steps} I={self.inputs} H={self.hidden}"


CONFIGS = (Config(1, 256, 32, 64), Config(16, 256, 32, 128), Config(64, 128, 64, 256))
FULL_SWEEP = ("LSTM",)  # layers that run on every configuration unless --all or --quick


@dataclass
class Result:
    layer: str
    config: str
    mode: str
    median_ms: dict[str, float]
    samples_ms: dict[str, list[float]]

    def ratio(self, contender: str) -> float:
        return self.median_ms[contender] / self.median_ms[BASELINE]


# ------------------------------------------------------------------------ contenders


def build_contenders(layer: str, config: Config) -> dict[str, torch.nn.Module]:
    """torch.nn's layer and rnnkit's two paths, all with torch.nn's (seeded) weights."""
    torch_type, rnnkit_type = LAYERS[layer]
    torch.manual_seed(0)
    baseline = torch_type(config.inputs, config.hidden)
    contenders = {BASELINE: baseline}
    for name, fused in ((DEFAULT, True), (REFERENCE, False)):
        module = rnnkit_type(config.inputs, config.hidden, fused=fused)
        module.load_state_dict(baseline.state_dict())
        contenders[name] = module
    return contenders


def make_input(config: Config) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(config.steps, config.batch, config.inputs, generator=generator)


def check_agreement(contenders: dict[str, torch.nn.Module], x: torch.Tensor) -> None:
    """Refuse to time contenders that do not compute the same thing."""
    with torch.no_grad():
        expected = contenders[BASELINE](x)[0]
        for name, module in contenders.items():
            got = module(x)[0]
            if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                raise RuntimeError(f"{name} disagrees with {BASELINE} on the benchmark input")


def make_runner(module: torch.nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    """One timed unit of work for ``module``: a forward, or a forward and a backward."""

    def forward() -> None:
        with torch.no_grad():
            module(x)

    def forward_backward() -> None:
        module.zero_grad(set_to_none=True)
        module(x)[0].sum().backward()

    return forward if mode == "forward" else forward_backward


# -------------------------------------------------------------------------- timing


def time_ms(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def time_round_robin(
    runners: dict[str, Callable[[], None]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Interleave the runners: each round runs every one once, starting one further along."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_ms(runners[name]))
    return samples


def benchmark(layer: str, config: Config, repeats: int, warmup: int) -> Iterator[Result]:
    """Time the three contenders of ``layer`` on ``config``, one :class:`Result` per mode."""
    contenders = build_contenders(layer, config)
    x = make_input(config)
    check_agreement(contenders, x)
    for mode in MODES:
        runners = {name: make_runner(module, x, mode) for name, module in contenders.items()}
        samples = time_round_robin(runners, repeats, warmup)
        medians = {name: statistics.median(times) for name, times in samples.items()}
        yield Result(layer, str(config), mode, medians, samples)


# -------------------------------------------------------------------------- output


def render(results: list[Result], console: Console) -> None:
    table = Table(title="rnnkit vs torch.nn (median ms; ratio = rnnkit / torch.nn)")
    for column in ("layer", "config", "mode"):
        table.add_column(column, no_wrap=True)
    for column in ("torch.nn ms", "rnnkit ms", "reference ms", "ratio default", "ratio reference"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.layer,
            r.config,
            r.mode,
            *(f"{r.median_ms[name]:.2f}" for name in (BASELINE, DEFAULT, REFERENCE)),
            f"{r.ratio(DEFAULT):.2f}x",
            f"{r.ratio(REFERENCE):.2f}x",
        )
    console.print(table)


def environment(threads: int, repeats: int, warmup: int) -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
    }


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--quick", action="store_true", help="first configuration, 3 rounds")
    scope.add_argument("--all", action="store_true", help="every layer on every configuration")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument(
        "--threads", type=int, default=available_cores(), help="torch threads (default: cores)"
    )
    parser.add_argument(
        "--layers", nargs="+", choices=list(LAYERS), default=list(LAYERS), help="layer types"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 3), min(args.warmup, 1)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    return args


def plan(args: argparse.Namespace) -> list[tuple[str, Config]]:
    """The (layer, configuration) pairs this run times."""
    pairs = []
    for layer in args.layers:
        full = args.all or (layer in FULL_SWEEP and not args.quick)
        pairs += [(layer, config) for config in (CONFIGS if full else CONFIGS[:1])]
    return pairs


def progress_line(result: Result) -> str:
    times = ", ".join(f"{name} {ms:.1f} ms" for name, ms in result.median_ms.items())
    return (
        f"  {result.layer} {result.config} {result.mode}: {times}; "
        f"ratios {result.ratio(DEFAULT):.2f}x / {result.ratio(REFERENCE):.2f}x"
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=None if Console().is_terminal else 150)
    meta = environment(torch.get_num_threads(), args.repeats, args.warmup)
    console.print(
        f"torch {meta['torch']}, threads = {meta['threads']} (cores: {available_cores()}), "
        f"repeats = {args.repeats}, warm-up = {args.warmup}, "
        f"load average = {meta['load_average_1min']}"
    )
    results = []
    start = time.perf_counter()
    for layer, config in plan(args):
        for result in benchmark(layer, config, args.repeats, args.warmup):
            results.append(result)
            console.print(progress_line(result), style="dim", highlight=False, soft_wrap=True)
    render(results, console)
    console.print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        payload = {"environment": meta, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
