"""A fixed catalogue of hostile cases, by category, and a Markdown table of what happened.

Run: ``.venv/bin/python benchmarks/hostile_probe.py [--out benchmarks/results/hostile_probe.md]``
(a few minutes). Each category runs in its own worker process (``--worker NAME``), which
prints one JSON outcome per case; the parent counts them.

Every case ends in exactly one of: a **clear error** (rnnkit's documented exception, or exit
code 2 with one ``error:`` line, whose message is one line), a **correct result** (equal to
an independent reference: torch.nn, the layer's reference path, the torch-free runtime, an
uninterrupted run, ...), an **unclear error** (another exception type, a multi-line message,
an unexpected exit code), a **traceback** (an exception escaping a command), or a **silent
wrong answer** (a result that differs from the reference, or a non-finite one). Besides,
a case counts as a **huge allocation** when its peak resident memory grew by more than
``HUGE`` (Linux, measured by resetting the peak before the case), and as **files disclosed**
when it opened (Python's audit hook) or printed a file that the input named outside the
paths it was given. Commands run in the worker through ``rnnkit.cli.run``, the console
script's own function, with ``sys.argv``, stdin, stdout and stderr replaced: an exception
escaping it is what the console script prints as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HUGE = 500 * 2**20  # bytes of peak resident memory one case may add
CATEGORIES = {
    "layer inputs": "layers",
    "model folders (Forecaster.load)": "folders_api",
    "model folders (rnnkit predict/evaluate)": "folders_cli",
    "runtime files": "runtime",
    "CLI inputs": "cli",
    "stream lines": "stream",
    "SIGKILL during training/checkpoint, then resume": "kill",
    "NaN/inf training": "diverge",
    "determinism across thread counts": "threads",
}
COLUMNS = ["clear", "correct", "unclear", "traceback", "huge", "silent", "disclosed"]
HEADINGS = [
    "clear errors",
    "correct results",
    "unclear errors",
    "tracebacks",
    "huge allocations",
    "silent wrong answers",
    "files disclosed",
]

# ------------------------------------------------------------------ worker-side helpers

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


def _peak() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))


def _reset_peak() -> int | None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _peak()
    except OSError:
        return None


class Probe:
    """Runs cases in this worker and prints one JSON outcome per case."""

    def __init__(self, category: str, secrets: list[Path]) -> None:
        self.category, self.secrets = category, [os.path.realpath(s) for s in secrets]

    def case(self, name: str, run: Callable[[], str]) -> None:
        """``run()`` returns 'clear', 'correct', 'unclear', 'traceback' or 'silent' (or
        raises: an unclear error)."""
        global _OPENED
        before = _reset_peak()
        _OPENED = []
        try:
            outcome = run()
        except Exception as error:
            outcome = f"unclear: {type(error).__name__}: {str(error)[:200]}"
        opened, _OPENED = _OPENED, None
        grown = (_peak() - before) if before is not None else 0
        record = {
            "category": self.category,
            "case": name,
            "outcome": outcome.split(":")[0],
            "detail": outcome,
            "huge": grown > HUGE,
            "grown_mb": round(grown / 2**20),
            "disclosed": any(path in self.secrets for path in opened),
        }
        print(json.dumps(record), flush=True)


def expect_error(
    call: Callable[[], Any], types: tuple[type, ...], check: Callable[[Any], str] | None = None
) -> str:
    """'clear' if ``call`` raises one of ``types`` in one line; 'unclear' for another error
    or a multi-line one; else ``check(result)`` ('correct' or 'silent'), 'silent' without
    a check."""
    try:
        result = call()
    except types as error:
        text = str(error)
        return "clear" if text and "\n" not in text else f"unclear: multi-line {text[:120]!r}"
    except Exception as error:
        return f"unclear: {type(error).__name__}: {str(error)[:160]}"
    return check(result) if check else "silent: accepted"


def command(argv: list[str], stdin: str = "") -> tuple[int | None, str, str]:
    """``rnnkit ARGV`` through the console script's function: (exit code or None when an
    exception escaped, stdout, stderr)."""
    from rnnkit.cli import run

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["rnnkit", *argv], io.StringIO(stdin)
    code: int | None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0
    except BaseException as error:
        code = None
        err.write(f"Traceback: {type(error).__name__}: {error}")
    finally:
        sys.argv, sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def cli_outcome(
    argv: list[str], stdin: str = "", ok: Callable[[str], bool] | None = None, secret: str = ""
) -> str:
    """A command's outcome: exit 2 with one ``error:`` line is clear; exit 0 is correct when
    ``ok(stdout)`` (silent otherwise, or unclear without ``ok``)."""
    code, out, err = command(argv, stdin)
    if secret and secret in out + err:
        return "silent: printed the secret"  # counted as disclosed below as well
    if code is None:
        return f"traceback: {err[-200:]}"
    if code == 2:
        lines = err.rstrip("\n").split("\n")
        one = len(lines) == 1 and lines[0].startswith("error: ")
        return "clear" if one else f"unclear: {err[:200]!r}"
    if code == 0 and ok is not None:
        return "correct" if ok(out) else f"silent: {out[:160]!r}"
    return f"unclear: exit {code}: {err[:160]!r}"


def finite_json(text: str) -> bool:
    try:
        data = json.loads(text, parse_constant=lambda name: 1 / 0)
    except (ValueError, ZeroDivisionError):
        return False
    return all(math.isfinite(v) for column in data.values() for v in column)


# --------------------------------------------------------------- shared training helpers


def small_series(steps: int = 200, nan_at: int | None = None) -> Any:
    import numpy as np

    from rnnkit.data import TimeSeries

    rng = np.random.default_rng(7)
    t = np.arange(steps)
    load = 10 + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, steps)
    stamps = np.datetime64("2024-03-01T00:00") + t * np.timedelta64(30, "m")
    if nan_at is not None:
        load[nan_at] = math.nan
    return TimeSeries(load[:, None], ("load",), 1, stamps)


def small_forecaster(epochs: int = 1, learning_rate: float = 3e-3, **options: Any) -> Any:
    from rnnkit.tasks import Forecaster
    from rnnkit.train import TrainConfig

    settings = {
        "lookback": 8,
        "horizon": 4,
        "stride": 2,
        "cell": "gru",
        "hidden_size": 4,
        "season": 12,
        "blend": False,
        "transform": "none",
        "base": "seasonal naive",
    }
    training = TrainConfig(max_epochs=epochs, batch_size=32, learning_rate=learning_rate)
    return Forecaster(**(settings | options), training=training)


def write_csv(path: Path, series: Any, offset: str = "") -> Path:
    import numpy as np

    rows = [
        f"{np.datetime_as_string(t)}{offset},{v!r}"
        for t, v in zip(series.timestamps, series.values[:, 0].tolist(), strict=True)
    ]
    path.write_text("date,load\n" + "\n".join(rows) + "\n")
    return path


# --------------------------------------------------------------------------- categories


def layers(probe: Probe, work: Path) -> None:
    """Each layer of rnnkit.nn on hostile inputs; results against torch.nn (drop-ins) or the
    layer's own reference path (the engine off)."""
    import torch

    from rnnkit.functional import tuning
    from rnnkit.nn import LAYERS, _engine

    drop_in = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}

    def reference(layer: Any, name: str, x: Any, hx: Any = None, lengths: Any = None) -> Any:
        if name in drop_in and lengths is None:
            theirs = drop_in[name](3, 4, num_layers=layer.num_layers, dtype=x.dtype)
            theirs.load_state_dict(layer.state_dict())
            return theirs(x, hx)[0]
        original = _engine.run
        _engine.run = lambda *args: None
        try:
            return layer(x, hx, lengths=lengths)[0]
        finally:
            _engine.run = original

    def compare(layer: Any, name: str, x: Any, **kw: Any) -> Callable[[Any], str]:
        def check(result: Any) -> str:
            want = reference(layer, name, x, **kw)
            try:
                torch.testing.assert_close(result[0], want, equal_nan=True, atol=1e-4, rtol=1e-4)
            except AssertionError as error:
                return f"silent: {str(error)[:120]}"
            return "correct"

        return check

    def layer_cases(name: str) -> dict[str, tuple[Callable[[], Any], Any]]:
        """case -> (the call, the check of its result or None for an input to refuse)."""
        torch.manual_seed(0)
        layer = LAYERS[name](3, 4, num_layers=2).eval()
        x = torch.randn(5, 2, 3)
        poisoned = x.clone()
        poisoned[2, 1, 0] = math.nan
        big = torch.randn(5, tuning.MAX_TRAINING_BATCH + 1, 3)  # the reference path with grad on
        big[1, 7, 2] = math.inf
        return {
            "wrong features": (lambda: layer(torch.randn(5, 2, 4)), None),
            "rank 4": (lambda: layer(torch.randn(1, 5, 2, 3)), None),
            "empty sequence": (lambda: layer(torch.randn(0, 2, 3)), None),
            "int64 input": (lambda: layer(torch.ones(5, 2, 3, dtype=torch.int64)), None),
            "a list, not a tensor": (lambda: layer([[1.0, 2.0, 3.0]]), None),
            "hx wrong shape": (lambda: layer(x, torch.zeros(1, 2, 4)), None),
            "lengths too long": (lambda: layer(x, lengths=torch.tensor([6, 2])), None),
            "lengths negative": (lambda: layer(x, lengths=torch.tensor([-1, 2])), None),
            "NaN in input": (lambda: layer(poisoned), compare(layer, name, poisoned)),
            "inf past the training batch": (lambda: layer(big), compare(layer, name, big)),
            "lengths valid": (
                lambda: layer(x, lengths=torch.tensor([5, 2])),
                compare(layer, name, x, lengths=torch.tensor([5, 2])),
            ),
            "non-contiguous input": (
                lambda: layer(x.transpose(0, 1).contiguous().transpose(0, 1)),
                compare(layer, name, x),
            ),
        }

    for name in sorted(LAYERS):
        cases = layer_cases(name)
        for case, (call, check) in cases.items():
            with torch.no_grad():
                probe.case(
                    f"{name}: {case}",
                    lambda c=call, k=check: expect_error(c, (ValueError, TypeError), k),
                )
        probe.case(
            f"{name}: dtype int64",
            lambda n=name: expect_error(
                lambda: LAYERS[n](3, 4, dtype=torch.int64), (ValueError, TypeError)
            ),
        )
        probe.case(
            f"{name}: num_layers 0",
            lambda n=name: expect_error(
                lambda: LAYERS[n](3, 4, num_layers=0), (ValueError, TypeError)
            ),
        )


def _trained_folder(work: Path) -> tuple[Path, Any, Any]:
    series = small_series()
    model = small_forecaster()
    model.fit(series.slice(stop=-40), val_size=40, progress=False)
    folder = model.save(work / "intact" / "model")
    return folder, series, model


def _folder_mutations(folder: Path) -> dict[str, Callable[[Path], None]]:
    """name -> a change to a copy of a model folder."""
    import struct

    def config(change: Callable[[dict], None]) -> Callable[[Path], None]:
        def apply(target: Path) -> None:
            data = json.loads((target / "config.json").read_text())
            change(data)
            (target / "config.json").write_text(json.dumps(data))

        return apply

    def model_field(key: str, value: Any) -> Callable[[Path], None]:
        return config(lambda c: c["model"].__setitem__(key, value))

    def weights(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
        def apply(target: Path) -> None:
            path = target / "weights.safetensors"
            path.write_bytes(change(path.read_bytes()))

        return apply

    def header(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
        def apply(data: bytes) -> bytes:
            size = struct.unpack("<Q", data[:8])[0]
            parsed = json.loads(data[8 : 8 + size])
            change(parsed)
            encoded = json.dumps(parsed).encode()
            return struct.pack("<Q", len(encoded)) + encoded + data[8 + size :]

        return apply

    def first_tensor(parsed: dict) -> dict:
        return parsed[sorted(k for k in parsed if k != "__metadata__")[0]]

    def rm(name: str) -> Callable[[Path], None]:
        return lambda target: (target / name).unlink()

    mutations: dict[str, Callable[[Path], None]] = {
        "hidden_size 8000": model_field("hidden_size", 8000),
        "hidden_size 10**9": model_field("hidden_size", 10**9),
        "num_layers 10**6": model_field("num_layers", 10**6),
        "horizon 10**8": model_field("horizon", 10**8),
        "lookback 10**9": model_field("lookback", 10**9),
        "lookback null": model_field("lookback", None),
        "cell 'transformer'": model_field("cell", "transformer"),
        "dropout 'abc'": model_field("dropout", "abc"),
        "season 0": config(lambda c: c.__setitem__("season", 0)),
        "season 10**9": config(lambda c: c.__setitem__("season", 10**9)),
        "scaler mean 'abc'": config(lambda c: c["scaler"].__setitem__("mean", "abc")),
        "scaler std [0]": config(lambda c: c["scaler"].__setitem__("std", [0])),
        "no 'model'": config(lambda c: c.pop("model")),
        "no 'scaler'": config(lambda c: c.pop("scaler")),
        "no 'task'": config(lambda c: c.pop("task")),
        "history null": config(lambda c: c.__setitem__("history", None)),
        "num_features 'x'": config(lambda c: c.__setitem__("num_features", "x")),
        "columns []": config(lambda c: c.__setitem__("columns", [])),
        "format 'pickle'": config(lambda c: c.__setitem__("format", "pickle")),
        "version 99": config(lambda c: c.__setitem__("version", 99)),
        "JSON nested 200,000 deep": lambda t: (t / "config.json").write_text(
            "[" * 200_000 + "]" * 200_000
        ),
        "config.json not UTF-8": lambda t: (t / "config.json").write_bytes(b"\xff\xfe{"),
        "config.json empty": lambda t: (t / "config.json").write_text(""),
        "no config.json": rm("config.json"),
        "no weights": rm("weights.safetensors"),
        "weights truncated": weights(lambda d: d[: len(d) // 2]),
        "weights random bytes": weights(lambda d: os.urandom(len(d))),
        "weights header size 2**60": weights(lambda d: struct.pack("<Q", 2**60) + d[8:]),
        "a tensor transposed": weights(
            header(lambda p: first_tensor(p).__setitem__("shape", first_tensor(p)["shape"][::-1]))
        ),
        "a tensor float64": weights(header(lambda p: first_tensor(p).__setitem__("dtype", "F64"))),
        "a tensor's offsets past the end": weights(
            header(lambda p: first_tensor(p).__setitem__("data_offsets", [0, 10**12]))
        ),
        "pickle in place of the weights": lambda t: (t / "weights.safetensors").write_bytes(
            b"\x80\x04\x95cos\nsystem\n(S'echo pwned'\ntR."
        ),
        "weights all NaN": _nan_weights,
        "metadata.data '/etc/passwd'": config(
            lambda c: c.__setitem__("metadata", {"data": {"data": "/etc/passwd"}})
        ),
        "metadata.data '../../secret.txt'": config(
            lambda c: c.__setitem__("metadata", {"data": {"data": "../../secret.txt"}})
        ),
    }
    return mutations


def _nan_weights(target: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(target / "weights.safetensors")
    save_file(
        {k: v.clone().fill_(math.nan) for k, v in tensors.items()}, target / "weights.safetensors"
    )


def _mutated(folder: Path, work: Path, name: str, mutation: Callable[[Path], None]) -> Path:
    target = Path(tempfile.mkdtemp(dir=work)) / "a" / "model"  # ../../secret.txt lands in work
    shutil.copytree(folder, target)
    mutation(target)
    (target.parents[2] / "secret.txt").write_text("top secret\n")
    return target


def folders_api(probe: Probe, work: Path) -> None:
    import numpy as np

    from rnnkit.tasks import Forecaster
    from rnnkit.train import ModelFileError

    folder, series, model = _trained_folder(work)
    expected = model.predict(series)
    for name, mutation in _folder_mutations(folder).items():
        target = _mutated(folder, work, name, mutation)
        probe.secrets.append(os.path.realpath(target.parents[2] / "secret.txt"))

        def check(loaded: Any) -> str:
            got = loaded.predict(series)
            if not np.isfinite(got).all():
                return "silent: non-finite forecast"
            return "correct" if np.array_equal(got, expected) else "silent: another forecast"

        if name.startswith("metadata"):  # a valid model: it must forecast as the intact one
            probe.case(name, lambda t=target: check(Forecaster.load(t)))
        else:
            probe.case(
                name,
                lambda t=target: expect_error(lambda: Forecaster.load(t), (ModelFileError,), check),
            )


def folders_cli(probe: Probe, work: Path) -> None:
    folder, series, _ = _trained_folder(work)
    data = write_csv(work / "user.csv", series)
    for name, mutation in _folder_mutations(folder).items():
        target = _mutated(folder, work, name, mutation)
        probe.secrets.append(os.path.realpath(target.parents[2] / "secret.txt"))
        probe.secrets.append("/etc/passwd")
        probe.case(
            f"predict: {name}",
            lambda t=target: cli_outcome(
                ["predict", str(t), str(data)], ok=finite_json, secret="top secret"
            ),
        )
        probe.case(
            f"evaluate: {name}",
            lambda t=target: cli_outcome(
                ["evaluate", str(t)], ok=lambda out: "MASE" in out, secret="top secret"
            ),
        )


def runtime(probe: Probe, work: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    import rnnkit.runtime as rt
    from rnnkit.export import export_runtime
    from rnnkit.runtime._file import HEADER_KEY, read_file

    folder, series, _ = _trained_folder(work)
    good = export_runtime(folder, work / "good.rnnkit")
    reference = rt.load(good)
    expected = [
        reference.step(v, t)
        for v, t in zip(series.values[:30], series.timestamps[:30], strict=True)
    ]

    def rewrite(name: str, change: Callable[[dict, dict], None]) -> Path:
        header, tensors = read_file(good)
        change(header, tensors)
        path = work / f"{name}.rnnkit"
        save_file(tensors, path, metadata={HEADER_KEY: json.dumps(header)})
        return path

    def set_in(section: str, key: str, value: Any) -> Callable[[dict, dict], None]:
        return lambda h, t: h[section].__setitem__(key, value)

    def check(model: Any) -> str:
        got = [
            model.step(v, t)
            for v, t in zip(series.values[:30], series.timestamps[:30], strict=True)
        ]
        same = all(
            (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
            for a, b in zip(got, expected, strict=True)
        )
        return "correct" if same else "silent: other forecasts"

    data = good.read_bytes()
    files = {
        "truncated": lambda: (work / "t.rnnkit").write_bytes(data[: len(data) // 2]),
        "random bytes": lambda: (work / "r.rnnkit").write_bytes(os.urandom(512)),
    }
    cases = {
        "missing file": work / "none.rnnkit",
        "truncated": work / "t.rnnkit",
        "random bytes": work / "r.rnnkit",
        "season 10**9": rewrite("season", set_in("forecaster", "season", 10**9)),
        "lookback 10**9": rewrite("lookback", set_in("forecaster", "lookback", 10**9)),
        "horizon 10**8": rewrite("horizon", set_in("forecaster", "horizon", 10**8)),
        "season 0": rewrite("season0", set_in("forecaster", "season", 0)),
        "season 'x'": rewrite("seasonx", set_in("forecaster", "season", "x")),
        "scaler std [0]": rewrite("std", lambda h, t: h["forecaster"]["scaler"].update(std=[0.0])),
        "scaler mean [inf]": rewrite(
            "mean", lambda h, t: h["forecaster"]["scaler"].update(mean=[math.inf])
        ),
        "hidden_size 10**9": rewrite("hidden", set_in("layer", "hidden_size", 10**9)),
        "num_layers 10**6": rewrite("layers", set_in("layer", "num_layers", 10**6)),
        "cell 'x'": rewrite("cell", set_in("layer", "cell", "x")),
        "no layer section": rewrite("nolayer", lambda h, t: h.pop("layer")),
        "architecture 'x'": rewrite("arch", lambda h, t: h.__setitem__("architecture", "x")),
        "version 2": rewrite("version", lambda h, t: h.__setitem__("version", 2)),
        "a tensor missing": rewrite("drop", lambda h, t: t.pop("head.bias")),
        "an extra tensor": rewrite(
            "extra", lambda h, t: t.__setitem__("layer.1.0.weight_ih", np.zeros(3, np.float32))
        ),
        "a tensor NaN": rewrite("nan", lambda h, t: t["head.bias"].__setitem__(0, math.nan)),
        "a tensor float64": rewrite(
            "f64", lambda h, t: t.__setitem__("head.bias", t["head.bias"].astype(np.float64))
        ),
    }
    deep = work / "deep2.rnnkit"
    save_file(
        {"x": np.zeros(1, np.float32)}, deep, metadata={HEADER_KEY: "[" * 100_000 + "]" * 100_000}
    )
    cases["header nested 100,000 deep"] = deep
    for make in files.values():
        make()
    for name, path in cases.items():
        probe.case(
            name, lambda p=path: expect_error(lambda: rt.load(p), (rt.RuntimeFileError,), check)
        )
    probe.case("intact", lambda: check(rt.load(good)))
    for name in ("season 10**9", "lookback 10**9"):  # the stream command on such a file
        probe.case(
            f"rnnkit stream, {name}",
            lambda p=cases[name]: cli_outcome(["stream", str(p)], "2024-03-01T00:00,1.0\n"),
        )


def cli(probe: Probe, work: Path) -> None:
    folder, series, _ = _trained_folder(work)
    good = write_csv(work / "good.csv", series)
    text = good.read_text()
    files = {
        "markup header": "[/x],:x:\n1,2\n",
        "field over 131,072 characters": "date,load\n2024-01-01," + "9" * 140_000 + "\n",
        "empty file": "",
        "header only": "date,load\n",
        "NaN values": text.replace(",1", ",nan", 3),
        "inf value": text.replace(",1", ",inf", 1),
        "1e308 value": text.replace(",1", ",1e308", 1),
        "dates backwards": "date,load\n" + "\n".join(reversed(text.splitlines()[1:])) + "\n",
        "dates duplicated": "date,load\n" + "\n".join(text.splitlines()[1:2] * 30) + "\n",
        "not a date": text.replace("2024-03-01T00:00", "yesterday", 1),
        "date with UTC offsets": write_csv(work / "offsets.csv", series, "+02:00").read_text(),
        "binary garbage": None,
        "ragged rows": text.replace(",1", ",1,2,3", 2),
        "semicolons": text.replace(",", ";"),
    }
    for name, content in files.items():
        path = work / f"{len(name)}-{abs(hash(name))}.csv"
        if content is None:
            path.write_bytes(os.urandom(2048))
        else:
            path.write_text(content)
        # valid files: UTC offsets are taken as UTC; a first date cell that is not a date
        # makes the column not a date column (documented), so the series has no times
        valid = name in ("date with UTC offsets", "not a date")
        probe.case(
            f"predict: {name}",
            lambda p=path, v=valid: cli_outcome(
                ["predict", str(folder), str(p)], ok=finite_json if v else None
            ),
        )
        probe.case(
            f"forecast: {name}",
            lambda p=path, v=valid: cli_outcome(
                ["forecast", "--data", str(p), "--target", "load", "--epochs", "1",
                 "--out", str(work / "runs")],
                ok=(lambda out: "Model:" in out) if v else None,
            ),
        )  # fmt: skip
        probe.case(
            f"classify: {name}",
            lambda p=path: cli_outcome(
                ["classify", "--data", str(p), "--epochs", "1", "--out", str(work / "runs")]
            ),
        )
    a_file = work / "a_file"
    a_file.write_text("x")
    others = {
        "--lookback 0": ["forecast", "--data", str(good), "--lookback", "0"],
        "--hidden-size -1": ["forecast", "--data", str(good), "--hidden-size", "-1"],
        "unknown option": ["forecast", "--nope"],
        "missing data file": ["forecast", "--data", str(work / "none.csv"), "--target", "load"],
        "a folder as data": ["forecast", "--data", str(work), "--target", "load"],
        "--out naming a file": ["forecast", "--data", "electricity", "--out", str(a_file)],
        "unknown target": ["forecast", "--data", str(good), "--target", "nope"],
        "unknown bundled data": ["forecast", "--data", "nope"],
        "predict: no such model": ["predict", str(work / "none"), str(good)],
        "predict: a file as the model": ["predict", str(a_file), str(good)],
        "evaluate: a file as the model": ["evaluate", str(a_file)],
        "classify: --cell transformer": ["classify", "--data", "sentiment", "--cell", "x"],
        "classify: --dropout 2": ["classify", "--data", "sentiment", "--dropout", "2"],
        "classify: --test-fraction 1": ["classify", "--data", "sentiment", "--test-fraction", "1"],
        "export: bad format": ["export", str(folder), "--out", str(work / "x"), "--format", "x"],
        "stream: no such file": ["stream", str(work / "none.rnnkit")],
        "stream: --on-error x": ["stream", str(work / "none.rnnkit"), "--on-error", "x"],
        "stream: --dtype half": ["stream", str(work / "none.rnnkit"), "--dtype", "half"],
    }
    for name, argv in others.items():
        probe.case(name, lambda a=argv: cli_outcome(a))


def stream(probe: Probe, work: Path) -> None:
    import numpy as np

    import rnnkit.runtime as rt
    from rnnkit.export import export_runtime

    folder, series, _ = _trained_folder(work)
    path = export_runtime(folder, work / "f.rnnkit")
    start = np.datetime64("2024-03-01T00:00")
    good = [
        f"{start + k * np.timedelta64(30, 'm')},{v!r}"
        for k, v in enumerate(series.values[:24, 0].tolist())
    ]
    last = start + 24 * np.timedelta64(30, "m")
    bad = {
        "not a number": f"{last},abc",
        "nan": f"{last},nan",
        "inf": f"{last},inf",
        "1e308 (overflows after scaling)": f"{last},1e308",
        "two values for one column": f"{last},1.0,2.0",
        "no value": f"{last},",
        "not a time": "yesterday,1.0",
        "the same time again": good[-1],
        "a time before the last": good[0],
        "markup": f"{last},[/x]",
        "only commas": ",,,",
        "offset of 25 hours": f"{last}+25:00,1.0",
        "a 200,000-character line": f"{last}," + "9" * 200_000,
    }
    model = rt.load(path)
    outputs = [
        model.step(v, t) for v, t in zip(series.values[:25], series.timestamps[:25], strict=True)
    ]
    after = ",".join(f"{v:.8g}" for v in outputs[-1].ravel())  # the 25th step, at `last`

    def skipped(out: str) -> bool:  # the bad line changed nothing: the next step is right
        return out.splitlines()[-1] == after

    for name, line in bad.items():
        lines = "\n".join([*good, line]) + "\n"
        probe.case(f"stop: {name}", lambda s=lines: cli_outcome(["stream", str(path)], s))
        skip = "\n".join([*good, line, f"{last},{float(series.values[24, 0])!r}"]) + "\n"
        probe.case(
            f"skip: {name}",
            lambda s=skip: cli_outcome(["stream", str(path), "--on-error", "skip"], s, ok=skipped),
        )
    offsets = "\n".join(
        f"{start + k * np.timedelta64(30, 'm') + np.timedelta64(120, 'm')}+02:00,{v!r}"
        for k, v in enumerate(series.values[:25, 0].tolist())
    )
    probe.case(
        "UTC offsets (+02:00) equal UTC times",
        lambda: cli_outcome(["stream", str(path)], offsets + "\n", ok=skipped),
    )
    _layer_stream(probe, work)


def _layer_stream(probe: Probe, work: Path) -> None:
    """Bad lines into an exported torch.nn.LSTM (3 inputs); with --on-error skip the output
    of the valid line after them must be torch's on that line alone."""
    import torch

    from rnnkit.export import export_runtime

    torch.manual_seed(0)
    layer = torch.nn.LSTM(3, 5).eval()
    path = export_runtime(layer, work / "lstm.rnnkit")
    with torch.no_grad():
        want = layer(torch.tensor([[[0.5, 1.0, 2.0]]]))[0][0, 0].tolist()

    def alone(out: str) -> bool:
        lines = out.splitlines()
        got = [float(v) for v in lines[0].split(",")] if len(lines) == 1 else []
        return len(got) == 5 and all(abs(a - b) < 1e-6 for a, b in zip(got, want, strict=True))

    bad = {"1e39 (past float32)": "1e39,0,0", "nan": "nan,0,0", "-inf": "-inf,0,0",
           "two values": "1,2", "four values": "1,2,3,4", "text": "a,b,c"}  # fmt: skip
    for name, line in bad.items():
        probe.case(
            f"layer, skip: {name}",
            lambda b=line: cli_outcome(
                ["stream", str(path), "--on-error", "skip"], f"{b}\n0.5,1,2\n", ok=alone
            ),
        )


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {here!r})
from hostile_probe import small_forecaster, small_series
import rnnkit.atomic, rnnkit.train.io
moment, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
calls = {{"n": 0}}
def killer(original, at):
    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return wrapped
if moment.startswith("checkpoint-staged-"):  # staging file written, not yet renamed
    rnnkit.atomic.fsync = killer(rnnkit.atomic.fsync, 2 * int(moment.rsplit("-", 1)[1]) - 1)
elif moment.startswith("checkpoint-renamed-"):  # renamed, folder not yet flushed
    rnnkit.atomic.fsync = killer(rnnkit.atomic.fsync, 2 * int(moment.rsplit("-", 1)[1]))
elif moment == "model-save":  # the model folder staged, not yet swapped in
    rnnkit.train.io.fsync = killer(rnnkit.train.io.fsync, 2)
model = small_forecaster(epochs=5, hidden_size=16)
model.fit(small_series(400), val_size=60, progress=False, log_dir=out + "/logs", resume=resume)
model.save(out + "/model")
"""


def kill(probe: Probe, work: Path) -> None:
    """Training killed (SIGKILL) at fixed moments, then resumed: the model must be bit-equal
    to one trained without interruption."""
    from safetensors.numpy import load_file

    script = work / "train.py"
    script.write_text(KILL_SCRIPT.format(here=str(Path(__file__).resolve().parent)))

    def train(out: Path, moment: str = "none", resume: bool = False, after: float | None = None):
        process = subprocess.Popen(
            [sys.executable, str(script), moment, str(out), str(int(resume))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if after is not None:
            time.sleep(after)
            process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=600)
        return process.returncode, err

    if train(work / "baseline")[0] != 0:
        raise RuntimeError("the uninterrupted training run failed")
    baseline = load_file(work / "baseline" / "model" / "weights.safetensors")
    moments = {
        "checkpoint-staged-1": None,
        "checkpoint-renamed-2": None,
        "checkpoint-staged-3": None,
        "model-save": None,
        "timed 9 s": 9.0,
    }

    def run(moment: str, after: float | None) -> str:
        out = work / moment.replace(" ", "-")
        code, err = train(out, moment if after is None else "none", after=after)
        if code == 0:
            return "unclear: the run finished before the kill"
        # --resume where a checkpoint was written; a kill before the first one starts over
        code, err = train(out, resume=(out / "logs" / "checkpoints" / "last.safetensors").exists())
        if code != 0:
            return f"traceback: {err[-200:]}" if "Traceback" in err else f"clear: {err[-120:]}"
        weights = load_file(out / "model" / "weights.safetensors")
        same = baseline.keys() == weights.keys() and all(
            (baseline[k] == weights[k]).all() for k in baseline
        )
        return "correct" if same else "silent: resumed weights differ"

    for moment, after in moments.items():
        probe.case(moment, lambda m=moment, a=after: run(m, a))


def diverge(probe: Probe, work: Path) -> None:
    from rnnkit.data import TimeSeries
    from rnnkit.train import DivergedError

    def fit(model: Any, series: Any) -> Any:
        model.fit(series, val_size=40, progress=False, log_dir=work / "logs")
        return model

    def nothing_saved(_: Any) -> str:
        return "silent: trained without complaint"

    series = small_series()
    probe.case(
        "learning_rate 1e30",
        lambda: expect_error(
            lambda: fit(small_forecaster(epochs=3, learning_rate=1e30), series),
            (DivergedError,),
            nothing_saved,
        ),
    )
    probe.case(
        "NaN in the series",
        lambda: expect_error(
            lambda: fit(small_forecaster(), small_series(nan_at=50)), (ValueError,), nothing_saved
        ),
    )
    values = series.values.copy()
    values[60] = math.inf
    probe.case(
        "inf in the series",
        lambda: expect_error(
            lambda: TimeSeries(values, ("load",), 1, series.timestamps), (ValueError,)
        ),
    )
    csv = write_csv(work / "outlier.csv", series)
    csv.write_text(csv.read_text().replace(",1", ",1e30", 1))
    probe.case(
        "1e30 outlier through the CLI",
        lambda: cli_outcome(
            [
                "forecast",
                "--data",
                str(csv),
                "--target",
                "load",
                "--epochs",
                "1",
                "--out",
                str(work / "runs"),
            ],
            ok=lambda out: True,
        ),
    )
    nan_csv = write_csv(work / "nan.csv", series)
    nan_csv.write_text(nan_csv.read_text().replace(",1", ",nan", 1))
    probe.case(
        "NaN cell through the CLI",
        lambda: cli_outcome(
            ["forecast", "--data", str(nan_csv), "--target", "load", "--out", str(work / "r")]
        ),
    )
    probe.case("layer training on NaN input", lambda: _layer_nan_training())


def _layer_nan_training() -> str:
    import torch

    from rnnkit.train import DivergedError, TrainConfig, train

    x = torch.randn(32, 6, 3)
    x[3, 2, 1] = math.nan
    data = torch.utils.data.TensorDataset(x, torch.randn(32, 1))

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            from rnnkit.nn import LSTM

            self.rnn, self.head = LSTM(3, 4, batch_first=True), torch.nn.Linear(4, 1)

        def forward(self, x: Any) -> Any:
            return self.head(self.rnn(x)[0][:, -1])

    def loss(network: Any, batch: Any) -> Any:
        inputs, targets = batch
        return torch.nn.functional.mse_loss(network(inputs), targets)

    try:
        train(Net(), loss, data, data, TrainConfig(max_epochs=2, batch_size=8), progress=False)
    except DivergedError as error:
        return "clear" if "\n" not in str(error) else "unclear: multi-line"
    return "silent: trained on NaN"


THREADS_SCRIPT = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from rnnkit.nn import LAYERS
configs = {configs!r}
results = {{}}
for name, options, batch in configs:
    torch.manual_seed(0)
    layer = LAYERS[name](8, 16, **options)
    x = torch.randn(12, batch, 8)
    torch.manual_seed(1)
    output = layer(x)[0]
    output.square().mean().backward()
    values = [output.detach().flatten()] + [p.grad.flatten() for p in layer.parameters()]
    results[f"{{name}} {{options}} batch {{batch}}"] = torch.cat(values).tolist()
print(json.dumps(results))
"""
THREAD_CONFIGS = [
    ("lstm", {}, 5),
    ("lstm", {}, 16),
    ("gru", {}, 7),
    ("gru", {}, 16),
    ("layernorm_gru", {"zoneout": 0.1}, 16),
    ("layernorm_gru", {"zoneout": 0.1}, 200),
    ("layernorm_lstm", {}, 9),
    ("layernorm_lstm", {}, 33),
    ("indrnn", {}, 16),
    ("jordan", {"nonlinearity": "relu"}, 16),
    ("mingru", {}, 16),
]
# The largest difference, relative to the largest value, that float32 summed in another order
# gives: torch's CPU kernels split products and reductions by thread count (MKL's gemm at 5 to
# 9 rows, oneDNN's LSTM weight gradients, F.linear); torch.nn.LSTM's differ by this much too.
ROUNDING = 1e-5


def threads(probe: Probe, work: Path) -> None:
    """The same seed at 1 thread, at 2 threads, and at 2 threads again (another process).

    Two processes at one thread count must agree bit for bit; 1 and 2 threads may differ by
    float32 rounding (torch.nn's layers do), by no more than ``ROUNDING`` of the largest value.
    """
    import numpy as np

    script = work / "threads.py"
    script.write_text(THREADS_SCRIPT.format(configs=THREAD_CONFIGS))
    runs = []
    for count in (1, 2, 2):
        done = subprocess.run(
            [sys.executable, str(script), str(count)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        runs.append({name: np.array(values) for name, values in json.loads(done.stdout).items()})

    def compare(name: str) -> str:
        one, two, again = (run[name] for run in runs)
        if not np.array_equal(two, again):
            return "silent: two processes at 2 threads differ"
        difference = np.abs(one - two).max() / np.abs(one).max()
        if difference > ROUNDING:
            return f"silent: 1 and 2 threads differ by {difference:.1e} of the largest value"
        return "correct"

    for name in runs[0]:
        probe.case(name, lambda n=name: compare(n))


# --------------------------------------------------------------------------------- main


def worker(name: str) -> None:
    sys.addaudithook(_audit)
    os.environ.setdefault("RNNKIT_PROGRESS", "0")
    import warnings

    warnings.simplefilter("ignore")  # warnings are not what the probe counts
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        work.mkdir()
        probe = Probe(name, [work / "secret.txt", Path("/etc/passwd")])
        globals()[name](probe, work)


def table(records: list[dict]) -> str:
    lines = [
        "| category | cases | " + " | ".join(HEADINGS) + " |",
        "| --- | " + " | ".join("---:" for _ in range(len(HEADINGS) + 1)) + " |",
    ]
    totals = [0] * (len(COLUMNS) + 1)
    for title, name in CATEGORIES.items():
        rows = [r for r in records if r["category"] == name]
        counts = [len(rows)] + [
            sum(r["outcome"] == c for r in rows)
            if c not in ("huge", "disclosed")
            else sum(bool(r[c]) for r in rows)
            for c in COLUMNS
        ]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        lines.append(f"| {title} | " + " | ".join(map(str, counts)) + " |")
    lines.append("| **total** | " + " | ".join(f"**{n}**" for n in totals) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=sorted(CATEGORIES.values()))
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--only", nargs="*", choices=sorted(CATEGORIES.values()))
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments.worker)
        return
    records, started = [], time.time()
    for name in arguments.only or CATEGORIES.values():
        begun = time.time()
        done = subprocess.run(
            [sys.executable, __file__, "--worker", name],
            capture_output=True,
            text=True,
            check=False,
        )
        got = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0:
            got.append(
                {
                    "category": name,
                    "case": "the worker itself",
                    "outcome": "traceback",
                    "detail": done.stderr[-300:],
                    "huge": False,
                    "disclosed": False,
                }
            )
        records += got
        print(f"{name}: {len(got)} cases in {time.time() - begun:.0f} s", file=sys.stderr)
    problems = [
        r
        for r in records
        if r["outcome"] in ("unclear", "traceback", "silent") or r["huge"] or r["disclosed"]
    ]
    report = [
        "# Hostile probe",
        "",
        f"`benchmarks/hostile_probe.py`: {len(records)} cases in {time.time() - started:.0f} s, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs. A huge allocation is a case "
        f"whose peak resident memory grew by more than {HUGE // 2**20} MiB.",
        "",
        table(records),
        "",
        "## Cases that are not a clear error or a correct result",
        "",
        *(
            [
                f"- {r['category']}: {r['case']}: {r['detail'][:200]}"
                + (f" (peak RSS +{r.get('grown_mb')} MiB)" if r["huge"] else "")
                + (" (a file was disclosed)" if r["disclosed"] else "")
                for r in problems
            ]
            or ["None."]
        ),
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if arguments.out:
        arguments.out.write_text(text)


if __name__ == "__main__":
    main()
