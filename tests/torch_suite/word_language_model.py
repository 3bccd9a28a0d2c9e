"""Run pytorch/examples' word_language_model unchanged on torch.nn and on rnnkit; compare losses.

The example (``main.py``, ``model.py``, ``data.py`` of a pytorch/examples checkout) trains a word
language model on wikitext-2, saves it with ``torch.save``, loads it back with
``torch.load`` under its own ``torch.serialization.safe_globals`` list, calls
``model.rnn.flatten_parameters()`` and evaluates it on the test split. This script runs that
``main.py`` without an edit, twice for every ``--model`` with the same arguments, each run in its
own subprocess:

* ``torch.nn``: ``python main.py ARGS``, as the example's README says to;
* ``rnnkit``: a ``python -c`` launcher that calls :func:`swap.swap` (this folder's ``swap.py``,
  which puts rnnkit's classes at ``torch.nn.LSTM`` and friends) and then runs ``main.py`` with
  :func:`runpy.run_path` as ``__main__``, with the same ``sys.argv``.

Both runs see a small copy of wikitext-2 (the first ``--lines`` lines of ``train.txt``,
``valid.txt`` and ``test.txt``) and one torch thread (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``), so
that each takes seconds. Every loss, perplexity and learning rate that the example prints (the
batch lines, the end-of-epoch validation lines and the final test line) must be identical as
printed; timings (``ms/batch``, ``time:``) are ignored. The script prints the numbers side by
side and exits 1 on any difference or on a crash of either run, 2 when the checkout is unusable.

Usage::

    python tests/torch_suite/word_language_model.py PATH/TO/examples/word_language_model
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
SPLITS = ("train", "valid", "test")
MODELS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")

# Runs the example's main.py as ``python main.py`` would, after swapping rnnkit in.
# argv: -c SUITE_DIR MAIN_PY [MAIN_PY's arguments...]
LAUNCHER = """\
import runpy, sys
suite_dir, main_py = sys.argv[1], sys.argv[2]
sys.path.insert(0, suite_dir)
import swap
swap.swap()
import torch
assert torch.nn.LSTM.__module__.startswith("rnnkit"), torch.nn.LSTM
sys.path[0] = str(__import__("pathlib").Path(main_py).resolve().parent)
sys.argv = [main_py, *sys.argv[3:]]
runpy.run_path(main_py, run_name="__main__")
"""

# "| epoch   1 |     5/   18 batches | lr 20.00 | ms/batch 40.22 | loss  7.16 | ppl  1284.33"
BATCH_LINE = re.compile(r"^\|\s*epoch\s+(\d+)\s*\|\s*(\d+)/\s*(\d+) batches\s*\|")
# "| end of epoch   1 | time:  1.28s | valid loss  7.45 | valid ppl  1713.99"
EPOCH_LINE = re.compile(r"^\|\s*end of epoch\s+(\d+)\s*\|")
# "| End of training | test loss  6.97 | test ppl  1066.97"
TEST_LINE = re.compile(r"^\|\s*End of training\s*\|")
# One printed number: "lr 20.00", "loss  7.16", "valid ppl  1713.99", "test loss  6.97", ...
NUMBER = re.compile(r"\b((?:valid |test )?(?:lr|loss|ppl))\s+([-+]?(?:[0-9][0-9.eE+-]*|nan|inf))")


@dataclass
class Run:
    """One subprocess run of main.py: what it printed, how it ended and how long it took."""

    label: str
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def numbers(self) -> list[tuple[str, str]]:
        return extract_numbers(self.stdout)


def extract_numbers(output: str) -> list[tuple[str, str]]:
    """Every (where, value) loss/ppl/lr number in main.py's output, values as printed."""
    found: list[tuple[str, str]] = []
    for line in output.splitlines():
        line = line.strip()
        if match := BATCH_LINE.match(line):
            where = f"epoch {match[1]} batch {match[2]}/{match[3]}"
        elif match := EPOCH_LINE.match(line):
            where = f"end of epoch {match[1]}"
        elif TEST_LINE.match(line):
            where = "end of training"
        else:
            continue
        found.extend((f"{where}: {key}", value) for key, value in NUMBER.findall(line))
    return found


def make_small_corpus(source: Path, target: Path, lines: int) -> None:
    """Copy the first ``lines`` lines of each split from ``source`` to ``target``, byte for byte."""
    target.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        with (
            (source / f"{split}.txt").open("rb") as src,
            (target / f"{split}.txt").open("wb") as dst,
        ):
            dst.writelines(islice(src, lines))


def run_main(label: str, command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Run:
    """Run one command to its end (or ``timeout``) and capture its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = -1
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = (exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or "") + (
            f"\n[timed out after {timeout:g} s]"
        )
    return Run(label, command, returncode, stdout, stderr, time.perf_counter() - start)


def compare(model: str, plain: Run, swapped: Run) -> bool:
    """Print the two runs side by side; True when both finished and every number agrees."""
    print(f"\n=== --model {model} ===")
    ok = True
    for run in (plain, swapped):
        status = "ok" if run.returncode == 0 else f"FAILED (exit code {run.returncode})"
        shown = " ".join("'<swap launcher>'" if arg == LAUNCHER else arg for arg in run.command)
        print(f"{run.label:8s} {run.seconds:6.1f} s  {status}: {shown}")
        if run.returncode != 0:
            ok = False
            tail = (run.stderr.strip() or run.stdout.strip()).splitlines()[-15:]
            print("\n".join(f"    {line}" for line in tail))
    left, right = plain.numbers, swapped.numbers
    if not left or not right:
        print("no loss/ppl numbers to compare in one of the runs")
        ok = False
    rows: list[tuple[str, str, str, bool]] = []
    for i in range(max(len(left), len(right))):
        lw, lv = left[i] if i < len(left) else ("-", "-")
        rw, rv = right[i] if i < len(right) else ("-", "-")
        rows.append((lw if lw == rw else f"{lw} / {rw}", lv, rv, lw == rw and lv == rv))
    width = max((len(row[0]) for row in rows), default=10)
    print(f"{'':{width}s}  {'torch.nn':>12s}  {'rnnkit':>12s}")
    for where, lv, rv, same in rows:
        ok = ok and same
        print(f"{where:{width}s}  {lv:>12s}  {rv:>12s}  {'' if same else 'DIFFERENT'}".rstrip())
    for run, numbers in ((plain, left), (swapped, right)):
        if not any(where.startswith("end of training") for where, _ in numbers):
            print(f"{run.label}: no final test line")
            ok = False
    print(f"--model {model}: {'IDENTICAL' if ok else 'MISMATCH OR FAILURE'}")
    return ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "example", type=Path, help="a pytorch/examples checkout's word_language_model folder"
    )
    parser.add_argument(
        "--lines", type=int, default=400, help="first lines of each wikitext-2 split to use"
    )
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=["LSTM", "GRU"], help="main.py --model"
    )
    parser.add_argument("--epochs", type=int, default=2, help="main.py --epochs")
    parser.add_argument("--emsize", type=int, default=32, help="main.py --emsize")
    parser.add_argument("--nhid", type=int, default=32, help="main.py --nhid")
    parser.add_argument("--log-interval", type=int, default=5, help="main.py --log-interval")
    parser.add_argument(
        "--main-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for main.py (repeatable), e.g. --main-arg=--tied",
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each run")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per run")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter with torch and rnnkit installed"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--show-output", action="store_true", help="print both runs' full stdout and stderr"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    example = args.example.resolve()
    main_py = example / "main.py"
    data = example / "data" / "wikitext-2"
    missing = [p for p in (main_py, *(data / f"{s}.txt" for s in SPLITS)) if not p.is_file()]
    if missing:
        print(f"not a usable word_language_model folder, missing: {missing}", file=sys.stderr)
        return 2

    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    tmp = Path(tempfile.mkdtemp(prefix="rnnkit-wlm-"))
    all_ok = True
    try:
        corpus = tmp / "wikitext-2-small"
        make_small_corpus(data, corpus, args.lines)
        print(f"example: {example}")
        print(f"data: first {args.lines} lines of each split, copied to {corpus}")
        print(f"threads: OMP_NUM_THREADS=MKL_NUM_THREADS={args.threads}")
        for model in args.models:
            common = [
                *("--data", str(corpus), "--model", model),
                *("--emsize", str(args.emsize), "--nhid", str(args.nhid)),
                *("--epochs", str(args.epochs), "--log-interval", str(args.log_interval)),
                *args.main_arg,
            ]
            plain = run_main(
                "torch.nn",
                [args.python, str(main_py), *common, "--save", str(tmp / f"{model}-torch.pt")],
                example,
                env,
                args.timeout,
            )
            swapped = run_main(
                "rnnkit",
                [
                    *(args.python, "-c", LAUNCHER, str(SUITE_DIR), str(main_py)),
                    *(*common, "--save", str(tmp / f"{model}-rnnkit.pt")),
                ],
                example,
                env,
                args.timeout,
            )
            if args.show_output:
                for run in (plain, swapped):
                    print(f"\n--- {run.label} stdout ---\n{run.stdout}")
                    print(f"--- {run.label} stderr ---\n{run.stderr}")
            all_ok = compare(model, plain, swapped) and all_ok
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'PASS' if all_ok else 'FAIL'}: word_language_model, torch.nn against rnnkit")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
