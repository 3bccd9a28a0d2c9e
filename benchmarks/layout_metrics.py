"""Measures of the package layout (issue 22): how spread out a cell is, how tangled the
modules are. Run from the repository root: ``python benchmarks/layout_metrics.py [REV]``
(``REV``: a git revision to measure instead of the working tree).

Prints one line per measure:
* files that name each cell, and places that list the cells (literals naming 5+ cells);
* the largest file and the longest function under ``src/rnnkit``;
* ``# fmt: skip`` count;
* import cycles among rnnkit's modules (lazy imports included, TYPE_CHECKING excluded);
* modules importing a private module (``_name``) of another package of rnnkit (pairs).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

CELL_WORDS = ("peephole", "layernorm_lstm", "layer_norm_lstm", "indrnn", "jordan", "mingru")
KINDS = {"rnn", "lstm", "gru", "jordan", "peephole_lstm", "layernorm_lstm", "layernorm_gru",
         "indrnn", "mingru", "minlstm", "sru", "ligru"}  # fmt: skip
CLASSES = re.compile(r"(RNN|LSTM|GRU|Jordan|Peephole|LayerNorm|IndRNN|MinGRU|MinLSTM|SRU|LiGRU)")


def sources(revision: str | None) -> dict[str, str]:
    """``{module path: text}`` of ``src/rnnkit`` in the working tree or at ``revision``."""
    if revision is None:
        return {str(p): p.read_text() for p in Path("src/rnnkit").rglob("*.py")}
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", revision, "src/rnnkit"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {
        name: subprocess.run(
            ["git", "show", f"{revision}:{name}"], capture_output=True, text=True, check=True
        ).stdout
        for name in names
        if name.endswith(".py")
    }


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts[1:]  # drop "src"
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _elements(node: ast.AST) -> list[ast.AST]:
    return node.keys if isinstance(node, ast.Dict) else node.elts  # type: ignore[attr-defined]


def _names_a_cell(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in KINDS
    return isinstance(node, ast.Name) and CLASSES.match(node.id) is not None


def _import_nodes(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import under ``node``, in functions too, except under ``if TYPE_CHECKING``."""
    if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
        return [n for child in node.orelse for n in _import_nodes(child)]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [node]
    return [n for child in ast.iter_child_nodes(node) for n in _import_nodes(child)]


def imports(tree: ast.Module, name: str, package: bool) -> set[str]:
    """Modules imported anywhere in the module (lazy imports in functions included: they
    hide a cycle rather than remove it), except under ``if TYPE_CHECKING``."""
    found: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + package]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("rnnkit")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def _private_module(name: str) -> str | None:
    """``rnnkit.nn._checks`` for ``rnnkit.nn._checks.check_int``; None if nothing is private."""
    parts = name.split(".")
    first = next((i for i, part in enumerate(parts[1:], 1) if part.startswith("_")), None)
    return None if first is None else ".".join(parts[: first + 1])


def main(revision: str | None) -> None:
    texts = sources(revision)
    trees = {path: ast.parse(text) for path, text in texts.items()}
    for word in CELL_WORDS:
        count = sum(word in text.lower() for text in texts.values())
        print(f"files naming {word!r}: {count}")
    listings = [
        f"{path}:{node.lineno}"
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict | ast.Tuple | ast.List | ast.Set)
        and sum(_names_a_cell(e) for e in _elements(node)) >= 5
    ]
    print(f"literals listing 5+ cells: {len(listings)}" + "".join(f"\n  {w}" for w in listings))
    largest = max(texts, key=lambda p: texts[p].count("\n"))
    print(f"largest file: {largest} ({texts[largest].count(chr(10))} lines)")
    functions = [
        (node.end_lineno - node.lineno + 1, f"{path}:{node.name}")
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
    ]
    length, where = max(functions)
    print(f"longest function: {where} ({length} lines)")
    print(f"'# fmt: skip': {sum(t.count('# fmt: skip') for t in texts.values())}")
    names = {path: module_name(path) for path in texts}
    graph = {
        names[p]: imports(tree, names[p], p.endswith("__init__.py")) for p, tree in trees.items()
    }
    # a package imports its submodules as part of itself: not a cycle of layers
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    found = cycles(graph)
    print(f"import cycles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    private = {
        (names[p], _private_module(d))
        for p, tree in trees.items()
        for d in imports(tree, names[p], p.endswith("__init__.py"))
        if _private_module(d) and d.split(".")[1] != names[p].split(".")[1]
    }
    print(f"private imports across packages: {len(private)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
