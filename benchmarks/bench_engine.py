"""Time the extended cells' fused engine against torch.nn.LSTM and a naive LSTMCell loop.

Tables (all times are medians of interleaved rounds, ratios taken inside one run):

* **layers**: for each layer and configuration, ``forward`` (eval, ``torch.no_grad()``) and
  ``forward+backward`` (training mode, ``output.sum().backward()``) time divided by
  ``torch.nn.LSTM``'s and by a Python loop over ``torch.nn.LSTMCell`` of the same sizes.
  "LSTM rec-dropout" and "LSTM zoneout" are :class:`rnnkit.nn.LSTM` with
  ``recurrent_dropout=0.25`` / ``zoneout=0.1`` (in eval, recurrent dropout is off, so that
  forward is torch's own kernel).
* **user-defined cell**: an LSTM-like cell written by subclassing
  :class:`rnnkit.nn.RecurrentCell`, run by :class:`rnnkit.nn.Recurrent` (the reference path,
  input projection hoisted) against the same cell in a naive Python loop (projected step by
  step), in the rounds of the layers table.
* **lengths**: a batch whose lengths run evenly from 1 to T, forward+backward, against
  ``pack_padded_sequence -> torch.nn.LSTM -> pad_packed_sequence`` and against each layer on
  the padded batch in full.
* **scans**: MinGRU / MinLSTM training at T = 256, 1024, 4096 (``bench_minimal.py``'s
  contenders), against torch.nn.LSTM, torch.nn.GRU and their own sequential mode.
* **memory**: peak resident memory added by one forward+backward of LayerNormLSTM at
  B=16 T=1024 I=64 H=256 against torch.nn.LSTM, each in a fresh process (sampled RSS).

Usage::

    python benchmarks/bench_engine.py [--repeats 5] [--threads 1] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from bench_minimal import layer_runners, render_layers, time_round_robin
from bench_minimal import measure as measure_scan
from rich.console import Console
from rich.table import Table
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
import rnnkit.nn

CONFIGS = ((1, 256, 32, 64), (16, 256, 32, 128), (64, 128, 64, 256))  # B, T, I, H
LAYERS: dict[str, Callable[[int, int], torch.nn.Module]] = {
    "LayerNormLSTM": rnnkit.nn.LayerNormLSTM,
    "PeepholeLSTM": rnnkit.nn.PeepholeLSTM,
    "LSTM rec-dropout": lambda i, h: rnnkit.nn.LSTM(i, h, recurrent_dropout=0.25),
    "LSTM zoneout": lambda i, h: rnnkit.nn.LSTM(i, h, zoneout=0.1),
    "LayerNormGRU": rnnkit.nn.LayerNormGRU,
    "IndRNN": rnnkit.nn.IndRNN,
    "JordanRNN": rnnkit.nn.JordanRNN,
}
MODES = ("forward", "forward+backward")
BASELINE, LOOP = "torch.nn.LSTM", "LSTMCell loop"
CUSTOM, CUSTOM_LOOP = "custom cell via Recurrent", "custom cell naive loop"
MEMORY_CONFIG = (16, 1024, 64, 256)
RESULTS = Path(__file__).parent / "results" / "engine.json"


class CellLoop(torch.nn.Module):
    """The usual way to write an extended LSTM: a Python loop over ``torch.nn.LSTMCell``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = torch.nn.LSTMCell(input_size, hidden_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        h = c = x.new_zeros(x.shape[1], self.cell.hidden_size)
        outputs = []
        for x_t in x.unbind(0):
            h, c = self.cell(x_t, (h, c))
            outputs.append(h)
        return torch.stack(outputs), None


class CustomLSTMCell(rnnkit.nn.RecurrentCell):
    """A user-defined cell as a user would write it: an LSTM step in plain torch ops."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, (hidden_size, hidden_size))
        self.ih = torch.nn.Linear(input_size, 4 * hidden_size)
        self.hh = torch.nn.Linear(hidden_size, 4 * hidden_size, bias=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.ih(x)  # (..., 4H)

    def step(self, x_t, state, dropout_mask=None):
        h, c = state
        i, f, g, o = (x_t + self.hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class NaiveLoop(torch.nn.Module):
    """``cell`` run by a Python loop over time, projecting each step's input on its own."""

    def __init__(self, cell: rnnkit.nn.RecurrentCell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        state = tuple(x.new_zeros(x.shape[1], size) for size in self.cell.state_sizes)
        outputs = []
        for x_t in x.unbind(0):
            state = self.cell.step(self.cell.project(x_t), state)
            outputs.append(state[0])
        return torch.stack(outputs), None


def runner(module: torch.nn.Module, x: torch.Tensor, mode: str, **kwargs: object) -> Callable:
    """One timed unit of work: an eval forward under no_grad, or a training step."""

    def forward() -> None:
        module.eval()
        with torch.no_grad():
            module(x, **kwargs)

    def forward_backward() -> None:
        module.train()
        module.zero_grad(set_to_none=True)
        module(x, **kwargs)[0].sum().backward()

    return forward if mode == "forward" else forward_backward


def medians(runners: dict[str, Callable], repeats: int, warmup: int) -> dict[str, float]:
    samples = time_round_robin(runners, repeats, warmup)
    return {name: statistics.median(times) for name, times in samples.items()}


def layer_table(configs: tuple, repeats: int, warmup: int) -> tuple[list[dict], list[dict]]:
    """The layers table and the user-defined cell's rows (timed in the same rounds)."""
    rows, custom = [], []
    for batch, steps, inputs, hidden in configs:
        torch.manual_seed(0)
        modules = {BASELINE: torch.nn.LSTM(inputs, hidden), LOOP: CellLoop(inputs, hidden)}
        modules |= {name: make(inputs, hidden) for name, make in LAYERS.items()}
        modules[CUSTOM] = rnnkit.nn.Recurrent(CustomLSTMCell, inputs, hidden)
        modules[CUSTOM_LOOP] = NaiveLoop(modules[CUSTOM].cells[0])
        x = torch.randn(steps, batch, inputs)
        config = f"B={batch} T={steps} I={inputs} H={hidden}"
        for mode in MODES:
            runners = {name: runner(m, x, mode) for name, m in modules.items()}
            ms = medians(runners, repeats, warmup)
            for name in LAYERS:
                rows.append({"layer": name, "config": config, "mode": mode, "ms": ms[name],
                             "baseline_ms": ms[BASELINE], "loop_ms": ms[LOOP],
                             "vs_lstm": ms[name] / ms[BASELINE],
                             "vs_loop": ms[name] / ms[LOOP]})  # fmt: skip
            custom.append({"config": config, "mode": mode, "ms": ms[CUSTOM],
                           "naive_loop_ms": ms[CUSTOM_LOOP], "baseline_ms": ms[BASELINE],
                           "vs_naive_loop": ms[CUSTOM] / ms[CUSTOM_LOOP],
                           "vs_lstm": ms[CUSTOM] / ms[BASELINE]})  # fmt: skip
    return rows, custom


def lengths_table(repeats: int, warmup: int) -> list[dict]:
    batch, steps, inputs, hidden = 16, 256, 32, 128
    torch.manual_seed(0)
    x = torch.randn(steps, batch, inputs)
    lengths = torch.linspace(1, steps, batch).round().long()
    lstm = torch.nn.LSTM(inputs, hidden)

    def packed() -> None:
        lstm.zero_grad(set_to_none=True)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        pad_packed_sequence(lstm(packed)[0], total_length=steps)[0].sum().backward()

    runners = {
        "pack->nn.LSTM->pad": packed,
        "nn.LSTM padded in full": runner(lstm, x, "forward+backward"),
    }
    for name in ("LayerNormLSTM", "LSTM zoneout", "LayerNormGRU"):
        layer = LAYERS[name](inputs, hidden)
        runners[f"{name} lengths="] = runner(layer, x, "forward+backward", lengths=lengths)
        runners[f"{name} padded in full"] = runner(layer, x, "forward+backward")
    ms = medians(runners, repeats, warmup)
    base = ms["pack->nn.LSTM->pad"]
    return [{"contender": name, "ms": t, "vs_packed_lstm": t / base} for name, t in ms.items()]


def scan_table(repeats: int, warmup: int, lengths: tuple[int, ...]) -> list:
    return [measure_scan("layers", t, layer_runners(t), repeats, warmup) for t in lengths]


def rss_kib() -> int:
    """Resident memory of this process now (Linux ``/proc``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def memory_child(name: str) -> None:
    """Run in a fresh process: print the peak resident memory (KiB) that one
    forward+backward adds, sampled every millisecond by a thread (torch's CPU allocator is
    invisible to tracemalloc, and the process's own high-water mark is set by ``import``)."""
    batch, steps, inputs, hidden = MEMORY_CONFIG
    torch.manual_seed(0)
    layer = torch.nn.LSTM(inputs, hidden) if name == BASELINE else LAYERS[name](inputs, hidden)
    x = torch.randn(steps, batch, inputs)
    layer(x[:2])[0].sum().backward()  # warm-up on 2 steps: allocator and kernels set up
    before = peak = rss_kib()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.001):
            peak = max(peak, rss_kib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    layer(x)[0].sum().backward()
    peak = max(peak, rss_kib())
    done.set()
    sampler.join()
    print(peak - before)


def memory_table() -> dict[str, float]:
    peaks = {}
    for name in (BASELINE, "LayerNormLSTM"):
        command = [sys.executable, __file__, "--memory-child", name]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[name] = int(done.stdout.strip()) / 1024  # MiB
    return peaks


def render(
    layers: list[dict], custom: list[dict], lengths: list[dict], memory: dict, console: Console
) -> None:
    table = Table(title="Fused engine: layer time / torch.nn.LSTM time, and / LSTMCell loop")
    for column in ("layer", "config", "fwd vs LSTM", "fwd+bwd vs LSTM", "fwd vs loop",
                   "fwd+bwd vs loop", "fwd ms", "fwd+bwd ms"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("layer", "config") else "right")
    by_key = {(r["layer"], r["config"], r["mode"]): r for r in layers}
    for r in (r for r in layers if r["mode"] == "forward"):
        fb = by_key[(r["layer"], r["config"], "forward+backward")]
        table.add_row(r["layer"], r["config"], f"{r['vs_lstm']:.2f}x", f"{fb['vs_lstm']:.2f}x",
                      f"{r['vs_loop']:.2f}x", f"{fb['vs_loop']:.2f}x", f"{r['ms']:.1f}",
                      f"{fb['ms']:.1f}")  # fmt: skip
    console.print(table)
    table = Table(title=f"{CUSTOM} / the same cell in a naive loop (project per step)")
    for column in ("config", "mode", "Recurrent ms", "naive loop ms", "vs naive loop",
                   "vs LSTM"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("config", "mode") else "right")
    for r in custom:
        table.add_row(r["config"], r["mode"], f"{r['ms']:.1f}", f"{r['naive_loop_ms']:.1f}",
                      f"{r['vs_naive_loop']:.2f}x", f"{r['vs_lstm']:.2f}x")  # fmt: skip
    console.print(table)
    table = Table(title="lengths 1..T, B=16 T=256 I=32 H=128, forward+backward")
    for column in ("contender", "ms", "vs pack->nn.LSTM->pad"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for r in lengths:
        table.add_row(r["contender"], f"{r['ms']:.1f}", f"{r['vs_packed_lstm']:.2f}x")
    console.print(table)
    if memory:
        b, t, i, h = MEMORY_CONFIG
        line = ", ".join(f"{name} {mib:.0f} MiB" for name, mib in memory.items())
        ratio = memory["LayerNormLSTM"] / memory[BASELINE]
        console.print(f"Peak RSS added by forward+backward, B={b} T={t} I={i} H={h}: {line} "
                      f"(ratio {ratio:.2f}x)")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="first config, no scans/memory")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    console = Console(width=200)
    load = os.getloadavg()[0]
    console.print(f"threads={args.threads} repeats={args.repeats} load average {load:.1f}")
    configs = CONFIGS[:1] if args.quick else CONFIGS
    layers, custom = layer_table(configs, args.repeats, args.warmup)
    lengths = lengths_table(args.repeats, args.warmup)
    memory = {} if args.quick else memory_table()
    render(layers, custom, lengths, memory, console)
    scans = [] if args.quick else scan_table(max(3, args.repeats // 2), 1, (256, 1024, 4096))
    if scans:
        render_layers(scans, console)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_start": round(load, 2),
        "threads": args.threads,
        "repeats": args.repeats,
        "layers": layers,
        "custom_cell": custom,
        "lengths": lengths,
        "memory_mib": memory,
        "scans": [{"steps": r.steps, "median_ms": r.median_ms} for r in scans],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(args.json)
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
