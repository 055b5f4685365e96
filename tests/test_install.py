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


def test_live_dry_run_shows_the_system_steps() -> None:
    got = steps(install("--dry-run"))
    assert got[0] == "apt-get install -y python3-venv python3-systemd" or not shutil.which(
        "apt-get"
    )
    tail = got[-6:]
    assert tail == [
        "/opt/fsqd/bin/fsqd check-config /etc/fsqd/fsqd.toml",
        "udevadm control --reload-rules",
        "udevadm trigger --action=add --subsystem-match=hailo_chardev",
        "systemctl daemon-reload",
        "systemctl enable fsqd.service",
        "systemctl restart fsqd.service",
    ]
    no_start = steps(install("--dry-run", "--no-apt", "--no-start"))
    assert "systemctl restart fsqd.service" not in no_start
    assert not any(s.startswith("apt-get") for s in no_start)


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
