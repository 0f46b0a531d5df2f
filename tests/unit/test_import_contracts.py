"""The import contracts of pyproject.toml hold, and storaged has no import cycle."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

grimp = pytest.importorskip(
    "grimp", reason="import-linter is not installed (test-requirements.txt)"
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("storaged", include_external_packages=False)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Return each set of modules that import each other, directly or not.

    Tarjan's strongly connected components over the module graph; imports
    under ``TYPE_CHECKING`` and inside functions count too.
    """
    adjacent = {m: sorted(graph.find_modules_directly_imported_by(m))
                for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in adjacent[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(adjacent)))
    try:
        for module in adjacent:
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return cycles


def test_import_cycles_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c", "d"}
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, module):
            return self.edges.get(module, set())

    assert import_cycles(Graph()) == [["a", "b", "c"]]


def test_storaged_has_no_import_cycle():
    graph = _graph()
    assert len(graph.modules) > 50    # the package was found
    assert import_cycles(graph) == []


def test_import_contracts_are_kept():
    lint_imports = pathlib.Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "import-linter is installed without lint-imports"
    proc = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
