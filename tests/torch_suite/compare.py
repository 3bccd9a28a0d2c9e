"""Run PyTorch's own RNN tests on torch.nn and on rnnkit, and list what rnnkit breaks.

Usage::

    python tests/torch_suite/compare.py /path/to/pytorch [-k EXPR] [--keep]

``/path/to/pytorch`` is a PyTorch checkout (or a folder shaped like one) whose ``test/`` folder
holds ``test_nn.py``, ``nn/test_packed_sequence.py`` and ``test_modules.py``, taken at the
version of torch that is installed. The selected tests (:data:`SELECTION`: the RNN tests of
``test_nn.py``, all of ``test_packed_sequence.py`` and the ``nn.RNN/GRU/LSTM`` and
``nn.RNNCell/GRUCell/LSTMCell`` entries of ``test_modules.py``) run twice with pytest, each in its
own process from the checkout's ``test/`` folder and without this project's pytest
configuration: once on plain torch, once with the ``swap`` plugin (``swap.py`` beside this file)
that puts rnnkit's classes in place of torch.nn's. The two JUnit XML reports are compared: every
test that passes on torch.nn and does not pass on rnnkit is listed with the first line of its
failure message, and the exit status is 1 if there is any (2 if a run gave no report).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Test files, relative to the checkout's ``test/`` folder.
FILES = ("test_nn.py", "nn/test_packed_sequence.py", "test_modules.py")

#: ``-k`` expression: every test of ``TestNN``/``TestNNDeviceType*`` (the RNN part of
#: ``test_nn.py``) and ``PackedSequenceTest``, and the ``test_modules.py`` entries of the six
#: classes (their ids read ``..._nn_<Class>_...``).
SELECTION = " or ".join(
    [
        "TestNN",
        "PackedSequenceTest",
        *(f"nn_{name}_" for name in ("RNN", "RNNCell", "GRU", "GRUCell", "LSTM", "LSTMCell")),
    ]
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Outcome:
    """How one test ended: ``passed``, ``failed``, ``error`` or ``skipped``, with a message."""

    status: str
    message: str = ""


@dataclass(frozen=True)
class Run:
    """One pytest run: its JUnit report, exit status and duration."""

    label: str
    xml: Path
    returncode: int
    seconds: float


def first_line(text: str | None, limit: int = 500) -> str:
    """Return the first non-blank line of ``text`` without ANSI colours, cut to ``limit``."""
    for line in ANSI.sub("", text or "").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


def run_pytest(
    test_dir: Path, expression: str, xml: Path, *, swap: bool, label: str, verbose: bool
) -> Run:
    """Run the selected tests in a fresh interpreter, writing a JUnit report to ``xml``."""
    plugins = ["-p", "swap"] if swap else []
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *plugins,
        "-c",
        os.devnull,  # ignore every pytest configuration file (this project's included)
        "--rootdir",
        str(test_dir),
        "-p",
        "no:cacheprovider",
        "-q",
        "-k",
        expression,
        f"--junitxml={xml}",
        *FILES,
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    start = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=test_dir,
        env=env,
        stdout=None if verbose else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - start
    if not xml.is_file():
        tail = "" if verbose else "\n".join((proc.stdout or "").splitlines()[-30:])
        raise RuntimeError(f"{label} run (exit {proc.returncode}) wrote no report:\n{tail}")
    return Run(label, xml, proc.returncode, seconds)


def parse_junit(xml: Path) -> dict[str, Outcome]:
    """Map ``module.Class::test`` to its :class:`Outcome`, from a pytest JUnit report."""
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = Outcome("passed")
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                message = first_line(child.get("message")) or first_line(child.text)
                outcome = Outcome(status, message)
                break
        outcomes[test_id] = outcome
    return outcomes


def compare(torch_run: dict[str, Outcome], ours: dict[str, Outcome]) -> dict[str, Outcome]:
    """Return the tests that pass on torch.nn and do not pass on rnnkit, with rnnkit's outcome."""
    broken: dict[str, Outcome] = {}
    for test_id, outcome in sorted(torch_run.items()):
        if outcome.status != "passed":
            continue
        mine = ours.get(test_id, Outcome("missing", "not in the rnnkit run's report"))
        if mine.status != "passed":
            broken[test_id] = mine
    return broken


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="PyTorch checkout holding test/ (see above)")
    parser.add_argument("-k", dest="extra", help="further pytest -k expression, ANDed in")
    parser.add_argument("--keep", action="store_true", help="keep the XML reports; print where")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    args = parser.parse_args(argv)

    test_dir = (args.checkout / "test").resolve()
    missing = [name for name in FILES if not (test_dir / name).is_file()]
    if missing:
        parser.error(f"{test_dir} lacks {', '.join(missing)}")
    expression = f"({SELECTION}) and ({args.extra})" if args.extra else SELECTION

    out_dir = Path(tempfile.mkdtemp(prefix="rnnkit-torch-suite-"))
    try:
        runs = [
            run_pytest(
                test_dir,
                expression,
                out_dir / f"{label}.xml",
                swap=label == "rnnkit",
                label=label,
                verbose=args.verbose,
            )
            for label in ("torch", "rnnkit")
        ]
        torch_outcomes, rnnkit_outcomes = (parse_junit(run.xml) for run in runs)
    except (RuntimeError, ET.ParseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"reports kept in {out_dir}", file=sys.stderr)
        return 2

    print(f"files: {', '.join(FILES)} in {test_dir}")
    print(f"-k {expression}")
    for run in runs:
        counts: dict[str, int] = {}
        for outcome in (torch_outcomes if run.label == "torch" else rnnkit_outcomes).values():
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"{run.label} run: {summary} in {run.seconds:.0f} s (pytest exit {run.returncode})")

    broken = compare(torch_outcomes, rnnkit_outcomes)
    passing = sum(outcome.status == "passed" for outcome in torch_outcomes.values())
    only_ours = sum(
        outcome.status == "passed"
        and torch_outcomes.get(test_id, Outcome("missing")).status != "passed"
        for test_id, outcome in rnnkit_outcomes.items()
    )
    print(f"passing on torch.nn: {passing}")
    print(f"of those, passing on rnnkit: {passing - len(broken)}")
    print(f"passing on rnnkit only (not counted above): {only_ours}")
    if broken:
        print(f"failing on rnnkit ({len(broken)}):")
        for test_id, outcome in broken.items():
            print(f"  {test_id}: [{outcome.status}] {outcome.message}")

    if args.keep:
        for run in runs:
            print(f"{run.label} report: {run.xml}")
    else:
        for run in runs:
            run.xml.unlink(missing_ok=True)
        out_dir.rmdir()
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
