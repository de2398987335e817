"""Structural rules of the codebase, checked over its non-test source with ``ast``.

* No function longer than :data:`MAX_FUNCTION_LINES` lines, counted from its ``def`` line to
  the last line of its body (decorators excluded; docstring and comments included, since they
  are part of what a reader must hold in mind).
* No import cycle between project modules. The graph uses module-level imports only
  (including those under ``if TYPE_CHECKING:``, which mypy follows): an import inside a
  function body runs when the function is called, after every module is initialised, so it
  cannot deadlock initialisation -- it is the sanctioned way to defer a heavy dependency.
* No class name defined twice: two classes with one name make imports, logs and tracebacks
  ambiguous (``ConfigError`` from where?).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mlsys", "lambda_inference", "training_job", "infra")
MAX_FUNCTION_LINES = 60


def source_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for package in PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def long_functions() -> list[str]:
    found = []
    for path in source_files():
        for node in functions(parse(path)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.append(f"{where} {node.name} ({length} lines)")
    return found


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports not inside a function (so also those under ``if``/``try`` at module level)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """Project module -> project modules it imports at module level."""
    modules = {module_name(path): path for path in source_files()}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in module_level_imports(parse(path)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from pkg import mod`` imports the submodule pkg.mod when there is one.
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def duplicate_class_names() -> dict[str, list[str]]:
    defined: dict[str, list[str]] = defaultdict(list)
    for path in source_files():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ClassDef):
                defined[node.name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return {name: places for name, places in defined.items() if len(places) > 1}


def test_the_checks_see_the_whole_codebase() -> None:
    names = {module_name(path) for path in source_files()}
    assert {"app", "mlsys.settings", "training_job.run", "infra.stacks"} <= names
    assert "lambda_inference.handler" in names


def test_no_function_is_longer_than_the_limit() -> None:
    offenders = long_functions()
    assert not offenders, "split these functions:\n" + "\n".join(offenders)


def test_no_import_cycle_between_project_modules() -> None:
    graph = import_graph()
    assert "mlsys.contract" in graph["training_job.run"]  # the graph sees real imports
    assert cycles(graph) == []


def test_no_class_name_is_defined_twice() -> None:
    assert duplicate_class_names() == {}


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
