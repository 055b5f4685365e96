"""LSM6DSOX / ISM330DHCX and LIS3MDL drivers against their register-level emulators."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsqd.clock import ManualClock
from fsqd.imu.driver import ChipIdError, ImuSettings, get_spec, identify
from fsqd.imu.drivers.lis3mdl import Lis3mdl
from fsqd.imu.drivers.lsm6dsox import (
    CTRL1_XL,
    CTRL2_G,
    CTRL3_C,
    CTRL9_XL,
    FIFO_CTRL3,
    FIFO_CTRL4,
    INT1_CTRL,
    Ism330dhcx,
    Lsm6dsox,
)
from fsqd.imu.emulated import EmulatedBus, Signal
from fsqd.imu.emulated.lis3mdl import Lis3mdlChip
from fsqd.imu.emulated.lsm6dsox import Ism330dhcxChip, Lsm6dsoxChip
from fsqd.units import G


def setup(
    settings: ImuSettings | None = None, **kw: float
) -> tuple[ManualClock, Lsm6dsoxChip, EmulatedBus, Lsm6dsox]:
    settings = settings or ImuSettings()
    clock = ManualClock()
    chip = Lsm6dsoxChip(0x6A, clock=clock, keep_truth=True, **kw)  # type: ignore[arg-type]
    bus = EmulatedBus([chip], clock=clock)
    return clock, chip, bus, Lsm6dsox(bus, 0x6A, settings)


@pytest.mark.parametrize(
    ("requested", "odr", "code"),
    [
        (100, 104.0, 4),
        (12, 12.5, 1),
        (400, 416.0, 6),
        (1000, 833.0, 7),
        (1666, 1666.0, 8),
        (5000, 1666.0, 8),
    ],
)
def test_rate_is_the_nearest_odr_the_chip_has(requested: float, odr: float, code: int) -> None:
    _, chip, _, drv = setup(ImuSettings(rate_hz=requested))
    drv.init()
    assert drv.odr_hz == odr
    assert chip.written(CTRL1_XL)[-1] >> 4 == code
    assert chip.written(CTRL2_G)[-1] >> 4 == code
    assert chip.written(FIFO_CTRL3)[-1] == code << 4 | code
    assert chip.sampling_rate_hz == pytest.approx(6667 / 2 ** (10 - code))


@pytest.mark.parametrize(("g", "code"), [(2, 0), (4, 2), (8, 3), (16, 1), (3, 2), (20, 1)])
def test_accel_full_scale_codes_are_not_monotonic(g: float, code: int) -> None:
    _, chip, _, drv = setup(ImuSettings(accel_range_g=g))
    drv.init()
    assert (chip.written(CTRL1_XL)[-1] >> 2) & 3 == code
    assert chip.written(CTRL1_XL)[-1] & 0x02  # LPF2 on


@pytest.mark.parametrize("g", [2.0, 4.0, 8.0, 16.0])
def test_samples_decode_to_si_units_at_every_accel_scale(g: float) -> None:
    clock, chip, _, drv = setup(ImuSettings(accel_range_g=g, gyro_range_dps=500))
    drv.init()
    clock.advance(0.5)
    n = drv.fifo_count()
    read = drv.read_fifo(n)
    _, truth = chip.truth()
    assert len(read.samples) == n == len(truth)
    lsb = {2: 0.061, 4: 0.122, 8: 0.244, 16: 0.488}[g] * 1e-3 * G
    clipped = np.clip(truth[:, :3], -32768 * lsb, 32767 * lsb)
    assert np.abs(read.samples[:, :3] - clipped).max() <= lsb / 2 + 1e-5
    assert np.abs(read.samples[:, 3:6] - truth[:, 3:6]).max() <= math.radians(17.5e-3) / 2 + 1e-6
    assert np.isnan(read.samples[:, 6:]).all()  # no magnetometer in this chip


def test_init_configures_the_fifo_and_checks_who_am_i() -> None:
    _, chip, _, drv = setup()
    drv.init()
    # Linux's reset (FIFO flushed, SW_RESET, BOOT), INT1 routes cleared first.
    assert chip.writes[:4] == [(INT1_CTRL, 0), (FIFO_CTRL4, 0), (CTRL3_C, 0x05), (CTRL3_C, 0x84)]
    assert chip.written(CTRL3_C)[2] == 0x44  # then BDU | IF_INC
    assert chip.written(CTRL9_XL) == [0xE2]  # I3C off (DEVICE_CONF on the ISM330DHCX)
    assert chip.written(FIFO_CTRL4) == [0, 6]  # bypass (empty), then continuous
    # ... before both sensors start together, so the first sample is batched whole.
    assert chip.writes[-2:] == [(CTRL1_XL, 0x4A), (CTRL2_G, 0x48)]  # 4 g, LPF2; 1000 dps
    assert chip.writes.index((FIFO_CTRL4, 6)) < chip.writes.index((CTRL1_XL, 0x4A))


def test_wrong_who_am_i_says_what_was_found() -> None:
    _, _, _, drv = setup(who_am_i=0x69)
    with pytest.raises(ChipIdError, match=r"0x6a: WHO_AM_I \(0x0F\) reads 0x69, expected 0x6C"):
        drv.init()


def test_ism330dhcx_is_told_apart_and_has_4000_dps() -> None:
    clock = ManualClock()
    chip = Ism330dhcxChip(0x6B, clock=clock, keep_truth=True)
    bus = EmulatedBus([chip], clock=clock)
    with pytest.raises(ChipIdError, match="reads 0x6B, expected 0x6C"):
        Lsm6dsox(bus, 0x6B).init()
    drv = Ism330dhcx(bus, 0x6B, ImuSettings(gyro_range_dps=3000))
    drv.init()
    assert chip.written(CTRL2_G)[-1] & 0x0F == 0x01  # FS_4000
    clock.advance(0.2)
    read = drv.read_fifo(drv.fifo_count())
    _, truth = chip.truth()
    assert np.abs(read.samples[:, 3:6] - truth[:, 3:6]).max() <= math.radians(0.14) / 2 + 1e-6
    assert [s.name for s in identify(lambda r: bus.read_byte_data(0x6B, r), 0x6B)] == ["ism330dhcx"]


def test_fifo_overrun_is_reported_then_reset_clears_it() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(3.0)  # 512 words = 256 samples = 2.46 s at 104 Hz
    assert drv.fifo_count() == 256
    assert drv.read_fifo(256).overflow
    drv.reset_fifo()
    assert drv.fifo_count() == 0
    clock.advance(0.05)
    read = drv.read_fifo(drv.fifo_count())
    assert not read.overflow and len(read.samples) == 5
    assert chip.fifo.overwritten > 0


def test_overrun_latch_survives_the_fifo_draining() -> None:
    """FIFO_OVR_LATCHED stays set until FIFO_STATUS2 is read, even after a drain."""
    clock, _, bus, drv = setup()
    drv.init()
    clock.advance(3.0)
    bus.read_i2c_block_data(0x6A, 0x78, 7)  # someone pops a word: OVR_IA clears
    assert drv.fifo_count() == 255
    assert drv.read_fifo().overflow


def test_tagged_words_pair_by_slot_and_carry_a_half_slot() -> None:
    _, _, _, drv = setup()

    def word(tag: int, slot: int, v: int) -> bytes:
        return bytes([tag << 3 | slot << 1]) + np.array([v, v, v], "<i2").tobytes()

    rows, carry = drv._pair(word(1, 0, 10) + word(2, 0, 20) + word(1, 1, 11))
    assert len(rows) == 1 and len(carry) == 7
    assert rows[0, 0] == pytest.approx(20 * drv.accel_lsb, rel=1e-6)
    assert rows[0, 3] == pytest.approx(10 * drv.gyro_lsb, rel=1e-6)
    rows, carry = drv._pair(carry + word(2, 1, 21))
    assert len(rows) == 1 and carry == b""
    rows, carry = drv._pair(word(2, 3, 1) + word(1, 0, 2) + word(2, 0, 3) + word(4, 0, 0))
    assert len(rows) == 1 and drv.dropped_words == 1  # a lone accel word, a timestamp word


def test_long_drain_is_one_transfer() -> None:
    clock, _, bus, drv = setup(ImuSettings(rate_hz=833))
    drv.init()
    clock.advance(0.1)
    before = bus.transfers
    n = drv.fifo_count()
    read = drv.read_fifo(n)
    assert len(read.samples) == n >= 80
    assert bus.transfers - before == 2  # the status, then one i2c_rdwr of 7 * 2n bytes


def test_rate_hint_comes_from_the_factory_trim() -> None:
    _, chip, _, drv = setup(oscillator_error=0.02)
    drv.init()
    assert drv.rate_hint_hz == pytest.approx(chip.sampling_rate_hz, rel=0.00075)
    _, chip, _, drv = setup(oscillator_error=-0.013)
    drv.init()
    assert drv.rate_hint_hz == pytest.approx(chip.sampling_rate_hz, rel=0.00075)


def test_close_powers_down() -> None:
    _, chip, _, drv = setup()
    drv.init()
    drv.close()
    assert chip.sampling_rate_hz == 0


def test_lis3mdl_reads_the_field_in_microtesla() -> None:
    clock = ManualClock()
    chip = Lis3mdlChip(0x1C, clock=clock, keep_truth=True, signal=Signal(seed=3))
    bus = EmulatedBus([chip], clock=clock)
    mag = Lis3mdl(bus, 0x1C, ImuSettings(mag_range_ut=700))
    mag.init()
    assert chip.written(0x20)[-1] == 0x62  # UHP, FAST_ODR: 155 Hz
    assert chip.written(0x21)[-1] == 0x20  # +-8 gauss
    assert chip.written(0x22)[-1] == 0x00  # continuous
    for _ in range(5):
        clock.advance(0.013)
        field = mag.read()
        _, truth = chip.truth()
        assert np.abs(field - truth[-1, 6:9]).max() <= 100 / 3421 / 2 + 1e-9
    assert 25 < np.linalg.norm(field) < 70
    mag.close()
    assert chip.sampling_rate_hz == 0


def test_lis3mdl_wrong_chip() -> None:
    clock = ManualClock()
    bus = EmulatedBus([Lis3mdlChip(0x1E, clock=clock, who_am_i=0x33)], clock=clock)
    with pytest.raises(ChipIdError, match="reads 0x33, expected 0x3D for a LIS3MDL"):
        Lis3mdl(bus, 0x1E).init()


def test_registry_names_and_identifies() -> None:
    assert get_spec("lsm6dsox").companion_mag == "lis3mdl"
    clock = ManualClock()
    bus = EmulatedBus(
        [Lsm6dsoxChip(0x6A, clock=clock), Lis3mdlChip(0x1C, clock=clock)], clock=clock
    )
    assert [s.name for s in identify(lambda r: bus.read_byte_data(0x6A, r), 0x6A)] == ["lsm6dsox"]
    assert [s.name for s in identify(lambda r: bus.read_byte_data(0x1C, r), 0x1C)] == ["lis3mdl"]
    assert identify(lambda r: None, 0x6A) == []
