"""The tutorial's code runs as written, the Korean tutorial carries the same code, and every
figure and example they link to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_code import DOCS, python_blocks, run_python_blocks

TUTORIALS = [DOCS / "tutorial.md", DOCS / "ko" / "tutorial.md"]


def code_blocks(path: Path) -> list[str]:
    return re.findall(r"```(?:python|bash)?\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_the_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a block writes runs/gates.png
    assert len(python_blocks(TUTORIALS[0])) >= 5
    run_python_blocks(TUTORIALS[0])
    assert (tmp_path / "runs" / "gates.png").is_file()


def test_the_korean_tutorial_has_the_same_code() -> None:
    english, korean = (code_blocks(path) for path in TUTORIALS)
    python = [b for b in english if "import" in b or "rnn." in b]
    assert len(python) >= 5
    assert [b for b in korean if b in python] == python  # same Python, same order


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: str(p.relative_to(DOCS)))
def test_linked_files_exist(path: Path) -> None:
    links = re.findall(r"\]\(([^)#]+)\)", path.read_text(encoding="utf-8"))
    local = [link for link in links if not link.startswith("http")]
    assert any(link.endswith(".png") for link in local)
    missing = [link for link in local if not (path.parent / link).exists()]
    assert not missing, missing
