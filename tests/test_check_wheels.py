"""tools/check_wheels.py with the real pip, offline, on a local index of hand-made packages."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "check_wheels.py"


def wheel(index: Path, name: str, tag: str, requires: tuple[str, ...] = ()) -> None:
    dist = f"{name}-1.0.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(index / f"{name}-1.0-{tag}.whl", "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{dist}/METADATA", meta)
        z.writestr(f"{dist}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
        z.writestr(f"{dist}/RECORD", "")


def sdist(index: Path, name: str) -> None:
    (index / f"{name}-1.0.tar.gz").write_bytes(b"")  # a source release: never chosen


def make_index(index: Path) -> None:
    index.mkdir()
    wheel(index, "purepkg", "py3-none-any")
    wheel(index, "bothpkg", "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64")
    wheel(index, "bothpkg", "cp311-cp311-manylinux_2_28_x86_64")
    wheel(index, "x86onlypkg", "cp311-abi3-manylinux_2_17_x86_64")
    wheel(index, "newglibcpkg", "cp311-cp311-manylinux_2_39_aarch64")  # bookworm has 2.36
    wheel(index, "newglibcpkg", "cp311-cp311-manylinux_2_17_x86_64")
    wheel(index, "needscpkg", "py3-none-any", requires=("csdistpkg>=1",))
    sdist(index, "csdistpkg")


def run(
    tmp_path: Path, deps: list[str], extras: dict[str, list[str]] | None = None
) -> subprocess.CompletedProcess[str]:
    pyproject = tmp_path / "pyproject.toml"
    text = f"[project]\nname = 'x'\nversion = '1'\ndependencies = {deps!r}\n"
    if extras:
        text += "[project.optional-dependencies]\n"
        text += "".join(f"{name} = {reqs!r}\n" for name, reqs in extras.items())
    pyproject.write_text(text)
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,  # no index from this machine's pip configuration
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(tmp_path / "index"),
    }
    cmd = [sys.executable, str(SCRIPT), "--pyproject", str(pyproject)]
    cmd += ["--cache-dir", str(tmp_path / "cache")]
    cmd += [f"--extra={name}" for name in (extras or {}) if name != "test"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_wheels_for_every_target_pass(tmp_path: Path) -> None:
    make_index(tmp_path / "index")
    done = run(tmp_path, ["purepkg", "bothpkg>=1"])
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["pi", "x86_64"]
    assert all("2 requirements and their dependencies all have wheels" in x for x in lines)
    assert sorted(p.name for p in (tmp_path / "cache" / "fsqd-wheel-check" / "pi").iterdir()) == [
        "bothpkg-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "purepkg-1.0-py3-none-any.whl",
    ]


def test_each_requirement_without_a_wheel_is_named_once_per_target(tmp_path: Path) -> None:
    make_index(tmp_path / "index")
    done = run(tmp_path, ["purepkg", "x86onlypkg", "needscpkg", "newglibcpkg"])
    assert done.returncode == 1, done.stdout + done.stderr
    failures = sorted(line.split(" (")[0] for line in done.stdout.splitlines())
    assert failures == [
        "check_wheels: pi: no wheel for needscpkg",
        "check_wheels: pi: no wheel for newglibcpkg",
        "check_wheels: pi: no wheel for x86onlypkg",
        "check_wheels: x86_64: no wheel for needscpkg",
    ]
    assert "needscpkg (its dependency csdistpkg>=1)" in done.stdout


def test_an_unreadable_pyproject_is_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--pyproject", str(tmp_path / "missing.toml")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 66 and done.stderr.count("\n") == 1


def test_a_named_extra_is_checked_and_the_test_extra_is_not(tmp_path: Path) -> None:
    make_index(tmp_path / "index")
    extras = {"fleet": ["bothpkg", "x86onlypkg"], "test": ["needscpkg"]}
    done = run(tmp_path, ["purepkg"], extras)
    assert done.returncode == 1, done.stdout + done.stderr
    failures = [line.split(" (")[0] for line in done.stdout.splitlines() if "no wheel" in line]
    assert failures == ["check_wheels: pi: no wheel for x86onlypkg"]


def test_markers_are_evaluated_for_each_target(tmp_path: Path) -> None:
    """pip would judge an x86_64-only marker by the machine it runs on; the check judges it
    by the target, so the Pi is not asked for a package it will never install."""
    make_index(tmp_path / "index")
    deps = [
        "purepkg",
        "x86onlypkg; platform_system != 'Linux' or platform_machine == 'x86_64'",
        "needscpkg; platform_machine == 'aarch64'",
    ]
    done = run(tmp_path, deps)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    failures = [line.split(" (")[0] for line in lines if "no wheel" in line]
    assert failures == ["check_wheels: pi: no wheel for needscpkg"]
    assert any("x86_64: 2 requirements and their dependencies all have wheels" in x for x in lines)


def test_a_malformed_requirement_is_one_line(tmp_path: Path) -> None:
    done = run(tmp_path, ["purepkg >>> 1"])
    assert done.returncode == 66 and done.stderr.count("\n") == 1, done.stderr
