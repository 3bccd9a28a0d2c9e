"""Users' series through ``rnnkit forecast`` with no size flags: one row per series.

Each series of ``benchmarks/forecast_data/series.json`` (split ``dev``: the series defaults
were developed on; ``holdout``: kept aside, run only to check them) goes through the command
line as a new user would run it, ``rnnkit forecast --data FILE --target COLUMN`` (plus
``--fill`` for series with gaps and ``--id-column`` for panels), and the table gathers what
each run chose and scored from its saved model folder: season and sizes, MASE of rnnkit and
of every baseline, interval coverage and seconds of training (the JSON adds the transform,
base, blend weight and partner the forecaster chose).

    .venv/bin/python benchmarks/bench_forecast.py --split dev
    .venv/bin/python benchmarks/bench_forecast.py --split holdout --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "forecast_data"
RNNKIT = Path(sys.executable).with_name("rnnkit")


def run(entry: dict, folder: Path, epochs: int) -> dict:
    """Train and evaluate one series (or panel) through the CLI; its row of the table."""
    path = ROOT / entry["file"] if "/" in entry["file"] else DATA / entry["file"]
    command = [str(RNNKIT), "forecast", "--data", str(path), "--target", entry["target"],
               "--out", str(folder), "--epochs", str(epochs)]  # fmt: skip
    if entry.get("fill"):
        command += ["--fill", entry["fill"]]
    if entry.get("id_column"):
        command += ["--id-column", entry["id_column"]]
    if entry.get("horizon"):  # a competition's own horizon where the file has no dates
        command += ["--horizon", str(entry["horizon"])]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode:
        return {"series": path.stem, "error": (result.stderr or result.stdout).strip()[-300:]}
    config = json.loads((folder / "model" / "config.json").read_text())
    metadata = config["metadata"]
    row = {"series": path.stem, "group": entry["group"], "test_size": metadata["test_size"]}
    chosen = {name: config[name] for name in ("transform", "base", "blend", "partner")}
    return row | metadata["plan"] | metadata["evaluation"] | chosen | {"seconds": seconds}


def markdown(rows: list[dict]) -> str:
    """One line per series: choices, MASE per method (best in bold), coverage, seconds."""
    methods = ["rnnkit", "naive", "seasonal naive", "AutoETS", "AutoARIMA"]
    head = ["series", "group", "season", "h", "lookback/val/test", *methods, "cover 80/95", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['series']} | error: {row['error']} |")
            continue
        scores = row.get("MASE") or row["mean MASE"]
        best = min(scores.values())
        cells = [
            ("**{:.3f}**" if scores[m] == best else "{:.3f}").format(scores[m])
            if m in scores else "-"
            for m in methods
        ]  # fmt: skip
        coverage = "/".join(
            f"{row['coverage'].get(level, float('nan')):.2f}" for level in ("80", "95")
        )
        sizes = f"{row['lookback']}/{row['val_size']}/{row['test_size']}"
        cells = [row["series"], row["group"], row["season"], row["horizon"], sizes, *cells,
                 coverage, f"{row['seconds']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "holdout", "all"), default="dev")
    parser.add_argument("--only", default="", help="Comma-separated series names to run.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="Folder for the table (.md, .json).")
    args = parser.parse_args()
    entries = json.loads((DATA / "series.json").read_text())
    only = {name for name in args.only.split(",") if name}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for entry in entries:
            name = Path(entry["file"]).stem
            if args.split not in ("all", entry["split"]) or (only and name not in only):
                continue
            rows.append(run(entry, Path(scratch) / name, args.epochs))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"forecast_{args.split}.md").write_text(table + "\n")
        (args.out / f"forecast_{args.split}.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
