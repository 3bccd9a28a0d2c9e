#!/usr/bin/env bash
# rnnkit on Python 3.10, 3.12 and 3.13, in two stages per interpreter.
# 1. Without torch: rnnkit's wheel installed with --no-deps, plus what the runtime and the
#    command line need without torch (numpy, safetensors, typer, rich), checks that
#    - every module of the package compiles on that version (syntax, f-strings, match...);
#    - rnnkit.runtime imports without torch, loads a runtime file exported on 3.11 with torch
#      and streams it to within 1e-5 of torch's own outputs (NumPy kernels);
#    - `rnnkit stream` runs that file from stdin, and `rnnkit --version` works.
# 2. With torch: PyPI's torch 2.13.0 for that interpreter (the CUDA build, about 4.7 GB with
#    its libraries, which runs on the CPU; torch's CPU wheel lies on this machine's disk for
#    3.11 only) and the wheel with all its dependencies, then the wheel check's smoke test
#    (every public module imports, every layer trains on the fast path with warnings as
#    errors, runtime parity) and `rnnkit demo --epochs 1` (trains, compares, saves a model).
#    TORCH_STAGE=0 skips this stage (downloads of several GB, a few minutes each).
# Interpreters are taken from pyenv (PYTHONS overrides: a list of executables); a version
# that is not installed is reported and skipped. Run by `make pythons` and CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
quiet=(--quiet --disable-pip-version-check)
PYENV=${PYENV_ROOT:-$HOME/.pyenv}/versions
PYTHONS=${PYTHONS:-$(ls -d "$PYENV"/3.10.* "$PYENV"/3.12.* "$PYENV"/3.13.* 2> /dev/null \
    | sed 's|$|/bin/python|' || true)}

# From the sdist (no --wheel): a wheel built in the source tree would take stale files from
# its build/ folder.
"$PY" -m build --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/rnnkit-*.whl)

# The reference: an LSTM and a LayerNorm-GRU exported with torch on this interpreter, with
# torch's outputs for a fixed input.
"$PY" - "$WORK" << 'PYEOF'
import sys
from pathlib import Path

import numpy as np
import torch

import rnnkit.runtime as rt
from rnnkit.export import export_runtime
from rnnkit.nn import LSTM, LayerNormGRU

work = Path(sys.argv[1])
torch.manual_seed(0)
inputs = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
np.save(work / "inputs.npy", inputs)
np.savetxt(work / "inputs.csv", inputs, delimiter=",")
for name, layer in {"lstm": LSTM(3, 8, num_layers=2), "lngru": LayerNormGRU(3, 8)}.items():
    export_runtime(layer.eval(), work / f"{name}.rnnkit")
    with torch.no_grad():
        np.save(work / f"{name}.npy", layer(torch.from_numpy(inputs))[0].numpy())
PYEOF

checked=0
for python in $PYTHONS; do
    if ! [ -x "$python" ]; then echo "== $python: not installed, skipped"; continue; fi
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    echo "== Python $version ($python)"
    "$python" -m venv "$WORK/venv$version"
    VPY="$WORK/venv$version/bin/python"
    "$VPY" -m pip install "${quiet[@]}" --no-deps "$WHEEL"
    # (pip then says that rnnkit's other dependencies are missing, as they are meant to be)
    "$VPY" -m pip install "${quiet[@]}" numpy safetensors typer rich 2> "$WORK/pip.log" \
        || { cat "$WORK/pip.log"; exit 1; }
    SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$VPY" -m compileall -q "$SITE/rnnkit" > "$WORK/compile.log" \
        || { cat "$WORK/compile.log"; exit 1; }
    echo "every module compiles"
    (cd "$WORK" && "$VPY" -W error - "$WORK" << 'PYEOF'
import sys
from pathlib import Path

import numpy as np

import rnnkit.runtime as rt

work = Path(sys.argv[1])
assert "torch" not in sys.modules, "rnnkit.runtime imported torch"
inputs = np.load(work / "inputs.npy")
for name in ("lstm", "lngru"):
    model = rt.load(work / f"{name}.rnnkit", backend="numpy")
    got = np.stack([model.step(x) for x in inputs])
    error = np.abs(got - np.load(work / f"{name}.npy")).max()
    assert error < 1e-5, (name, error)
    print(f"runtime {name}: 20 steps streamed, max error against torch {error:.1e}")
PYEOF
    )
    "$WORK/venv$version/bin/rnnkit" --version
    lines=$("$WORK/venv$version/bin/rnnkit" stream "$WORK/lstm.rnnkit" --backend numpy \
        < "$WORK/inputs.csv" | wc -l)
    test "$lines" -eq 20
    echo "rnnkit stream: 20 lines in, 20 out"
    if [ "${TORCH_STAGE:-1}" != 0 ]; then
        # torch first, pinned, so the wheel's torch>=2.4 takes this one; no constraints file:
        # its pins are 3.11's (NumPy 2.4 has no wheel for 3.10).
        "$VPY" -m pip install "${quiet[@]}" torch==2.13.0 2> "$WORK/pip.log" \
            || { cat "$WORK/pip.log"; exit 1; }
        "$VPY" -m pip install "${quiet[@]}" "$WHEEL" 2> "$WORK/pip.log" \
            || { cat "$WORK/pip.log"; exit 1; }
        mkdir "$WORK/smoke$version"
        (cd "$WORK" && "$VPY" -W error "$ROOT/tests/wheel/smoke.py" "$WORK/smoke$version")
        "$WORK/venv$version/bin/rnnkit" demo --epochs 1 --out "$WORK/demo$version" \
            > "$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log"; exit 1; }
        grep -q "MASE" "$WORK/demo.log" || { cat "$WORK/demo.log"; exit 1; }
        test -f "$WORK/demo$version/model/config.json"
        echo "rnnkit demo --epochs 1: $(grep -o 'Trained in [0-9]* s' "$WORK/demo.log")"
    fi
    rm -rf "$WORK/venv$version" "$WORK/demo$version" "$WORK/smoke$version"
    checked=$((checked + 1))
done
echo "checked $checked interpreter(s)"
if [ "$checked" -eq 0 ]; then echo "no Python 3.10, 3.12 or 3.13 found (set PYTHONS)"; exit 1; fi
