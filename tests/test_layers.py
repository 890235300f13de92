"""The package's layers, held by reading the source: each module imports only from its own
layer or lower ones, only the app imports Textual, and no modules import each other in a
circle.

Every import counts: at the top, inside functions, and under ``TYPE_CHECKING`` (a type
that names a higher layer is a dependency on it all the same). The rules are by package,
so a new module falls under its package's rule without a change here; a new module at the
top of ``fingertui/`` must be given a layer below.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fingertui"

# The lowest layer: modules of the top package that every layer may use.
BASE = {"fingertui.errors", "fingertui.labels", "fingertui.words", "fingertui.progress", "fingertui.version"}
# The layers, by what each one may import (besides itself). "root" is the package itself
# (``fingertui/__init__.py``, the lazy door to the Counter API), "main" is ``python -m fingertui``.
EVERYTHING = {
    "base",
    "data",
    "learn",
    "live",
    "runs",
    "review",
    "train",
    "export",
    "counter",
    "root",
    "tui",
    "cli",
    "main",
}
MAY_IMPORT = {
    "base": {"base"},
    "data": {"base", "data"},
    "learn": {"base", "data", "learn"},
    "live": {"base", "learn", "live"},  # and data.images (LIVE_DATA)
    "runs": {"base", "data", "learn", "runs"},
    "review": {"base", "data", "learn", "runs", "review"},
    "train": {"base", "data", "learn", "runs", "review", "train"},
    "export": {"base", "data", "learn", "live", "export"},
    "counter": EVERYTHING - {"tui", "cli", "main"},
    "root": EVERYTHING - {"tui", "cli", "main"},
    "tui": EVERYTHING - {"cli", "main"},
    "cli": EVERYTHING - {"main"},
    "main": EVERYTHING,
}
LIVE_DATA = "fingertui.data.images"  # the one data module live/ uses: decoding a photo
LEARN_NEVER = "fingertui.data.store.flags"  # learn knows no review flags


def layer(module: str) -> str | None:
    """The layer of a fingertui module (dotted name), or None for one that has none yet."""
    if module in BASE:
        return "base"
    parts = module.split(".")
    if module == "fingertui":
        return "root"
    if module == "fingertui.__main__":
        return "main"
    if module == "fingertui.counter":
        return "counter"
    if len(parts) > 2 or (PACKAGE / parts[1] / "__init__.py").is_file():
        return parts[1] if parts[1] in MAY_IMPORT else None
    return None


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    file: str  # its path, from the repository root
    line: int
    target: str  # the imported module, dotted (a package's name for its __init__.py)
    where: str  # "top", "function" (imported when called) or "type" (under TYPE_CHECKING)

    def __str__(self) -> str:
        how = "" if self.where == "top" else f" ({'in a function' if self.where == 'function' else 'TYPE_CHECKING'})"
        return f"{self.file}:{self.line} imports {self.target}{how}"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    """Whether a dotted fingertui name is a module or package (not a name inside one)."""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[tuple[int, str, str]]:
    """Every module ``path`` imports, anywhere in it: (line, dotted name, where), fingertui's
    and others' alike; where is "top", "function" or "type" (under ``if TYPE_CHECKING``).
    ``from a import b`` names ``a.b`` when that is a module of fingertui."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name, where) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                frm = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                frm = node.module or ""
            for alias in node.names:
                sub = f"{frm}.{alias.name}"
                is_sub = frm.split(".")[0] == "fingertui" and alias.name != "*" and is_module(sub)
                out.append((node.lineno, sub if is_sub else frm, where))
        elif isinstance(node, ast.If) and _type_checking(node.test):
            for stmt in node.body:
                visit(stmt, "type")
            for stmt in node.orelse:
                visit(stmt, where)
            return
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and where == "top":
            where = "function"
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "top")
    return sorted(dict.fromkeys(out), key=lambda t: t[0])  # each once, in the file's order


@cache
def all_imports() -> tuple[Import, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE.parent))
        found += [Import(module_name(path), rel, *imp) for imp in imports_of(path)]
    return tuple(found)


def modules() -> list[str]:
    return sorted({module_name(p) for p in PACKAGE.rglob("*.py")})


def own(imp: Import) -> bool:
    return imp.target == "fingertui" or imp.target.startswith("fingertui.")


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if layer(m) is None] == [], (
        "modules in no layer: move them into a package, or add a base module to BASE in tests/test_layers.py"
    )


def test_each_layer_imports_only_itself_and_the_layers_below() -> None:
    wrong = []
    for imp in all_imports():
        if not own(imp):
            continue
        src, dst = layer(imp.source), layer(imp.target)
        if src is None or dst is None:
            continue  # said by test_every_module_has_a_layer
        if src == "live" and dst == "data":
            ok = imp.target == LIVE_DATA or imp.target.startswith(LIVE_DATA + ".")
            why = f"live/ may import {LIVE_DATA} of data/ alone (live knows no store)"
        elif src == "learn" and (imp.target == LEARN_NEVER or imp.target.startswith(LEARN_NEVER + ".")):
            ok, why = False, "learn/ knows no review flags"
        else:
            ok = dst in MAY_IMPORT[src]
            why = f"{src} may import {', '.join(sorted(MAY_IMPORT[src]))}"
        if not ok:
            wrong.append(f"{imp}: {why}")
    assert not wrong, "imports that climb a layer:\n" + "\n".join(wrong)


def test_only_the_app_imports_textual() -> None:
    wrong = [str(imp) for imp in all_imports() if imp.target.split(".")[0] == "textual" and layer(imp.source) != "tui"]
    assert not wrong, "Textual outside fingertui/tui/:\n" + "\n".join(wrong)


def import_graph() -> dict[str, dict[str, Import]]:
    """fingertui's modules → the fingertui modules each imports (with the first such line)."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules()}
    for imp in all_imports():
        if own(imp) and imp.target in graph:
            graph[imp.source].setdefault(imp.target, imp)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module importing
    itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1 or node in graph[node]:
                    found.append(sorted(comp))
    return found


def loop_through(graph: dict[str, dict[str, Import]], comp: list[str]) -> list[Import]:
    """One import cycle inside a strongly connected component, as its import lines."""
    members = set(comp)
    start = comp[0]
    # Breadth-first from start back to start, within the component: the shortest loop.
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child, imp in sorted(graph[node].items()):
            if child not in members:
                continue
            if child == start:
                return [*paths[node], imp]
            if child not in paths:
                paths[child] = [*paths[node], imp]
                queue.append(child)
    return []


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    said = []
    for comp in found:
        members = set(comp)
        inside = [imp for imp in all_imports() if imp.source in members and imp.target in members]
        said.append(
            f"{len(comp)} modules: {', '.join(comp)}\n  one loop:\n"
            + "\n".join(f"    {imp}" for imp in loop_through(graph, comp))
            + "\n  every import inside it:\n"
            + "\n".join(f"    {imp}" for imp in inside)
        )
    assert not found, "import cycles:\n" + "\n".join(said)


# --- the checker itself ------------------------------------------------------------------


def test_the_checker_finds_imports_everywhere_and_resolves_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fingertui"
    (pkg / "learn").mkdir(parents=True)
    (pkg / "data" / "store").mkdir(parents=True)
    for f in ("__init__.py", "learn/__init__.py", "data/__init__.py", "data/store/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "data" / "store" / "flags.py").write_text("")
    (pkg / "learn" / "x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import y\n"
        "from ..data.store import flags, Store\n"
        "if TYPE_CHECKING:\n"
        "    from fingertui.runs.records import Run\n"
        "def f():\n"
        "    import textual.app\n"
    )
    (pkg / "learn" / "y.py").write_text("from fingertui.learn import x\n")
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    got = imports_of(pkg / "learn" / "x.py")
    assert got == [
        (1, "typing", "top"),
        (2, "fingertui.learn.y", "top"),
        (3, "fingertui.data.store.flags", "top"),
        (3, "fingertui.data.store", "top"),
        (5, "fingertui.runs.records", "type"),
        (7, "textual.app", "function"),
    ]
    all_imports.cache_clear()
    try:
        graph = import_graph()
        assert cycles(graph) == [["fingertui.learn.x", "fingertui.learn.y"]]
        assert [i.line for i in loop_through(graph, cycles(graph)[0])] == [2, 1]
    finally:
        all_imports.cache_clear()


@pytest.mark.parametrize(
    ("module", "want"),
    [
        ("fingertui.errors", "base"),
        ("fingertui.data.store.journal", "data"),
        ("fingertui.learn.checkpoint", "learn"),  # a module not written yet: its package decides
        ("fingertui.cli.parser", "cli"),
        ("fingertui.counter", "counter"),
        ("fingertui", "root"),
        ("fingertui.somewhere", None),
    ],
)
def test_a_module_takes_its_packages_layer(module: str, want: str | None) -> None:
    assert layer(module) == want
