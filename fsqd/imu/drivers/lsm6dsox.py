"""ST LSM6DSOX and ISM330DHCX: accelerometer + gyroscope with a tagged FIFO.

Register map (ST datasheets; the Linux st_lsm6dsx driver and ST's lsm6dsox-pid agree):
WHO_AM_I 0x0F = 0x6C (LSM6DSOX) / 0x6B (ISM330DHCX); CTRL1_XL 0x10 = ODR[7:4] FS[3:2]
LPF2_XL_EN[1]; CTRL2_G 0x11 = ODR[7:4] FS_G[3:2] FS_125[1] (FS_4000[0] on the
ISM330DHCX); CTRL3_C 0x12 = BOOT BDU .. IF_INC .. SW_RESET; FIFO_CTRL3 0x09 =
BDR_GY[7:4] BDR_XL[3:0]; FIFO_CTRL4 0x0A = FIFO_MODE[2:0] (6 = continuous);
FIFO_STATUS1/2 0x3A/0x3B = DIFF_FIFO[9:0] (words waiting) + OVR flags;
INTERNAL_FREQ_FINE 0x63 (signed, 0.15 % per LSB: the oscillator's factory deviation);
FIFO_DATA_OUT_TAG 0x78 + 6 data bytes, read as 7-byte words (the address rolls over
from 0x7E to 0x78, so one burst drains many words), decoded by ``st_fifo``.

Accelerometer full-scale codes are not monotonic: 0 = 2 g, 1 = 16 g, 2 = 4 g, 3 = 8 g.

The chip's internal rate is 6667 Hz / 2^n (104 Hz is really 104.17 Hz) times
(1 + 0.0015 * INTERNAL_FREQ_FINE); that is the rate hint the sample clock starts from.

Start-up, as Linux's ``st_lsm6dsx_reset_device`` does it, plus two things it leaves out:
INT1 routing is cleared first (an INT1 line high during a reset makes the chip come up
in I3C-only mode, deaf to I2C, and another program may have left an interrupt routed
there), the FIFO is flushed (bypass mode), SW_RESET (control registers to their
defaults, ~50 us), then BOOT (trimming reloaded from the chip's own memory, ~10 ms),
each polled until its bit clears (writes before that are lost), then I3C is disabled
(CTRL9_XL; the datasheet's advice when only I2C is used; on the ISM330DHCX the same bit
is DEVICE_CONF, which ST says to always set).

While the sensors start, the chip writes words whose first value is 0x7FFD..0x7FFF
(Linux ``st_lsm6dsx_push_tagged_data`` drops them). Decoded, they are a slot of about
+full scale (4.00 g, 1147 dps). The driver drops every slot at the head of the FIFO
after ``init()`` that holds such a word, before counting samples, so the sample clock
never sees them; the first clean slot ends that. Later, a full-scale positive X value is
a real (clipped) measurement and is kept: dropping it would shift every later stamp.

The chip's timestamp counter (TIMESTAMP0..3, batchable into the FIFO) is not used: it
runs from the same oscillator as the ODR, so it measures nothing the sample count does
not already give, and batching it costs a third FIFO word per sample. Sample times
come from catching FIFO count edges against the Pi's clock (``fsqd.imu.acquire.timing``).
"""

from __future__ import annotations

import contextlib
import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fsqd.imu.bus import I2CBus, read_burst
from fsqd.imu.driver import (
    ChipIdError,
    DriverSpec,
    FifoRead,
    ImuSettings,
    at_least,
    nearest,
    register,
)
from fsqd.imu.drivers.invensense import sleeper
from fsqd.imu.drivers.st_fifo import TAG_ACCEL, TAG_GYRO, WORD, has_reset_marker, pair_words
from fsqd.imu.drivers.st_selftest import (
    ST_G_CTRL2,
    ST_G_DPS_PER_LSB,
    ST_SETTLE_S,
    ST_XL_CTRL1,
    ST_XL_MG_PER_LSB,
    stimulus_response,
)
from fsqd.imu.selftest import AxisResult, SelfTestReport, axis_results
from fsqd.units import G

WHO_AM_I = 0x0F
FIFO_CTRL1, FIFO_CTRL2, FIFO_CTRL3, FIFO_CTRL4 = 0x07, 0x08, 0x09, 0x0A
INT1_CTRL, INT2_CTRL = 0x0D, 0x0E
CTRL1_XL, CTRL2_G, CTRL3_C, CTRL4_C, CTRL5_C, CTRL6_C = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
CTRL7_G, CTRL8_XL, CTRL9_XL, CTRL10_C = 0x16, 0x17, 0x18, 0x19
STATUS_REG = 0x1E
OUT_TEMP_L, OUTX_L_G, OUTX_L_A = 0x20, 0x22, 0x28
FIFO_STATUS1, FIFO_STATUS2 = 0x3A, 0x3B
INTERNAL_FREQ_FINE = 0x63
FIFO_DATA_OUT_TAG = 0x78

SW_RESET, IF_INC, BDU, BOOT = 0x01, 0x04, 0x40, 0x80  # CTRL3_C
LPF2_XL_EN = 0x02
XL_HM_MODE = 0x10  # CTRL6_C: 1 = accelerometer high-performance mode off
I3C_DISABLE = 0x02  # CTRL9_XL (DEVICE_CONF on the ISM330DHCX)
CTRL9_XL_DEFAULT = 0xE0
ST_XL_POSITIVE, ST_G_POSITIVE = 0x01, 0x04  # CTRL5_C ST_XL[1:0], ST_G[3:2]
XLDA, GDA, TDA = 0x01, 0x02, 0x04  # STATUS_REG
FIFO_MODE_BYPASS, FIFO_MODE_CONTINUOUS = 0, 6
FIFO_OVR_IA, FIFO_FULL_IA, FIFO_OVR_LATCHED = 0x40, 0x20, 0x08
FIFO_WORDS = 512  # st_lsm6dsx: max_fifo_size
BASE_HZ = 6667.0
TEMP_LSB_PER_C, TEMP_ZERO_C = 256.0, 25.0  # OUT_TEMP: 0 at 25 C

# SW_RESET takes ~50 us, BOOT ~10 ms; both bits clear themselves when done, so they are
# polled (Linux sleeps 50 ms after each instead).
RESET_TIMEOUT_S = BOOT_TIMEOUT_S = 0.05
POLL_S = 0.001

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
    """The chip's nominal rate for an ODR code 1..10: 6667 Hz / 2^(10 - code) (4: 104.2 Hz)."""
    return BASE_HZ / float(2 ** (10 - odr_code))


def gyro_bandwidth_hz(odr_code: int) -> float:
    """The gyroscope's -3 dB bandwidth with LPF1 off (the chain the driver leaves on): 33 Hz
    at 104 Hz, about a third of the ODR up to there (DS12814, gyroscope bandwidth table);
    above, taken as the Nyquist frequency (no claim that it filters anything)."""
    rate = internal_rate_hz(odr_code)
    return 0.317 * rate if odr_code <= 4 else rate / 2


class Lsm6dsox:
    """Driver for an LSM6DSOX (or LSM6DSO) at 0x6A/0x6B."""

    name = "lsm6dsox"
    who_am_i = 0x6C
    gyro_bits: ClassVar[dict[float, int]] = GYRO_BITS
    has_mag = False
    accel_self_test_mg: ClassVar[tuple[float, float]] = (50.0, 1700.0)
    gyro_self_test_dps: ClassVar[tuple[float, float]] = (150.0, 700.0)

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
        self.bandwidth_hz = max(self.odr_hz / 4, gyro_bandwidth_hz(self.odr_code))
        self.fifo_capacity = FIFO_WORDS // 2
        self.dropped_words = 0  # words that did not pair into a sample (after an overrun)
        self.bootstrap_words = 0  # words the chip wrote while starting, dropped
        self.sleep = sleeper(bus)
        self._booting = False  # the head of the FIFO may still hold bootstrap words
        self._carry = b""  # words read but not yet paired (half a slot, or held at start)
        self._status: tuple[int, bool] | None = None  # (words, overrun) from fifo_count()

    def _byte(self, reg: int) -> int:
        return self.bus.read_byte_data(self.address, reg)

    def _write(self, reg: int, value: int) -> None:
        self.bus.write_byte_data(self.address, reg, value)

    def _check_who_am_i(self) -> None:
        found = self._byte(WHO_AM_I)
        if found != self.who_am_i:
            raise ChipIdError(
                f"0x{self.address:02x}: WHO_AM_I (0x{WHO_AM_I:02X}) reads 0x{found:02X}, "
                f"expected 0x{self.who_am_i:02X} for an {self.name.upper()}"
            )

    def _wait_clear(self, bit: int, timeout_s: float, what: str) -> None:
        for _ in range(round(timeout_s / POLL_S)):
            if not self._byte(CTRL3_C) & bit:
                return
            self.sleep(POLL_S)
        raise OSError(f"0x{self.address:02x}: {what} did not complete in {timeout_s * 1e3:g} ms")

    def _reset(self) -> None:
        """Every register to its documented default, trimming reloaded, sensors off."""
        # INT1 high during a reset selects I3C-only mode: nothing on INT1, FIFO empty.
        self._write(INT1_CTRL, 0)
        self._write(FIFO_CTRL4, FIFO_MODE_BYPASS)
        self._write(CTRL3_C, IF_INC | SW_RESET)
        self._wait_clear(SW_RESET, RESET_TIMEOUT_S, "software reset")
        self._write(CTRL3_C, IF_INC | BOOT)  # writes until it is done are lost
        self._wait_clear(BOOT, BOOT_TIMEOUT_S, "boot (trimming reload)")

    def init(self) -> None:
        self._check_who_am_i()
        self._reset()
        self._write(CTRL3_C, BDU | IF_INC)
        self._write(CTRL9_XL, CTRL9_XL_DEFAULT | I3C_DISABLE)
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
        self._booting = True

    def _read_status(self) -> tuple[int, bool]:
        s1, s2 = self.bus.read_i2c_block_data(self.address, FIFO_STATUS1, 2)
        words = s1 | (s2 & 0x03) << 8
        return words, bool(s2 & (FIFO_OVR_IA | FIFO_OVR_LATCHED))

    def fifo_count(self) -> int:
        words, overrun = self._read_status()
        if self._booting and words and not overrun:
            # Read what is there now, so the bootstrap slots are never counted.
            raw = self._carry + read_burst(self.bus, self.address, FIFO_DATA_OUT_TAG, WORD * words)
            self._carry = self._strip_bootstrap(raw)
            words = 0
        self._status = (words, overrun)
        return (words + len(self._carry) // WORD) // 2

    def _strip_bootstrap(self, raw: bytes) -> bytes:
        """Drop the slots at the head of ``raw`` that hold a bootstrap word (or lost a
        partner among them); the first clean, complete slot ends the bootstrap. An
        incomplete slot at the end waits for its partner."""
        n = len(raw) // WORD
        start = 0
        while start < n:
            slot = raw[start * WORD] & 0x06
            end = start
            while end < n and raw[end * WORD] & 0x06 == slot:
                end += 1
            group = raw[start * WORD : end * WORD]
            tags = {b >> 3 for b in group[::WORD]}
            complete = {TAG_GYRO, TAG_ACCEL} <= tags
            if end == n and not complete:
                break
            if complete and not has_reset_marker(group):
                self._booting = False
                break
            self.bootstrap_words += end - start
            start = end
        return raw[start * WORD :]

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
        if self._booting:
            raw = self._strip_bootstrap(raw)
            if self._booting:  # still no clean slot: hold what there is
                self._carry = raw
                return FifoRead(np.zeros((0, 9), np.float32))
        samples, self._carry = self._pair(raw)
        return FifoRead(samples)

    def _pair(self, raw: bytes) -> tuple[npt.NDArray[np.float32], bytes]:
        """Tagged words -> (n, 9) rows and the words of a half slot left over."""
        samples, carry, dropped = pair_words(raw, self.accel_lsb, self.gyro_lsb)
        self.dropped_words += dropped
        return samples, carry

    # -- self-test (fsqd.imu.drivers.st_selftest) --

    def self_test(self) -> SelfTestReport:
        """AN5272: the output change with the positive self-test stimulus, per axis,
        averaged over 5 samples after the first is dropped, accel then gyro."""
        self._check_who_am_i()
        self._reset()
        self._write(CTRL3_C, BDU | IF_INC)
        self._write(CTRL9_XL, CTRL9_XL_DEFAULT | I3C_DISABLE)
        accel = self._stimulus_response(
            CTRL1_XL, ST_XL_CTRL1, ST_XL_POSITIVE, XLDA, OUTX_L_A, internal_rate_hz(3)
        )
        gyro = self._stimulus_response(
            CTRL2_G, ST_G_CTRL2, ST_G_POSITIVE, GDA, OUTX_L_G, internal_rate_hz(5)
        )
        self._reset()
        axes: tuple[AxisResult, ...] = axis_results(
            "accel", [a * ST_XL_MG_PER_LSB for a in accel], [self.accel_self_test_mg] * 3, "mg"
        ) + axis_results(
            "gyro", [g * ST_G_DPS_PER_LSB for g in gyro], [self.gyro_self_test_dps] * 3, "dps"
        )
        return SelfTestReport(
            self.name,
            self.address,
            axes,
            ("AN5272: accel 52 Hz +-4 g, gyro 208 Hz +-2000 dps, positive stimulus",),
        )

    def _stimulus_response(
        self, ctrl: int, value: int, st_bits: int, ready_bit: int, out: int, rate_hz: float
    ) -> list[float]:
        """|mean with the stimulus - mean without| in codes, per axis; sensor off after."""
        self._write(ctrl, value)
        self.sleep(ST_SETTLE_S)
        response = stimulus_response(
            self.bus,
            self.address,
            self.sleep,
            status=(STATUS_REG, ready_bit),
            out=out,
            period_s=1 / rate_hz,
            stimulus=lambda on: self._write(CTRL5_C, st_bits if on else 0),
            settle_s=ST_SETTLE_S,
        )
        self._write(ctrl, 0)
        return response

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
    accel_self_test_mg: ClassVar[tuple[float, float]] = (90.0, 1700.0)  # ST's own limits


register(
    DriverSpec(
        name="lsm6dsox",
        kind="imu",
        description="ST LSM6DSOX accelerometer + gyroscope (tagged FIFO)",
        addresses=(0x6A, 0x6B),
        who_am_i=(WHO_AM_I, Lsm6dsox.who_am_i),
        factory=Lsm6dsox,
        emulator="fsqd.imu.emulated.lsm6dsox:Lsm6dsoxChip",
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
        emulator="fsqd.imu.emulated.lsm6dsox:Ism330dhcxChip",
        companion_mag="lis3mdl",
    )
)

__all__ = ["ACCEL_FS", "ODR_CODES", "Ism330dhcx", "Lsm6dsox", "internal_rate_hz"]
