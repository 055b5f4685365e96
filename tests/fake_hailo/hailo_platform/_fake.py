"""The fake's hardware: one emulated Hailo-8 on PCIe, and the faults tests inject into it.

Not part of HailoRT's API: tests reach it as ``hailo_platform._fake.STATE``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

LIBRARY_VERSION = "4.23.0"


@dataclass
class FakeState:
    devices: list[str] = field(default_factory=lambda: ["0000:01:00.0"])
    architecture: str = "HAILO8"  # DeviceArchitectureTypes name
    firmware: str = "4.23.0"
    driver_version: str = LIBRARY_VERSION  # differs -> VDevice creation fails with 76
    held_elsewhere: bool = False  # another process owns the device -> 74
    service_running: bool = True  # hailort.service for multi_process_service (else 77)
    dead: bool = False  # the device went away: runs fail (36), creation fails (74)
    hang: bool = False  # jobs never complete: waits time out (4)
    fail_runs: int = 0  # the next N jobs complete with fail_status through the callback
    fail_status: int = 36
    busy_opens: int = 0  # the next N VDevice creations find the device in use (74)
    fail_loads: int = 0  # the next N HEF loads (create_infer_model / configure) fail (36)
    identify_status: int = 0  # Control.identify() fails with this status (0: it answers)
    async_queue_size: int = 4
    # Observations for tests.
    vdevices_created: int = 0
    vdevices_alive: int = 0
    frames_run: int = 0
    vdevice_params: list[Any] = field(default_factory=list)  # as each VDevice got them
    in_use: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


STATE = FakeState()


def reset() -> FakeState:
    """A fresh device; returns the new state."""
    global STATE
    STATE = FakeState()
    return STATE
