"""Sequence classification on public UCR/UEA sets: rnnkit's defaults against 1-NN DTW and
ROCKET on each set's own train/test split, next to the published numbers.

Sets (all from aeon's wheel, see DATA.md): ``dev`` sets, on which the defaults of
:func:`rnnkit.tasks.classifier.plan_for_sequences` were developed (GunPoint, ItalyPowerDemand,
PickupGestureWiimoteZ, JapaneseVowels), and ``holdout`` sets, kept aside and run only to
check them (ArrowHead, BasicMotions). Every method sees the training file only; the test
file is read once, for the reported accuracy.

    .venv/bin/python benchmarks/bench_classify.py --split dev --seeds 0 1 2
    .venv/bin/python benchmarks/bench_classify.py --split holdout --seeds 0 1 2

Results go to ``benchmarks/results/classify_<split>.json`` and ``.md`` (written after each
set, so an interrupted run keeps what it finished). One torch thread: on a shared CPU, two
threads that wait on each other were 5-20 times slower here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnnkit._atomic import atomic_file  # noqa: E402
from rnnkit.data.sequences import read_sequences  # noqa: E402
from rnnkit.sequence_baselines import NearestNeighbourDTW, RocketClassifier  # noqa: E402
from rnnkit.tasks.classifier import plan_for_sequences  # noqa: E402

PACKAGE = ROOT / "src" / "rnnkit" / "data" / "files"
DATA = ROOT / "benchmarks" / "classify_data"
SETS = {
    "dev": {"GunPoint": PACKAGE, "ItalyPowerDemand": DATA, "PickupGestureWiimoteZ": DATA,
            "JapaneseVowels": PACKAGE},
    "holdout": {"ArrowHead": DATA, "BasicMotions": DATA},
}  # fmt: skip
#: Published test accuracies on the default split. ROCKET: Dempster, Petitjean & Webb (2020),
#: mean of 10 runs (github.com/angus924/rocket, results/results_ucr.csv). 1-NN DTW: the UCR
#: archive's summary (Dau et al. 2019), DTW with the window learned on the training set, as
#: 1 - its error rate. None: no number found for this set here.
PUBLISHED = {
    "GunPoint": {"ROCKET": 1.000, "1-NN DTW": 1 - 0.0867},
    "ItalyPowerDemand": {"ROCKET": 0.970, "1-NN DTW": 1 - 0.0447},
    "PickupGestureWiimoteZ": {"ROCKET": 0.830, "1-NN DTW": 1 - 0.34},
    "JapaneseVowels": {"ROCKET": None, "1-NN DTW": None},
    "ArrowHead": {"ROCKET": 0.814, "1-NN DTW": 1 - 0.200},
    "BasicMotions": {"ROCKET": None, "1-NN DTW": None},
}


def accuracy(predictions: np.ndarray, truth: list) -> float:
    return float(np.mean(np.asarray(predictions).tolist() == np.asarray(truth)))


def run_set(name: str, folder: Path, seeds: list[int], epochs: int | None) -> dict:
    train = read_sequences(folder / f"{name}_TRAIN.ts.gz")
    test = read_sequences(folder / f"{name}_TEST.ts.gz")
    row: dict = {"set": name, "train": len(train), "test": len(test),
                 "classes": len(train.classes), "channels": train.num_features,
                 "length": f"{train.lengths.min()}-{train.lengths.max()}",
                 "published": PUBLISHED[name], "chance": max(
                     test.labels.count(c) for c in test.classes) / len(test)}  # fmt: skip
    start = time.perf_counter()
    dtw = NearestNeighbourDTW().fit(train.sequences, train.labels)
    row["1-NN DTW"] = {"accuracy": [accuracy(dtw.predict(test.sequences), test.labels)],
                       "window": dtw.window_, "seconds": time.perf_counter() - start}  # fmt: skip
    rocket, ours = [], []
    rocket_seconds = ours_seconds = 0.0
    for seed in seeds:
        start = time.perf_counter()
        model = RocketClassifier(seed=seed).fit(train.sequences, train.labels)
        rocket.append(accuracy(model.predict(test.sequences), test.labels))
        rocket_seconds += time.perf_counter() - start
        start = time.perf_counter()
        plan = plan_for_sequences(train.labels, train.lengths, seed=seed)
        classifier = plan.model()
        if epochs is not None:
            classifier.training.max_epochs = epochs
        classifier.fit(train.sequences, train.labels, val_fraction=plan.val_fraction,
                       class_weights=plan.class_weights, progress=False)  # fmt: skip
        ours.append(classifier.evaluate(test.sequences, test.labels)["accuracy"])
        ours_seconds += time.perf_counter() - start
        row["plan"] = list(plan.notes) + [f"{k}={v}" for k, v in plan.options.items()]
        print(f"{name} seed {seed}: rnnkit {ours[-1]:.3f}, ROCKET {rocket[-1]:.3f}", flush=True)
    row["ROCKET"] = {"accuracy": rocket, "seconds": rocket_seconds / len(seeds)}
    row["rnnkit defaults"] = {"accuracy": ours, "seconds": ours_seconds / len(seeds)}
    return row


def cell(result: dict) -> str:
    values = result["accuracy"]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def markdown(rows: list[dict], seeds: list[int]) -> str:
    methods = ["rnnkit defaults", "1-NN DTW", "ROCKET"]
    head = ["set", "train/test", "C", "F", "length", *methods, "published ROCKET",
            "published 1-NN DTW", "chance", "rnnkit s"]  # fmt: skip
    lines = [f"Test accuracy, mean ± sd over seeds {seeds} (1-NN DTW is deterministic).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for row in rows:
        best = max(np.mean(row[m]["accuracy"]) for m in methods)
        cells = [f"**{cell(row[m])}**" if np.mean(row[m]["accuracy"]) == best else cell(row[m])
                 for m in methods]  # fmt: skip
        published = [row["published"][k] for k in ("ROCKET", "1-NN DTW")]
        lines.append("| " + " | ".join([
            row["set"], f"{row['train']}/{row['test']}", str(row["classes"]),
            str(row["channels"]), row["length"], *cells,
            *("—" if p is None else f"{p:.3f}" for p in published),
            f"{row['chance']:.3f}", f"{row['rnnkit defaults']['seconds']:.0f}",
        ]) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(SETS), default="dev")
    parser.add_argument("--sets", nargs="*", help="only these sets of the split")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="cap rnnkit's epochs (quick checks only)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", help="file name stem (default: classify_SPLIT)")
    parser.add_argument("--combine", nargs="*", type=Path,
                        help="merge these result files (runs of other seeds) and exit")  # fmt: skip
    args = parser.parse_args()
    name = args.name or f"classify_{args.split}"
    if args.combine:
        rows, seeds = combine(args.combine)
        write(args.out, name, rows, seeds)
        print(markdown(rows, seeds))
        return
    torch.set_num_threads(1)
    rows = []
    for problem, folder in SETS[args.split].items():
        if args.sets and problem not in args.sets:
            continue
        rows.append(run_set(problem, folder, args.seeds, args.epochs) | {"seeds": args.seeds})
        write(args.out, name, rows, args.seeds)
    print(markdown(rows, args.seeds))


def write(out: Path, name: str, rows: list[dict], seeds: list[int]) -> None:
    for suffix, text in (("json", json.dumps(rows, indent=1) + "\n"),
                         ("md", markdown(rows, seeds))):  # fmt: skip
        with atomic_file(out / f"{name}.{suffix}") as staging:
            staging.write_text(text, encoding="utf-8")


def combine(paths: list[Path]) -> tuple[list[dict], list[int]]:
    """Rows of several runs (other seeds, same sets) as one: accuracies joined, seconds
    averaged; 1-NN DTW, deterministic, kept once."""
    runs = [json.loads(path.read_text()) for path in paths]
    rows, seeds = [], []
    for run in runs:
        seeds += [s for s in run[0].get("seeds", [0]) if s not in seeds]
    for row in runs[0]:
        same = [r for run in runs for r in run if r["set"] == row["set"]]
        merged = dict(row)
        for method in ("ROCKET", "rnnkit defaults"):
            merged[method] = {
                "accuracy": [a for r in same for a in r[method]["accuracy"]],
                "seconds": float(np.mean([r[method]["seconds"] for r in same])),
            }
        rows.append(merged | {"seeds": seeds})
    return rows, seeds


if __name__ == "__main__":
    main()
