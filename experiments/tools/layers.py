"""The layers check: imports point downward only and form no circle.

``python -m experiments.tools.layers`` reads every module of the five packages with :mod:`ast` (no code runs),
prints the import edges between the packages (``--subpackages``: also between the sub-packages of each), and
exits 1 when a package imports a higher one (``experiments -> human_feedback -> reward_models -> agents ->
dyadic_env``) or when modules or sub-packages import each other in a circle. Imports inside functions count:
they run when the function does, so they are real edges, only later ones. An import resolves to the deepest
module of the repository it names (``from dyadic_env.data import storage`` is an edge to
``dyadic_env.data.storage``, ``from dyadic_env.data import Clip`` one to ``dyadic_env.data``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAYERS = ("experiments", "human_feedback", "reward_models", "agents", "dyadic_env")
"""The packages from the top layer down: each may import those after it."""
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Edge:
    """One import statement: ``source`` module imports ``target`` module at ``line``. ``typing_only``: under
    ``if TYPE_CHECKING:``, so it never runs: it still counts as a layer edge, not as part of a circle."""

    source: str
    target: str
    line: int
    typing_only: bool = False


@dataclass
class Report:
    """What the check found in a tree."""

    edges: list[Edge]
    upward: list[Edge] = field(default_factory=list)
    module_circles: list[list[str]] = field(default_factory=list)
    subpackage_circles: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.upward or self.module_circles or self.subpackage_circles)


def find_modules(root: Path, packages: Sequence[str] = LAYERS) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def module_imports(name: str, path: Path, modules: Iterable[str]) -> list[Edge]:
    """The edges from module ``name`` (file ``path``) to the modules in ``modules``, wherever the import sits."""
    known = set(modules)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)
    }
    edges: dict[tuple[str, int], Edge] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node.module, node.level)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = _deepest_known(target, known)
            if resolved is not None and resolved != name:
                edges[resolved, node.lineno] = Edge(name, resolved, node.lineno, id(node) in typing_only)
    return list(edges.values())


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(name: str, is_package: bool, module: str | None, level: int) -> str:
    """The absolute module a ``from ... import`` names (``level`` dots of a relative import)."""
    if level == 0:
        return module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _deepest_known(target: str, known: set[str]) -> str | None:
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def subpackage(module: str) -> str:
    """The sub-package a module belongs to (``dyadic_env.data.storage`` -> ``dyadic_env.data``); a module at
    a package's top is its own unit (``dyadic_env.tokenizer``)."""
    return ".".join(module.split(".")[:2])


def circles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one node, each sorted, in order."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Tarjan's algorithm with an explicit stack (import graphs can be deeper than Python's recursion limit).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def check(root: Path = REPO, layers: Sequence[str] = LAYERS) -> Report:
    """Every import edge of ``layers`` under ``root``, the upward ones and the circles."""
    modules = find_modules(root, layers)
    edges = [edge for name, path in modules.items() for edge in module_imports(name, path, modules)]
    rank = {package: i for i, package in enumerate(layers)}
    upward = [e for e in edges if rank[_top(e.target)] < rank[_top(e.source)]]
    running = [e for e in edges if not e.typing_only]
    module_circles = circles((e.source, e.target) for e in running)
    units = circles((subpackage(e.source), subpackage(e.target)) for e in running)
    return Report(
        edges=edges,
        upward=upward,
        module_circles=module_circles,
        subpackage_circles=[c for c in units if c not in module_circles],  # each circle reported once
    )


def _top(module: str) -> str:
    return module.split(".")[0]


def render(report: Report, layers: Sequence[str] = LAYERS, subpackages: bool = False) -> str:
    """The edges (with how many imports make each) and every failure, as text."""
    unit = subpackage if subpackages else _top
    counts = Counter((unit(e.source), unit(e.target)) for e in report.edges)
    rank = {package: i for i, package in enumerate(layers)}
    lines = [f"layers (top first): {' -> '.join(layers)}", "", "import edges (imports):"]
    for (a, b), n in sorted(counts.items(), key=lambda item: (rank[_top(item[0][0])], item[0])):
        if a != b:
            lines.append(f"  {a} -> {b} ({n})")
    for e in report.upward:
        lines.append(f"UPWARD: {e.source} (line {e.line}) imports {e.target}: {_top(e.source)} is above "
                     f"{_top(e.target)}; move the shared code down or pass it in")  # fmt: skip
    for circle in report.module_circles:
        lines.append(f"CIRCLE of modules: {', '.join(circle)}")
    for circle in report.subpackage_circles:
        lines.append(f"CIRCLE of sub-packages: {', '.join(circle)}")
    lines.append("")
    lines.append("ok: imports point downward, no circles" if report.ok else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.tools.layers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    parser.add_argument("--subpackages", action="store_true", help="list edges between sub-packages")
    args = parser.parse_args(argv)
    missing = [p for p in LAYERS if not (args.root / p).is_dir()]
    if missing:
        print(f"--root {args.root}: no package folder {', '.join(missing)}", file=sys.stderr)
        return 2
    report = check(args.root)
    print(render(report, subpackages=args.subpackages))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
