"""ST LSM6DSOX and ISM330DHCX: accelerometer + gyroscope with a tagged FIFO.

Register map (ST datasheets; the Linux st_lsm6dsx driver and ST's lsm6dsox-pid agree):
WHO_AM_I 0x0F = 0x6C (LSM6DSOX) / 0x6B (ISM330DHCX); CTRL1_XL 0x10 = ODR[7:4] FS[3:2]
LPF2_XL_EN[1]; CTRL2_G 0x11 = ODR[7:4] FS_G[3:2] FS_125[1] (FS_4000[0] on the
ISM330DHCX); CTRL3_C 0x12 = BOOT BDU .. IF_INC .. SW_RESET; FIFO_CTRL3 0x09 =
BDR_GY[7:4] BDR_XL[3:0]; FIFO_CTRL4 0x0A = FIFO_MODE[2:0] (6 = continuous);
FIFO_STATUS1/2 0x3A/0x3B = DIFF_FIFO[9:0] (words waiting) + OVR flags;
INTERNAL_FREQ_FINE 0x63 (signed, 0.15 % per LSB: the oscillator's factory deviation);
FIFO_DATA_OUT_TAG 0x78 + 6 data bytes, read as 7-byte words (the address rolls over
from 0x7E to 0x78, so one burst drains many words). A tag byte is TAG_SENSOR[7:3]
(1 = gyro, 2 = accel) TAG_CNT[2:1] (the time slot, mod 4) parity[0].

Accelerometer full-scale codes are not monotonic: 0 = 2 g, 1 = 16 g, 2 = 4 g, 3 = 8 g.

The chip's internal rate is 6667 Hz / 2^n (104 Hz is really 104.17 Hz) times
(1 + 0.0015 * INTERNAL_FREQ_FINE); that is the rate hint the sample clock starts from.

The chip's timestamp counter (TIMESTAMP0..3, batchable into the FIFO) is not used: it
runs from the same oscillator as the ODR, so it measures nothing the sample count does
not already give, and batching it costs a third FIFO word per sample. Sample times
come from catching FIFO count edges against the Pi's clock (``fsqd.sensors.timing``).
"""

from __future__ import annotations

import contextlib
import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fsqd.sensors.bus import I2CBus, read_burst
from fsqd.sensors.driver import (
    ChipIdError,
    DriverSpec,
    FifoRead,
    ImuSettings,
    at_least,
    nearest,
    register,
)
from fsqd.sensors.sim import G

WHO_AM_I = 0x0F
FIFO_CTRL1, FIFO_CTRL2, FIFO_CTRL3, FIFO_CTRL4 = 0x07, 0x08, 0x09, 0x0A
CTRL1_XL, CTRL2_G, CTRL3_C = 0x10, 0x11, 0x12
CTRL8_XL = 0x17
FIFO_STATUS1, FIFO_STATUS2 = 0x3A, 0x3B
INTERNAL_FREQ_FINE = 0x63
FIFO_DATA_OUT_TAG = 0x78
WORD = 7

SW_RESET, IF_INC, BDU = 0x01, 0x04, 0x40
LPF2_XL_EN = 0x02
FIFO_MODE_BYPASS, FIFO_MODE_CONTINUOUS = 0, 6
FIFO_OVR_IA, FIFO_FULL_IA, FIFO_OVR_LATCHED = 0x40, 0x20, 0x08
TAG_GYRO, TAG_ACCEL = 0x01, 0x02
FIFO_WORDS = 512  # st_lsm6dsx: max_fifo_size
BASE_HZ = 6667.0

# ODR label (Hz) -> code; the same codes set the FIFO batch rates (BDR).
ODR_CODES: dict[float, int] = {
    12.5: 1,
    26.0: 2,
    52.0: 3,
    104.0: 4,
    208.0: 5,
    416.0: 6,
    833.0: 7,
    1666.0: 8,
}
ACCEL_FS: dict[float, int] = {2.0: 0, 16.0: 1, 4.0: 2, 8.0: 3}  # g -> FS_XL code
ACCEL_MG_PER_LSB = {2.0: 0.061, 4.0: 0.122, 8.0: 0.244, 16.0: 0.488}
GYRO_BITS: dict[float, int] = {125.0: 0x02, 250.0: 0x00, 500.0: 0x04, 1000.0: 0x08, 2000.0: 0x0C}
GYRO_MDPS_PER_LSB = {
    125.0: 4.375,
    250.0: 8.75,
    500.0: 17.5,
    1000.0: 35.0,
    2000.0: 70.0,
    4000.0: 140.0,
}


def internal_rate_hz(odr_code: int) -> float:
    """The chip's nominal rate for an ODR code: 6667 Hz / 2^(10 - code) (4: 104.2 Hz)."""
    return BASE_HZ / float(2 ** (10 - odr_code))


class Lsm6dsox:
    """Driver for an LSM6DSOX (or LSM6DSO) at 0x6A/0x6B."""

    name = "lsm6dsox"
    who_am_i = 0x6C
    gyro_bits: ClassVar[dict[float, int]] = GYRO_BITS
    has_mag = False

    def __init__(self, bus: I2CBus, address: int, settings: ImuSettings | None = None) -> None:
        settings = settings or ImuSettings()
        self.bus = bus
        self.address = address
        self.odr_hz, self.odr_code = nearest(settings.rate_hz, ODR_CODES)
        self.accel_g, self.accel_code = at_least(settings.accel_range_g, ACCEL_FS)
        self.gyro_dps, self.gyro_code = at_least(settings.gyro_range_dps, self.gyro_bits)
        self.accel_lsb = ACCEL_MG_PER_LSB[self.accel_g] * 1e-3 * G  # m/s^2 per code
        self.gyro_lsb = math.radians(GYRO_MDPS_PER_LSB[self.gyro_dps] * 1e-3)  # rad/s per code
        self.rate_hint_hz = internal_rate_hz(self.odr_code)
        self.fifo_capacity = FIFO_WORDS // 2
        self.dropped_words = 0  # words that did not pair into a sample (after an overrun)
        self._carry = b""  # a time slot whose second word has not been read yet
        self._status: tuple[int, bool] | None = None  # (words, overrun) from fifo_count()

    def _byte(self, reg: int) -> int:
        return self.bus.read_byte_data(self.address, reg)

    def _write(self, reg: int, value: int) -> None:
        self.bus.write_byte_data(self.address, reg, value)

    def init(self) -> None:
        found = self._byte(WHO_AM_I)
        if found != self.who_am_i:
            raise ChipIdError(
                f"0x{self.address:02x}: WHO_AM_I (0x{WHO_AM_I:02X}) reads 0x{found:02X}, "
                f"expected 0x{self.who_am_i:02X} for an {self.name.upper()}"
            )
        self._write(CTRL3_C, SW_RESET)
        for _ in range(100):  # the reset takes ~50 us; each read is longer than that
            if not self._byte(CTRL3_C) & SW_RESET:
                break
        else:
            raise OSError(f"0x{self.address:02x}: software reset did not complete")
        self._write(CTRL3_C, BDU | IF_INC)
        self._write(FIFO_CTRL4, FIFO_MODE_BYPASS)  # empty
        self._write(FIFO_CTRL3, self.odr_code << 4 | self.odr_code)  # batch both at the ODR
        # Continuous mode before the sensors start, so the very first sample is batched.
        self._write(FIFO_CTRL4, FIFO_MODE_CONTINUOUS)
        # Accelerometer: LPF2 at ODR/4 (HPCF_XL = 0) against aliasing; gyro: default LPF1.
        self._write(CTRL8_XL, 0x00)
        # Both sensors start in one transfer (CTRL1_XL, CTRL2_G are adjacent), so every
        # time slot has both words.
        self.bus.write_i2c_block_data(
            self.address,
            CTRL1_XL,
            [
                self.odr_code << 4 | self.accel_code << 2 | LPF2_XL_EN,
                self.odr_code << 4 | self.gyro_code,
            ],
        )
        fine = self._byte(INTERNAL_FREQ_FINE)
        fine -= 256 if fine > 127 else 0
        self.rate_hint_hz = internal_rate_hz(self.odr_code) * (1 + 0.0015 * fine)
        self._carry = b""
        self._status = None

    def _read_status(self) -> tuple[int, bool]:
        s1, s2 = self.bus.read_i2c_block_data(self.address, FIFO_STATUS1, 2)
        words = s1 | (s2 & 0x03) << 8
        return words, bool(s2 & (FIFO_OVR_IA | FIFO_OVR_LATCHED))

    def fifo_count(self) -> int:
        self._status = self._read_status()
        words = self._status[0] + len(self._carry) // WORD
        return words // 2

    def read_fifo(self, max_samples: int | None = None) -> FifoRead:
        words, overrun = self._status if self._status is not None else self._read_status()
        self._status = None
        if overrun:
            return FifoRead(np.zeros((0, 9), np.float32), overflow=True)
        want = (
            words if max_samples is None else min(words, 2 * max_samples - len(self._carry) // WORD)
        )
        raw = self._carry + (
            read_burst(self.bus, self.address, FIFO_DATA_OUT_TAG, WORD * want) if want > 0 else b""
        )
        samples, self._carry = self._pair(raw)
        return FifoRead(samples)

    def _pair(self, raw: bytes) -> tuple[npt.NDArray[np.float32], bytes]:
        """Tagged words -> (n, 9) rows; one gyro + one accel word per time slot."""
        n = len(raw) // WORD
        if n == 0:
            return np.zeros((0, 9), np.float32), raw
        words = np.frombuffer(raw[: n * WORD], np.uint8).reshape(n, WORD)
        tag = words[:, 0] >> 3
        slot = (words[:, 0] >> 1) & 0x03
        values = words[:, 1:].copy().view("<i2").astype(np.float64)  # (n, 3)
        if (
            n % 2 == 0
            and (tag[0::2] == TAG_GYRO).all()
            and (tag[1::2] == TAG_ACCEL).all()
            and (slot[0::2] == slot[1::2]).all()
        ):  # the usual case: gyro, accel, gyro, accel .. in whole slots
            out = np.empty((n // 2, 9), np.float32)
            out[:, 0:3] = values[1::2] * self.accel_lsb
            out[:, 3:6] = values[0::2] * self.gyro_lsb
            out[:, 6:9] = np.nan
            return out, b""
        rows: list[npt.NDArray[np.float64]] = []
        gyro: npt.NDArray[np.float64] | None = None
        accel: npt.NDArray[np.float64] | None = None
        current = -1
        start = 0  # first word of the current slot
        for i in range(n):
            if tag[i] not in (TAG_GYRO, TAG_ACCEL):
                continue
            if slot[i] != current:
                if gyro is not None or accel is not None:
                    self.dropped_words += 1  # a slot that lost its partner
                gyro = accel = None
                current = int(slot[i])
                start = i
            if tag[i] == TAG_GYRO:
                gyro = values[i] * self.gyro_lsb
            else:
                accel = values[i] * self.accel_lsb
            if gyro is not None and accel is not None:
                rows.append(np.concatenate([accel, gyro, np.full(3, np.nan)]))
                gyro = accel = None
                current = -1
        carry = raw[start * WORD : n * WORD] if (gyro is not None or accel is not None) else b""
        out = np.array(rows, np.float32).reshape(-1, 9)
        return out, carry

    def reset_fifo(self) -> None:
        self._write(FIFO_CTRL4, FIFO_MODE_BYPASS)
        self._write(FIFO_CTRL4, FIFO_MODE_CONTINUOUS)
        self._carry = b""
        self._status = None

    def close(self) -> None:
        with contextlib.suppress(OSError):  # powering down is a courtesy
            self._write(CTRL1_XL, 0)
            self._write(CTRL2_G, 0)


class Ism330dhcx(Lsm6dsox):
    """The industrial twin: same registers, WHO_AM_I 0x6B, gyro up to 4000 dps."""

    name = "ism330dhcx"
    who_am_i = 0x6B
    gyro_bits: ClassVar[dict[float, int]] = {**GYRO_BITS, 4000.0: 0x01}


register(
    DriverSpec(
        name="lsm6dsox",
        kind="imu",
        description="ST LSM6DSOX accelerometer + gyroscope (tagged FIFO)",
        addresses=(0x6A, 0x6B),
        who_am_i=(WHO_AM_I, Lsm6dsox.who_am_i),
        factory=Lsm6dsox,
        emulator="fsqd.sensors.emulated.lsm6dsox:Lsm6dsoxChip",
        companion_mag="lis3mdl",
    )
)
register(
    DriverSpec(
        name="ism330dhcx",
        kind="imu",
        description="ST ISM330DHCX accelerometer + gyroscope (tagged FIFO)",
        addresses=(0x6A, 0x6B),
        who_am_i=(WHO_AM_I, Ism330dhcx.who_am_i),
        factory=Ism330dhcx,
        emulator="fsqd.sensors.emulated.lsm6dsox:Ism330dhcxChip",
        companion_mag="lis3mdl",
    )
)

__all__ = ["ACCEL_FS", "ODR_CODES", "Ism330dhcx", "Lsm6dsox", "internal_rate_hz"]
