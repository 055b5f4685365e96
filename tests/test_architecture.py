"""The folders are the architecture: imports only point down the pipeline.

Every module of fsqd/ is parsed (ast, nothing imported) and each ``import`` becomes an
edge, including imports inside functions (marked lazy: they run later, but they are
still a dependency). Dynamic imports by name (the driver registry's
``BUILTIN_MODULES``, a spec's ``emulator="module:Class"``) are plug-ins, not edges.

The checks: no import cycle between modules, none between top-level packages, and no
wrong-way edge (RULES). Cycles older than this test are listed in KNOWN_*: the test
fails on any cycle not listed, and on a listed one that is gone, so the lists only
shrink. A cycle is named by its strongly connected component: all the modules that
import one another, directly or not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import fsqd

ROOT = Path(fsqd.__file__).parent


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


def _under(module: str, prefixes: Iterable[str]) -> bool:
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
            if not _under(src, rule.sources):
                continue
            for e in edges:
                if _under(e.dst, rule.forbidden) and not any(
                    _under(src, [a]) and _under(e.dst, [b]) for a, b in rule.allowed
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


CORE = (
    "fsqd.errors",
    "fsqd.units",
    "fsqd.clock",
    "fsqd.chunk",
    "fsqd.fsq",
    "fsqd.head",
    "fsqd.metrics",
    "fsqd.hdrhistogram",
)
STAGES = (
    "fsqd.imu",
    "fsqd.sim",
    "fsqd.recordings",
    "fsqd.stream",
    "fsqd.backends",
    "fsqd.sinks",
    "fsqd.service",
    "fsqd.cli",
)
RULES = (
    Rule("core modules sit below every stage", CORE, STAGES),
    Rule(
        "the IMU layer knows nothing above the chips (its emulators may use the simulator)",
        ("fsqd.imu",),
        tuple(s for s in STAGES if s != "fsqd.imu"),
        allowed=(("fsqd.imu.emulated", "fsqd.sim"),),
    ),
    Rule(
        "recordings and the stream stages never reach for drivers, the simulator, "
        "the service or the CLI",
        ("fsqd.recordings", "fsqd.stream"),
        ("fsqd.imu", "fsqd.sim", "fsqd.service", "fsqd.cli"),
    ),
)

# Cycles that predate this test, outside fsqd's IMU, simulator and recordings layers.
# Break one, then take its entry off; never add one.
KNOWN_MODULE_CYCLES: dict[frozenset[str], str] = {
    frozenset({"fsqd.backends.onnx", "fsqd.model.graphcheck"}): (
        "opening a session checks the graph (graphcheck), which runs onnx sessions"
    ),
}
KNOWN_PACKAGE_CYCLES: dict[frozenset[str], str] = {
    frozenset({"fsqd.backends", "fsqd.head", "fsqd.model", "fsqd.pipeline"}): (
        "backends -> model (cards, packages, graph checks) -> backends (sessions, HEF "
        "frames); model (calib, import) -> pipeline -> backends, head; head -> backends"
    ),
}

# Wrong-way imports that predate this test: break one, then take it off; never add one.
KNOWN_WRONG_WAY: dict[tuple[str, str], str] = {
    ("fsqd.head", "fsqd.backends.onnx"): (
        "the classifier head runs its ONNX file on the CPU through open_session: a stage "
        "after fsq more than a core module"
    ),
}


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Edge]]:
    return import_graph(ROOT)


def test_no_new_import_cycle_between_modules(graph: dict[str, list[Edge]]) -> None:
    assert cycle_problems(graph, KNOWN_MODULE_CYCLES) == []


def test_no_new_import_cycle_between_packages(graph: dict[str, list[Edge]]) -> None:
    assert cycle_problems(package_graph(graph), KNOWN_PACKAGE_CYCLES) == []


def test_imports_point_down_the_pipeline(graph: dict[str, list[Edge]]) -> None:
    assert rule_problems(graph, RULES, KNOWN_WRONG_WAY) == []


def test_modules_import_modules_not_package_inits(graph: dict[str, list[Edge]]) -> None:
    # A package __init__ that re-exports its modules: a module of fsqd importing it instead
    # of the defining module pulls the whole package in and can close a cycle. (An __init__
    # that defines what it exports, as sinks/schemas does, is the defining module.)
    reexporting = {
        m
        for m, p in module_names(ROOT).items()
        if p.name == "__init__.py"
        and m != "fsqd"
        and any(e.dst.startswith(m + ".") for e in graph[m])
    }
    assert "fsqd.imu" in reexporting
    through_init = [str(e) for es in graph.values() for e in es if e.dst in reexporting]
    assert through_init == []


def test_the_layers_exist_and_the_old_sensors_package_is_gone(
    graph: dict[str, list[Edge]],
) -> None:
    # The rules name these; a rename that leaves them matching nothing would pass silently.
    for prefix in (*CORE, *STAGES, "fsqd.imu.drivers", "fsqd.imu.emulated", "fsqd.imu.acquire"):
        assert any(_under(m, [prefix]) for m in graph), prefix
    assert not any(_under(m, ["fsqd.sensors"]) for m in graph)


# -- the checker itself, on a package made for the purpose --


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_parser_counts_lazy_relative_and_submodule_imports(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import os\nfrom pkg.b import thing\n",
            "b.py": "def f():\n    from .sub import leaf\n    return leaf\n",
            "sub/__init__.py": "from . import leaf\n",
            "sub/leaf.py": "from .. import a\nimport pkg.sub.leaf\n",
        },
    )
    g = import_graph(root)
    assert [(e.dst, e.lazy) for e in g["pkg.a"]] == [("pkg.b", False)]
    assert [(e.dst, e.lazy) for e in g["pkg.b"]] == [("pkg.sub.leaf", True)]
    assert [e.dst for e in g["pkg.sub"]] == ["pkg.sub.leaf"]
    assert [e.dst for e in g["pkg.sub.leaf"]] == ["pkg.a"]  # itself is not an edge
    assert top_level("pkg.sub.leaf") == "pkg.sub"


def test_a_planted_cycle_fails_and_a_stale_known_one_fails(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def late():\n    from pkg.high import x\n",  # lazy still counts
            "high.py": "from pkg.low import late\nx = 1\n",
            "other.py": "from pkg import low\n",
        },
    )
    g = import_graph(root)
    (problem,) = cycle_problems(g, {})
    assert problem == "import cycle: pkg.high:1 -> pkg.low; pkg.low:2 -> pkg.high (lazy)"
    known = {frozenset({"pkg.high", "pkg.low"}): "planted"}
    assert cycle_problems(g, known) == []
    stale = {**known, frozenset({"pkg.other", "pkg.low"}): "long gone"}
    assert cycle_problems(g, stale) == [
        "listed cycle is gone (take it off the list): ['pkg.low', 'pkg.other']"
    ]


def test_a_wrong_way_edge_fails_unless_allowed(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "core.py": "",
            "stage/__init__.py": "",
            "stage/mock.py": "import pkg.sim\n",
            "stage/real.py": "import pkg.sim\nimport pkg.core\n",
            "sim.py": "",
        },
    )
    g = import_graph(root)
    rule = Rule(
        "stage stays off sim", ("pkg.stage",), ("pkg.sim",), (("pkg.stage.mock", "pkg.sim"),)
    )
    assert rule_problems(g, [rule], {}) == ["pkg.stage.real:1 -> pkg.sim: stage stays off sim"]
    known = {("pkg.stage.real", "pkg.sim"): "old"}
    assert rule_problems(g, [rule], known) == []
    assert rule_problems(g, [rule], {**known, ("pkg.core", "pkg.sim"): "gone"}) == [
        "listed wrong-way import is gone (take it off the list): pkg.core -> pkg.sim"
    ]
