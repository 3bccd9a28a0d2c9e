"""What the fuzz suites (``test_fuzz_*.py``) share: the budget, hostile values, and the
checks on memory, opened files and one-line errors."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(examples: int) -> settings:
    """A fixed, deterministic budget of ``examples`` per test, with no example database, so
    that every CI run tries the same cases."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


RSS_BOUND = 200 * 2**20  # bytes a load may add to the peak resident memory (intact: ~1 MB)

#: Values a hostile file puts in a field: wrong types, absurd sizes, non-finite numbers,
#: paths outside the folder.
HOSTILE_VALUES = [
    None, True, False, 0, -1, 2, 10**6, 10**9, 10**18, -(10**9), 0.5, 1e308, "", "abc",
    math.nan, math.inf, -math.inf, [], [0], [math.nan], {}, {"a": 1},
    "../../secret.txt", "/etc/passwd", "gru", "lstm", "seasonal naive",
]  # fmt: skip
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_VALUES), st.integers(), st.floats(), st.text(max_size=6)
)


def _peak_rss() -> int | None:
    """The process's peak resident memory (bytes) since the last :func:`_reset_peak`."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> int | None:
    """Reset the peak resident memory to the current one (Linux); the current in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return None
    return _peak_rss()


@contextmanager
def bounded_memory() -> Iterator[None]:
    """Assert the block adds at most :data:`RSS_BOUND` to the peak resident memory (where the
    system lets the peak be reset)."""
    before = _reset_peak()
    yield
    after = _peak_rss()
    if before is not None and after is not None:
        assert after - before < RSS_BOUND, f"peak RSS grew by {(after - before) / 2**20:.0f} MiB"


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """The paths Python opens (``open``, ``os.open``, ...) in the block."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def assert_not_opened(opened: list[str], *forbidden: Path) -> None:
    resolved = {os.path.realpath(p) for p in opened}
    for path in forbidden:
        assert os.path.realpath(path) not in resolved, f"{path} was opened"


def one_line(error: BaseException, starts: str, names: object) -> None:
    """``error`` is one line that starts with ``starts`` and names ``names``."""
    text = str(error)
    assert "\n" not in text, text
    assert text.startswith(starts) and str(names) in text, text
