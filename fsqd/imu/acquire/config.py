"""The ``[[sensor]]`` tables of the config file, checked into ``SensorConfig``s.

```toml
[[sensor]]
name = "collar"            # in logs and MQTT
driver = "lsm6dsox"        # see `fsqd probe` / docs/sensors.md for the list
bus = 1                    # /dev/i2c-1; or a path; or "emulated"
address = 0x6a             # default: the chip's first address
rate_hz = 100              # requested; the chip runs at its nearest ODR (104 Hz)
```

Every problem is one ``ConfigError`` line naming the table and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError
from fsqd.imu.driver import get_spec
from fsqd.tomlcheck import Table, load_config_toml
from fsqd.units import BEHAVIOURS

EMULATED = "emulated"
AXES = ("x", "y", "z")
ADDRESS_RANGE = (0x03, 0x77)  # 7-bit addresses i2cdetect scans; the rest are reserved
POLL_MS_RANGE = (10.0, 50.0)
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class EmulatedOptions:
    """How an emulated chip behaves (``[sensor.emulated]``); ignored on real buses."""

    seed: int = 0
    oscillator_error: float = 0.0  # fraction: 0.02 runs the chip 2 % fast
    error_rate: float = 0.0  # fraction of bus transfers that fail
    who_am_i: int | None = None  # the IMU answers this instead of its own id (a wrong chip)
    behaviours: tuple[str, ...] = BEHAVIOURS


@dataclass(frozen=True)
class SensorConfig:
    name: str
    driver: str
    bus: int | str  # bus number, device path, or "emulated"
    address: int
    rate_hz: float = 100.0
    accel_range_g: float = 8.0
    gyro_range_dps: float = 1000.0
    mag_driver: str | None = None  # None: the IMU has no separate magnetometer (or "none")
    mag_address: int | None = None
    mag_range_ut: float = 400.0
    mount: tuple[str, str, str] = AXES  # body axis i = signed chip axis mount[i]
    gyro_bias: Vec3 = (0.0, 0.0, 0.0)  # rad/s, subtracted (in chip axes)
    mag_offset: Vec3 = (0.0, 0.0, 0.0)  # uT hard-iron offset, subtracted (chip axes)
    accel_scale: Vec3 = (1.0, 1.0, 1.0)  # per chip axis factor
    poll_ms: float | None = None  # burst period; None: from the FIFO's depth (10-50 ms)
    fill: Literal["duplicate"] | None = None  # fill the remaining model devices with this one
    emulated: EmulatedOptions = EmulatedOptions()

    @property
    def is_emulated(self) -> bool:
        return self.bus == EMULATED

    def mount_matrix(self) -> npt.NDArray[np.float64]:
        """3x3 M with body = M @ chip."""
        return mount_matrix(self.mount)


def mount_matrix(mount: tuple[str, str, str]) -> npt.NDArray[np.float64]:
    m = np.zeros((3, 3))
    for i, axis in enumerate(mount):
        sign = -1.0 if axis.startswith("-") else 1.0
        m[i, AXES.index(axis.lstrip("+-"))] = sign
    return m


def _mount(t: Table) -> tuple[str, str, str]:
    if not t.has("mount"):
        t.optional("mount", list)
        return AXES
    raw = t.get("mount", list)
    valid = {f"{s}{a}" for s in ("", "+", "-") for a in AXES}
    if len(raw) != 3 or not all(isinstance(a, str) and a.lower() in valid for a in raw):
        raise t.error("mount", f'expected 3 signed axes like ["x", "-y", "-z"], got {raw!r}')
    axes = tuple(a.lower().lstrip("+") for a in raw)
    if sorted(a.lstrip("-") for a in axes) != list(AXES):
        raise t.error("mount", f"must use each of x, y, z once, got {raw!r}")
    mount = (axes[0], axes[1], axes[2])
    if np.linalg.det(mount_matrix(mount)) < 0:
        raise t.error(
            "mount",
            f"{raw!r} is a mirror image, which no rigid mounting produces: flip one more sign",
        )
    return mount


def _vec3(t: Table, key: str, default: Vec3, *, positive: bool = False) -> Vec3:
    if not t.has(key):
        t.optional(key, list)
        return default
    raw = t.get(key, list)
    ok = len(raw) == 3 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in raw
    )
    if ok and positive:
        ok = all(v > 0 for v in raw)
    if not ok:
        what = "3 positive numbers" if positive else "3 numbers"
        raise t.error(key, f"expected {what}, got {raw!r}")
    return (float(raw[0]), float(raw[1]), float(raw[2]))


def _bus(t: Table) -> int | str:
    raw = t.get("bus", object)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise t.error("bus", f'expected a bus number, a /dev path or "emulated", got {raw!r}')
    if isinstance(raw, int):
        if raw < 0:
            raise t.error("bus", f"must be >= 0, got {raw}")
        return raw
    if raw == EMULATED or raw.startswith("/"):
        return raw
    if raw.isdigit():
        return int(raw)
    raise t.error("bus", f'expected a bus number, a /dev path or "emulated", got {raw!r}')


def _address(t: Table, key: str, allowed: tuple[int, ...], driver: str) -> int:
    lo, hi = ADDRESS_RANGE
    if not t.has(key):
        t.optional(key, int)
        return allowed[0]
    a = t.get(key, int)
    if not lo <= a <= hi:
        raise t.error(key, f"must be a 7-bit address 0x{lo:02x}..0x{hi:02x}, got 0x{a:x} ({a})")
    if a not in allowed:
        where = " or ".join(f"0x{x:02x}" for x in allowed)
        raise t.error(key, f"a {driver} answers at {where}, not 0x{a:02x}")
    return a


def _emulated(t: Table) -> EmulatedOptions:
    e = t.table("emulated")
    behaviours = e.optional("behaviours", list)
    if behaviours is not None and (
        not behaviours or not all(isinstance(b, str) and b in BEHAVIOURS for b in behaviours)
    ):
        raise e.error("behaviours", f"expected names from {', '.join(BEHAVIOURS)}")
    opts = EmulatedOptions(
        seed=e.integer("seed", 0, low=0),
        oscillator_error=e.number("oscillator_error", 0.0, low=-0.1, high=0.1),
        error_rate=e.number("error_rate", 0.0, low=0.0, high=0.5),
        who_am_i=e.integer("who_am_i", low=0, high=255) if e.has("who_am_i") else None,
        behaviours=tuple(behaviours) if behaviours else BEHAVIOURS,
    )
    e.done()
    return opts


def parse_sensor(t: Table) -> SensorConfig:
    name = t.get("name", str)
    if not name.strip():
        raise t.error("name", "must not be empty")
    try:
        spec = get_spec(t.get("driver", str), "imu")
    except ConfigError as e:
        raise t.error("driver", str(e)) from None
    bus = _bus(t)
    address = _address(t, "address", spec.addresses, spec.name)
    mag_name = t.get("mag_driver", str, spec.companion_mag or "none")
    mag_address = None
    if mag_name != "none":
        try:
            mag = get_spec(mag_name, "mag")
        except ConfigError as e:
            raise t.error("mag_driver", f'{e} (or "none")') from None
        mag_address = _address(t, "mag_address", mag.addresses, mag.name)
    elif t.has("mag_address"):
        raise t.error("mag_address", 'given, but mag_driver is "none"')
    fill = t.get("fill", str, "")
    if fill not in ("", "duplicate"):
        raise t.error("fill", f'must be "duplicate", got {fill!r}')
    if t.has("emulated") and bus != EMULATED:
        raise t.error("emulated", f'only applies with bus = "emulated", not bus = {bus!r}')
    config = SensorConfig(
        name=name,
        driver=spec.name,
        bus=bus,
        address=address,
        rate_hz=t.number("rate_hz", 100.0, low=0.0, high=10000.0, low_open=True),
        accel_range_g=t.number("accel_range_g", 8.0, low=0.0, low_open=True),
        gyro_range_dps=t.number("gyro_range_dps", 1000.0, low=0.0, low_open=True),
        mag_driver=None if mag_name == "none" else mag_name,
        mag_address=mag_address,
        mag_range_ut=t.number("mag_range_ut", 400.0, low=0.0, low_open=True),
        mount=_mount(t),
        gyro_bias=_vec3(t, "gyro_bias", (0.0, 0.0, 0.0)),
        mag_offset=_vec3(t, "mag_offset", (0.0, 0.0, 0.0)),
        accel_scale=_vec3(t, "accel_scale", (1.0, 1.0, 1.0), positive=True),
        poll_ms=(
            t.number("poll_ms", low=POLL_MS_RANGE[0], high=POLL_MS_RANGE[1])
            if t.has("poll_ms")
            else t.optional("poll_ms", float)
        ),
        fill="duplicate" if fill else None,
        emulated=_emulated(t),
    )
    t.done()
    return config


def parse_sensors(tables: list[Table]) -> tuple[SensorConfig, ...]:
    """All ``[[sensor]]`` tables (``root.tables("sensor")``), checked together."""
    out: list[SensorConfig] = []
    for t in tables:
        s = parse_sensor(t)
        for other in out:
            if other.name == s.name:
                raise t.error("name", f"{s.name!r} is used by another [[sensor]]")
            same_bus = other.bus == s.bus
            taken = {other.address, other.mag_address} - {None}
            clash = {s.address, s.mag_address} & taken
            if same_bus and clash:
                a = clash.pop()
                raise t.error("address", f"0x{a:02x} on bus {s.bus!r} is already {other.name!r}'s")
        if s.fill and len(tables) > 1 and t is not tables[0]:
            raise t.error("fill", "only the first [[sensor]] can fill the other devices")
        out.append(s)
    return tuple(out)


__all__ = [
    "EMULATED",
    "EmulatedOptions",
    "SensorConfig",
    "mount_matrix",
    "parse_sensor",
    "parse_sensors",
    "read_sensor_file",
]


def read_sensor_file(path: str | Path) -> tuple[SensorConfig, ...]:
    """The ``[[sensor]]`` tables of a TOML config file; other top-level tables are left
    to whoever reads the whole file. A missing file, a FIFO or a device is a ConfigError
    (exit 78), as for ``fsqd run``, ``collect`` and ``tail``."""
    p = Path(path)
    _, data = load_config_toml(p)
    sensors = parse_sensors(Table(data, p.name).tables("sensor"))
    if not sensors:
        raise ConfigError(f"{p}: no [[sensor]] table")
    return sensors
