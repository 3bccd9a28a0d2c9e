"""``make bench``: the engine's speed tables, from several runs, written into the READMEs.

Each run is a fresh process of ``bench_grid.py`` (the extended layers against
``torch.nn.LSTM`` over a piece of issue 26's grid) and of ``bench_minimal.py --lengths 4096``
(minGRU and minLSTM training against ``torch.nn.LSTM``), once per thread count; the runs go
one after the other (run 1 at every thread count, then run 2, ...), so a slow spell of the
machine falls on one run, not on one thread count. The report gives ranges over the runs:

* per thread count, mode and layer: the worst row's ratio, the median row's, and the rows
  above the 1.5x bar (a row: a grid point, without or with ``lengths=``);
* per thread count: minGRU's and minLSTM's training speed-up over ``torch.nn.LSTM`` at
  T=4096 (issue 26's bars: 4x and 3x);
* every row's ratio range, in ``benchmarks/results/bench.md``.

With ``--wheel`` the runs use rnnkit as a user gets it: the wheel built from this tree,
installed with its dependencies into a fresh virtual environment (torch first, the CPU
wheel), run from outside the source tree. ``--openblas`` sets the OpenBLAS pin of the runs:
``unset`` (default, as on users' machines), ``haswell`` (``OPENBLAS_CORETYPE=Haswell``: an
OpenBLAS that picked older kernels) or ``inherit``. Each run's JSON goes to
``benchmarks/results/bench/``; ``--readme`` also replaces the text between the
``<!-- make bench -->`` markers of README.md, benchmarks/README.md and docs/engine.md.

Usage::

    python benchmarks/bench_report.py [--runs 3] [--threads 1 2] [--wheel] [--readme]
        [--openblas unset|haswell|inherit] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_engine import MODES
from bench_grid import (
    BAR,
    GRID_LAYERS,
    OPENBLAS_ENV,
    RESULTS,
    row_label,
    size_pair,
    write_whole,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS_DIR = RESULTS / "bench"
MARKERS = ("<!-- make bench: start -->", "<!-- make bench: end -->")
README = ROOT / "README.md"  # gets one sentence; these pages the summary tables:
PAGES = (HERE / "README.md", ROOT / "docs" / "engine.md")
MINIMAL = {"MinGRU": 4.0, "MinLSTM": 3.0}  # issue 26's bars: speed-up over nn.LSTM at T=4096


# ------------------------------------------------------------------------------- running


def wheel_python(work: Path) -> Path:
    """Build this tree's wheel and install it into a fresh virtual environment under
    ``work``; return that environment's interpreter."""
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next((work / "dist").glob("rnnkit-*.whl"))
    subprocess.run([sys._base_executable, "-m", "venv", str(work / "venv")], check=True)
    python = work / "venv" / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", *quiet]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU wheel first
    subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), str(wheel)], check=True)
    return python


def run_environment(openblas: str) -> dict[str, str]:
    """The process environment of a run, with the OpenBLAS pin ``openblas`` asks for."""
    env = dict(os.environ)
    if openblas != "inherit":
        for name in OPENBLAS_ENV:
            env.pop(name, None)
    if openblas == "haswell":
        env["OPENBLAS_CORETYPE"] = "Haswell"
    return env


def pin_suffix(openblas: str) -> str:
    """What the files of runs with the OpenBLAS pin ``openblas`` add to their names."""
    return "" if openblas == "unset" else f"-{openblas}"


def run_file(kind: str, threads: int, run: int, openblas: str = "unset") -> Path:
    return RUNS_DIR / f"{kind}-{threads}t-run{run}{pin_suffix(openblas)}.json"


def report_file(openblas: str) -> Path:
    return RESULTS / f"bench{pin_suffix(openblas)}.md"


def run_all(args: argparse.Namespace, python: Path) -> None:
    """Every run at every thread count, each benchmark a process of its own."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    env = run_environment(args.openblas)
    grid = ["--repeats", str(args.repeats), "--budget", str(args.budget), "--steps"]
    grid += [*map(str, args.steps), "--sizes", *(f"{i}x{h}" for i, h in args.sizes)]
    if args.batch:
        grid += ["--batch", *map(str, args.batch)]
    minimal = ["--lengths", "4096", "--repeats", str(args.minimal_repeats)]
    for run in range(1, args.runs + 1):
        for threads in args.threads:
            commands = {
                "grid": [HERE / "bench_grid.py", *grid],
                "minimal": [HERE / "bench_minimal.py", *minimal],
            }
            for kind, command in commands.items():
                print(f"== run {run}/{args.runs}, {threads} thread(s): {kind}", flush=True)
                out = run_file(kind, threads, run, args.openblas)
                command += ["--threads", str(threads), "--json", out]
                # from outside the tree, so a wheel's rnnkit is the one imported
                subprocess.run([str(python), *map(str, command)], check=True, env=env, cwd="/")


# ------------------------------------------------------------------------------ reporting


def load_runs(kind: str, threads: int, runs: int, openblas: str) -> list[dict[str, Any]]:
    files = (run_file(kind, threads, run, openblas) for run in range(1, runs + 1))
    return [json.loads(file.read_text()) for file in files]


def span(values: Iterable[float], form: str = "{:.2f}", unit: str = "x") -> str:
    """``"lo-hi"`` of ``values`` (one number where they agree in the shown digits)."""
    values = list(values)
    low, high = form.format(min(values)), form.format(max(values))
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def speedups(run: dict[str, Any]) -> dict[str, float]:
    """``bench_minimal``'s T=4096 result: nn.LSTM's ms over each minimal layer's."""
    (result,) = (r for r in run["results"] if r["table"] == "layers")
    ms = result["median_ms"]
    return {name: ms["torch.nn.LSTM"] / ms[name] for name in MINIMAL}


def machine_line(run: dict[str, Any], wheel: bool) -> str:
    """CPU, torch, Python, the BLAS libraries and the OpenBLAS pin of a grid run."""
    blas = ", ".join(
        f"{Path(lib['filepath']).name} {lib['version']} ({lib['architecture']})"
        for lib in run["blas"]
    )
    pin = ", ".join(f"{name}={value}" for name, value in run["openblas_env"].items())
    source = "a fresh install of the built wheel" if wheel else "the source tree"
    vectors = ", ".join(run.get("vector_extensions", []))  # older runs did not record them
    cpu = f"{run['cpu_model']} ({vectors})" if vectors else run["cpu_model"]
    return (
        f"{cpu}, {run['cores']} cores; torch {run['torch']}, Python "
        f"{run['python']}, rnnkit {run['rnnkit']} from {source}; the engine's BLAS: "
        f"{run['engine_blas']}; other BLAS in the process (threadpoolctl): {blas or 'none'}; "
        f"{pin}"
    )


def summary_table(grids: dict[int, list[dict]], minimal: dict[int, list[dict]]) -> list[str]:
    """Per thread count and layer: ranges over the runs of the worst and median row and of
    the rows above the bar, both modes; then the minimal layers' speed-ups."""
    lines = [
        f"| layer | threads | forward: median, worst, rows > {BAR}x | "
        f"forward+backward: median, worst, rows > {BAR}x |",
        "|---|---|---|---|",
    ]
    for name in GRID_LAYERS:
        for threads, runs in grids.items():
            cells = []
            for mode in MODES:
                summaries = [run["summary"][mode][name] for run in runs]
                rows = summaries[0]["rows"]
                above = span((s["above_bar"] for s in summaries), "{:d}", "")
                cells.append(
                    f"{span(s['median'] for s in summaries)}, "
                    f"{span(s['worst'] for s in summaries)}, {above} of {rows}"
                )
            lines.append(f"| {name} | {threads} | {' | '.join(cells)} |")
    lines += ["", "| training at T=4096, B=8, H=128 | threads | speed-up over `nn.LSTM` | bar |"]
    lines.append("|---|---|---|---|")
    for name, bar in MINIMAL.items():
        for threads, runs in minimal.items():
            lines.append(
                f"| {name} | {threads} | {span(speedups(run)[name] for run in runs)} | {bar:g}x |"
            )
    return lines


def row_tables(grids: dict[int, list[dict]]) -> list[str]:
    """Every row's ratio range over the runs, a table per thread count and mode."""
    lines: list[str] = []
    for threads, runs in grids.items():
        for mode in MODES:
            lines += [
                "",
                f"### {threads} thread(s), {mode}",
                "",
                f"| row | nn.LSTM ms | {' | '.join(GRID_LAYERS)} |",
                f"|---|---:|{'---:|' * len(GRID_LAYERS)}",
            ]
            by_row: dict[str, list[dict]] = {}
            for run in runs:
                for result in run["results"]:
                    if result["mode"] == mode:
                        by_row.setdefault(row_label(result), []).append(result)
            for label, results in by_row.items():
                cells = [span(r["layers"][name]["ratio"] for r in results) for name in GRID_LAYERS]
                baseline = span((r["baseline_ms"] for r in results), "{:.2f}", "")
                lines.append(f"| {label} | {baseline} | {' | '.join(cells)} |")
    return lines


def readme_line(grids: dict[int, list[dict]], minimal: dict[int, list[dict]], runs: int) -> str:
    """One sentence for the front page: over all layers, per thread count and mode, the range
    of the layers' median rows and of the rows above the bar (all layers, per run)."""
    parts = []
    for threads, grid_runs in grids.items():
        modes = []
        for mode in MODES:
            summaries = [run["summary"][mode] for run in grid_runs]
            medians = [s[name]["median"] for s in summaries for name in GRID_LAYERS]
            above = [sum(s[name]["above_bar"] for name in GRID_LAYERS) for s in summaries]
            rows = sum(summaries[0][name]["rows"] for name in GRID_LAYERS)
            above_bar = f"{span(above, '{:d}', '')} of {rows} rows above {BAR}x"
            modes.append(f"{mode} {span(medians)} ({above_bar})")
        parts.append(f"{threads} thread{'s' if threads > 1 else ''}: {'; '.join(modes)}")
    trains = ", ".join(
        f"{name} {span(speedups(run)[name] for runs in minimal.values() for run in runs)}"
        for name in MINIMAL
    )
    return (
        f"Engine speed ([`make bench`](benchmarks/results/bench.md), {runs} runs): the five "
        "extended layers' time / `torch.nn.LSTM`'s, each layer's median row, at "
        f"{'; at '.join(parts)}. "
        f"Training at T=4096, faster than `nn.LSTM` by {trains}."
    )


def report(args: argparse.Namespace) -> tuple[str, list[str], list[str]]:
    """The README's sentence, the summary (for the other pages) and the full report (for
    ``bench.md``)."""
    grids = {t: load_runs("grid", t, args.runs, args.openblas) for t in args.threads}
    minimal = {t: load_runs("minimal", t, args.runs, args.openblas) for t in args.threads}
    first = next(iter(grids.values()))[0]
    dates = sorted(run["date"] for runs in grids.values() for run in runs)
    loads = [run["load_average"][0] for runs in grids.values() for run in runs]
    points = len({row_label(r) for r in first["results"]}) // 2
    command = (
        "make bench" if args.wheel and args.readme else "bench_report.py " + " ".join(sys.argv[1:])
    )
    head = [
        f"`{command.strip()}`, {args.runs} runs ({dates[0][:16]} to {dates[-1][:16]} UTC, 1-minute "
        f"load at the start of each grid run {span(loads, '{:.1f}', '')}): time of each layer "
        f"/ `torch.nn.LSTM`'s in the same round, over {points} points (B "
        f"{', '.join(map(str, sorted({r['batch'] for r in first['results']})))}; T "
        f"{', '.join(map(str, args.steps))}; (I, H) "
        f"{', '.join(f'({i}, {h})' for i, h in args.sizes)}), each without and with "
        "`lengths=` (against pack → `nn.LSTM` → pad); each run's cell is the median of its "
        f"rounds (at most {args.repeats}); ranges over the runs. Machine: "
        f"{machine_line(first, args.wheel)}.",
        "",
    ]
    summary = head + summary_table(grids, minimal)
    full = ["# Engine speed", "", *summary, *row_tables(grids), ""]
    return readme_line(grids, minimal, args.runs), summary, full


def replace_between_markers(path: Path, lines: Sequence[str]) -> None:
    """Put ``lines`` between the two markers of ``path``, keeping the markers."""
    text = path.read_text()
    start, end = (text.index(marker) for marker in MARKERS)
    block = "\n".join([MARKERS[0], *lines, ""])
    write_whole(path, text[:start] + block + text[end:])


# ----------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per thread count (3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="(1 2)")
    parser.add_argument("--steps", type=int, nargs="+", default=[35, 128], help="T (35 128)")
    parser.add_argument(
        "--sizes",
        type=size_pair,
        nargs="+",
        default=[(4, 64), (32, 128), (200, 200)],
        help="IxH pairs (4x64 32x128 200x200)",
    )
    parser.add_argument("--batch", type=int, nargs="+", help="B values (default: all five)")
    parser.add_argument("--repeats", type=int, default=5, help="most rounds a grid point (5)")
    parser.add_argument("--budget", type=float, default=5.0, help="bench_grid --budget (5)")
    parser.add_argument("--minimal-repeats", type=int, default=5, help="bench_minimal (5)")
    parser.add_argument("--openblas", choices=("unset", "haswell", "inherit"), default="unset")
    parser.add_argument("--wheel", action="store_true", help="run a fresh install of the wheel")
    parser.add_argument("--readme", action="store_true", help="write the summary into the READMEs")
    parser.add_argument(
        "--report-only", action="store_true", help="report the JSON of earlier runs, run nothing"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 runs, B 1 16, T 35, 4x64, 2 rounds (a smoke run)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.batch, args.steps, args.sizes = 2, [1, 16], [35], [(4, 64)]
        args.repeats = args.minimal_repeats = 2
    if args.readme and args.openblas != "unset":
        parser.error("--readme writes the tables of runs with the OpenBLAS pin unset")
    if min(args.runs, args.repeats, args.minimal_repeats, *args.threads) < 1:
        parser.error("--runs, --repeats, --minimal-repeats and --threads must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    if not args.report_only:
        with ExitStack() as stack:
            python = Path(sys.executable)
            if args.wheel:
                python = wheel_python(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            run_all(args, python)
    line, summary, full = report(args)
    write_whole(report_file(args.openblas), "\n".join(full))
    print("\n".join([line, "", *summary]))
    print(f"wrote {report_file(args.openblas)}")
    if args.readme:
        for page, lines in ((README, [line]), *((page, summary) for page in PAGES)):
            replace_between_markers(page, lines)
            print(f"updated {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
