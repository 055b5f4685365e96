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

from collections.abc import Mapping
from pathlib import Path

import pytest
from importgraph import (
    Edge,
    Rule,
    cycle_problems,
    import_graph,
    module_names,
    package_graph,
    rule_problems,
    top_level,
    under,
)

import fsqd

ROOT = Path(fsqd.__file__).parent


CORE = (
    "fsqd.errors",
    "fsqd.units",
    "fsqd.clock",
    "fsqd.chunk",
    "fsqd.fsq",
    "fsqd.head",
    "fsqd.metrics",
    "fsqd.hdrhistogram",
    "fsqd.tomlcheck",
    "fsqd.osthread",
)
STAGES = (
    "fsqd.imu",
    "fsqd.sim",
    "fsqd.recordings",
    "fsqd.stream",
    "fsqd.backends",
    "fsqd.sinks",
    "fsqd.daemon",
    "fsqd.commands",
    "fsqd.cli",
    "fsqd.fleet",
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
        ("fsqd.imu", "fsqd.sim", "fsqd.daemon", "fsqd.cli"),
    ),
    Rule(
        "the model package format is read by the runtime, never the other way round",
        ("fsqd.model",),
        (*STAGES, "fsqd.pipeline", "fsqd.head", "fsqd.config"),
    ),
    Rule(
        "the behaviour layer works on logits, codes and the card: core, fsqd.model and "
        "fsqd.types only",
        ("fsqd.behaviour",),
        (*STAGES, "fsqd.pipeline", "fsqd.head", "fsqd.config"),
    ),
    Rule(
        "sinks take their values from fsqd.types, not the pipeline (which loads encoders)",
        ("fsqd.sinks",),
        ("fsqd.pipeline", "fsqd.backends", "fsqd.daemon", "fsqd.commands", "fsqd.cli"),
    ),
    Rule(
        "the fleet side (collect, report) reads what nodes publish: core modules and the "
        "payloads' definitions, never a node's stages, its config or the CLI",
        ("fsqd.fleet",),
        (
            *(s for s in STAGES if s != "fsqd.fleet"),
            "fsqd.pipeline",
            "fsqd.head",
            "fsqd.config",
            "fsqd.model",
        ),
        allowed=(("fsqd.fleet", "fsqd.sinks.schemas"), ("fsqd.fleet", "fsqd.sinks.payload")),
    ),
)

# Cycles that predate this test, outside fsqd's IMU, simulator and recordings layers.
# Break one, then take its entry off; never add one.
KNOWN_MODULE_CYCLES: dict[frozenset[str], str] = {}
KNOWN_PACKAGE_CYCLES: dict[frozenset[str], str] = {}

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
    for prefix in (
        *CORE,
        *STAGES,
        "fsqd.behaviour",
        "fsqd.imu.drivers",
        "fsqd.imu.emulated",
        "fsqd.imu.acquire",
    ):
        assert any(under(m, [prefix]) for m in graph), prefix
    for gone in ("fsqd.sensors", "fsqd.service"):
        assert not any(under(m, [gone]) for m in graph), gone


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
