"""Time the fused engine against torch.nn.LSTM over the grid of shapes users train (issue 26).

Grid: batch B in 1, 4, 16, 64, 256; steps T in 35, 128, 512; sizes (I, H) in (4, 64),
(32, 128), (200, 200), (256, 512), (650, 650). At every point, in two modes, ``forward``
(eval, ``torch.no_grad()``) and ``forward+backward`` (training mode, an input that requires
grad as after an embedding or a lower layer, ``output.sum().backward()``), each with and
without ``lengths=`` (lengths spread evenly from T down to 1: :func:`spread_lengths`):

* the layers: ``LayerNormLSTM``, ``PeepholeLSTM``, ``LSTM`` with ``recurrent_dropout=0.25``
  and with ``zoneout=0.1``, ``LayerNormGRU`` (``bench_engine.LAYERS``);
* the baseline: ``torch.nn.LSTM(I, H)`` on the same input, and with lengths
  ``pack_padded_sequence -> torch.nn.LSTM -> pad_packed_sequence`` (:class:`PackedLSTM`).

Method: every layer and the baseline first run ``--warmup`` untimed calls at the point. Then
each round times every layer right next to a baseline call (the pair's order alternating
from round to round, the layers' order rotating), and the cell is the median over rounds of
``layer ms / baseline ms`` taken in the same round. Rounds stop at ``--repeats``, or earlier
once another round would take the point past ``--budget`` seconds (always at least one), so
that the largest points cost a few calls each rather than many minutes.

Usage::

    python benchmarks/bench_grid.py [--threads 1] [--quick] [--batch 1 16] [--steps 35]
        [--sizes 4x64 200x200] [--layers LayerNormLSTM ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from bench_engine import LAYERS, MODES, runner
from bench_layers import Config as Point  # one shape of the grid: B, T, I, H
from bench_layers import time_ms
from bench_minimal import environment
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_info
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.functional

BATCHES = (1, 4, 16, 64, 256)
STEPS = (35, 128, 512)
SIZES = ((4, 64), (32, 128), (200, 200), (256, 512), (650, 650))  # (I, H)
QUICK_BATCHES, QUICK_STEPS, QUICK_SIZES = (1, 16), (35,), ((4, 64), (200, 200))
GRID_LAYERS = ("LayerNormLSTM", "PeepholeLSTM", "LSTM rec-dropout", "LSTM zoneout", "LayerNormGRU")
BAR = 1.5  # the bar: a layer at most 1.5x torch.nn.LSTM's time
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
RESULTS = Path(__file__).parent / "results"


def build_grid(
    batches: Iterable[int], steps: Iterable[int], sizes: Iterable[tuple[int, int]]
) -> list[Point]:
    """Every combination of the given batches, steps and (input, hidden) sizes, in order."""
    return [Point(b, t, i, h) for b, t, (i, h) in itertools.product(batches, steps, sizes)]


def spread_lengths(batch: int, steps: int) -> torch.Tensor:
    """``batch`` lengths from ``steps`` down to 1, evenly spread (one sequence: ``steps``)."""
    return torch.linspace(steps, 1, batch, dtype=torch.float64).round().long()


class PackedLSTM(torch.nn.Module):
    """``torch.nn.LSTM`` on a padded batch with lengths, as its users run one: pack, run, pad
    (unsorted, ``enforce_sorted=False``, the way a data loader's batches come)."""

    def __init__(self, lstm: torch.nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        output, state = self.lstm(packed)
        return pad_packed_sequence(output, total_length=x.shape[0])[0], state


def grid_runner(
    module: torch.nn.Module, x: torch.Tensor, mode: str, **kwargs: object
) -> Callable[[], None]:
    """``bench_engine.runner``, with the input's gradient dropped before each training step
    so that no call pays for accumulating into the previous one's."""
    run = runner(module, x, mode, **kwargs)
    if mode == "forward":
        return run

    def fresh() -> None:
        x.grad = None
        run()

    return fresh


def paired_ratios(
    layers: dict[str, Callable[[], None]],
    baseline: Callable[[], None],
    repeats: int,
    budget: float,
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[float]]:
    """Per-round ``layer ms / baseline ms``, each layer timed next to its own baseline call.

    ``bench_minimal.time_round_robin`` runs a fixed number of rounds with one baseline call
    each; here every layer gets an adjacent baseline call (the machine's load changes within
    a round) and the rounds stop at the time budget. Returns the ratios, the layers' ms and
    the baseline's ms, each by round."""
    names = list(layers)
    ratios: dict[str, list[float]] = {name: [] for name in names}
    layer_ms: dict[str, list[float]] = {name: [] for name in names}
    baseline_ms: list[float] = []
    start = time.perf_counter()
    for round_index in range(repeats):
        elapsed = time.perf_counter() - start
        if round_index and elapsed * (round_index + 1) / round_index > budget:
            break
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if round_index % 2:
                base, own = time_ms(baseline), time_ms(layers[name])
            else:
                own, base = time_ms(layers[name]), time_ms(baseline)
            ratios[name].append(own / base)
            layer_ms[name].append(own)
            baseline_ms.append(base)
    return ratios, layer_ms, baseline_ms


def measure_point(
    point: Point, layers: Sequence[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every mode, without and with lengths, at one grid point: one result each."""
    torch.manual_seed(0)
    modules = {name: LAYERS[name](point.inputs, point.hidden) for name in layers}
    lstm = torch.nn.LSTM(point.inputs, point.hidden)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(point.steps, point.batch, point.inputs, generator=generator)
    x.requires_grad_()
    lengths = spread_lengths(point.batch, point.steps)
    results = []
    for mode, with_lengths in itertools.product(MODES, (False, True)):
        if with_lengths:
            baseline = grid_runner(PackedLSTM(lstm), x, mode, lengths=lengths)
            runners = {n: grid_runner(m, x, mode, lengths=lengths) for n, m in modules.items()}
        else:
            baseline = grid_runner(lstm, x, mode)
            runners = {n: grid_runner(m, x, mode) for n, m in modules.items()}
        for _ in range(args.warmup):
            for run in (baseline, *runners.values()):
                run()
        ratios, layer_ms, baseline_ms = paired_ratios(runners, baseline, args.repeats, args.budget)
        results.append(
            {
                **vars(point),
                "mode": mode,
                "lengths": with_lengths,
                "rounds": len(baseline_ms) // len(runners),
                "baseline_ms": statistics.median(baseline_ms),
                "layers": {
                    name: {
                        "ratio": statistics.median(ratios[name]),
                        "ms": statistics.median(layer_ms[name]),
                        "ratios": ratios[name],
                    }
                    for name in runners
                },
            }
        )
    return results


def load_engine(layers: Sequence[str]) -> None:
    """One tiny call of each layer in each mode: numba compiles (or loads its cache) and the
    engine loads its BLAS here, so that the environment read next lists every library."""
    x = torch.randn(3, 4, 4, requires_grad=True)
    for name in layers:
        module = LAYERS[name](4, 8)
        for mode in MODES:
            grid_runner(module, x, mode)()


def cpu_field(name: str) -> str | None:
    """The first ``name`` field of ``/proc/cpuinfo`` (``model name``, ``flags``), or None off
    Linux."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    values = (line.split(":", 1)[1].strip() for line in lines if line.startswith(name))
    return next(values, None)


def cpu_model() -> str:
    """The CPU's model name, or "unknown" off Linux."""
    return cpu_field("model name") or "unknown"


def vector_extensions() -> list[str]:
    """Which of AVX-512 (``avx512f``) and AVX2 the CPU has: on AVX-512 CPUs ``nn.LSTM``'s
    oneDNN kernels gain more than the engine's loops."""
    flags = (cpu_field("flags") or "").split()
    return [flag for flag in ("avx512f", "avx2") if flag in flags]


def machine_report(args: argparse.Namespace) -> dict[str, Any]:
    """``bench_minimal.environment`` and what decides the BLAS kernels that run."""
    engine_blas = getattr(rnnkit.functional, "engine_blas", None)
    return {
        **environment(args.repeats, args.warmup),
        "cpu_model": cpu_model(),
        "vector_extensions": vector_extensions(),
        "budget_s": args.budget,
        "openblas_env": {name: os.environ.get(name, "unset") for name in OPENBLAS_ENV},
        "blas": [
            {key: lib.get(key) for key in ("filepath", "internal_api", "version", "architecture")}
            for lib in threadpool_info()
            if lib.get("user_api") == "blas"
        ],
        "engine_blas": engine_blas() if callable(engine_blas) else None,
    }


def summarise(results: list[dict[str, Any]], layers: Sequence[str]) -> dict[str, dict]:
    """Per mode and layer, over the rows (points, without and with lengths): the worst and
    median ratio, and how many rows are above the bar."""
    summary: dict[str, dict] = {}
    for mode in MODES:
        rows = [r for r in results if r["mode"] == mode]
        if not rows:
            continue
        summary[mode] = {}
        for name in layers:
            ratios = [r["layers"][name]["ratio"] for r in rows]
            worst, worst_at = max(zip(ratios, map(row_label, rows), strict=True))
            summary[mode][name] = {
                "worst": worst,
                "worst_at": worst_at,
                "median": statistics.median(ratios),
                "above_bar": sum(ratio > BAR for ratio in ratios),
                "rows": len(ratios),
            }
    return summary


def row_label(result: dict[str, Any]) -> str:
    """A result's grid point, and whether it ran with lengths."""
    point = Point(result["batch"], result["steps"], result["inputs"], result["hidden"])
    return f"{point}{' lengths' if result['lengths'] else ''}"


def ratio_cell(ratio: float) -> str:
    """A ratio for the table, in red above the bar."""
    return f"[bold red]{ratio:.2f}x[/]" if ratio > BAR else f"{ratio:.2f}x"


def render(
    results: list[dict[str, Any]], summary: dict, layers: Sequence[str], console: Console
) -> None:
    """A table per mode (rows: grid points, cells: ratios), then a line per layer."""
    for mode, by_layer in summary.items():
        table = Table(
            title=f"{mode}: layer ms / torch.nn.LSTM ms, median of per-round ratios "
            f"(lengths: against pack -> nn.LSTM -> pad; red: above {BAR}x)"
        )
        for column in ("B", "T", "I", "H", "lengths", *layers, "nn.LSTM ms", "rounds"):
            table.add_column(column, justify="left" if column == "lengths" else "right")
        for r in (r for r in results if r["mode"] == mode):
            table.add_row(
                *(str(r[key]) for key in ("batch", "steps", "inputs", "hidden")),
                "1..T" if r["lengths"] else "",
                *(ratio_cell(r["layers"][name]["ratio"]) for name in layers),
                f"{r['baseline_ms']:.2f}",
                str(r["rounds"]),
            )
        console.print(table)
        for name, s in by_layer.items():
            console.print(
                f"  {mode} {name}: worst {s['worst']:.2f}x ({s['worst_at']}), median "
                f"{s['median']:.2f}x, {s['above_bar']} of {s['rows']} rows above "
                f"{BAR}x"
            )


def print_machine(report: dict[str, Any], console: Console) -> None:
    """The run's header: the machine, torch's threads and the BLAS libraries loaded."""
    load = " ".join(f"{n:.2f}" for n in report["load_average"] or [])
    console.print(
        f"CPU {report['cpu_model']} ({report['cores']} cores), torch {report['torch']}, "
        f"threads {report['threads']}, load average {load}, repeats "
        f"{report['repeats']}, warm-up {report['warmup']}, budget {report['budget_s']} s"
    )
    console.print(", ".join(f"{k}={v}" for k, v in report["openblas_env"].items()))
    for lib in report["blas"]:
        path = Path(lib["filepath"])
        console.print(
            f"BLAS: {lib['internal_api']} {lib['version']} {lib['architecture']} "
            f"({path.parent.name}/{path.name})"
        )
    engine = report["engine_blas"]
    console.print(
        f"engine BLAS: {'(no rnnkit.functional.engine_blas)' if engine is None else engine}"
    )


def write_whole(path: Path, text: str) -> None:
    """Replace ``path`` whole, so that an interrupted run leaves the last complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, report: dict[str, Any]) -> None:
    write_whole(path, json.dumps(report, indent=2, default=str))


def size_pair(text: str) -> tuple[int, int]:
    """``"200x200"`` -> ``(200, 200)``: input and hidden size."""
    try:
        inputs, hidden = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IxH, e.g. 200x200, got {text!r}") from None
    return inputs, hidden


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; the grid filters default to the full grid, or ``--quick``'s."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--repeats", type=int, default=7, help="most timed rounds a point (7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls a point (1)")
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of timed rounds per point, mode and lengths (20)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="B 1 16, T 35, sizes 4x64 200x200 unless given (a smoke test)",
    )
    parser.add_argument("--batch", type=int, nargs="+", help="B values (default: all)")
    parser.add_argument("--steps", type=int, nargs="+", help="T values (default: all)")
    parser.add_argument("--sizes", type=size_pair, nargs="+", help="IxH pairs (default: all)")
    parser.add_argument("--layers", nargs="+", choices=GRID_LAYERS, default=list(GRID_LAYERS))
    parser.add_argument("--json", type=Path, help="default benchmarks/results/grid-<N>t.json")
    args = parser.parse_args(argv)
    args.batch = args.batch or list(QUICK_BATCHES if args.quick else BATCHES)
    args.steps = args.steps or list(QUICK_STEPS if args.quick else STEPS)
    args.sizes = args.sizes or list(QUICK_SIZES if args.quick else SIZES)
    args.json = args.json or RESULTS / f"grid-{args.threads}t.json"
    sizes = [n for pair in args.sizes for n in pair]
    if min(args.repeats, args.threads, *args.batch, *args.steps, *sizes) < 1:
        parser.error("--repeats, --threads, --batch, --steps and --sizes must be >= 1")
    if args.warmup < 0 or args.budget <= 0:
        parser.error("--warmup must be >= 0 and --budget > 0")
    return args


def main() -> None:
    """Time the selected grid, writing the JSON after every point, then print the tables."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=200)
    load_engine(args.layers)
    report = machine_report(args)
    print_machine(report, console)
    points = build_grid(args.batch, args.steps, args.sizes)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    for point in points:
        for r in measure_point(point, args.layers, args):
            results.append(r)
            cells = ", ".join(f"{n} {c['ratio']:.2f}x" for n, c in r["layers"].items())
            console.print(
                f"  {row_label(r)} {r['mode']}: {cells} (nn.LSTM "
                f"{r['baseline_ms']:.1f} ms, {r['rounds']} rounds)"
            )
        report |= {"results": results, "summary": summarise(results, args.layers)}
        write_json(args.json, report)
    render(results, report["summary"], args.layers, console)
    console.print(f"{len(points)} points in {time.perf_counter() - start:.0f} s; wrote {args.json}")


if __name__ == "__main__":
    main()
