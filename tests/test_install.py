"""tools/install.sh: staged under --root (real systemd-sysusers, systemd-tmpfiles and
systemctl, all offline), --dry-run, uninstall/purge and its guards."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tools" / "install.sh"
FSQD = f"{sys.executable} -m fsqd"
TOOLS = ("systemd-sysusers", "systemd-tmpfiles", "systemctl")

needs_systemd_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"needs {', '.join(TOOLS)} (apt install systemd)",
)

DEMO_CONFIG = """
[mqtt]
host = "127.0.0.1"

[[sensor]]
name = "collar"
driver = "lsm6dsox"
bus = "emulated"
"""


def _as_root() -> list[str]:
    """Staging chowns files to root (tmpfiles' 'root root'): as a normal user, do it as root
    of a user namespace."""
    if os.geteuid() == 0:
        return []
    probe = subprocess.run(["unshare", "--map-root-user", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("staging needs root or an unprivileged user namespace")
    return ["unshare", "--map-root-user"]


def install(
    *args: str, check: bool = True, as_root: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [*(_as_root() if as_root else []), "bash", str(INSTALL), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def steps(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "default.toml"
    path.write_text(DEMO_CONFIG)
    return path


def staged(
    root: Path, config: Path, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return install(
        "--root",
        str(root),
        "--skip-venv",
        "--config",
        str(config),
        "--fsqd",
        FSQD,
        *extra,
        check=check,
    )


@needs_systemd_tools
def test_staged_install_lands_every_file(tmp_path: Path, config: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    proc = staged(root, config)
    etc = root / "etc"
    for rel, src in [
        ("systemd/system/fsqd.service", "systemd/fsqd.service"),
        ("udev/rules.d/99-hailo.rules", "systemd/99-hailo.rules"),
        ("sysusers.d/fsqd.conf", "systemd/fsqd.sysusers"),
        ("tmpfiles.d/fsqd.conf", "systemd/fsqd.tmpfiles"),
    ]:
        assert (etc / rel).read_bytes() == (ROOT / src).read_bytes()
        assert mode(etc / rel) == 0o644
    assert (etc / "fsqd" / "fsqd.toml").read_text() == DEMO_CONFIG
    # systemd-sysusers made the user and its memberships.
    lines = (etc / "passwd").read_text().splitlines()
    passwd = {line.split(":")[0]: line.split(":") for line in lines}
    assert passwd["fsqd"][5] == "/var/lib/fsqd"
    groups = {g.split(":")[0]: g.split(":")[3] for g in (etc / "group").read_text().splitlines()}
    assert groups["i2c"] == "fsqd" and groups["hailo"] == "fsqd"
    # systemd-tmpfiles made the credential source the unit's LoadCredential= needs.
    secret = etc / "fsqd" / "mqtt-password"
    assert secret.read_bytes() == b"" and mode(secret) == 0o600
    # systemctl --root enabled it.
    wants = etc / "systemd/system/multi-user.target.wants/fsqd.service"
    assert os.readlink(wants) == "/etc/systemd/system/fsqd.service"
    # check-config ran on the installed file before enabling.
    order = steps(proc)
    check = next(i for i, s in enumerate(order) if "check-config" in s)
    enable = next(i for i, s in enumerate(order) if "enable fsqd.service" in s)
    assert check < enable
    assert f"{etc}/fsqd/fsqd.toml: ok" in proc.stdout


@needs_systemd_tools
def test_install_again_keeps_the_config_and_changes_nothing_else(
    tmp_path: Path, config: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    staged(root, config)
    cfg = root / "etc/fsqd/fsqd.toml"
    edited = DEMO_CONFIG.replace("127.0.0.1", "broker.lan")
    cfg.write_text(edited)
    (root / "etc/fsqd/mqtt-password").write_text("s3cret\n")
    passwd = (root / "etc/passwd").read_text()
    proc = staged(root, config)
    assert "keeping the existing" in proc.stdout
    assert cfg.read_text() == edited
    assert (root / "etc/fsqd/mqtt-password").read_text() == "s3cret\n"
    assert mode(root / "etc/fsqd/mqtt-password") == 0o600
    assert (root / "etc/passwd").read_text() == passwd  # one fsqd, same uid


@needs_systemd_tools
def test_a_config_that_fails_check_config_is_not_enabled(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bad = tmp_path / "bad.toml"
    bad.write_text(DEMO_CONFIG + "\n[mqtt_typo]\n")
    proc = staged(root, bad, check=False)
    assert proc.returncode != 0
    assert "check-config failed" in proc.stderr
    assert "mqtt_typo" in proc.stderr  # fsqd's own one-line reason
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()


def _real_mqtt_parser() -> bool:
    try:
        import fsqd.sinks.mqtt as mqtt
    except ImportError:
        return False
    return hasattr(mqtt, "parse_mqtt")


@needs_systemd_tools
@pytest.mark.skipif(
    not _real_mqtt_parser(), reason="the [mqtt] parser (fsqd.sinks.mqtt) is not in this build"
)
def test_check_config_sees_the_password_as_the_service_will(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/fsqd").mkdir(parents=True)
    (root / "etc/fsqd/mqtt-password").write_text("s3cret\n")
    cfg = tmp_path / "auth.toml"
    cfg.write_text(
        DEMO_CONFIG.replace(
            '[mqtt]\nhost = "127.0.0.1"',
            '[mqtt]\nhost = "127.0.0.1"\nusername = "fsqd"\npassword_credential = "mqtt-password"',
        )
    )
    proc = staged(root, cfg)
    assert "ok" in proc.stdout
    # ... and an empty password file (what tmpfiles creates) is refused in one line.
    (root / "etc/fsqd/mqtt-password").write_text("")
    proc = staged(root, cfg, check=False)
    assert proc.returncode != 0 and "non-empty line" in proc.stderr


@needs_systemd_tools
def test_uninstall_keeps_config_and_state_purge_removes_them(tmp_path: Path, config: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    staged(root, config)
    state = root / "var/lib/fsqd"
    state.mkdir(parents=True, exist_ok=True)  # check-config made it, as StateDirectory= would
    (state / "spool.sqlite").write_bytes(b"codes")
    venv = root / "opt/fsqd"
    venv.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")

    install("--root", str(root), "--uninstall")
    etc = root / "etc"
    for rel in (
        "systemd/system/fsqd.service",
        "systemd/system/multi-user.target.wants/fsqd.service",
        "udev/rules.d/99-hailo.rules",
        "sysusers.d/fsqd.conf",
        "tmpfiles.d/fsqd.conf",
    ):
        assert not (etc / rel).exists(), rel
    assert not venv.exists()
    assert (etc / "fsqd/fsqd.toml").exists()
    assert (state / "spool.sqlite").read_bytes() == b"codes"

    install("--root", str(root), "--uninstall")  # again: nothing left to do, still fine
    install("--root", str(root), "--uninstall", "--purge")
    assert not (etc / "fsqd").exists() and not state.exists()


def test_uninstall_refuses_to_delete_a_prefix_that_is_not_a_venv(tmp_path: Path) -> None:
    root = tmp_path / "root"
    precious = root / "srv/data"
    precious.mkdir(parents=True)
    (precious / "keep.txt").write_text("x")
    proc = install("--root", str(root), "--uninstall", "--prefix", "/srv/data", check=False)
    assert proc.returncode != 0 and "is not a venv" in proc.stderr
    assert (precious / "keep.txt").read_text() == "x"


def test_dry_run_prints_every_step_in_order_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    proc = install("--root", str(root), "--dry-run", "--config", "/nonexistent.toml")
    assert list(root.iterdir()) == []
    got = steps(proc)
    prefix = f"{root}/opt/fsqd"
    assert got == [
        f"python3 -m venv --system-site-packages {prefix}",
        f"{prefix}/bin/pip install --upgrade --quiet {ROOT}",
        f"install -D -m 0644 {ROOT}/systemd/fsqd.service {root}/etc/systemd/system/fsqd.service",
        f"install -D -m 0644 {ROOT}/systemd/99-hailo.rules {root}/etc/udev/rules.d/99-hailo.rules",
        f"install -D -m 0644 {ROOT}/systemd/fsqd.sysusers {root}/etc/sysusers.d/fsqd.conf",
        f"install -D -m 0644 {ROOT}/systemd/fsqd.tmpfiles {root}/etc/tmpfiles.d/fsqd.conf",
        f"systemd-sysusers --root={root} fsqd.conf",
        f"systemd-tmpfiles --root={root} --create fsqd.conf",
        f"install -D -m 0644 /nonexistent.toml {root}/etc/fsqd/fsqd.toml",
        f"{prefix}/bin/fsqd check-config {root}/etc/fsqd/fsqd.toml",
        f"systemctl --root={root} enable fsqd.service",
    ]


# Stand-ins for the system tools install.sh queries on a live system (a dry run only
# queries; these fail loudly if anything tries to change the system through them).
FAKES = {
    "dpkg-query": """#!/bin/sh
echo "dpkg-query $*" >>"$FAKE_LOG"
for pkg; do :; done
case " $FAKE_INSTALLED " in
*" $pkg "*) printf 'install ok installed' ;;
*) echo "dpkg-query: no packages found matching $pkg" >&2; exit 1 ;;
esac
""",
    # With empty lists apt-cache policy prints nothing for a package it does not know.
    "apt-cache": """#!/bin/sh
echo "apt-cache $*" >>"$FAKE_LOG"
[ "$FAKE_LISTS" = 1 ] || exit 0
printf '%s:\n  Installed: (none)\n  Candidate: 1.0-1\n' "$2"
""",
    "systemctl": """#!/bin/sh
echo "systemctl $*" >>"$FAKE_LOG"
[ "$1" = cat ] && exit 0
exit 1
""",
    "apt-get": '#!/bin/sh\necho "apt-get $*" >>"$FAKE_LOG"; exit 1\n',
    "udevadm": '#!/bin/sh\necho "udevadm $*" >>"$FAKE_LOG"; exit 1\n',
}

# Inside a private mount namespace: a fresh /run with or without systemd's and udevd's
# marks, and optionally a unit file in /etc/systemd/system, then install.sh.
IN_NAMESPACE = """set -e
mount -t tmpfs tmpfs /run
if [ "$SYSTEMD" = 1 ]; then mkdir -p /run/systemd/system; fi
if [ "$UDEVD" = 1 ]; then
    mkdir -p /run/udev
    python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/run/udev/control")'
fi
if [ "$UNIT" = 1 ]; then
    mount -t tmpfs tmpfs /etc/systemd/system
    : >/etc/systemd/system/fsqd.service
fi
exec bash "$@"
"""


def _namespace() -> list[str]:
    cmd = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--mount", "--map-root-user"]
    if subprocess.run([*cmd, "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root or an unprivileged user namespace for a private /run")
    return cmd


def live_dry_run(
    tmp_path: Path,
    *args: str,
    systemd: bool = True,
    udevd: bool = True,
    installed: tuple[str, ...] = (),
    apt_lists: bool = True,
    unit: bool = False,
) -> tuple[list[str], str, list[str]]:
    """install.sh --dry-run on the live system as a booted Pi (systemd, udevd) or an image
    builder's chroot (neither) would look: its steps, its stdout, and what it queried."""
    if unit and not Path("/etc/systemd/system").is_dir():
        pytest.skip("no /etc/systemd/system to mount over")
    fakes = tmp_path / "fakes"
    fakes.mkdir(exist_ok=True)
    for name, text in FAKES.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    log = tmp_path / "queries.log"
    log.write_text("")
    env = {
        **os.environ,
        "PATH": f"{fakes}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_INSTALLED": " ".join(installed),
        "FAKE_LISTS": "1" if apt_lists else "0",
        "SYSTEMD": "1" if systemd else "0",
        "UDEVD": "1" if udevd else "0",
        "UNIT": "1" if unit else "0",
    }
    proc = subprocess.run(
        [*_namespace(), "sh", "-c", IN_NAMESPACE, "sh", str(INSTALL), "--dry-run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    queries = log.read_text().splitlines()
    assert not any(q.startswith(("apt-get", "udevadm")) for q in queries), queries
    return steps(proc), proc.stdout, queries


SYSTEM_TAIL = [
    "/opt/fsqd/bin/fsqd check-config /etc/fsqd/fsqd.toml",
    "udevadm control --reload-rules",
    "udevadm trigger --action=add --subsystem-match=hailo_chardev",
    "systemctl daemon-reload",
    "systemctl enable fsqd.service",
    "systemctl restart fsqd.service",
]


def test_live_dry_run_shows_the_system_steps(tmp_path: Path) -> None:
    got, _, _ = live_dry_run(tmp_path)
    assert got[0] == "apt-get install -y python3-venv python3-systemd"
    assert got[-6:] == SYSTEM_TAIL
    no_start, _, queries = live_dry_run(tmp_path, "--no-apt", "--no-start")
    assert "systemctl restart fsqd.service" not in no_start
    assert not any(s.startswith("apt-get") for s in no_start)
    assert not any(q.startswith(("dpkg-query", "apt-cache")) for q in queries)


def test_only_the_missing_apt_packages_are_installed_and_listed(tmp_path: Path) -> None:
    got, out, queries = live_dry_run(tmp_path, installed=("python3-venv",))
    assert got[0] == "apt-get install -y python3-systemd"
    assert (
        "install.sh: apt packages: to install: python3-systemd; already installed: python3-venv"
        in out.splitlines()
    )
    assert "dpkg-query -W -f=${Status} python3-venv" in queries
    # Everything there: no apt-get at all, and the dry run says so.
    got, out, _ = live_dry_run(tmp_path, installed=("python3-venv", "python3-systemd"))
    assert not any(s.startswith("apt-get") for s in got)
    assert "to install: none; already installed: python3-venv python3-systemd" in out
    # No venv to make: python3-venv is not needed.
    got, out, _ = live_dry_run(tmp_path, "--skip-venv")
    assert got[0] == "apt-get install -y python3-systemd"
    assert "python3-venv" not in out


def test_apt_get_update_runs_first_when_apt_knows_none_of_the_packages(tmp_path: Path) -> None:
    got, _, queries = live_dry_run(tmp_path, installed=("python3-venv",), apt_lists=False)
    assert got[:2] == ["apt-get update", "apt-get install -y python3-systemd"]
    assert "apt-cache policy python3-systemd" in queries
    got, _, _ = live_dry_run(tmp_path, installed=("python3-venv",), apt_lists=True)
    assert "apt-get update" not in got


@pytest.mark.parametrize(("systemd", "udevd"), [(False, True), (True, False), (False, False)])
def test_without_systemd_or_udevd_the_live_steps_are_skipped_saying_so(
    tmp_path: Path, systemd: bool, udevd: bool
) -> None:
    """An image builder's chroot: the service is still enabled (it starts at first boot),
    nothing is reloaded, restarted or triggered on a system that is not running."""
    got, out, _ = live_dry_run(tmp_path, "--no-apt", systemd=systemd, udevd=udevd)
    expected = [
        s
        for s in SYSTEM_TAIL
        if (udevd or not s.startswith("udevadm"))
        and (systemd or s not in ("systemctl daemon-reload", "systemctl restart fsqd.service"))
    ]
    assert got[-len(expected) :] == expected
    lines = out.splitlines()
    no_systemd = [ln for ln in lines if "systemd is not running" in ln]
    no_udevd = [ln for ln in lines if "udevd is not running" in ln]
    assert len(no_systemd) == (0 if systemd else 1), out
    assert len(no_udevd) == (0 if udevd else 1), out
    if not systemd:
        assert "enabled and starts at boot" in no_systemd[0]
    assert "fsqd is running" not in out


@pytest.mark.parametrize(("systemd", "udevd"), [(True, True), (False, True), (False, False)])
def test_uninstall_disables_without_a_running_systemd(
    tmp_path: Path, systemd: bool, udevd: bool
) -> None:
    got, out, queries = live_dry_run(
        tmp_path, "--uninstall", systemd=systemd, udevd=udevd, unit=True
    )
    if systemd:
        assert "systemctl cat fsqd.service" in queries
        assert got[0] == "systemctl disable --now fsqd.service"
        assert "systemctl daemon-reload" in got
    else:
        # systemctl cannot ask a manager that is not there: the unit file says it is installed.
        assert not any(q.startswith("systemctl") for q in queries)
        assert got[0] == "systemctl disable fsqd.service"
        assert "systemctl daemon-reload" not in got
        assert "systemd is not running" in out
    assert ("udevadm control --reload-rules" in got) == udevd
    assert ("udevd is not running" in out) == (not udevd)


def test_bad_arguments() -> None:
    for args, message in [
        (["--bogus"], "unknown option: --bogus"),
        (["--purge"], "--purge only goes with --uninstall"),
        (["--prefix", "relative"], "--prefix must be an absolute path"),
        (["--root", "/nonexistent-fsqd-root"], "no such directory"),
    ]:
        proc = install(*args, check=False)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)


def test_refuses_the_live_system_without_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        proc = install("--no-apt", check=False, as_root=False)
    else:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root")
        # A directory "nobody" can reach (pytest's own tmp dirs are root-only).
        reachable = Path(tempfile.mkdtemp(prefix="fsqd-install-"))
        reachable.chmod(0o755)
        copy = reachable / "install.sh"
        shutil.copy(INSTALL, copy)
        copy.chmod(0o755)
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(copy)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        shutil.rmtree(reachable)
    assert proc.returncode == 1 and "run as root" in proc.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="apt install shellcheck")
def test_scripts_are_shellcheck_clean() -> None:
    scripts = [str(p) for p in sorted((ROOT / "tools").glob("*.sh"))]
    assert scripts
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
