"""Sequence classification on public UCR/UEA sets: rnnkit's defaults (and a small tuned
search) against 1-NN DTW and ROCKET on each set's own train/test split, next to the
published numbers.

Sets (all from aeon's wheel, see DATA.md): ``dev`` sets, on which the defaults of
:func:`rnnkit.tasks.classifier.plan_for_sequences` were developed (GunPoint, ItalyPowerDemand,
PickupGestureWiimoteZ, JapaneseVowels), and ``holdout`` sets, kept aside and run only to
check them (ArrowHead, BasicMotions). Every method sees the training file only; the test
file is read once, for the reported accuracy.

    .venv/bin/python benchmarks/bench_classify.py --split dev --seeds 0 1 2 --tuned
    .venv/bin/python benchmarks/bench_classify.py --split holdout --seeds 0 1 2 --tuned

rnnkit is reported twice per setting: as planned (the network blended with ROCKET, the
weight chosen on validation) and as the network alone (``evaluate(..., blend=False)``).
``--tuned`` also fits each entry of :data:`TUNED` and keeps the one whose blend does best
on the training split's validation examples. Results go to
``benchmarks/results/classify_<split>.json`` and ``.md`` (written after each set, so an
interrupted run keeps what it finished). One torch thread: on a shared CPU, two threads
that wait on each other were 5-20 times slower here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.atomic import atomic_file  # noqa: E402
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


#: The tuned search: settings tried beside the defaults (each over the plan's own), the one
#: with the best validation accuracy of its blend on the training split kept (ties: the
#: network's validation accuracy, then the earlier entry; the defaults come first).
TUNED = (
    {},
    {"hidden_size": 128},
    {"front_end": "none"},
)
METHODS = ("rnnkit defaults", "rnnkit defaults, network only", "rnnkit tuned",
           "rnnkit tuned, network only", "1-NN DTW", "ROCKET")  # fmt: skip


def accuracy(predictions: np.ndarray, truth: list) -> float:
    return float(np.mean(np.asarray(predictions).tolist() == np.asarray(truth)))


def fit_planned(train: Any, seed: int, epochs: int | None, **overrides: Any) -> tuple[Any, float]:
    """rnnkit with plan_for_sequences' settings (``overrides`` win), fitted on ``train``,
    and the seconds it took."""
    start = time.perf_counter()
    plan = plan_for_sequences(train.labels, train.lengths, seed=seed)
    classifier = plan.model(**overrides)
    if epochs is not None:
        classifier.training.max_epochs = epochs
    classifier.fit(train.sequences, train.labels, val_fraction=plan.val_fraction,
                   class_weights=plan.class_weights, progress=False)  # fmt: skip
    return classifier, time.perf_counter() - start


def validation_score(classifier: Any) -> tuple[float, float]:
    """(blend, network) validation accuracy on the training split's held-out examples."""
    chosen = classifier.blend["validation_accuracy"]
    return chosen["blend"], chosen["network"]


def run_set(name: str, folder: Path, seeds: list[int], epochs: int | None, tuned: bool) -> dict:
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
    methods = [m for m in METHODS if m != "1-NN DTW" and (tuned or "tuned" not in m)]
    for method in methods:
        row[method] = {"accuracy": [], "seconds": []}
    for seed in seeds:
        start = time.perf_counter()
        model = RocketClassifier(seed=seed).fit(train.sequences, train.labels)
        row["ROCKET"]["accuracy"].append(accuracy(model.predict(test.sequences), test.labels))
        row["ROCKET"]["seconds"].append(time.perf_counter() - start)
        defaults, seconds = fit_planned(train, seed, epochs)
        candidates = [(defaults, seconds, {})]
        if tuned:
            candidates += [(*fit_planned(train, seed, epochs, **c), c) for c in TUNED[1:]]
        picks = {"rnnkit defaults": candidates[0]}
        if tuned:
            scores = [validation_score(c[0]) for c in candidates]
            best = max(range(len(candidates)), key=lambda i: (*scores[i], -i))
            picks["rnnkit tuned"] = candidates[best]
            row.setdefault("tuned choices", []).append(
                {"seed": seed, "chosen": candidates[best][2], "validation": [
                    {"settings": c[2], "blend": v[0], "network": v[1]}
                    for c, v in zip(candidates, scores, strict=True)]})  # fmt: skip
        for method, (classifier, seconds, _) in picks.items():
            for blend, key in ((True, method), (False, f"{method}, network only")):
                result = classifier.evaluate(test.sequences, test.labels, blend=blend)
                row[key]["accuracy"].append(result["accuracy"])
            row[method]["seconds"].append(
                seconds if method == "rnnkit defaults" else sum(c[1] for c in candidates)
            )
            row[method].setdefault("blend", []).append(classifier.blend)
        plan = plan_for_sequences(train.labels, train.lengths, seed=seed)
        row["plan"] = list(plan.notes) + [f"{k}={v}" for k, v in plan.options.items()]
        print(f"{name} seed {seed}: " + ", ".join(
            f"{m} {row[m]['accuracy'][-1]:.3f}" for m in methods), flush=True)  # fmt: skip
    return row


def cell(result: dict) -> str:
    values = result["accuracy"]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def markdown(rows: list[dict], seeds: list[int]) -> str:
    methods = [m for m in METHODS if any(m in row for row in rows)]
    head = ["set", "train/test", "C", "F", "length", *methods, "published ROCKET",
            "published 1-NN DTW", "chance", "ROCKET weight", "seconds"]  # fmt: skip
    lines = [f"Test accuracy, mean (min-max) over seeds {seeds}; 1-NN DTW is deterministic. "
             "ROCKET weight: the blend's share of ROCKET per seed, chosen on validation; "
             "seconds: rnnkit defaults per seed (tuned: all candidates).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for row in rows:
        present = [m for m in methods if m in row]
        best = max(np.mean(row[m]["accuracy"]) for m in present)
        cells = [
            "—" if m not in row else f"**{cell(row[m])}**"
            if np.mean(row[m]["accuracy"]) == best else cell(row[m])
            for m in methods
        ]  # fmt: skip
        published = [row["published"][k] for k in ("ROCKET", "1-NN DTW")]
        weights = "/".join(f"{b['weight']:.1f}" for b in row["rnnkit defaults"]["blend"])
        seconds = f"{np.mean(row['rnnkit defaults']['seconds']):.0f}"
        if "rnnkit tuned" in row:
            seconds += f" (tuned {np.mean(row['rnnkit tuned']['seconds']):.0f})"
        lines.append("| " + " | ".join([
            row["set"], f"{row['train']}/{row['test']}", str(row["classes"]),
            str(row["channels"]), row["length"], *cells,
            *("—" if p is None else f"{p:.3f}" for p in published),
            f"{row['chance']:.3f}", weights, seconds,
        ]) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(SETS), default="dev")
    parser.add_argument("--sets", nargs="*", help="only these sets of the split")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="cap rnnkit's epochs (quick checks only)")
    parser.add_argument("--tuned", action="store_true",
                        help="also run the tuned search (TUNED), chosen on validation")  # fmt: skip
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
        row = run_set(problem, folder, args.seeds, args.epochs, args.tuned)
        rows.append(row | {"seeds": args.seeds})
        write(args.out, name, rows, args.seeds)
    print(markdown(rows, args.seeds))


def write(out: Path, name: str, rows: list[dict], seeds: list[int]) -> None:
    for suffix, text in (("json", json.dumps(rows, indent=1) + "\n"),
                         ("md", markdown(rows, seeds))):  # fmt: skip
        with atomic_file(out / f"{name}.{suffix}") as staging:
            staging.write_text(text, encoding="utf-8")


def combine(paths: list[Path]) -> tuple[list[dict], list[int]]:
    """Rows of several runs (other seeds, same sets) as one: the lists of each method joined;
    1-NN DTW, deterministic, kept once."""
    runs = [json.loads(path.read_text()) for path in paths]
    rows, seeds = [], []
    for run in runs:
        seeds += [s for s in run[0].get("seeds", [0]) if s not in seeds]
    for row in runs[0]:
        same = [r for run in runs for r in run if r["set"] == row["set"]]
        merged = dict(row)
        for method in METHODS[:4] + METHODS[5:]:
            if all(method in r for r in same):
                merged[method] = {key: [v for r in same for v in r[method][key]]
                                  for key in row[method]}  # fmt: skip
        if all("tuned choices" in r for r in same):
            merged["tuned choices"] = [c for r in same for c in r["tuned choices"]]
        rows.append(merged | {"seeds": seeds})
    return rows, seeds


if __name__ == "__main__":
    main()
