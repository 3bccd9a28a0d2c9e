"""Fuzzing the command line: CSV files for ``rnnkit predict``, ``forecast`` and ``classify``,
lines for ``rnnkit stream``, and model folders that name files.

Commands run in-process through typer's CliRunner, which does not print tracebacks but keeps
the exception that escaped the command (what the console script would print as one) in
``result.exception``: it must be None or a SystemExit, the exit code 0 or 2, and an exit 2
one line on stderr. One case runs the console script itself in a subprocess. Where an input
is valid by construction, the output must equal an independent reference: the torch-free
runtime fed the same values, its times converted to UTC by Python's ``datetime``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _fuzz import assert_not_opened, fuzz_settings, opened_files
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

import rnnkit.runtime as rt
from rnnkit.cli import app
from rnnkit.export import export_runtime
from rnnkit.preprocess import utc_minutes

runner = CliRunner()
START = dt.datetime(2024, 3, 1)
STEP = dt.timedelta(minutes=30)
OFFSETS = ["", "Z", "+00:00", "+02:00", "-05:30", "+0100"]
#: Field texts no numeric column takes: non-finite, overflowing after scaling, rich markup.
BAD_NUMBERS = ["nan", "-inf", "1e308", "abc", "", "[/x]", ":x:"]


def assert_clean(result: Any, codes: tuple[int, ...] = (0, 2)) -> None:
    """No exception escaped (no traceback), the exit code is one of ``codes``, and an
    error is one line."""
    escaped = result.exception
    assert escaped is None or isinstance(escaped, SystemExit), repr(escaped)
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.rstrip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def stamp(utc: dt.datetime, offset: str) -> str:
    """``utc`` written as local time with the UTC offset ``offset`` ('' for none)."""
    if offset in ("", "Z"):
        return utc.strftime("%Y-%m-%dT%H:%M") + offset
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    shift = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (utc + shift).strftime("%Y-%m-%dT%H:%M") + offset


def utc_minute(text: str) -> np.datetime64:
    """The reference conversion: Python's ``datetime`` reads the offset."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return np.datetime64(parsed, "m")


# ------------------------------------------------------------------------------ stream


@st.composite
def stream_lines(draw: st.DrawFn) -> tuple[list[str], list[bool]]:
    """Lines for a one-column calendar forecaster and whether each is a valid step."""
    lines, valid = [], []
    accepted = 0  # half hours after START of the last valid line's time
    for _ in range(draw(st.integers(1, 28))):
        kind = draw(st.sampled_from(["ok"] * 8 + ["number", "extra", "time", "again", "blank"]))
        used = accepted if kind == "again" else accepted + draw(st.integers(1, 3))
        utc = START + used * STEP
        when = stamp(utc, draw(st.sampled_from(OFFSETS)))
        value = repr(draw(st.floats(-50, 50)))
        if kind == "number":
            value = draw(st.sampled_from(BAD_NUMBERS))
        elif kind == "extra":
            value += ",1.0"
        elif kind == "time":
            when = draw(
                st.sampled_from(["2024-13-01T00:00", "yesterday", "2024-03-01T00:00+25:00"])
            )
        ok = kind == "ok" or (kind == "again" and accepted == 0 and not any(valid))
        if kind == "blank":
            lines.append("")
            valid.append(False)
            continue
        lines.append(f"{when},{value}")
        valid.append(ok)
        accepted = used if ok else accepted
    return lines, valid


@fuzz_settings(40)
@given(case=stream_lines(), policy=st.sampled_from(["stop", "skip", "warn"]))
def test_stream_lines(small_forecaster, case, policy) -> None:
    _, runtime, _ = small_forecaster
    lines, valid = case
    result = runner.invoke(
        app, ["stream", str(runtime), "--on-error", policy], input="\n".join(lines) + "\n"
    )
    assert_clean(result)
    reference, expected = rt.load(runtime), []
    invalid = [n for n, (line, ok) in enumerate(zip(lines, valid, strict=True)) if line and not ok]
    stop = invalid[0] if invalid and policy == "stop" else len(lines)
    for line, ok in zip(lines[:stop], valid[:stop], strict=True):
        if ok:
            when, value = line.split(",")
            output = reference.step([float(value)], utc_minute(when))
            expected.append("" if output is None else ",".join(f"{v:.8g}" for v in output.ravel()))
    assert result.stdout.splitlines() == expected
    assert result.exit_code == (2 if policy == "stop" and invalid else 0)
    if policy == "warn":
        warnings = result.stderr.splitlines()
        assert len(warnings) == len(invalid) and all(w.startswith("warning: ") for w in warnings)
    if policy == "skip":
        assert result.stderr == ""
    event(f"{len(invalid)} invalid lines" if invalid else "all valid")


@pytest.fixture(scope="module")
def lstm_runtime(tmp_path_factory) -> tuple[torch.nn.LSTM, Path]:
    """A torch.nn.LSTM (3 inputs) and its runtime file."""
    torch.manual_seed(0)
    layer = torch.nn.LSTM(3, 5, num_layers=2).eval()
    return layer, export_runtime(layer, tmp_path_factory.mktemp("lstm") / "lstm.rnnkit")


LAYER_LINES = st.one_of(
    st.lists(st.floats(-10, 10), min_size=3, max_size=3).map(lambda v: ",".join(map(repr, v))),
    st.sampled_from(["1,2", "1,2,3,4", "1,nan,2", "inf,0,0", "1e39,0,0", "a,b,c", ",,", "[/x]"]),
)


@fuzz_settings(40)
@given(lines=st.lists(LAYER_LINES, min_size=1, max_size=12))
def test_stream_lines_into_a_layer(lstm_runtime, lines) -> None:
    """With --on-error skip, the outputs are torch.nn.LSTM's on the valid lines alone."""
    layer, path = lstm_runtime
    result = runner.invoke(app, ["stream", str(path), "--on-error", "skip"], input="\n".join(lines))
    assert_clean(result, codes=(0,))
    rows = []
    for line in lines:
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError:
            continue
        if len(values) == 3 and all(math.isfinite(v) and abs(v) < 3e38 for v in values):
            rows.append(values)
    event(f"{len(lines) - len(rows)} lines skipped")
    printed = [[float(v) for v in line.split(",")] for line in result.stdout.splitlines()]
    assert len(printed) == len(rows)
    if rows:
        with torch.no_grad():
            expected = layer(torch.tensor(rows, dtype=torch.float32)[:, None])[0][:, 0]
        np.testing.assert_allclose(printed, expected.numpy(), rtol=1e-6, atol=1e-6)


#: UTC offsets of every form ISO 8601 gives: +hh:mm, +hhmm, -hh...
ANY_OFFSET = st.from_regex(r"[+-](0[0-9]|1[0-9]|2[0-3]):?[0-5][0-9]", fullmatch=True)


@fuzz_settings(100)
@given(
    when=st.datetimes(dt.datetime(1971, 1, 2), dt.datetime(2200, 1, 1)),
    offset=st.one_of(st.sampled_from(OFFSETS), ANY_OFFSET),
    separator=st.sampled_from(["T", " "]),
)
def test_times_with_offsets_are_read_in_utc(when, offset, separator) -> None:
    text = stamp(when.replace(second=0, microsecond=0), offset).replace("T", separator)
    assert utc_minutes([text, text])[0] == utc_minute(text.replace(" ", "T"))


def test_stream_takes_utc_offsets_as_utc(small_forecaster) -> None:
    """The same instants written with four offsets give the forecasts of the UTC times
    (NumPy parsed them with a warning, which the test settings make an error)."""
    _, runtime, series = small_forecaster
    outputs = []
    for offset in ("", "Z", "+02:00", "-0530"):
        text = "".join(
            f"{stamp(START + k * STEP, offset)},{value:.17g}\n"
            for k, value in enumerate(series.values[:24, 0])
        )
        result = runner.invoke(app, ["stream", str(runtime)], input=text)
        assert_clean(result, codes=(0,))
        outputs.append(result.stdout)
    model = rt.load(runtime)
    rows = zip(series.values[:24], series.timestamps[:24], strict=True)
    expected = [model.step(values, when) for values, when in rows]
    assert outputs[0].splitlines()[-1] == ",".join(f"{v:.8g}" for v in expected[-1].ravel())
    assert outputs[1:] == [outputs[0]] * 3


# ----------------------------------------------------------------------------- CSV files


@st.composite
def forecast_csvs(draw: st.DrawFn) -> tuple[str, bool, list[str], list[float], bool]:
    """A CSV for the one-column forecaster: its text, whether it is valid, its times and
    values, and whether a row has more cells than the header."""
    header = draw(st.sampled_from(["date,load"] * 6 + ["load", "date,value", "[/x],:x:", ""]))
    faults = draw(st.sampled_from(["none"] * 3 + ["number", "time", "order", "long", "cells"]))
    rows = draw(st.one_of(st.sampled_from([0, 1, 19]), st.integers(20, 40)))
    times, values, text = [], [], [header] if header else []
    bad_row = draw(st.integers(0, max(rows - 1, 0)))
    for k in range(rows):
        when = stamp(START + k * STEP, draw(st.sampled_from(OFFSETS)))
        value = 10 + draw(st.floats(-5, 5))
        cell = repr(value)
        if k == bad_row and faults != "none":
            if faults == "number":
                cell = draw(st.sampled_from(BAD_NUMBERS))
            elif faults == "time":
                when = "2024-02-30T00:00"
            elif faults == "order":
                when = stamp(START + (k - 2) * STEP, "")
            elif faults == "long":
                cell = "9" * 140_000  # past the csv module's default field limit
            else:
                cell += ",1"
        times.append(when)
        values.append(value)
        text.append(f"{when},{cell}")
    valid = header == "date,load" and faults == "none" and rows >= 20  # the warmup: 8 + 12
    ragged = faults == "cells" and rows > 0 and header == "date,load"
    return "\n".join(text) + "\n", valid, times, values, ragged


@fuzz_settings(30)
@given(case=forecast_csvs())
def test_predict_reads_hostile_csvs(small_forecaster, tmp_path_factory, case) -> None:
    folder, runtime, _ = small_forecaster
    text, valid, times, values, ragged = case
    path = tmp_path_factory.mktemp("csv") / "input.csv"
    path.write_text(text)
    result = runner.invoke(app, ["predict", str(folder), str(path)])
    assert_clean(result)
    event("valid" if valid else f"exit {result.exit_code}")
    if result.exit_code == 0:
        forecast = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(name))
        assert all(math.isfinite(v) for column in forecast.values() for v in column)
    if ragged:  # its value was read from the wrong cell
        assert result.exit_code == 2 and "cells; expected 2" in result.stderr, result.output
    if valid:
        assert result.exit_code == 0, result.output
        stamps = np.array([utc_minute(t) for t in times])
        expected = rt.load(runtime).run(np.array(values)[:, None], stamps)[:, 0]
        np.testing.assert_allclose(forecast["load"], expected, rtol=1e-5, atol=1e-4)


@fuzz_settings(6)
@given(case=forecast_csvs())
def test_forecast_command_reads_hostile_csvs(tmp_path_factory, case) -> None:
    text = case[0]
    folder = tmp_path_factory.mktemp("forecast")
    (folder / "input.csv").write_text(text)
    options = ["--target", "load", "--epochs", "1", "--hidden-size", "2", "--out"]
    result = runner.invoke(
        app, ["forecast", "--data", str(folder / "input.csv"), *options, str(folder / "out")]
    )
    assert_clean(result)
    event(f"exit {result.exit_code}")


TEXTS = st.one_of(
    st.sampled_from(["good film", "bad film", "[/x] :x:", "", '"quoted, comma"', "x" * 140_000]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12),
)


@fuzz_settings(6)
@given(
    header=st.sampled_from(["text,label", "text", "label,text", "txt,lbl"]),
    rows=st.lists(st.tuples(TEXTS, st.sampled_from(["pos", "neg", "", "[b]"])), max_size=24),
)
def test_classify_command_reads_hostile_csvs(tmp_path_factory, header, rows) -> None:
    folder = tmp_path_factory.mktemp("classify")
    lines = [header] + [f'"{text.replace(chr(34), chr(34) * 2)}",{label}' for text, label in rows]
    (folder / "input.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = ["--epochs", "1", "--hidden-size", "2", "--embedding-size", "2", "--no-progress"]
    result = runner.invoke(
        app,
        ["classify", "--data", str(folder / "input.csv"), *options, "--out", str(folder / "o")],
    )
    assert_clean(result)
    event(f"exit {result.exit_code}")


def test_predict_without_the_times_the_model_was_trained_on(small_forecaster, tmp_path) -> None:
    """It was torch's "input: expected H_in = 6 features" from inside the network."""
    folder, _, series = small_forecaster
    path = tmp_path / "no_dates.csv"
    path.write_text("load\n" + "".join(f"{v!r}\n" for v in series.values[:, 0].tolist()))
    result = runner.invoke(app, ["predict", str(folder), str(path)])
    assert_clean(result, codes=(2,))
    assert "series: expected a series with timestamps" in result.stderr


# --------------------------------------------------------------- folders that name files


@pytest.mark.parametrize("named", ["../../secret.txt", "/etc/passwd"])
def test_a_folder_never_chooses_the_file_read(small_forecaster, tmp_path, named) -> None:
    folder, _, series = small_forecaster
    (tmp_path / "secret.txt").write_text("secret\n")
    target = tmp_path / "a" / "b" / "model"
    shutil.copytree(folder, target)
    config = json.loads((target / "config.json").read_text())
    config["metadata"] = {"data": {"data": named, "target": "load", "date_column": "date"}}
    (target / "config.json").write_text(json.dumps(config))
    data = tmp_path / "user.csv"
    data.write_text("date,load\n" + "".join(
        f"{t},{v:.17g}\n" for t, v in zip(series.timestamps, series.values[:, 0], strict=True)
    ))  # fmt: skip
    with opened_files() as opened:
        evaluated = runner.invoke(app, ["evaluate", str(target)])
        predicted = runner.invoke(app, ["predict", str(target), str(data)])
    assert_clean(evaluated, codes=(2,))
    assert "pass it with --data FILE" in evaluated.stderr
    assert_clean(predicted, codes=(0,))  # the user's file, not the one the folder names
    assert "secret" not in evaluated.output + predicted.output
    assert_not_opened(opened, tmp_path / "secret.txt", Path("/etc/passwd"))


def test_the_console_script_prints_no_traceback(small_forecaster, tmp_path) -> None:
    """The real entry point (rich markup in a header, a field over csv's limit): one line."""
    folder, _, _ = small_forecaster
    for name, text in [("markup", "[/x],:x:\n1,2\n"), ("long", "date,load\n1," + "9" * 140_000)]:
        (tmp_path / f"{name}.csv").write_text(text)
    script = (
        "import sys\nfrom rnnkit.cli import run\nfolder, *files = sys.argv[1:]\n"
        "for csv in files:\n    sys.argv = ['rnnkit', 'predict', folder, csv]\n"
        "    try:\n        run()\n    except SystemExit as e:\n"
        "        print('exit', e.code, file=sys.stderr)\n"
    )
    files = [str(tmp_path / f"{name}.csv") for name in ("markup", "long")]
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), *files],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if line.startswith("exit")] == ["exit 2", "exit 2"], lines
    assert "[/x]" in lines[0] and len(lines) == 4, lines


def test_a_numeric_classifier_stream_refuses_what_overflows(tmp_path) -> None:
    """1e39 became inf in float32 inside the encoder, and every later output NaN."""
    from rnnkit.tasks import SequenceClassifier
    from rnnkit.train import TrainConfig

    rng = np.random.default_rng(1)
    sequences = [rng.normal(size=(int(rng.integers(2, 6)), 3)) for _ in range(40)]
    labels = [int(s[:, 0].sum() > 0) for s in sequences]
    model = SequenceClassifier(
        cell="gru", hidden_size=4, bidirectional=False, training=TrainConfig(max_epochs=1)
    )
    model.fit(sequences, labels, val_fraction=0.25, progress=False)
    path = export_runtime(model, tmp_path / "numeric.rnnkit")
    result = runner.invoke(
        app, ["stream", str(path), "--on-error", "skip"], input="1e39,0,0\nnan,0,0\n0.5,1,2\n"
    )
    assert_clean(result, codes=(0,))
    streamed = json.loads(result.stdout)  # one output: the valid line's, alone
    expected = model.predict_proba([np.array([[0.5, 1.0, 2.0]])])[0]
    np.testing.assert_allclose(list(streamed.values()), expected, atol=1e-5)
    with pytest.raises(ValueError, match="item: expected finite numbers the model's float32"):
        rt.load(path).step([1e39, 0, 0])
