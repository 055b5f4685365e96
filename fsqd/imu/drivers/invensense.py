"""What the InvenSense drivers (MPU-9250/6500, ICM-20948) share: scales, rate and filter
choice, the FIFO drain with its overflow rules, and the aux I2C master's one-shot transfers.

Both families write one *frame* per sample into a FIFO with no header or tag: accel
(3 x int16 big-endian), gyro (3 x int16 big-endian), then whatever the aux I2C master
copied from the magnetometer (EXT_SENS_DATA). The driver knows the frame layout because it
chose what goes in (FIFO_EN). A frame that loses bytes cannot be recognised afterwards, so
every event that may have dropped bytes ends in a FIFO reset and a new segment:

- the chip's overflow flag (the FIFO dropped its oldest bytes, mid-frame: 512 bytes hold
  25.6 MPU-9250 frames, 24.4 ICM-20948 ones), read (and cleared) before every drain and
  remembered until the FIFO is reset, even if a later transfer in the same drain fails;
- a FIFO fuller than its size minus three frames (the Linux inv_mpu6050 rule: the chip may
  overflow while the burst is under way);
- a burst that failed with EIO or ETIMEDOUT, which may have clocked bytes out of the FIFO
  before failing (an address NACK, EREMOTEIO or ENXIO, consumed nothing). This holds even
  when ``RetryingBus`` repeated the burst and the repeat succeeded: its bytes may start
  mid-frame, so they are dropped too.
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fsqd.imu.bus import I2CBus, RetryingBus, read_burst
from fsqd.imu.driver import ChipIdError, FifoRead, ImuSettings, at_least
from fsqd.imu.drivers.akm import ST1_DRDY, ST2_BITM, ST2_HOFL, hold_valid
from fsqd.units import G

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

ACCEL_RANGES_G = {2.0: 0, 4.0: 1, 8.0: 2, 16.0: 3}
GYRO_RANGES_DPS = {250.0: 0, 500.0: 1, 1000.0: 2, 2000.0: 3}
GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)  # datasheet sensitivities, per FS_SEL code
HEADROOM_FRAMES = 3
NOTHING_CONSUMED = frozenset({errno.EREMOTEIO, errno.ENXIO})  # address NACK


def usable_frames(fifo_bytes: int, frame: int) -> int:
    """Frames a drain takes before the head-room rule calls it an overflow: what the
    acquisition may let pile up (``ImuDriver.fifo_capacity``)."""
    return (fifo_bytes - HEADROOM_FRAMES * frame) // frame


def accel_lsb_per_g(code: int) -> float:
    return 16384.0 / (1 << code)


def pick_divider(base_hz: float, requested_hz: float, max_div: int) -> tuple[int, float]:
    """The sample-rate divider whose rate ``base / (1 + div)`` is nearest the request."""
    best = min(
        range(max_div + 1),
        key=lambda d: (abs(base_hz / (1 + d) - requested_hz), d),
    )
    return best, base_hz / (1 + best)


def pick_dlpf(bandwidths: dict[int, float], odr_hz: float) -> tuple[int, float]:
    """The widest low-pass filter setting whose -3 dB bandwidth is below ~Nyquist.

    0.55 x ODR, not 0.5: the ICM-20948's 51.2 Hz setting is the right one at 102.3 Hz.
    """
    fits = {c: bw for c, bw in bandwidths.items() if bw <= 0.55 * odr_hz}
    if not fits:
        code = min(bandwidths, key=lambda c: bandwidths[c])
    else:
        code = max(fits, key=lambda c: fits[c])
    return code, bandwidths[code]


@dataclass(frozen=True)
class Ranges:
    accel_g: float
    accel_code: int
    gyro_dps: float
    gyro_code: int

    @staticmethod
    def choose(settings: ImuSettings) -> Ranges:
        a, ac = at_least(settings.accel_range_g, ACCEL_RANGES_G)
        g, gc = at_least(settings.gyro_range_dps, GYRO_RANGES_DPS)
        return Ranges(a, ac, g, gc)

    @property
    def accel_si_per_lsb(self) -> float:
        return G / accel_lsb_per_g(self.accel_code)

    @property
    def gyro_si_per_lsb(self) -> float:
        return math.pi / 180.0 / GYRO_LSB_PER_DPS[self.gyro_code]


def sleeper(bus: I2CBus) -> Callable[[float], None]:
    """How to wait for the chip: an emulated bus carries its own (maybe manual) clock."""
    inner = bus.bus if isinstance(bus, RetryingBus) else bus
    clock = getattr(inner, "clock", None)
    sleep: Callable[[float], None] = getattr(clock, "sleep", time.sleep)
    return sleep


def frame_dtype(mag_bytes: int) -> np.dtype[np.void]:
    """One FIFO frame: accel, gyro (big-endian), then the magnetometer block if any.

    The magnetometer block starts with ST1 and ends with ST2, data little-endian in
    between (AK8963: 8 bytes; AK09916: 9, with the TMPS dummy byte before ST2).
    """
    fields: list[tuple[str, str, tuple[int, ...]] | tuple[str, str]] = [
        ("a", ">i2", (3,)),
        ("g", ">i2", (3,)),
    ]
    if mag_bytes:
        fields += [("st1", "u1"), ("m", "<i2", (3,))]
        fields += [("pad", "u1", (mag_bytes - 8,))] if mag_bytes > 8 else []
        fields += [("st2", "u1")]
    return np.dtype(fields)


class FrameDecoder:
    """Raw FIFO bytes -> (n, 9) float32 rows in the accel/gyro frame, SI units."""

    def __init__(
        self,
        ranges: Ranges,
        mag_bytes: int = 0,
        mag_ut_per_lsb: F64 | None = None,
        mag_to_chip: F64 | None = None,
        *,
        bitm: bool = False,
    ) -> None:
        self.dtype = frame_dtype(mag_bytes)
        # AK8963: ST2.BITM says which output the measurement used (1: 16-bit, 0.15 uT/LSB;
        # 0: 14-bit, 0.6 uT/LSB). The driver asks for 16 bits, but a die that reset
        # meanwhile measures in 14: each row is scaled by what its ST2 says.
        self.bitm = bitm
        self.frame = self.dtype.itemsize
        self.ranges = ranges
        self.has_mag = mag_bytes > 0
        # Per-AK-axis scale then rotation, folded into one matrix: chip = M @ raw.
        scale = np.ones(3) if mag_ut_per_lsb is None else mag_ut_per_lsb
        rot = np.eye(3) if mag_to_chip is None else mag_to_chip
        self.mag_matrix: F64 = rot * scale[None, :]
        self.last_mag: F64 | None = None
        self.held = 0  # rows whose magnetometer value was held (no new valid reading)

    def decode(self, buf: bytes) -> F32:
        frames = np.frombuffer(buf, self.dtype)
        n = len(frames)
        out = np.empty((n, 9), np.float64)
        out[:, 0:3] = frames["a"] * self.ranges.accel_si_per_lsb
        out[:, 3:6] = frames["g"] * self.ranges.gyro_si_per_lsb
        if not self.has_mag:
            out[:, 6:9] = np.nan
            return out.astype(np.float32)
        raw = frames["m"].astype(np.float64)
        st1, st2 = frames["st1"], frames["st2"]
        if self.bitm:
            raw[(st2 & ST2_BITM) == 0] *= 4.0  # 14-bit rows: 4x the LSB
        mag = raw @ self.mag_matrix.T
        # ST1.DRDY clear: no new measurement since the last frame; the data registers
        # still hold the latest one, which is the sample-and-hold value. Invalid only:
        # an overflowed measurement (ST2.HOFL) or none yet (status and data all zero).
        self.held += int(((st1 & ST1_DRDY) == 0).sum())
        never = (st1 == 0) & ~np.any(frames["m"], axis=1)
        valid = ((st2 & ST2_HOFL) == 0) & ~never
        filled, have, self.last_mag = hold_valid(mag, valid, self.last_mag)
        if have.any():
            # Rows before a segment's first reading take that reading (held backwards).
            filled[~have] = filled[np.argmax(have)]
            out[:, 6:9] = filled
        else:
            out[:, 6:9] = np.nan
        return out.astype(np.float32)


class FifoDrain:
    """The overflow-safe drain shared by both families; the chip specifics are callables."""

    def __init__(
        self,
        bus: I2CBus,
        address: int,
        *,
        fifo_bytes: int,
        fifo_r_w: int,
        read_count: Callable[[], int],
        read_overflow: Callable[[], bool],
    ) -> None:
        self.bus = bus
        self.address = address
        self.fifo_bytes = fifo_bytes
        self.fifo_r_w = fifo_r_w
        self.read_count = read_count
        self.read_overflow = read_overflow
        self.pending = False  # an overflow (or a torn burst) not yet answered by a reset

    def clear(self) -> None:
        self.pending = False

    def drain(self, decoder: FrameDecoder, max_samples: int | None) -> FifoRead:
        frame = decoder.frame
        if self.read_overflow():
            self.pending = True
        if self.pending:
            return FifoRead(np.zeros((0, 9), np.float32), overflow=True)
        count = self.read_count()
        if count > self.fifo_bytes - HEADROOM_FRAMES * frame:
            self.pending = True
            return FifoRead(np.zeros((0, 9), np.float32), overflow=True)
        n = count // frame
        if max_samples is not None:
            n = min(n, max_samples)
        if n == 0:
            return FifoRead(np.zeros((0, 9), np.float32))
        before = self._tearing_failures()
        try:
            buf = read_burst(self.bus, self.address, self.fifo_r_w, n * frame)
        except OSError as e:
            if e.errno not in NOTHING_CONSUMED:
                self.pending = True  # part of a frame may have left the FIFO
            raise
        if self._tearing_failures() != before:  # repeated after a tear: misaligned
            self.pending = True
            return FifoRead(np.zeros((0, 9), np.float32), overflow=True)
        return FifoRead(decoder.decode(buf))

    def _tearing_failures(self) -> int:
        """Failures so far that may have consumed FIFO bytes, as a RetryingBus counts them."""
        if not isinstance(self.bus, RetryingBus):
            return 0
        return sum(
            count for name, count in self.bus.by_errno.items() if name not in ("EREMOTEIO", "ENXIO")
        )


class InvenSenseDriver:
    """What the ICM-20948 and MPU-6500/9250 drivers share: the rate, filters and ranges
    chosen from the settings, and the FIFO read through ``FifoDrain``. A chip class names
    its sample clock, filter tables and FIFO port, and reads its FIFO count and overflow
    flag."""

    base_hz: ClassVar[float]  # the sample clock SMPLRT_DIV divides
    gyro_dlpf_hz: ClassVar[dict[int, float]]
    accel_dlpf_hz: ClassVar[dict[int, float]]
    fifo_r_w: ClassVar[int]
    fifo_bytes: int

    def __init__(self, bus: I2CBus, address: int, settings: ImuSettings) -> None:
        self.bus = bus
        self.address = address
        self.settings = settings
        self.sleep = sleeper(bus)
        self.divider, self.odr_hz = pick_divider(self.base_hz, settings.rate_hz, 255)
        self.rate_hint_hz = self.odr_hz
        self.gyro_dlpf, self.gyro_bandwidth_hz = pick_dlpf(self.gyro_dlpf_hz, self.odr_hz)
        self.accel_dlpf, self.accel_bandwidth_hz = pick_dlpf(self.accel_dlpf_hz, self.odr_hz)
        self.bandwidth_hz = max(self.gyro_bandwidth_hz, self.accel_bandwidth_hz)
        self.ranges = Ranges.choose(settings)
        self.decoder = self._first_decoder()
        self.fifo_capacity = usable_frames(self.fifo_bytes, self.decoder.frame)
        self.drain = FifoDrain(
            bus,
            address,
            fifo_bytes=self.fifo_bytes,
            fifo_r_w=self.fifo_r_w,
            read_count=self._count_bytes,
            read_overflow=self._overflowed,
        )

    def _first_decoder(self) -> FrameDecoder:
        """The frame layout before init() has read the magnetometer's sensitivity."""
        raise NotImplementedError

    def _count_bytes(self) -> int:
        raise NotImplementedError

    def _overflowed(self) -> bool:
        raise NotImplementedError

    def _aux(self, reg: int, value: int | None) -> int:
        """One transfer to the magnetometer through aux slave 4; the byte read (or 0)."""
        raise NotImplementedError

    def _identify_mag(self, host: str, part: str, register: tuple[str, int], expected: int) -> None:
        """ChipIdError unless the magnetometer's ID ``register`` (name, address) reads
        ``expected``: the die behind the aux master is the ``part`` this driver speaks to."""
        name, reg = register
        got = self._aux(reg, None)
        if got != expected:
            raise ChipIdError(
                f"the magnetometer behind the {host} at 0x{self.address:02x} says "
                f"{name} 0x{got:02x}, not the {part}'s 0x{expected:02x}"
            )

    def fifo_count(self) -> int:
        return self._count_bytes() // self.decoder.frame

    def read_fifo(self, max_samples: int | None = None) -> FifoRead:
        return self.drain.drain(self.decoder, max_samples)


__all__ = [
    "ACCEL_RANGES_G",
    "GYRO_LSB_PER_DPS",
    "GYRO_RANGES_DPS",
    "FifoDrain",
    "FrameDecoder",
    "InvenSenseDriver",
    "Ranges",
    "accel_lsb_per_g",
    "frame_dtype",
    "pick_divider",
    "pick_dlpf",
    "sleeper",
    "usable_frames",
]
