"""The import structure: zoo never imports lsbench, and no two modules import each other in a loop.

Every import counts, also those inside functions (a lazy import is still a dependency, and a loop of lazy
imports is still a circle of knowledge). The analysis is checked on a planted circle first, so a test that
finds none has shown that it could.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lsbench", "zoo")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (any import statement, at any depth of the file)."""
    files = {_module_name(root, p): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - node.level + 1] if node.level > 1 else base
                    module = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from pkg import mod` imports the module pkg.mod when there is one
                subs = {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in files}
                targets |= subs or {module}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_analysis_finds_a_planted_circle_and_a_layer_breach(tmp_path):
    pkg = tmp_path / "zoo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from zoo import a\n    import lsbench.cli\n")
    (tmp_path / "lsbench").mkdir()
    (tmp_path / "lsbench" / "__init__.py").write_text("")
    (tmp_path / "lsbench" / "cli.py").write_text("import zoo.a\n")
    graph = import_graph(tmp_path)
    assert graph["zoo.a"] == {"zoo.b"} and graph["zoo.b"] == {"zoo.a", "lsbench.cli"}
    assert circles(graph) == [["lsbench.cli", "zoo.a", "zoo.b"]]


def test_zoo_never_imports_lsbench():
    graph = import_graph(REPO)
    breaches = sorted((m, t) for m, ts in graph.items() if m.split(".")[0] == "zoo"
                      for t in ts if t.split(".")[0] == "lsbench")
    assert breaches == []


def test_no_import_circles():
    assert circles(import_graph(REPO)) == []


@pytest.mark.parametrize("layer, forbidden", [
    ("lsbench.query", {"lsbench.report", "lsbench.profile", "lsbench.cli"}),
    ("lsbench.results", {"lsbench.report", "lsbench.profile", "lsbench.cli"}),
    ("lsbench.profile", {"lsbench.report", "lsbench.cli"}),
    ("lsbench.anatomy_job", {"lsbench.report", "lsbench.cli"}),
    ("lsbench.scaling", {"lsbench.report", "lsbench.cli"}),
    ("lsbench.erf", {"lsbench.report", "lsbench.cli"}),
    ("lsbench.evaluate", {"lsbench.report", "lsbench.cli"}),
    ("lsbench.export", {"lsbench.report", "lsbench.cli", "lsbench.mobile"}),
    ("lsbench.mobile", {"lsbench.report", "lsbench.cli", "lsbench.export"}),
    ("lsbench.runtimes", {"lsbench.export", "lsbench.mobile", "lsbench.report", "lsbench.cli"}),
    ("lsbench.report", {"lsbench.cli"}),
    # the pool of untimed work knows nothing of what it runs
    ("lsbench.untimed", {"lsbench.profile", "lsbench.export", "lsbench.counting", "lsbench.report", "lsbench.cli",
                         "zoo"}),
])
def test_imports_point_down(layer, forbidden):
    """cli -> report -> jobs (profile, erf, evaluate, export) -> measuring parts -> zoo, never back up."""
    graph = import_graph(REPO)
    modules = [m for m in graph if m == layer or m.startswith(layer + ".")]
    assert modules, layer
    up = sorted((m, t) for m in modules for t in graph[m]
                if any(t == f or t.startswith(f + ".") for f in forbidden))
    assert up == []
