"""`fsqd probe`: which known chips answer on which I2C bus, and do their readings make sense.

For each bus it can open, probe reads the WHO_AM_I register of every registered driver
at each address that chip can have (reads only, except one bank select on a chip whose
bank register says it was left outside the WHO_AM_I bank, as an ICM-20948 can be), names
what it finds, then configures each IMU for a short burst through the normal reader and
prints the measured rate and two plausibility checks:
gravity near 9.8 m/s^2 at rest, and a magnetic field of 25-65 uT (the Earth's). Last,
the Hailo accelerator: HailoRT and driver versions, each device's board, architecture
and firmware (or that HailoRT is not installed, or no device is found).

With ``--self-test``, every chip whose driver is ``SelfTestable`` (the protocol in
``fsqd.imu.selftest``) also runs its built-in self-test: one line per axis with the
measured response, the allowed range and PASS/FAIL; a driver without one says so. Any
failing axis (or a self-test the bus broke off) makes the command exit 74 (EX_IOERR): the
chip answers but its hardware does not work, which a script can tell apart from 66 (no
chip found) and 64 (a bad command line).
"""

from __future__ import annotations

import glob
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fsqd.clock import Clock, SystemClock
from fsqd.errors import EX_IOERR, FsqdError, NoInputError, UsageError
from fsqd.imu.acquire.config import SensorConfig
from fsqd.imu.acquire.reader import SensorReader
from fsqd.imu.bus import I2CBus, RetryingBus, bus_path, open_bus
from fsqd.imu.driver import (
    DriverSpec,
    ImuFactory,
    ImuSettings,
    MagFactory,
    get_spec,
    identify,
    make_imu,
    make_mag,
    specs,
)
from fsqd.imu.selftest import SelfTestable, SelfTestReport
from fsqd.units import G

GRAVITY_TOLERANCE = 0.6  # m/s^2 around 9.81 at rest
AT_REST_STD = 0.3  # m/s^2: more spread than this is motion, not a bad chip
EARTH_FIELD_UT = (25.0, 65.0)


class SelfTestFailed(FsqdError, OSError):
    """A chip answered but failed its built-in self-test: faulty hardware (EX_IOERR)."""

    exit_code = EX_IOERR


@dataclass
class Found:
    address: int
    spec: DriverSpec | None  # None: something answers that no driver knows
    note: str = ""


@dataclass
class Burst:
    samples: int
    odr_hz: float
    rate_hz: float
    accel_norm: float
    accel_std: float
    field_ut: float | None
    problems: list[str] = field(default_factory=list)


def list_buses() -> list[str]:
    def number(p: str) -> int:
        m = re.search(r"(\d+)$", p)
        return int(m.group(1)) if m else 0

    return sorted(glob.glob("/dev/i2c-*"), key=number)


def candidate_addresses() -> list[int]:
    return sorted({a for s in specs() for a in s.addresses})


def scan(bus: I2CBus) -> list[Found]:
    """Known chips (and unknown answers) at every address a registered chip can have."""
    found = []
    for address in candidate_addresses():
        answered: dict[int, int] = {}

        def read(
            reg: int, address: int = address, answered: dict[int, int] = answered
        ) -> int | None:
            try:
                value = bus.read_byte_data(address, reg)
            except OSError:
                return None
            answered[reg] = value
            return value

        def write(reg: int, value: int, address: int = address) -> None:
            bus.write_byte_data(address, reg, value)

        matches = identify(read, address, write)
        if matches:
            found += [Found(address, s) for s in matches]
        elif answered:
            regs = ", ".join(f"0x{r:02X} = 0x{v:02X}" for r, v in sorted(answered.items()))
            found.append(Found(address, None, f"answers ({regs}) but is no chip fsqd knows"))
    return found


def measure(bus: I2CBus, imu: Found, mag: Found | None, seconds: float, clock: Clock) -> Burst:
    assert imu.spec is not None
    config = SensorConfig(
        name=f"{imu.spec.name}@0x{imu.address:02x}",
        driver=imu.spec.name,
        bus="probe",
        address=imu.address,
        mag_driver=mag.spec.name if mag is not None and mag.spec is not None else None,
        mag_address=mag.address if mag is not None else None,
    )
    settings = ImuSettings(rate_hz=100.0, accel_range_g=4.0)
    rbus = RetryingBus(bus)
    driver = make_imu(imu.spec, rbus, imu.address, settings)
    mag_driver = (
        make_mag(mag.spec, rbus, mag.address, settings)
        if mag is not None and mag.spec is not None
        else None
    )
    reader = SensorReader(config, driver, mag_driver, clock, rbus)
    blocks = []
    end = clock.now() + seconds
    while clock.now() < end:
        block = reader.poll()
        if block is not None:
            blocks.append(block.x)
        clock.sleep(0.02)
    reader.close()
    if not blocks:
        raise OSError(reader.message or "no samples")
    x = np.concatenate(blocks).astype(np.float64)
    acc = np.linalg.norm(x[:, 0:3], axis=1)
    has_field = mag_driver is not None or driver.has_mag
    field_ut = float(np.linalg.norm(x[:, 6:9], axis=1).mean()) if has_field else None
    out = Burst(
        len(x), driver.odr_hz, reader.rate_hz, float(acc.mean()), float(acc.std()), field_ut
    )
    if out.accel_std > AT_REST_STD:
        out.problems.append("moving: gravity not checked (put it down and probe again)")
    elif abs(out.accel_norm - G) > GRAVITY_TOLERANCE:
        out.problems.append(f"|a| = {out.accel_norm:.2f} m/s^2 at rest, expected {G:.2f}")
    if field_ut is not None and not EARTH_FIELD_UT[0] <= field_ut <= EARTH_FIELD_UT[1]:
        out.problems.append(
            f"|B| = {field_ut:.1f} uT, the Earth's is 25-65 uT (iron nearby, or calibrate "
            "mag_offset)"
        )
    if abs(out.rate_hz / out.odr_hz - 1) > 0.05:
        out.problems.append(f"measured {out.rate_hz:.2f} Hz, far from the {out.odr_hz:g} Hz set")
    return out


def self_test_lines(bus: I2CBus, f: Found, failed: list[str]) -> list[str]:
    """Run ``f``'s self-test if its driver has one: a line per axis (or why not).
    Chips that fail (or that the bus broke off) are appended to ``failed``."""
    assert f.spec is not None
    label = f"{f.spec.name}@0x{f.address:02x}"
    factory: ImuFactory | MagFactory = f.spec.factory
    driver = factory(RetryingBus(bus), f.address, ImuSettings())
    if not isinstance(driver, SelfTestable):
        return [f"        self-test: no self-test in the {f.spec.name} driver"]
    try:
        report: SelfTestReport = driver.self_test()
    except OSError as e:
        failed.append(label)
        return [f"        self-test: FAIL, broken off: {e}"]
    lines = []
    for a in report.axes:
        verdict = "PASS" if a.passed else "FAIL"
        lines.append(
            f"        self-test {a.sensor:<5} {a.axis}: {a.measured:8.2f} {a.unit:<5} "
            f"(allowed {a.low:g} .. {a.high:g})  {verdict}"
        )
    if not report.passed:
        failed.append(label)
    return lines


def probe_bus(
    name: str,
    bus: I2CBus,
    seconds: float,
    clock: Clock,
    out: list[str],
    *,
    self_test: bool = False,
    failed: list[str] | None = None,
) -> int:
    """Probe one opened bus, appending report lines; returns the IMUs found. With
    ``self_test``, chips whose self-test fails are appended to ``failed``."""
    failed = [] if failed is None else failed
    found = scan(bus)
    if not found:
        addrs = ", ".join(f"0x{a:02x}" for a in candidate_addresses())
        out.append(f"{name}: no known chip answers (tried {addrs}): check wiring, power, pull-ups")
        return 0
    out.append(f"{name}:")
    mags = [f for f in found if f.spec is not None and f.spec.kind == "mag"]
    imus = 0
    for f in found:
        if f.spec is None:
            out.append(f"  0x{f.address:02x}  ?          {f.note}")
            continue
        out.append(f"  0x{f.address:02x}  {f.spec.name:<10} {f.spec.description}")
        if f.spec.kind == "imu":
            imus += 1
            out += burst_lines(bus, f, mags, seconds, clock)
        if self_test:
            out += self_test_lines(bus, f, failed)
    return imus


def burst_lines(
    bus: I2CBus, f: Found, mags: list[Found], seconds: float, clock: Clock
) -> list[str]:
    """An IMU's short burst (with its usual magnetometer, if found): rate and checks."""
    assert f.spec is not None
    companion = f.spec.companion_mag
    mag = next((m for m in mags if m.spec is not None and m.spec.name == companion), None)
    try:
        b = measure(bus, f, mag, seconds, clock)
    except OSError as e:
        return [f"        burst failed: {e}"]
    line = (
        f"        {b.samples} samples, {b.rate_hz:.2f} Hz measured (ODR {b.odr_hz:g}), "
        f"|a| = {b.accel_norm:.2f} m/s^2"
    )
    if b.field_ut is not None:
        line += f", |B| = {b.field_ut:.1f} uT"
        if mag is not None:
            line += f" (via 0x{mag.address:02x})"
    return [line] + ([f"        check: {p}" for p in b.problems] or ["        readings plausible"])


def accelerator_lines() -> list[str]:
    """The Hailo accelerator as HailoRT sees it: one line per device, or why there is none."""
    from fsqd.backends.hailo.device import describe_device

    info = describe_device()
    if info is None:
        return ["Hailo: HailoRT not installed (python3-hailort): inference runs on the CPU"]
    versions = f"HailoRT {info['hailort_version']}"
    if info.get("driver_version"):
        versions += f", driver {info['driver_version']}"
    if "error" in info:
        return [f"Hailo: {versions}; {info['error']}"]
    devices = info["devices"]
    if not devices:
        return [f"Hailo: {versions}; no Hailo device found (is the card seated, hailo_pci loaded?)"]
    out = []
    for d in devices:
        if "error" in d:
            out.append(f"Hailo: {d['id']}  cannot be opened: {d['error']} ({versions})")
        else:
            out.append(
                f"Hailo: {d['id']}  {d['board']} ({d['architecture']}), "
                f"firmware {d['firmware']}, {versions}"
            )
    return out


def emulated_bus(clock: Clock, faults: Sequence[str] = ()) -> I2CBus:
    """One emulated chip of every registered kind, each at a free address, at rest.
    ``faults`` ("lsm6dsox:dead-x"): those chips fail their self-test that way."""
    import importlib

    from fsqd.imu.emulated.bus import EmulatedBus
    from fsqd.imu.emulated.chip import SELF_TEST_FAULTS, Signal

    broken: dict[str, str] = {}
    for text in faults:
        chip, _, fault = text.partition(":")
        if fault not in SELF_TEST_FAULTS:
            raise UsageError(
                f"--emulated-fault {text!r}: expected CHIP:FAULT, FAULT one of "
                + ", ".join(SELF_TEST_FAULTS)
            )
        try:
            broken[get_spec(chip).name] = fault
        except FsqdError as e:
            raise UsageError(f"--emulated-fault {text!r}: {e}") from None
    bus = EmulatedBus(clock=clock)
    imus = [s for s in specs() if s.kind == "imu" and s.emulator]
    for s in specs():
        if not s.emulator:
            continue
        address = next((a for a in s.addresses if a not in bus.chips), None)
        if address is None:
            continue
        module, _, cls = s.emulator.partition(":")
        chip_cls = getattr(importlib.import_module(module), cls)
        device = imus.index(s) if s in imus else 0
        signal = Signal(seed=1, devices=max(1, len(imus)), device=device, behaviours=("rest",))
        broken_as = broken.get(s.name)
        bus.add(chip_cls(address, clock=clock, signal=signal, self_test_fault=broken_as))
    return bus


@dataclass(frozen=True)
class ProbeOptions:
    buses: tuple[str, ...] = ()  # bus numbers or /dev paths (empty: every /dev/i2c-*)
    emulated: bool = False  # probe an emulated bus instead
    seconds: float = 1.0  # burst length
    self_test: bool = False  # also run each chip's built-in self-test
    # Emulated chips that fail their self-test, e.g. "lsm6dsox:dead-x" (tests).
    emulated_faults: tuple[str, ...] = ()


def probe(opts: ProbeOptions) -> int:
    """``fsqd probe``: find IMUs on the I2C buses and check their readings."""
    buses, emulated, seconds = opts.buses, opts.emulated, opts.seconds
    self_test, emulated_faults = opts.self_test, opts.emulated_faults
    if emulated_faults and not emulated:
        raise UsageError("--emulated-fault only applies with --emulated")
    clock = SystemClock()
    lines: list[str] = []
    imus = 0
    opened = 0
    failures: list[str] = []
    failed: list[str] = []
    if emulated:
        targets: list[tuple[str, I2CBus | None]] = [
            ("emulated", emulated_bus(clock, emulated_faults))
        ]
    else:
        paths = [bus_path(int(b) if b.isdigit() else b) for b in buses] if buses else list_buses()
        if not paths:
            raise NoInputError(
                "no I2C bus: /dev/i2c-* does not exist (I2C is not enabled: raspi-config > "
                "Interface Options > I2C, or dtparam=i2c_arm=on in /boot/firmware/config.txt)"
            )
        targets = [(p, None) for p in paths]
    for name, bus in targets:
        try:
            bus = bus or open_bus(name)
        except NoInputError as e:
            failures.append(str(e))
            lines.append(str(e))
            continue
        opened += 1
        try:
            imus += probe_bus(name, bus, seconds, clock, lines, self_test=self_test, failed=failed)
        finally:
            bus.close()
    lines += accelerator_lines()
    print("\n".join(lines), file=sys.stdout)
    if not opened:
        raise NoInputError(failures[-1] if len(failures) == 1 else "no I2C bus could be opened")
    if failed:
        raise SelfTestFailed(f"self-test failed: {', '.join(failed)}")
    if not imus:
        raise NoInputError("no known IMU found")
    return 0


__all__ = [
    "Burst",
    "Found",
    "ProbeOptions",
    "SelfTestFailed",
    "accelerator_lines",
    "emulated_bus",
    "list_buses",
    "measure",
    "probe",
    "probe_bus",
    "scan",
    "self_test_lines",
]
