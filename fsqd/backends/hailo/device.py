"""The host side of the Hailo device: the bindings, versions, who holds the device, and
opening a ``VDevice`` (with back-off while it is busy); ``fsqd probe``'s view of it."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog

from fsqd.backends.hailo.status import (
    BUSY,
    DRIVER_MISMATCH,
    RPC,
    HailoUnavailableError,
    HailoVersionError,
    describe_status,
    status_of,
)
from fsqd.backoff import Backoff
from fsqd.config.hailo import HailoSettings

log = structlog.get_logger(__name__)


def import_hailo_platform() -> ModuleType:
    """``hailo_platform`` or HailoUnavailableError saying how to install it."""
    try:
        return importlib.import_module("hailo_platform")
    except ImportError as e:
        raise HailoUnavailableError(
            f"HailoRT's Python bindings are not importable ({e}): on the Pi run "
            "`sudo apt install hailo-all` and make the venv with --system-site-packages"
        ) from None


def library_version(hp: ModuleType) -> str:
    return str(getattr(hp, "__version__", "unknown"))


def driver_version(path: str | Path = HailoSettings.driver_version_file) -> str | None:
    """The hailo_pci kernel module's version (MODULE_VERSION -> /sys/module/.../version)."""
    try:
        return Path(path).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def device_holders(device: str = "/dev/hailo0", proc: Path = Path("/proc")) -> list[str]:
    """``"name (pid N)"`` for every process with ``device`` open, as far as /proc lets us see."""
    try:
        target = os.path.realpath(device)
        pids = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    found = []
    for p in pids:
        try:
            fds = list((p / "fd").iterdir())
        except OSError:  # another user's process, or it exited meanwhile
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    comm = (p / "comm").read_text(encoding="utf-8", errors="replace").strip()
                    found.append(f"{comm} (pid {p.name})")
                    break
            except OSError:
                continue
    return found


def _holders_text(device: str) -> str:
    holders = device_holders(device)
    if holders:
        return f"{device} is held by {', '.join(holders)}"
    return f"no process visible here holds {device}"


def version_mismatch_message(hp: ModuleType, settings: HailoSettings) -> str:
    drv = driver_version(settings.driver_version_file) or "unknown (see `dmesg | grep hailo`)"
    return (
        f"HailoRT library {library_version(hp)} and hailo_pci driver {drv} differ "
        f"({describe_status(DRIVER_MISMATCH)}): install matching versions of the driver, "
        "firmware, libhailort and python3-hailort (`sudo apt install hailo-all`), then reboot"
    )


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def open_vdevice(
    hp: ModuleType, settings: HailoSettings, *, sleep: Callable[[float], None] | None = None
) -> Any:
    """One VDevice with the ROUND_ROBIN scheduler, retrying while no device is free."""
    sleep = sleep or _sleep
    params = hp.VDevice.create_params()
    params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
    if settings.multi_process_service:
        params.multi_process_service = True
        params.group_id = "SHARED"  # as HailoRT's multi-model tutorials do
    backoff = Backoff(settings.backoff_s, settings.backoff_max_s)
    last = ""
    for attempt in range(1, settings.open_attempts + 1):
        try:
            return hp.VDevice(params)
        except hp.HailoRTException as e:
            code = status_of(e)
            if code == DRIVER_MISMATCH:
                raise HailoVersionError(version_mismatch_message(hp, settings)) from None
            if code in BUSY:
                last = f"{describe_status(code)}: {_holders_text(settings.device_path)}"
            elif code in RPC:
                last = (
                    f"{describe_status(code)}: hailort.service is not answering "
                    "(`sudo systemctl start hailort.service`, or multi_process_service = false)"
                )
            else:
                raise HailoUnavailableError(
                    f"cannot open the Hailo device ({describe_status(code)}): {e}"
                ) from None
            if attempt < settings.open_attempts:
                delay = backoff.delay(attempt)
                log.warning("hailo_device_unavailable", attempt=attempt, retry_in_s=delay, why=last)
                sleep(delay)
    raise HailoUnavailableError(
        f"no free Hailo device after {settings.open_attempts} attempts ({last})"
    )


def describe_device(settings: HailoSettings | None = None) -> dict[str, Any] | None:
    """For ``fsqd probe``: HailoRT and driver versions and each device's identity.

    None when HailoRT's Python bindings are not installed.
    """
    settings = settings or HailoSettings()
    try:
        hp = importlib.import_module("hailo_platform")
    except ImportError:
        return None
    info: dict[str, Any] = {
        "hailort_version": library_version(hp),
        "driver_version": driver_version(settings.driver_version_file),
        "devices": [],
    }
    try:
        ids = list(hp.Device.scan())
    except hp.HailoRTException as e:
        info["error"] = f"scan failed ({describe_status(status_of(e))})"
        return info
    for dev_id in ids:
        entry: dict[str, Any] = {"id": str(dev_id)}
        try:
            with hp.Device(dev_id) as dev:
                board = dev.control.identify()
                entry["architecture"] = str(board.device_architecture)
                entry["firmware"] = str(board.firmware_version)
                entry["board"] = str(board.board_name).rstrip("\x00")
        except hp.HailoRTException as e:
            code = status_of(e)
            entry["error"] = describe_status(code)
            if code in BUSY:
                entry["error"] += f"; {_holders_text(settings.device_path)}"
        info["devices"].append(entry)
    return info
