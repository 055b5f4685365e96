"""LSM6DSOX start-up: bootstrap words, reset and boot, a chip left configured by another
program, and the emulator's fidelity where those depend on it (ODR table, temperature)."""

from __future__ import annotations

import errno
import math

import numpy as np
import pytest

from fsqd.clock import ManualClock
from fsqd.imu.driver import ImuSettings
from fsqd.imu.drivers import lsm6dsox as reg
from fsqd.imu.drivers import st_fifo
from fsqd.imu.drivers.lsm6dsox import Ism330dhcx, Lsm6dsox
from fsqd.imu.emulated import EmulatedBus, Signal
from fsqd.imu.emulated.lsm6dsox import Ism330dhcxChip, Lsm6dsoxChip
from fsqd.testing import one_sensor, rig

FULL_SCALE_4G = 32765 * 0.122e-3 * 9.80665  # what a bootstrap word decodes to at 4 g


def setup(
    bootstrap_slots: int = 1, settings: ImuSettings | None = None, **kw: object
) -> tuple[ManualClock, Lsm6dsoxChip, EmulatedBus, Lsm6dsox]:
    clock = ManualClock()
    chip = Lsm6dsoxChip(0x6A, clock=clock, keep_truth=True, bootstrap_slots=bootstrap_slots, **kw)
    bus = EmulatedBus([chip], clock=clock)
    return clock, chip, bus, Lsm6dsox(bus, 0x6A, settings or ImuSettings(accel_range_g=4))


def first_values(words: np.ndarray) -> np.ndarray:
    return words[:, 1:3].copy().view("<i2")[:, 0]


# -- bootstrap words --


def test_the_chip_writes_bootstrap_words_when_the_sensors_start() -> None:
    clock, chip, _, drv = setup(bootstrap_slots=2)
    drv.init()
    clock.advance(0.05)
    words = chip.words()
    values = first_values(words)
    assert list(values[:4]) == [0x7FFD, 0x7FFE, 0x7FFF, 0x7FFD]  # 2 slots, gyro + accel
    assert (values[4:] < st_fifo.RESET_MARKER).all()
    assert chip.bootstrap_words == 4
    # Emptying the FIFO while the sensors run does not make the chip boot again.
    drv.reset_fifo()
    clock.advance(0.05)
    assert (first_values(chip.words()) < st_fifo.RESET_MARKER).all()


@pytest.mark.parametrize("slots", [1, 3])
def test_bootstrap_slots_are_dropped_after_every_init(slots: int) -> None:
    clock, chip, _, drv = setup(bootstrap_slots=slots)
    for _ in range(2):  # start, then a re-init (as after a brown-out)
        drv.init()
        clock.advance(0.3)
        n = drv.fifo_count()
        read = drv.read_fifo(n)
        _, truth = chip.truth()
        assert n == len(read.samples) == 31 - slots  # 31 slots taken, the bootstrap dropped
        assert np.abs(read.samples[:, :3]).max() < 0.5 * FULL_SCALE_4G  # no 4 g slot
        np.testing.assert_allclose(read.samples[:, :6], truth[-n:, :6], atol=0.01)
        chip.truth_t.clear()
        chip.truth_x.clear()
    assert drv.bootstrap_words == 2 * 2 * slots and drv.dropped_words == 0


def test_a_drain_without_a_count_drops_the_bootstrap_too() -> None:
    clock, chip, _, drv = setup(bootstrap_slots=2)
    drv.init()
    clock.advance(2.5 / chip.sampling_rate_hz)  # only the two bootstrap slots so far
    assert len(drv.read_fifo().samples) == 0
    clock.advance(0.1)
    read = drv.read_fifo()  # no fifo_count() first
    _, truth = chip.truth()
    assert len(read.samples) == len(truth) == 10
    np.testing.assert_allclose(read.samples[:, :6], truth[:, :6], atol=0.01)


def test_a_bootstrap_slot_is_never_counted_while_the_clock_waits_for_an_edge() -> None:
    """The count the sample clock catches must be of real samples: a bootstrap slot read
    in fifo_count() is dropped there, so the first edge seen is the first real sample."""
    clock, chip, _, drv = setup(bootstrap_slots=1)
    drv.init()
    period = 1 / chip.sampling_rate_hz
    clock.advance(1.5 * period)  # the bootstrap slot is in the FIFO
    assert len(chip.words()) == 2 and drv.fifo_count() == 0
    clock.advance(period)  # the first real sample
    assert drv.fifo_count() == 1
    read = drv.read_fifo(1)
    tt, truth = chip.truth()
    np.testing.assert_allclose(read.samples[0, :6], truth[0, :6], atol=0.01)
    assert tt[0] == pytest.approx(chip.sample_time(1))  # the second slot the chip took


def test_a_slot_half_written_while_booting_waits_for_its_partner() -> None:
    _, _, _, drv = setup()
    drv._booting = True

    def word(tag: int, slot: int, v: int) -> bytes:
        return bytes([tag << 3 | slot << 1]) + np.array([v, v, v], "<i2").tobytes()

    marker = st_fifo.RESET_MARKER
    # A bootstrap slot, then a clean gyro word whose accel word is not written yet.
    left = drv._strip_bootstrap(word(1, 0, marker) + word(2, 0, marker) + word(1, 1, 5))
    assert len(left) == 7 and drv._booting and drv.bootstrap_words == 2
    left = drv._strip_bootstrap(left + word(2, 1, 6))
    assert len(left) == 14 and not drv._booting
    # A marker in one word of a slot drops the whole slot (the gyro starts later).
    drv._booting = True
    left = drv._strip_bootstrap(word(1, 2, marker) + word(2, 2, 7) + word(1, 3, 8) + word(2, 3, 9))
    assert len(left) == 14 and left[0] >> 1 & 3 == 3


def test_acquisition_stamps_are_right_with_bootstrap_slots() -> None:
    """The reader's sample clock counts FIFO samples; dropping bootstrap slots before they
    are counted keeps every stamp on the truth."""
    r = rig(one_sensor(104))
    assert isinstance(r.imu, Lsm6dsoxChip)
    r.imu.bootstrap_slots = 3
    r.run(3.0)
    t, x = r.samples()
    tt, xt = r.imu.truth()
    assert len(t) > 250
    np.testing.assert_allclose(x[:, :6], xt[: len(t), :6], atol=0.003)
    assert np.abs(t - tt[: len(t)]).max() < 1e-3
    assert r.acq.status()[0].lost == 0


# -- reset, boot, I3C, another program's leftovers --


def test_software_reset_restores_control_registers_not_the_trim() -> None:
    clock, chip, bus, _ = setup(oscillator_error=0.015)
    fine = chip.registers[reg.INTERNAL_FREQ_FINE]
    assert fine == 10
    bus.write_byte_data(0x6A, reg.CTRL6_C, 0x10)
    bus.write_byte_data(0x6A, reg.CTRL1_XL, 0x40)
    bus.write_byte_data(0x6A, reg.CTRL3_C, reg.SW_RESET)
    assert bus.read_byte_data(0x6A, reg.CTRL3_C) & reg.SW_RESET  # ~50 us
    bus.write_byte_data(0x6A, reg.CTRL6_C, 0x10)  # lost: the chip is resetting
    clock.advance(60e-6)
    assert bus.read_byte_data(0x6A, reg.CTRL3_C) == reg.IF_INC
    assert bus.read_byte_data(0x6A, reg.CTRL6_C) == 0
    assert bus.read_byte_data(0x6A, reg.CTRL9_XL) == 0xE0
    assert bus.read_byte_data(0x6A, reg.INTERNAL_FREQ_FINE) == fine
    assert chip.sampling_rate_hz == 0


def test_boot_reloads_the_trim_and_takes_10_ms() -> None:
    clock, _chip, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.CTRL3_C, reg.IF_INC | reg.BOOT)
    bus.write_byte_data(0x6A, reg.CTRL1_XL, 0x40)  # lost: the chip is booting
    assert bus.read_byte_data(0x6A, reg.CTRL3_C) & reg.BOOT
    clock.advance(0.0101)
    assert bus.read_byte_data(0x6A, reg.CTRL3_C) == reg.IF_INC
    assert bus.read_byte_data(0x6A, reg.CTRL1_XL) == 0


def test_init_reloads_an_upset_trim() -> None:
    """A chip whose sensitivity trim was upset (6 % off) reads right after init's BOOT."""
    clock, chip, _, drv = setup()
    chip.upset_trim(accel_gain=1.06, gyro_gain=0.95)
    drv.init()
    clock.advance(0.2)
    read = drv.read_fifo(drv.fifo_count())
    _, truth = chip.truth()
    np.testing.assert_allclose(read.samples[:, :3], truth[:, :3], atol=0.122e-3 * 9.81)
    np.testing.assert_allclose(read.samples[:, 3:6], truth[:, 3:6], atol=math.radians(0.035))


def test_init_waits_for_the_boot_before_configuring() -> None:
    _clock, chip, _, drv = setup()
    drv.init()
    assert chip.registers[reg.CTRL3_C] == reg.BDU | reg.IF_INC
    assert chip.registers[reg.FIFO_CTRL4] == reg.FIFO_MODE_CONTINUOUS
    assert chip.sampling_rate_hz == pytest.approx(104.17, rel=1e-3)


def test_int1_high_during_a_reset_leaves_the_chip_deaf_to_i2c() -> None:
    """What Linux's FIFO flush before SW_RESET avoids, as the emulator models it."""
    clock, chip, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.INT1_CTRL, 0x01)  # accelerometer data ready on INT1
    bus.write_byte_data(0x6A, reg.CTRL1_XL, 0x40)
    clock.advance(0.05)
    assert chip.int1()
    bus.write_byte_data(0x6A, reg.CTRL3_C, reg.SW_RESET)
    with pytest.raises(OSError) as e:
        bus.read_byte_data(0x6A, reg.WHO_AM_I)
    assert e.value.errno == errno.EREMOTEIO
    chip.power_cycle()
    assert bus.read_byte_data(0x6A, reg.WHO_AM_I) == 0x6C


def documented_state(drv: Lsm6dsox) -> dict[int, int]:
    """Every control register as init() leaves it: the reset value or what it set."""
    expected = {r: 0 for r in range(0x01, 0x1A) if r != reg.WHO_AM_I}
    expected |= {
        0x02: 0x3F,  # PIN_CTRL's reset value
        reg.CTRL3_C: reg.BDU | reg.IF_INC,
        reg.CTRL9_XL: 0xE2,
        reg.FIFO_CTRL3: 0x44,
        reg.FIFO_CTRL4: reg.FIFO_MODE_CONTINUOUS,
        reg.CTRL1_XL: drv.odr_code << 4 | drv.accel_code << 2 | reg.LPF2_XL_EN,
        reg.CTRL2_G: drv.odr_code << 4 | drv.gyro_code,
    }
    return expected


@pytest.mark.parametrize("chip_cls", [Lsm6dsoxChip, Ism330dhcxChip])
def test_init_after_another_program_ends_documented_and_clean(
    chip_cls: type[Lsm6dsoxChip],
) -> None:
    """Left with interrupts on INT1 (data ready; FIFO threshold via INT2_on_INT1), the
    FIFO running with temperature words in it, other rates, ranges and modes: init must
    not make the chip deaf (INT1 high at reset), and must end in the documented state
    with clean first samples."""
    clock = ManualClock()
    chip = chip_cls(0x6A, clock=clock, keep_truth=True, signal=Signal(seed=4))
    bus = EmulatedBus([chip], clock=clock)
    chip.left_by_another_program()
    clock.advance(1.0)
    tags = set(chip.words()[:, 0] >> 3)
    assert chip.int1() and tags == {st_fifo.TAG_GYRO, st_fifo.TAG_ACCEL, st_fifo.TAG_TEMPERATURE}
    chip.truth_t.clear()
    chip.truth_x.clear()
    drv = (Ism330dhcx if chip_cls is Ism330dhcxChip else Lsm6dsox)(bus, 0x6A)
    drv.init()
    assert not chip.i3c_only and not chip.int1()
    want = documented_state(drv)
    assert {r: chip.registers[r] for r in want} == want
    clock.advance(0.5)
    n = drv.fifo_count()
    read = drv.read_fifo(n)
    _, truth = chip.truth()
    assert n == len(truth) > 45
    np.testing.assert_allclose(read.samples[:, :6], truth[:, :6], atol=0.01)


# -- emulator fidelity: ODR table, temperature, data-ready flags --


@pytest.mark.parametrize(
    ("ctrl1_xl", "ctrl6_c", "hz"),
    [
        (0x10, 0x00, 6667 / 512),  # 12.5 Hz
        (0xB0, 0x00, 6667 / 512),  # code 1011: 12.5 Hz in high-performance mode
        (0xB0, 0x10, 6667 / 4096),  # code 1011: 1.6 Hz in low-power mode
        (0xA0, 0x00, 6667.0),
        (0xC0, 0x00, 0.0),  # not allowed: off
    ],
)
def test_accelerometer_odr_table(ctrl1_xl: int, ctrl6_c: int, hz: float) -> None:
    _, chip, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.CTRL6_C, ctrl6_c)
    bus.write_byte_data(0x6A, reg.CTRL1_XL, ctrl1_xl)
    assert chip.sampling_rate_hz == pytest.approx(hz, rel=1e-3)


def test_gyro_odr_codes_above_10_are_not_allowed() -> None:
    _, chip, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.CTRL2_G, 0xB0)
    assert chip.sampling_rate_hz == 0


def test_die_temperature_is_plausible_and_drifts_slowly() -> None:
    clock, chip, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.CTRL1_XL, 0x40)
    readings = []
    for _ in range(6):
        clock.advance(60.0)
        raw = bus.read_i2c_block_data(0x6A, reg.OUT_TEMP_L, 2)
        readings.append(int.from_bytes(bytes(raw), "little", signed=True) / 256 + 25)
    assert all(18 < t < 32 for t in readings)
    steps = np.abs(np.diff(readings))
    assert steps.max() < 0.4 and steps.sum() > 0.01  # it moves, slowly (< 0.006 C/s)
    assert readings[-1] == pytest.approx(chip.die_temperature_c(), abs=0.01)


def test_temperature_words_are_batched_at_odr_t_batch() -> None:
    clock, chip, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.FIFO_CTRL3, 0x44)
    bus.write_byte_data(0x6A, reg.FIFO_CTRL4, 0x30 | reg.FIFO_MODE_CONTINUOUS)  # 52 Hz
    bus.write_byte_data(0x6A, reg.CTRL1_XL, 0x40)
    bus.write_byte_data(0x6A, reg.CTRL2_G, 0x40)
    clock.advance(1.0)
    words = chip.words()
    temp = words[words[:, 0] >> 3 == st_fifo.TAG_TEMPERATURE]
    assert len(temp) == pytest.approx(52, abs=2)
    celsius = first_values(temp) / 256 + 25
    assert np.abs(celsius - chip.die_temperature_c()).max() < 0.01


def test_data_ready_flags_clear_when_their_output_is_read() -> None:
    clock, _, bus, _ = setup()
    bus.write_byte_data(0x6A, reg.CTRL1_XL, 0x40)  # accelerometer only
    clock.advance(0.02)
    assert bus.read_byte_data(0x6A, reg.STATUS_REG) == reg.XLDA | reg.TDA
    bus.read_i2c_block_data(0x6A, reg.OUTX_L_A, 6)
    assert bus.read_byte_data(0x6A, reg.STATUS_REG) == reg.TDA
    bus.read_i2c_block_data(0x6A, reg.OUT_TEMP_L, 2)
    assert bus.read_byte_data(0x6A, reg.STATUS_REG) == 0
