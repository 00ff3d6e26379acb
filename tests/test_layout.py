"""The package's import graph: no module imports itself through others (an import circle), and the
layers import downwards only, so that a reader finds each concept in one place and a live stream never
loads analysis code. Every import statement counts, including those inside functions (lazy imports
still tie modules together)."""

from __future__ import annotations

import ast
from pathlib import Path

import mstvsc_stream

PACKAGE = Path(mstvsc_stream.__file__).parent
# each layer may import the layers before it in this list (and itself), never one after it
LAYERS = ["wire", "model", "runtime", "net", "media", "pipeline", "analysis", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a ``from x import y`` names module ``x.y`` when that
    is a module, else ``x``)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                           for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_circle() -> None:
    assert import_circles(import_graph()) == []


def test_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == [["a", "b", "c"]]


def test_layers_import_downwards_only() -> None:
    upward = sorted(f"{source} -> {target}" for source, targets in import_graph().items() for target in targets
                    if layer(source) and layer(target)
                    and LAYERS.index(layer(target)) > LAYERS.index(layer(source)))  # type: ignore[arg-type]
    assert upward == []


def test_the_graph_sees_relative_and_lazy_imports() -> None:
    graph = import_graph()
    assert "mstvsc_stream.pipeline.sender" in graph["mstvsc_stream.pipeline.demo"]
    assert "mstvsc_stream.runtime.onnx_export" in graph["mstvsc_stream.runtime.onnx_backend"]  # inside a method
