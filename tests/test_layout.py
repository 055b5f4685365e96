"""The package layout is the architecture: no two parts of fsqd import each other."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import fsqd

ROOT = Path(fsqd.__file__).parent


def _unit(module: str) -> str:
    """``fsqd.model.card`` -> ``model``; ``fsqd.pipeline`` -> ``pipeline``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fsqd"


def unit_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Which parts of fsqd each part imports (top-level and deferred imports alike)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        src = _unit(".".join(rel.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("fsqd.") and _unit(name) != src:
                    edges[src].add(_unit(name))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))


def test_no_two_parts_import_each_other() -> None:
    assert cycles(unit_imports()) == []


def test_the_model_format_imports_no_runtime_part() -> None:
    """``fsqd.model`` is the package format: the backends, the pipeline, the sinks and the
    commands build on it, never the other way round."""
    assert unit_imports()["model"] <= {"errors", "fsq", "safefile"}


def test_sinks_take_their_values_from_types_not_the_pipeline() -> None:
    assert "pipeline" not in unit_imports()["sinks"]


def test_a_cycle_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "fsqd"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "a" / "x.py").write_text("from fsqd.b.y import f\n")
    (pkg / "b" / "y.py").write_text("def f():\n    from fsqd.a.x import g\n")
    assert cycles(unit_imports(pkg)) == [("a", "b")]
