"""Fail when a runtime dependency would need a compiler: every one must come as a wheel.

fsqd installs on Raspberry Pi OS bookworm (arm64, CPython 3.11, glibc 2.36) where there is
no compiler, and on x86_64 machines (CI, development). For each target this asks pip to
resolve the ``[project] dependencies`` of pyproject.toml, with their transitive
dependencies, to wheels only: ``pip download --only-binary=:all:`` for CPython 3.11 and every
manylinux tag the target's glibc accepts (pure-Python ``py3-none-any`` wheels always fit).
PyPI takes no plain ``linux_aarch64`` wheels, so none are asked for.

    python tools/check_wheels.py [--pyproject PATH] [--target pi|x86_64 ...] [--cache-dir D]
                                 [--extra fleet ...]

Prints one line per target that passes and one per requirement that has no wheel; exits
0 when every target passes, 1 when a requirement has no wheel, 69 (EX_UNAVAILABLE) when pip
could not answer (no network, no index). The wheels are kept under pip's cache directory
(``pip cache dir``/fsqd-wheel-check), so later runs only fetch the index pages.

The environment markers of the listed requirements are evaluated for the target (a
requirement marked for x86_64 only is not asked for on the Pi); pip evaluates those of
their own dependencies for the machine it runs on, so a transitive dependency that only an
aarch64 marker pulls in is not seen from x86_64.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
EX_UNAVAILABLE = 69
PYTHON, ABI = "3.11", "cp311"
NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


@dataclass(frozen=True)
class Target:
    name: str
    about: str
    platforms: tuple[str, ...]
    machine: str  # platform_machine, for the requirements' environment markers

    def markers(self) -> dict[str, str]:
        return {
            "platform_machine": self.machine,
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
            "python_version": PYTHON,
            "python_full_version": f"{PYTHON}.2",  # bookworm's
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
        }

    def applicable(self, requirements: list[str]) -> list[str]:
        """The requirements whose markers hold on this target, without their markers."""
        out = []
        for text in requirements:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(self.markers()):
                continue
            req.marker = None
            out.append(str(req))
        return out


def manylinux(
    arch: str, glibc_from: int, glibc_to: int, legacy: tuple[str, ...]
) -> tuple[str, ...]:
    # pip matches --platform tags literally: name every manylinux_2_N up to the target's glibc.
    tags = [f"manylinux_2_{n}_{arch}" for n in range(glibc_to, glibc_from - 1, -1)]
    return (*tags, *(f"{name}_{arch}" for name in legacy))


TARGETS = {
    "pi": Target(
        "pi",
        "Raspberry Pi OS bookworm arm64: cp311, manylinux aarch64 up to glibc 2.36",
        manylinux("aarch64", 17, 36, ("manylinux2014",)),
        "aarch64",
    ),
    "x86_64": Target(
        "x86_64",
        "x86_64 Linux: cp311, manylinux x86_64 up to glibc 2.36",
        manylinux("x86_64", 5, 36, ("manylinux2014", "manylinux2010", "manylinux1")),
        "x86_64",
    ),
}


def runtime_requirements(pyproject: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """``[project] dependencies``, plus the optional dependencies of ``extras`` (extras
    are not checked unless named: ``test`` and ``train`` never run on a node)."""
    with pyproject.open("rb") as f:
        project = tomllib.load(f)["project"]
    deps: list[str] = list(project["dependencies"])
    for extra in extras:
        deps += [d for d in project["optional-dependencies"][extra] if d not in deps]
    return deps


def pip_cache_dir() -> Path | None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True
    )
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def pip_download(target: Target, requirements: list[str], dest: Path) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    cmd += ["--python-version", PYTHON, "--implementation", "cp", "--abi", ABI]
    for platform in target.platforms:
        cmd += ["--platform", platform]
    cmd += ["--dest", str(dest), *requirements]
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def check(target: Target, requirements: list[str], dest: Path) -> tuple[list[str], list[str]]:
    """(requirements without a wheel, other pip errors) for one target."""
    code, _ = pip_download(target, requirements, dest)
    if code == 0:
        return [], []
    missing, errors = [], []
    for requirement in requirements:  # one at a time, to name every failure
        code, out = pip_download(target, [requirement], dest)
        if code == 0:
            continue
        found = NO_MATCH.search(out)
        if found is None:
            errors.append(f"{requirement}: {last_error(out)}")
        elif found.group(1) == requirement:
            missing.append(requirement)
        else:
            missing.append(f"{requirement} (its dependency {found.group(1)})")
    if not missing and not errors:  # each resolves alone but not together
        errors.append(
            f"the requirements together: {last_error(pip_download(target, requirements, dest)[1])}"
        )
    return missing, errors


def last_error(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("ERROR:")]
    return (lines[-1] if lines else (out.strip().splitlines() or ["pip failed"])[-1])[:300]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    ap.add_argument("--target", choices=sorted(TARGETS), action="append")
    ap.add_argument("--cache-dir", type=Path, help="where wheels are kept between runs")
    ap.add_argument(
        "--extra", action="append", default=[], help="also an optional extra (e.g. fleet)"
    )
    args = ap.parse_args()
    try:
        requirements = runtime_requirements(args.pyproject, tuple(args.extra))
        for text in requirements:
            Requirement(text)
    except (OSError, KeyError, tomllib.TOMLDecodeError, InvalidRequirement) as e:
        why = str(e).splitlines()[0]  # packaging's message goes on with a caret diagram
        print(
            f"check_wheels: cannot read dependencies from {args.pyproject}: {why}", file=sys.stderr
        )
        return 66
    cache = args.cache_dir or pip_cache_dir()
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = cache / "fsqd-wheel-check" if cache else Path(tmp)
        for name in args.target or list(TARGETS):
            target = TARGETS[name]
            dest = root / name
            dest.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            wanted = target.applicable(requirements)
            missing, errors = check(target, wanted, dest)
            took = time.monotonic() - t0
            for requirement in missing:
                print(f"check_wheels: {name}: no wheel for {requirement} ({target.about})")
                status = 1
            for error in errors:
                print(f"check_wheels: {name}: pip could not check {error}")
                status = status or EX_UNAVAILABLE
            if not missing and not errors:
                print(
                    f"check_wheels: {name}: {len(wanted)} requirements and their "
                    f"dependencies all have wheels ({target.about}; {took:.1f} s)"
                )
    return status


if __name__ == "__main__":
    sys.exit(main())
