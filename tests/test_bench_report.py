"""benchmarks/bench_report.py without timing anything: the ranges it reports over runs, the
README blocks it writes, and the environment of its runs."""

from __future__ import annotations

import itertools
import json
import sys
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench_report(benchmark_script) -> ModuleType:
    return benchmark_script("bench_report")


def grid_run(module: ModuleType, ratios: dict[str, list[float]]) -> dict:
    """A grid run's JSON as bench_grid writes it: two points x modes x lengths, the layers'
    ratios taken in order from ``ratios`` (8 each), baseline 2 ms."""
    grid = sys.modules["bench_grid"]
    points = [(1, 35, 4, 64), (16, 128, 32, 128)]
    results = []
    rows = itertools.product(points, module.MODES, (False, True))
    for k, ((batch, steps, inputs, hidden), mode, lengths) in enumerate(rows):
        layers = {name: {"ratio": values[k]} for name, values in ratios.items()}
        results.append(
            {
                "batch": batch,
                "steps": steps,
                "inputs": inputs,
                "hidden": hidden,
                "mode": mode,
                "lengths": lengths,
                "baseline_ms": 2.0,
                "layers": layers,
            }
        )
    return {
        "date": "2026-12-07T10:00:00+00:00",
        "load_average": [0.5, 0.5, 0.5],
        "cpu_model": "Test CPU",
        "cores": 2,
        "torch": "2.13.0",
        "python": "3.11",
        "rnnkit": "0.1.0",
        "engine_blas": "torch's BLAS (mkl)",
        "blas": [{"filepath": "/x/libopenblas.so", "version": "0.3", "architecture": "Haswell"}],
        "openblas_env": {"OPENBLAS_CORETYPE": "unset", "OPENBLAS_L2_SIZE": "unset"},
        "results": results,
        "summary": grid.summarise(results, list(ratios)),
    }


def minimal_run(lstm_ms: float, gru_ms: float, mingru_ms: float, minlstm_ms: float) -> dict:
    ms = {"torch.nn.LSTM": lstm_ms, "torch.nn.GRU": gru_ms, "MinGRU": mingru_ms}
    ms["MinLSTM"] = minlstm_ms
    return {"results": [{"table": "layers", "steps": 4096, "median_ms": ms}]}


@pytest.fixture()
def two_runs(bench_report: ModuleType) -> tuple[dict, dict]:
    """Two runs at one thread: every layer's ratios are the first run's plus 0.25 in the
    second, except LayerNormLSTM's, whose forward rows go from 1.0-1.6 to 1.2-2.0."""
    first = {name: [1.0, 1.2, 0.8, 0.9, 1.4, 1.6, 0.9, 1.0] for name in bench_report.GRID_LAYERS}
    second = {name: [r + 0.25 for r in ratios] for name, ratios in first.items()}
    second["LayerNormLSTM"] = [1.2, 2.0, 0.8, 0.9, 1.6, 1.7, 0.9, 1.0]
    grids = {1: [grid_run(bench_report, first), grid_run(bench_report, second)]}
    minimal = {1: [minimal_run(100.0, 80.0, 25.0, 40.0), minimal_run(90.0, 80.0, 20.0, 30.0)]}
    return grids, minimal


def test_span_gives_low_high_or_one_value(bench_report: ModuleType) -> None:
    assert bench_report.span([1.234, 1.5, 1.3]) == "1.23-1.50x"
    assert bench_report.span([2.0, 2.001]) == "2.00x"
    assert bench_report.span([3, 0, 7], "{:d}", "") == "0-7"


def test_summary_gives_each_layers_ranges_over_runs(bench_report, two_runs) -> None:
    grids, minimal = two_runs
    lines = bench_report.summary_table(grids, minimal)
    (row,) = (line for line in lines if line.startswith("| LayerNormLSTM | 1 |"))
    # forward rows (indices 0, 1 and 4, 5 of 8): run 1 1.0 1.2 1.4 1.6 (median 1.3, worst
    # 1.6, 1 above 1.5), run 2 1.2 2.0 1.6 1.7 (median 1.65, worst 2.0, 3 above)
    forward, backward = row.split(" | ")[2:4]
    assert forward == "1.30-1.65x, 1.60-2.00x, 1-3 of 4"
    # forward+backward rows 0.8 0.9 0.9 1.0 in both runs
    assert backward.rstrip(" |") == "0.90x, 1.00x, 0 of 4"
    # PeepholeLSTM's forward, run 2: 1.25 1.45 1.65 1.85; forward+backward 1.05 1.15 1.15 1.25
    (row,) = (line for line in lines if line.startswith("| PeepholeLSTM | 1 |"))
    forward, backward = row.split(" | ")[2:4]
    assert forward == "1.30-1.55x, 1.60-1.85x, 1-2 of 4"
    assert backward.rstrip(" |") == "0.90-1.15x, 1.00-1.25x, 0 of 4"
    # minimal: nn.LSTM 100 / 25 = 4.0 and 90 / 20 = 4.5; 100 / 40 = 2.5 and 90 / 30 = 3.0
    assert "| MinGRU | 1 | 4.00-4.50x | 4x |" in lines
    assert "| MinLSTM | 1 | 2.50-3.00x | 3x |" in lines


def test_readme_line_adds_up_all_layers(bench_report, two_runs) -> None:
    grids, minimal = two_runs
    line = bench_report.readme_line(grids, minimal, runs=2)
    # forward: the medians of all layers over both runs run from 1.30 to 1.65; rows above
    # 1.5x, all five layers: run 1 5 x 1 = 5, run 2 4 x 2 + 3 = 11, of 5 x 4 = 20.
    assert "forward 1.30-1.65x (5-11 of 20 rows above 1.5x)" in line
    assert "forward+backward 0.90-1.15x (0 of 20 rows above 1.5x)" in line
    assert "MinGRU 4.00-4.50x, MinLSTM 2.50-3.00x" in line


def test_row_tables_give_every_rows_range(bench_report, two_runs) -> None:
    grids, _ = two_runs
    lines = bench_report.row_tables(grids)
    forward = lines[lines.index("### 1 thread(s), forward") :][:10]  # title to last row
    (row,) = (line for line in forward if line.startswith("| B=1 T=35 I=4 H=64 lengths |"))
    cells = row.strip("| ").split(" | ")
    assert cells[1] == "2.00"  # nn.LSTM ms, the same in both runs
    assert cells[2] == "1.20-2.00x"  # LayerNormLSTM: 1.2, then 2.0
    assert cells[3] == "1.20-1.45x"  # PeepholeLSTM: 1.2, then 1.45


def test_report_reads_the_runs_files(bench_report, two_runs, tmp_path, monkeypatch) -> None:
    grids, minimal = two_runs
    monkeypatch.setattr(bench_report, "RUNS_DIR", tmp_path)
    for kind, runs in (("grid", grids[1]), ("minimal", minimal[1])):
        for k, run in enumerate(runs, 1):
            bench_report.run_file(kind, 1, k).write_text(json.dumps(run))
    args = bench_report.parse_args(["--runs", "2", "--threads", "1", "--report-only"])
    line, summary, full = bench_report.report(args)
    assert line == bench_report.readme_line(grids, minimal, 2)
    assert summary[2:] == bench_report.summary_table(grids, minimal)
    assert "Test CPU" in summary[0] and "Haswell" in summary[0] and "over 2 points" in summary[0]
    assert full[2:] == [*summary, *bench_report.row_tables(grids), ""]


def test_markers_keep_the_rest_of_the_page(bench_report, tmp_path) -> None:
    start, end = bench_report.MARKERS
    page = tmp_path / "README.md"
    page.write_text(f"# Title\n\nbefore\n{start}\nold\nlines\n{end}\nafter\n")
    bench_report.replace_between_markers(page, ["new", "table"])
    expected = f"# Title\n\nbefore\n{start}\nnew\ntable\n{end}\nafter\n"
    assert page.read_text() == expected
    bench_report.replace_between_markers(page, ["new", "table"])
    assert page.read_text() == expected


@pytest.mark.parametrize(
    ("openblas", "expected"),
    [("unset", None), ("haswell", "Haswell"), ("inherit", "SkylakeX")],
)
def test_runs_set_the_openblas_pin_asked_for(bench_report, monkeypatch, openblas, expected):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "SkylakeX")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    env = bench_report.run_environment(openblas)
    assert env.get("OPENBLAS_CORETYPE") == expected
    assert ("OPENBLAS_L2_SIZE" in env) == (openblas == "inherit")


def test_runs_under_another_pin_keep_files_of_their_own(bench_report) -> None:
    assert bench_report.run_file("grid", 1, 1, "haswell") != bench_report.run_file("grid", 1, 1)
    assert bench_report.report_file("haswell") != bench_report.report_file("unset")
    with pytest.raises(SystemExit):  # the READMEs' tables are those of the pin unset
        bench_report.parse_args(["--openblas", "haswell", "--readme"])


def test_machine_line_names_the_vector_extensions_where_recorded(bench_report, two_runs) -> None:
    run = two_runs[0][1][0]  # recorded before runs named them
    assert "Test CPU, 2 cores" in bench_report.machine_line(run, wheel=False)
    line = bench_report.machine_line(run | {"vector_extensions": ["avx512f", "avx2"]}, wheel=True)
    assert "Test CPU (avx512f, avx2), 2 cores" in line
    assert "from a fresh install of the built wheel" in line
