"""fsqd's import graph, read with ast (nothing imported): edges, cycles, layering rules.

``tests/test_architecture.py`` checks fsqd with it; its own tests check it on packages
made for the purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    lazy: bool  # inside a function: runs when called, not when imported

    def __str__(self) -> str:
        return f"{self.src}:{self.line} -> {self.dst}{' (lazy)' if self.lazy else ''}"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` lands in: itself, or the nearest enclosing module we own."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


class _Imports(ast.NodeVisitor):
    def __init__(self, name: str, is_package: bool, modules: Mapping[str, Path]) -> None:
        self.name = name
        self.package = name if is_package else name.rpartition(".")[0]
        self.modules = modules
        self.edges: list[Edge] = []
        self._depth = 0  # > 0 inside a function body

    def _add(self, target: str, line: int) -> None:
        dst = _resolve(target, self.modules)
        edge = Edge(self.name, dst or "", line, self._depth > 0)
        if dst is not None and dst != self.name and edge not in self.edges:
            self.edges.append(edge)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            up = self.package.split(".")
            up = up[: len(up) - node.level + 1]
            base = ".".join([*up, base] if base else up)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            # ``from pkg import submodule`` depends on the submodule, not on pkg's __init__.
            self._add(sub if sub in self.modules else base, node.lineno)


def import_graph(root: Path) -> dict[str, list[Edge]]:
    """Module -> its import edges to other modules of the same package."""
    modules = module_names(root)
    graph = {}
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[name] = visitor.edges
    return graph


def top_level(module: str) -> str:
    """``fsqd.imu.drivers.akm`` -> ``fsqd.imu``; ``fsqd.config`` stays itself."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: Mapping[str, list[Edge]]) -> dict[str, list[Edge]]:
    out: dict[str, list[Edge]] = {top_level(m): [] for m in graph}
    for edges in graph.values():
        for e in edges:
            src, dst = top_level(e.src), top_level(e.dst)
            if src != dst:
                out[src].append(Edge(src, dst, e.line, e.lazy))
    return out


def cycles(graph: Mapping[str, Iterable[Edge]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    succ = {n: sorted({e.dst for e in edges}) for n, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(succ):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            nexts = succ.get(node, [])
            if i < len(nexts):
                work.append((node, i + 1))
                nxt = nexts[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def one_cycle(component: frozenset[str], graph: Mapping[str, Iterable[Edge]]) -> list[Edge]:
    """A shortest cycle through the component's first member, for the failure message."""
    start = min(component)
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for e in sorted(graph[node], key=lambda e: (e.dst, e.line)):
                if e.dst == start:
                    return [*paths[node], e]
                if e.dst in component and e.dst not in paths:
                    paths[e.dst] = [*paths[node], e]
                    nxt.append(e.dst)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def cycle_problems(
    graph: Mapping[str, Iterable[Edge]], known: Mapping[frozenset[str], str]
) -> list[str]:
    found = cycles(graph)
    problems = [
        "import cycle: " + "; ".join(str(e) for e in one_cycle(c, graph))
        for c in found
        if c not in known
    ]
    problems += [
        f"listed cycle is gone (take it off the list): {sorted(c)}" for c in known if c not in found
    ]
    return problems


@dataclass(frozen=True)
class Rule:
    why: str
    sources: tuple[str, ...]  # module name prefixes the rule applies to
    forbidden: tuple[str, ...]  # prefixes they must not import
    allowed: tuple[tuple[str, str], ...] = ()  # (source prefix, target prefix) exceptions


def under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def rule_problems(
    graph: Mapping[str, Iterable[Edge]],
    rules: Iterable[Rule],
    known: Mapping[tuple[str, str], str],
) -> list[str]:
    """Wrong-way edges not in ``known`` (source, target), and known ones that are gone."""
    problems = []
    seen = set()
    for rule in rules:
        for src, edges in graph.items():
            if not under(src, rule.sources):
                continue
            for e in edges:
                if under(e.dst, rule.forbidden) and not any(
                    under(src, [a]) and under(e.dst, [b]) for a, b in rule.allowed
                ):
                    seen.add((e.src, e.dst))
                    if (e.src, e.dst) not in known:
                        problems.append(f"{e}: {rule.why}")
    problems += [
        f"listed wrong-way import is gone (take it off the list): {src} -> {dst}"
        for src, dst in known
        if (src, dst) not in seen
    ]
    return problems
