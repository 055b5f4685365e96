"""systemd/fsqd.service and friends: systemd-analyze verify and security (offline), and the
settings the daemon and the Pi's devices depend on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "fsqd.service"
CHECK = ROOT / "tools" / "check_unit.sh"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def settings(text: str) -> dict[str, list[str]]:
    """Every key of the unit with all its values in order (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def check(unit: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECK), str(unit), *args], capture_output=True, text=True, timeout=120
    )


def exposure(unit: Path) -> float:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert m, proc.stdout + proc.stderr
    return float(m.group(1))


@needs_analyze
def test_unit_verifies_clean_and_scores_within_target() -> None:
    proc = check(UNIT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify systemd" not in proc.stderr
    assert exposure(UNIT) <= MAX_EXPOSURE


@needs_analyze
def test_check_script_fails_on_a_unit_systemd_would_complain_about(tmp_path: Path) -> None:
    bad = tmp_path / "fsqd.service"
    bad.write_text(UNIT.read_text().replace("NotifyAccess=main", "NotifyAccess=main\nWachdogSec=5"))
    proc = check(bad)
    assert proc.returncode == 1
    assert "Unknown key 'WachdogSec'" in proc.stderr


@needs_analyze
def test_check_script_fails_when_hardening_is_weakened(tmp_path: Path) -> None:
    weak = tmp_path / "fsqd.service"
    drop = ("SystemCall", "Protect", "Restrict", "CapabilityBoundingSet", "NoNewPrivileges")
    weak.write_text(
        "\n".join(ln for ln in UNIT.read_text().splitlines() if not ln.startswith(drop))
    )
    assert exposure(weak) > MAX_EXPOSURE
    proc = check(weak)
    assert proc.returncode == 1 and "is above 2.0" in proc.stderr


def test_service_settings_the_daemon_relies_on() -> None:
    s = settings(UNIT.read_text())
    assert s["Type"] == ["notify"]  # systemd 252 (bookworm) has no notify-reload
    assert s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == ["/opt/fsqd/bin/fsqd run --config /etc/fsqd/fsqd.toml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert "WatchdogSec" in s and "TimeoutStopSec" in s and "RestartSec" in s
    assert s["User"] == ["fsqd"]
    assert s["StateDirectory"] == ["fsqd"] and s["ConfigurationDirectory"] == ["fsqd"]
    assert s["LoadCredential"] == ["mqtt-password:/etc/fsqd/mqtt-password"]
    assert s["Environment"] == ["HAILORT_LOGGER_PATH=NONE", "MALLOC_ARENA_MAX=2"]
    # A leak ends in a restart of fsqd alone, with room above the ~100 MB it runs at.
    assert s["MemoryHigh"] == ["384M"] and s["MemoryMax"] == ["512M"]


def test_devices_stay_reachable_under_the_hardening() -> None:
    s = settings(UNIT.read_text())
    assert s["DevicePolicy"] == ["closed"]
    assert set(s["DeviceAllow"]) == {"char-i2c rw", "/dev/hailo0 rw"}
    assert s.get("PrivateDevices", ["no"]) == ["no"]  # yes would hide /dev/i2c-* and /dev/hailo0
    assert s["SupplementaryGroups"] == ["i2c hailo"]
    # AF_NETLINK or AF_PACKET are not needed; MQTT needs INET/INET6, sd_notify/journal UNIX.
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    # onnxruntime reads /proc/cpuinfo for CPU features: ProcSubset=pid would slow it down.
    assert "ProcSubset" not in s


def test_groups_agree_across_unit_sysusers_and_udev() -> None:
    sysusers = (ROOT / "systemd" / "fsqd.sysusers").read_text().splitlines()
    entries = [ln.split() for ln in sysusers if ln.strip() and not ln.startswith("#")]
    assert ["m", "fsqd", "i2c"] in entries and ["m", "fsqd", "hailo"] in entries
    user = next(e for e in entries if e[0] == "u")
    assert user[1] == "fsqd" and user[-1] == "/var/lib/fsqd"

    rules = [
        ln
        for ln in (ROOT / "systemd" / "99-hailo.rules").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert len(rules) == 1
    fields = dict(re.findall(r'(\w+)[=!]=?"([^"]*)"', rules[0]))
    # HailoRT finds its devices under /sys/class/hailo_chardev: that class is the subsystem.
    assert fields["SUBSYSTEM"] == "hailo_chardev"
    assert (fields["GROUP"], fields["MODE"]) == ("hailo", "0660")


def test_tmpfiles_makes_the_credential_source_root_only() -> None:
    lines = (ROOT / "systemd" / "fsqd.tmpfiles").read_text().splitlines()
    entries = [ln.split() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert ["f", "/etc/fsqd/mqtt-password", "0600", "root", "root", "-"] in entries
