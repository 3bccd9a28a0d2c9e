"""One way to read the docs' code: each page as the site shows it (includes expanded by
docs/hooks.py) and its Python blocks run in order in one namespace. Used by every test that
runs documentation code (test_docs.py, test_docs_tutorial.py, test_forecast_users.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)

_spec = importlib.util.spec_from_file_location("rnnkit_docs_hooks", DOCS / "hooks.py")
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)


def pages() -> list[Path]:
    """Every Markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


def page_markdown(page: Path) -> str:
    """``page`` as the site renders it: included files inserted, links mapped."""
    return hooks.expand(page.relative_to(DOCS).as_posix(), page.read_text(encoding="utf-8"))


def python_blocks(page: Path) -> list[str]:
    return PYTHON_BLOCK.findall(page_markdown(page))


def run_python_blocks(page: Path) -> dict[str, object]:
    """Run the page's Python blocks in order, as a reader pasting them would; returns their
    namespace. The caller chooses the working directory (blocks may write files)."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(python_blocks(page), start=1):
        name = f"{page.relative_to(ROOT)} (Python block {number})"
        exec(compile(block, name, "exec"), namespace)
    return namespace
