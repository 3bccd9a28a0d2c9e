#!/usr/bin/env bash
# Build rnnkit's sdist and wheel (python -m build) and check the wheel as a user gets it: in a
# fresh virtual environment, no editable install, no extras, run from outside the source
# tree. Prints the wheel's size and the installed size. Run by `make wheel` and CI.
#   PYTHON: the interpreter that builds (default .venv/bin/python); the fresh environment
#   uses the same Python version.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
quiet=(--quiet --disable-pip-version-check)

echo "== build"
"$PY" -m build --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/rnnkit-*.whl)
BASE=$("$PY" -c 'import sys; print(sys._base_executable)')

echo "== install into a fresh virtual environment ($("$BASE" --version))"
"$BASE" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# torch first: the CPU wheel from the local disk (plain PyPI torch is the multi-GB CUDA build).
"$VPY" -m pip install "${quiet[@]}" torch==2.13.0
"$VPY" -m pip install "${quiet[@]}" -c constraints.txt "$WHEEL"
if "$VPY" -c 'import onnx' 2> /dev/null; then echo "onnx is installed without the extra"; exit 1; fi
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
INSTALLED=$(du -sk "$SITE/rnnkit" | cut -f1)  # before numba's cache files are written there

cd "$WORK"  # nothing from the source tree on sys.path
echo "== public modules, every layer on the fast path, runtime parity (warnings are errors)"
"$VPY" -W error "$ROOT/tests/wheel/smoke.py" "$WORK"

echo "== a short CLI job: rnnkit demo --epochs 1, exported for the runtime"
"$WORK/venv/bin/rnnkit" demo --epochs 1 --out "$WORK/demo" > "$WORK/demo.log" 2>&1 \
    || { cat "$WORK/demo.log"; exit 1; }
grep -q "MASE" "$WORK/demo.log" || { cat "$WORK/demo.log"; exit 1; }
test -f "$WORK/demo/model/config.json"
"$WORK/venv/bin/rnnkit" export "$WORK/demo/model" --out "$WORK/demand.rnnkit"
"$VPY" -W error -c "
import rnnkit.runtime as rt
model = rt.load('$WORK/demand.rnnkit')
print('runtime file loads:', type(model).__name__)"

echo "== ONNX export without the onnx extra: one line, exit code 2"
set +e
"$WORK/venv/bin/rnnkit" export "$WORK/demo/model" --out "$WORK/demand.onnx" --format onnx \
    > "$WORK/onnx.out" 2> "$WORK/onnx.err"
code=$?
set -e
cat "$WORK/onnx.err"
test "$code" -eq 2
test "$(wc -l < "$WORK/onnx.err")" -eq 1
grep -q "pip install 'rnnkit\[onnx\]'" "$WORK/onnx.err"
test ! -e "$WORK/demand.onnx"

echo "== sizes"
echo "wheel: $(basename "$WHEEL"), $(du -k "$WHEEL" | cut -f1) KiB"
echo "installed rnnkit: $INSTALLED KiB ($(du -sk "$SITE/rnnkit" | cut -f1) KiB with numba's cache);" \
    "the environment with every dependency: $(du -sm "$WORK/venv" | cut -f1) MiB" \
    "(torch: $(du -sm "$SITE/torch" | cut -f1) MiB)"
echo "wheel check passed"
