# One place for every routine command. Each target sets up what it needs first and is
# fast when everything is already installed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test quality lint format bench bench-grid docs wheel pythons clean

setup: $(STAMP)

# torch first: the CPU wheel from the local disk, so nothing pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,docs]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/rnnkit demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# pytest's exit code 5 (no tests collected) is not a failure. Two worker processes: CI's
# machine has two cores, and each test holds torch to one thread (tests/conftest.py).
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) || [ $$? -eq 5 ]

quality: setup
	$(PY) -m pytest -q -m slow

# The documentation site, into site/; --strict makes any warning (a broken link or anchor, an
# unreadable docstring) an error. tests/test_docs.py runs the same build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Build the wheel and check it in a fresh virtual environment (no editable install, no extras).
wheel: setup
	tests/wheel/check_wheel.sh

# The torch-free runtime on the other Python versions found on this machine (see the script).
pythons: setup
	tests/wheel/check_pythons.sh

# The engine against torch.nn.LSTM: 3 runs of a piece of the grid at 1 and 2 threads, from a
# fresh install of the wheel; writes the tables into the READMEs (see benchmarks/README.md).
bench: setup
	$(PY) benchmarks/bench_report.py --wheel --readme

# The engine against torch.nn.LSTM over issue 26's 75 shapes (long: see benchmarks/README.md).
bench-grid: setup
	$(PY) benchmarks/bench_grid.py --threads 1
	$(PY) benchmarks/bench_grid.py --threads 2

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache
