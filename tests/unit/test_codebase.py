"""Structural rules of the codebase, checked over its non-test source with ``ast``.

* No function longer than :data:`MAX_FUNCTION_LINES` lines, counted from its ``def`` line to
  the last line of its body (decorators excluded; docstring and comments included, since they
  are part of what a reader must hold in mind).
* No import cycle between project modules, counting every import: module level (including
  ``if TYPE_CHECKING:``, which mypy follows), inside functions (the sanctioned way to defer a
  heavy dependency, but still a dependency) and ``importlib.import_module("...")`` strings.
* Imports point one way, between layers (:data:`LAYERS`): the foundation and the storage
  layer (registry, event log, storage) import no domain code; the domain (monitoring,
  rollout) no pipeline stage; training and the Lambda code not each other, the command
  line or local-only code; infrastructure only the names it shares with the runtime
  (:mod:`lambda_inference.routes`, :mod:`mlsys.names`).
* No class name defined twice: two classes with one name make imports, logs and tracebacks
  ambiguous (``ConfigError`` from where?).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Collection, Iterator
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


def imported_names(tree: ast.Module, package: str, modules: Collection[str] = ()) -> Iterator[str]:
    """Every module name ``tree`` imports, wherever the import sits, and every string
    literal passed to ``import_module`` (``importlib.import_module("x")`` hides an import
    from a scan of import statements). ``from pkg import name`` is ``pkg.name`` when that
    is one of ``modules``, else ``pkg``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in modules else base
        elif isinstance(node, ast.Call) and _calls_import_module(node) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def _calls_import_module(node: ast.Call) -> bool:
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in ("import_module", "__import__")


def import_graph() -> dict[str, set[str]]:
    """Project module -> project modules it imports."""
    modules = {module_name(path): path for path in source_files()}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = imported_names(parse(path), package, modules)
        graph[name].update(t for t in targets if t in modules and t != name)
    return graph


LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "mlsys",
        "mlsys.errors",
        "mlsys.names",
        "mlsys.knobs",
        "mlsys.contract",
        "mlsys.metrics",
    ),
    "storage": ("mlsys.storage", "mlsys.registry", "mlsys.eventlog"),
    "settings": ("mlsys.settings",),
    "domain": ("mlsys.monitoring", "mlsys.rollout"),
    "training": ("training_job",),
    "lambda": ("lambda_inference",),
    "local server": ("lambda_inference.local",),
    "command line": ("mlsys.cli", "mlsys.__main__"),
    "shared with infrastructure": ("lambda_inference.routes",),
    "infrastructure": ("infra", "app"),
}
"""Layer -> the module name prefixes in it (the longest matching prefix decides)."""

ALLOWED: dict[str, set[str]] = {
    "foundation": set(),
    "storage": {"foundation"},
    "settings": {"foundation"},
    "domain": {"foundation", "storage", "settings"},
    "training": {"foundation", "storage", "settings", "domain"},
    "lambda": {"foundation", "storage", "settings", "domain", "shared with infrastructure"},
    "shared with infrastructure": set(),
    "local server": {"foundation", "storage", "settings", "domain", "lambda"},
    "command line": {
        "foundation",
        "storage",
        "settings",
        "domain",
        "training",
        "lambda",
        "local server",
    },
    "infrastructure": {"foundation", "shared with infrastructure"},
}
"""Layer -> the other layers it may import (a layer may always import itself)."""


def layer_of(module: str) -> str:
    matches = [
        (len(prefix), layer)
        for layer, prefixes in LAYERS.items()
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        source = layer_of(module)
        for target in sorted(targets):
            layer = layer_of(target)
            if layer != source and layer not in ALLOWED[source]:
                found.append(f"{module} ({source}) imports {target} ({layer})")
    return found


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
    assert "mlsys.cli.train" in graph["mlsys.cli"]  # ...including those inside functions
    assert cycles(graph) == []


def test_imports_point_one_way_between_layers() -> None:
    assert layer_violations(import_graph()) == []


def test_the_layer_check_refuses_an_arrow_the_wrong_way() -> None:
    graph = {
        "mlsys.registry": {"mlsys.rollout.state"},
        "lambda_inference.service": {"lambda_inference.local.sink"},
        "infra.serving": {"lambda_inference.routes", "lambda_inference.handler"},
        "mlsys.rollout.state": {"mlsys.registry"},
    }
    assert layer_violations(graph) == [
        "infra.serving (infrastructure) imports lambda_inference.handler (lambda)",
        "lambda_inference.service (lambda) imports lambda_inference.local.sink (local server)",
        "mlsys.registry (storage) imports mlsys.rollout.state (domain)",
    ]


def test_the_import_scan_sees_imports_in_functions_and_import_module_strings() -> None:
    tree = ast.parse(
        "import importlib\n"
        "def later():\n"
        "    from mlsys.cli import train\n"
        "    return importlib.import_module('lambda_inference.local.server')\n"
    )
    assert set(imported_names(tree, "mlsys", {"mlsys.cli.train"})) == {
        "importlib",
        "mlsys.cli.train",
        "lambda_inference.local.server",
    }


def test_no_class_name_is_defined_twice() -> None:
    assert duplicate_class_names() == {}


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
