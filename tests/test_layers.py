"""The package's folders are its layers: each subpackage imports only from the layers below it.

Read from the source (no imports run), so a wrong-way import fails here before it can become a cycle.
Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_trt

ROOT = Path(pytest_trt.__file__).parent
#: lower number = lower layer; a module may import its own subpackage and anything strictly lower
LAYERS = {
    "cache": 0,
    "hardware": 1,
    "models": 2,
    "engines": 3,
    "measure": 4,
    "quality": 4,
    "gate": 5,
    "report": 6,
    "run": 6,
    "plugin": 7,
    "backends": 8,  # compatibility aliases of engines
    "cli": 8,
    "__init__": 8,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> set[str]:
    """pytest_trt modules imported outside ``if TYPE_CHECKING:`` blocks."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pytest_trt"):
            out.update(f"{node.module}.{a.name}" for a in node.names)
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("pytest_trt"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for imp in _runtime_imports(ast.parse(path.read_text())):
            while imp and imp not in files:  # "pytest_trt.models.zoo.get" -> "pytest_trt.models.zoo"
                imp = imp.rpartition(".")[0]
            if imp and imp != name and imp != "pytest_trt":
                deps.add(imp)
        graph[name] = deps
    return graph


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_subpackage_has_a_layer_and_a_docstring() -> None:
    for pkg in sorted(p for p in ROOT.iterdir() if (p / "__init__.py").exists()):
        assert pkg.name in LAYERS, f"{pkg.name}/ has no layer in this test"
        assert ast.get_docstring(ast.parse((pkg / "__init__.py").read_text())), (
            f"{pkg.name}/ says not its job"
        )


def test_imports_only_run_downward() -> None:
    wrong = []
    for module, deps in _graph().items():
        here = _group(module)
        for dep in deps:
            there = _group(dep)
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} imports {dep} ({there}/ is not below {here}/)")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep] if dep in path else [node, dep])
            elif dep not in state:
                walk(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert cycles == []


@pytest.mark.parametrize(
    "line", ["from pytest_trt.plugin import options", "import pytest_trt.plugin.options"]
)
def test_the_check_sees_a_wrong_way_import(line: str) -> None:
    deps = _runtime_imports(ast.parse(line))
    assert any(d.startswith("pytest_trt.plugin") for d in deps)
    guarded = _runtime_imports(
        ast.parse(f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    {line}\n")
    )
    assert guarded == set()


def test_every_status_the_package_writes_is_in_the_published_list() -> None:
    """A record's status comes from one vocabulary (``gate.runs.STATUSES``), which readers rely on."""
    import re

    from pytest_trt.gate.runs import STATUSES

    pattern = re.compile(r"""(?:\["status"\]\s*=\s*|"status":\s*|publish\()"([a-z_]+)\"""")
    written = {m for p in ROOT.rglob("*.py") for m in pattern.findall(p.read_text())}
    assert {
        "ok",
        "skipped",
        "usage_error",
        "invalid_model",
        "pending",
        "built",
    } <= written  # the scan sees them
    assert written - set(STATUSES) == set()
