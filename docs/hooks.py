"""mkdocs hooks: repository files included into pages, and links to the repository mapped.

A page may include a repository file with a line ``<!-- include: PATH -->`` (PATH from the
repository root), so that README.md, DATA.md, CHANGELOG.md and benchmarks/README.md stay
where GitHub readers find them and appear in the site without a copy.

Relative links, in a page or in what it includes, are resolved against the file they are
written in. A link to a file under docs/ becomes a link relative to the page (mkdocs then
checks it, anchors included); a link to an included file becomes a link to the page that
includes it; a link to any other file of the repository (an example script, a test) becomes
its path in code type, as the site does not serve the repository; a link to a file that does
not exist, or an image outside docs/, is a warning, so a strict build fails on it; links
into docs/ are left to mkdocs, which checks them and their anchors.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.M)
# [text](target) outside code spans; images keep their target mapped the same way.
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
log = logging.getLogger("mkdocs.plugins.rnnkit")
# Pages being written in other branches of work: in the nav once the file exists, left out
# (silently) before, so the nav can hold their place.
OPTIONAL_PAGES = {"cells.md", "classifying.md"}
CELLS_MARKER = "<!-- cells written once -->"


def included_files(docs: Path = DOCS) -> dict[str, str]:
    """Repository path of each included file -> the docs page (docs-relative) including it."""
    pages = {}
    for page in sorted(docs.rglob("*.md")):
        for path in INCLUDE.findall(page.read_text(encoding="utf-8")):
            pages[path] = page.relative_to(docs).as_posix()
    return pages


def expand(page: str, markdown: str) -> str:
    """``markdown`` of docs page ``page`` with its includes inserted and every relative link
    mapped as the module docstring says."""
    includes = included_files()

    def include(match: re.Match[str]) -> str:
        path = match.group(1)
        text = (ROOT / path).read_text(encoding="utf-8")
        return map_links(text, source=path, page=page, includes=includes)

    markdown = map_links(markdown, source=f"docs/{page}", page=page, includes=includes)
    return INCLUDE.sub(include, markdown)


def map_links(text: str, source: str, page: str, includes: dict[str, str]) -> str:
    page_dir = posixpath.dirname(page)

    def link(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if resolved in includes:
            resolved = f"docs/{includes[resolved]}"
        if resolved.startswith("docs/"):
            new = posixpath.relpath(resolved[len("docs/") :], page_dir or ".")
            if (ROOT / resolved).is_dir():
                new = posixpath.join(new, "index.md")
            return f"{bang}[{label}]({new}{'#' + anchor if anchor else ''})"
        # Outside docs/ mkdocs cannot check the link, so it is checked here.
        if bang or not (ROOT / resolved).exists():
            what = "an image outside docs/" if bang else "a link to no file"
            log.warning(f"{source}: {what}: {target!r} ({resolved})")
            return match.group(0)
        shown = resolved + ("/" if (ROOT / resolved).is_dir() else "")
        if label.strip("`").rstrip("/") == resolved:
            return f"`{shown}`"
        return f"{label} (`{shown}`)"

    # Links inside fenced code are code, not links.
    pieces, last = [], 0
    for fence in FENCE.finditer(text):
        pieces.append(LINK.sub(link, text[last : fence.start()]))
        pieces.append(fence.group(0))
        last = fence.end()
    pieces.append(LINK.sub(link, text[last:]))
    return "".join(pieces)


def _drop_missing(nav: list) -> list:
    kept = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            kept.append({next(iter(item)): _drop_missing(value)})
        elif not (value in OPTIONAL_PAGES and not (DOCS / value).is_file()):
            kept.append(item)
    return kept


def on_config(config):
    config.nav = _drop_missing(config.nav)
    return config


def written_once(markdown: str) -> str:
    """``markdown`` with the line ``<!-- cells written once -->`` replaced by an entry for each
    cell class :mod:`rnnkit.nn` makes from a module of :mod:`rnnkit.cells` at import: its
    signature, its layer and its docstring. Only an import finds these classes; griffe,
    which reads the source, does not."""
    if CELLS_MARKER not in markdown:
        return markdown
    import inspect

    import rnnkit.nn
    from rnnkit.cells import CELLS

    entries = []
    # the torch.nn drop-ins (RNN, LSTM, GRU) are classes of the source, which griffe reads
    for spec in (spec for spec in CELLS.values() if not spec.torch_native):
        cell = getattr(rnnkit.nn, spec.cell_name)
        entries.append(
            f"### `rnnkit.nn.{spec.cell_name}`\n\n"
            f"`{spec.cell_name}{inspect.signature(cell)}`; its layer is "
            f"`rnnkit.nn.{spec.layer}` (`Recurrent` with this cell, the cell's options "
            f"passed on), its name `{spec.name}`.\n\n```text\n{inspect.cleandoc(spec.doc)}\n```\n"
        )
    return markdown.replace(CELLS_MARKER, "\n".join(entries))


def on_page_markdown(markdown: str, page, config, files) -> str:
    return written_once(expand(page.file.src_uri, markdown))
