"""Fuzzing the loaders: model folders and runtime files made by mutating real ones.

Every mutated folder or file either loads into a model whose forecasts are finite (and equal
the intact model's where the mutation cannot change them), or is refused with one line of
the documented type (:class:`rnnkit.train.ModelFileError`,
:class:`rnnkit.runtime.RuntimeFileError`) that names it. No load may grow the peak resident
memory by more than ``_fuzz.RSS_BOUND``, nor open a file that a folder names.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _fuzz import HOSTILE, assert_not_opened, bounded_memory, fuzz_settings, one_line, opened_files
from _model_files import rewrite_weights
from hypothesis import event, given
from hypothesis import strategies as st
from safetensors.numpy import save_file
from safetensors.torch import load_file

import rnnkit.runtime as rt
from rnnkit.runtime._file import HEADER_KEY, read_file
from rnnkit.tasks import Forecaster
from rnnkit.train import ModelFileError
from rnnkit.train.io import CHECKSUM, CONFIG, WEIGHTS

#: Examples per fuzz test (the file runs 4 such tests).
FUZZ = fuzz_settings(100)


@pytest.fixture(scope="module")
def intact(small_forecaster) -> tuple[Path, Path, Any, np.ndarray, dict]:
    """The saved folder, its runtime file, the series, the intact forecast and config."""
    folder, runtime, series = small_forecaster
    expected = Forecaster.load(folder).predict(series)
    config = json.loads((folder / "config.json").read_text())
    return folder, runtime, series, expected, config


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Callable[[], Path]:
    """A new empty folder per hypothesis example, two levels down (for ``../../x``), with
    a secret file where ``../../secret.txt`` from the model folder points."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "secret.txt").write_text("secret\n")

    def make() -> Path:
        return Path(tempfile.mkdtemp(dir=root)) / "model"

    return make


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The paths (keys and indices) of every field of a JSON value, parents first."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _leaves(item, (*path, index))


def _set(config: Any, path: tuple, value: Any, delete: bool) -> None:
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


# Fields a forecast does not read: a folder that changes them forecasts as the intact one.
NOT_READ_BY_PREDICT = ("training", "history", "metadata", "calibration")


def _check_forecaster_folder(folder: Path, series: Any, expected: np.ndarray, same: bool) -> str:
    """Load ``folder`` and forecast; 'refused' or 'loaded'. ``same``: the forecast must be
    the intact one's."""
    try:
        with bounded_memory():
            model = Forecaster.load(folder)
    except ModelFileError as error:
        one_line(error, "model: ", folder)
        return "refused"
    try:
        forecast = model.predict(series)
    except ValueError as error:  # a field predict checks itself (the columns, the sizes)
        assert "\n" not in str(error), str(error)
        return "refused"
    assert forecast.shape == expected.shape and np.isfinite(forecast).all()
    if same:
        np.testing.assert_array_equal(forecast, expected)
    return "loaded"


# ---------------------------------------------------------------------- model folders


@FUZZ
@given(choice=st.data(), value=HOSTILE, delete=st.booleans())
def test_config_fields_mutated(intact, scratch, choice, value, delete) -> None:
    folder, _, series, expected, config = intact
    paths = sorted(_leaves(config), key=repr)
    path = choice.draw(st.sampled_from(paths), label="field")
    mutated = json.loads(json.dumps(config))
    _set(mutated, path, value, delete)
    target = scratch()
    shutil.copytree(folder, target)
    (target / "config.json").write_text(json.dumps(mutated))
    with opened_files() as opened:
        same = path[0] in NOT_READ_BY_PREDICT
        event(_check_forecaster_folder(target, series, expected, same=same))
    assert_not_opened(opened, target.parents[1] / "secret.txt", Path("/etc/passwd"))


def _safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def _safetensors_bytes(header: dict, body: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + body


@FUZZ
@given(
    which=st.sampled_from(["config.json", "weights.safetensors", "weights header"]),
    operation=st.sampled_from(["flip", "truncate", "insert", "field"]),
    where=st.floats(0, 1),
    byte=st.integers(0, 255),
    value=HOSTILE,
)
def test_folder_bytes_mutated(intact, scratch, which, operation, where, byte, value) -> None:
    folder, _, series, expected, _ = intact
    target = scratch()
    shutil.copytree(folder, target)
    name = "config.json" if which == "config.json" else "weights.safetensors"
    data = (target / name).read_bytes()
    if which == "weights header":  # a field of one tensor's entry, or of the header
        header, body = _safetensors_parts(data)
        names = sorted(header)
        entry = names[min(int(where * len(names)), len(names) - 1)]
        key = ["dtype", "shape", "data_offsets", None][byte % 4]
        if key is None or not isinstance(header[entry], dict):
            header[entry] = value
        else:
            header[entry][key] = value
        data = _safetensors_bytes(header, body)
    else:
        position = min(int(where * len(data)), len(data) - 1)
        if operation == "flip":
            data = data[:position] + bytes([data[position] ^ (byte or 1)]) + data[position + 1 :]
        elif operation == "truncate":
            data = data[:position]
        elif operation == "insert":
            data = data[:position] + bytes([byte]) * 9 + data[position:]
        else:
            data = data[:position] + bytes([byte]) + data[position + 1 :]
    (target / name).write_bytes(data)
    event(_check_forecaster_folder(target, series, expected, same=False))


def test_absurd_sizes_are_refused_at_once(intact, scratch) -> None:
    """num_layers 10**6 built (even on the meta device) for minutes; hidden_size and horizon
    10**9 asked for gigabytes; lookback and season 10**9 loaded and failed at the forecast:
    now each is one line at load, in well under a second."""
    folder, _, _, _, config = intact
    absurd = [("num_layers", 10**6), ("hidden_size", 10**9), ("horizon", 10**9)]
    for name, value in [*absurd, ("lookback", 10**9), ("season", 10**9)]:
        mutated = json.loads(json.dumps(config))
        (mutated if name == "season" else mutated["model"])[name] = value
        target = scratch()
        shutil.copytree(folder, target)
        (target / "config.json").write_text(json.dumps(mutated))
        start = time.perf_counter()
        with pytest.raises(ModelFileError) as error, bounded_memory():
            Forecaster.load(target)
        assert time.perf_counter() - start < 2.0, name
        one_line(error.value, "model: ", target)


def test_weights_of_another_dtype_are_refused(intact, scratch) -> None:
    """load_state_dict converted float64 weights to the model's float32 without a word."""
    folder = intact[0]
    target = scratch()
    shutil.copytree(folder, target)
    weights = load_file(target / "weights.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name].double()
    rewrite_weights(target, weights)
    with pytest.raises(ModelFileError, match=f"{name} is torch.float64 in the file") as error:
        Forecaster.load(target)
    one_line(error.value, "model: ", target)


def test_saved_files_follow_the_umask(intact) -> None:
    """The weights were 0600 beside a 0644 config.json (safetensors makes them private)."""
    folder = intact[0]
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("config.json", "weights.safetensors"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


# ----------------------------------------------------------------------- runtime files


def _rewrite_runtime(path: Path, out: Path, header: dict, tensors: dict) -> Path:
    """A runtime file with exactly this header (format and version included)."""
    save_file(tensors, out, metadata={HEADER_KEY: json.dumps(header)})
    return out


def _stream(model: Any, series: Any, steps: int = 30) -> list:
    """The model's outputs for the series' first ``steps`` rows."""
    rows = zip(series.values[:steps], series.timestamps[:steps], strict=True)
    return [model.step(values, stamp) for values, stamp in rows]


def _check_runtime_file(path: Path, series: Any) -> str:
    """Load ``path`` and stream the series into it; 'refused' or 'loaded'."""
    try:
        with bounded_memory():
            model = rt.load(path)
    except rt.RuntimeFileError as error:
        one_line(error, "runtime file ", path)
        return "refused"
    with bounded_memory():
        try:
            outputs = _stream(model, series)
        except ValueError as error:
            assert "\n" not in str(error), str(error)
            return "refused"
    assert all(output is None or np.isfinite(output).all() for output in outputs)
    return "loaded"


@FUZZ
@given(choice=st.data(), value=HOSTILE, delete=st.booleans())
def test_runtime_header_fields_mutated(intact, scratch, choice, value, delete) -> None:
    _, runtime, series, _, _ = intact
    header, tensors = read_file(runtime)
    path = choice.draw(st.sampled_from(sorted(_leaves(header), key=repr)), label="field")
    _set(header, path, value, delete)
    target = scratch().with_suffix(".rnnkit")
    target.parent.mkdir(exist_ok=True)
    event(_check_runtime_file(_rewrite_runtime(runtime, target, header, tensors), series))


@FUZZ
@given(
    operation=st.sampled_from(["flip", "truncate", "insert", "drop", "extra"]),
    where=st.floats(0, 1),
    byte=st.integers(0, 255),
)
def test_runtime_bytes_mutated(intact, scratch, operation, where, byte) -> None:
    _, runtime, series, _, _ = intact
    target = scratch().with_suffix(".rnnkit")
    target.parent.mkdir(exist_ok=True)
    data = runtime.read_bytes()
    position = min(int(where * len(data)), len(data) - 1)
    if operation in ("drop", "extra"):
        header, tensors = read_file(runtime)
        names = sorted(tensors)
        if operation == "drop":
            del tensors[names[position % len(names)]]
        else:
            tensors["layer.7.0.weight_ih"] = np.zeros((3, 3), np.float32)
        _rewrite_runtime(runtime, target, header, tensors)
    else:
        if operation == "flip":
            data = data[:position] + bytes([data[position] ^ (byte or 1)]) + data[position + 1 :]
        elif operation == "truncate":
            data = data[:position]
        else:
            data = data[:position] + bytes([byte]) * 9 + data[position:]
        target.write_bytes(data)
    result = _check_runtime_file(target, series)
    event(result)
    if operation in ("drop", "extra"):
        assert result == "refused"


@pytest.mark.parametrize(
    ("field", "value"),
    [("season", 10**9), ("lookback", 10**9), ("horizon", 10**9), ("season", 0)],
)
def test_runtime_sizes_are_bounded_before_any_allocation(intact, tmp_path, field, value) -> None:
    _, runtime, _, _, _ = intact
    header, tensors = read_file(runtime)
    header["forecaster"][field] = value
    path = _rewrite_runtime(runtime, tmp_path / "huge.rnnkit", header, tensors)
    message = f"forecaster.{field}: expected an int from 1"
    with pytest.raises(rt.RuntimeFileError, match=message), bounded_memory():
        rt.load(path)
    # rnnkit stream: one line, exit 2 (it was a MemoryError traceback at the first step)
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "stream", str(path)],
        input="2024-03-01T00:00,1.0\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and f"forecaster.{field}" in done.stderr, done.stderr


def test_runtime_scaler_and_weights_are_checked(intact, tmp_path) -> None:
    _, runtime, _, _, _ = intact
    for name, change, message in [
        ("std0", lambda h, t: h["forecaster"]["scaler"].update(std=[0.0]), "scaler.std"),
        ("mean", lambda h, t: h["forecaster"]["scaler"].update(mean=[1e400]), "scaler"),
        ("nan", lambda h, t: t["head.bias"].__setitem__(0, np.nan), "'head.bias' holds"),
        ("unread", lambda h, t: h["layer"].update(num_layers=1), None),
    ]:
        header, tensors = read_file(runtime)
        change(header, tensors)
        if message is None:  # a layer header that no longer describes every tensor
            tensors["layer.1.0.weight_ih"] = tensors["layer.0.0.weight_ih"]
            message = "tensor 'layer.1.0.weight_ih' is not part of the model"
        path = _rewrite_runtime(runtime, tmp_path / f"{name}.rnnkit", header, tensors)
        with pytest.raises(rt.RuntimeFileError, match=message) as error:
            rt.load(path)
        one_line(error.value, "runtime file ", path)


def test_a_flipped_bit_in_the_weights_is_refused_and_old_folders_still_load(intact, scratch):
    """The weights' SHA-256 in config.json: a bit flipped in the tensors' data (which parses
    as other weights) is one line; a folder saved before the checksum existed still loads."""
    folder = intact[0]
    target = scratch()
    shutil.copytree(folder, target)
    data = bytearray((target / WEIGHTS).read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's values, not the header
    (target / WEIGHTS).write_bytes(bytes(data))
    load_file(target / WEIGHTS)  # still a valid safetensors file: only the checksum sees it
    with pytest.raises(ModelFileError, match="does not match the weights_sha256") as error:
        Forecaster.load(target)
    one_line(error.value, "model: ", target)
    older = scratch()
    shutil.copytree(folder, older)
    config = json.loads((older / CONFIG).read_text())
    del config[CHECKSUM]
    (older / CONFIG).write_text(json.dumps(config))
    assert Forecaster.load(older).config == Forecaster.load(folder).config
