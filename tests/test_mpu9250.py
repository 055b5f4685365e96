"""MPU-9250 / MPU-6500 driver against its register-level emulator, and the full
acquisition path (``open_acquisition`` with ``bus = "emulated"``)."""

from __future__ import annotations

import errno
import math
import tomllib

import numpy as np
import pytest
from invensensekit import SpyBus, acquisition, fail_once, truth_run

from fsqd.clock import ManualClock
from fsqd.imu.acquire.acquisition import open_acquisition
from fsqd.imu.acquire.config import parse_sensors
from fsqd.imu.bus import RetryingBus
from fsqd.imu.driver import ChipIdError, ImuSettings, get_spec, identify
from fsqd.imu.drivers.mpu6500 import Mpu6500
from fsqd.imu.drivers.mpu9250 import Mpu9250
from fsqd.imu.emulated import EmulatedBus
from fsqd.imu.emulated.invensense import BypassPort
from fsqd.imu.emulated.mpu9250 import EmulatedMpu6500, EmulatedMpu9250, EmulatedMpu9255
from fsqd.tomlcheck import Table
from fsqd.units import G

WIDE = ImuSettings(rate_hz=100, accel_range_g=16, gyro_range_dps=2000)
ACC_LSB_16G = G / 2048
GYRO_LSB_2000 = math.radians(1 / 16.4)


def setup(
    settings: ImuSettings = WIDE,
    *,
    chip_cls: type[EmulatedMpu6500] = EmulatedMpu9250,
    driver_cls: type[Mpu6500] = Mpu9250,
    bus_cls: type[EmulatedBus] = EmulatedBus,
    **kw: object,
) -> tuple[ManualClock, EmulatedMpu6500, EmulatedBus, Mpu6500]:
    clock = ManualClock()
    chip = chip_cls(0x68, clock=clock, keep_truth=True, **kw)  # type: ignore[arg-type]
    bus = bus_cls([chip], clock=clock)
    return clock, chip, bus, driver_cls(bus, 0x68, settings)


def mag_tolerance(asa: tuple[int, int, int] = (0xB0, 0xB4, 0xA6)) -> float:
    return 0.15 * (max(asa) + 128) / 256 / 2 + 1e-4


# -- configuration, at register level --


@pytest.mark.parametrize(
    ("requested", "divider", "odr"),
    [(100, 9, 100.0), (1000, 0, 1000.0), (200, 4, 200.0), (104, 9, 100.0), (3, 255, 1000 / 256)],
)
def test_rate_is_1khz_over_one_plus_the_divider(requested: float, divider: int, odr: float) -> None:
    _, chip, _, drv = setup(ImuSettings(rate_hz=requested))
    assert drv.odr_hz == pytest.approx(odr)  # known before any bus traffic
    drv.init()
    assert chip.written(0x19)[-1] == divider  # SMPLRT_DIV
    assert chip.sampling_rate_hz == pytest.approx(odr)


def test_init_writes_the_datasheet_configuration() -> None:
    _, chip, _, drv = setup(ImuSettings(rate_hz=100, accel_range_g=8, gyro_range_dps=1000))
    drv.init()
    assert chip.written(0x6B)[:2] == [0x80, 0x01]  # H_RESET, then PLL clock awake
    assert chip.written(0x1A) == [3]  # CONFIG: DLPF_CFG 3 (41 Hz), FIFO_MODE 0
    assert chip.written(0x1B) == [2 << 3]  # GYRO_CONFIG: +-1000 dps, FCHOICE_B 00
    assert chip.written(0x1C) == [2 << 3]  # ACCEL_CONFIG: +-8 g
    assert chip.written(0x1D) == [3]  # ACCEL_CONFIG2: A_DLPF_CFG 3 (44.8 Hz)
    assert chip.written(0x38) == [0x10]  # INT_ENABLE: FIFO overflow
    assert chip.written(0x23)[-1] == 0x79  # FIFO_EN: accel, gyro xyz, aux slave 0
    assert chip.written(0x6A)[-2:] == [0x24, 0x60]  # FIFO_RST, then FIFO_EN | I2C_MST_EN
    # aux master streaming: slave 0 reads ST1..ST2, slave 1 starts a 16-bit single shot
    assert chip.written(0x25)[-1] == 0x8C and chip.written(0x26)[-1] == 0x02
    assert chip.written(0x27)[-1] == 0x88
    assert chip.written(0x28)[-1] == 0x0C and chip.written(0x29)[-1] == 0x0A
    assert chip.written(0x64)[-1] == 0x11 and chip.written(0x2A)[-1] == 0x81
    assert chip.written(0x67)[-1] == 0x83  # delay shadowing, slaves 0 and 1 delayed
    assert chip.written(0x34)[-1] == 1  # I2C_MST_DLY 1: magnetometer triggered at 50 Hz
    assert chip.registers[0x6A] == 0x60 and chip.registers[0x23] == 0x79
    ak = chip.ak
    assert ak is not None
    # soft reset, fuse ROM for ASA, power-down, then the master's single shots
    assert ak.writes[:4] == [(0x0B, 0x01), (0x0A, 0x0F), (0x0A, 0x00), (0x0A, 0x11)]
    assert drv.asa == bytes([0xB0, 0xB4, 0xA6])


@pytest.mark.parametrize(
    ("g", "dps", "acode", "gcode"),
    [(2, 250, 0, 0), (4, 500, 1, 1), (8, 1000, 2, 2), (16, 2000, 3, 3), (3, 300, 1, 1)],
)
def test_units_at_every_range(g: float, dps: float, acode: int, gcode: int) -> None:
    clock, chip, _, drv = setup(ImuSettings(accel_range_g=g, gyro_range_dps=dps))
    drv.init()
    assert chip.written(0x1C)[-1] == acode << 3 and chip.written(0x1B)[-1] == gcode << 3
    clock.advance(0.2)
    read = drv.read_fifo(drv.fifo_count())
    n = len(read.samples)
    assert n == 20 and not read.overflow
    _, truth = chip.truth()
    a_lsb = G / (16384 / 2**acode)
    g_lsb = math.radians(1 / (131, 65.5, 32.8, 16.4)[gcode])
    clip_a = np.clip(truth[-n:, 0:3], -32768 * a_lsb, 32767 * a_lsb)
    clip_g = np.clip(truth[-n:, 3:6], -32768 * g_lsb, 32767 * g_lsb)
    assert np.abs(read.samples[:, 0:3] - clip_a).max() <= a_lsb / 2 + 1e-5
    assert np.abs(read.samples[:, 3:6] - clip_g).max() <= g_lsb / 2 + 1e-6


@pytest.mark.parametrize("asa", [(0xB0, 0xB4, 0xA6), (0x80, 0xC0, 0x40)])
def test_magnetometer_sensitivity_and_axes_two_samples_late(asa: tuple[int, int, int]) -> None:
    """At 100 Hz every other frame holds the single shot triggered two frames earlier,
    the frame between repeats it; ASA-adjusted and mapped from the AK8963's axes
    (x <-> y, -z) to the accel/gyro axes."""
    clock, chip, _, drv = setup(asa=asa)
    drv.init()
    clock.advance(0.2)
    read = drv.read_fifo()
    n = len(read.samples)
    _, truth = chip.truth()
    mag = read.samples[:, 6:9]
    new = np.flatnonzero(np.any(np.diff(mag, axis=0) != 0, axis=1)) + 1
    assert len(new) >= 8 and set(np.diff(new)) == {2}
    late2, late3 = truth[-n - 2 : -2, 6:9], truth[-n - 3 : -3, 6:9]
    assert np.abs(mag[new] - late2[new]).max() <= mag_tolerance(asa)
    assert np.abs(mag[new[:-1] + 1] - late3[new[:-1] + 1]).max() <= mag_tolerance(asa)
    assert 25 < np.linalg.norm(read.samples[0, 6:9]) < 70


@pytest.mark.parametrize(
    ("rate", "delay"),
    [(40, 0), (50, 0), (100, 1), (125, 2), (200, 3), (333, 6), (500, 9), (1000, 19)],
)
def test_magnetometer_is_never_triggered_faster_than_50hz(rate: float, delay: int) -> None:
    """A single measurement takes up to 9 ms: Linux triggers the AK8963 at <= 50 Hz."""
    clock, chip, _, drv = setup(ImuSettings(rate_hz=rate))
    drv.init()
    assert chip.written(0x34)[-1] == delay  # I2C_MST_DLY
    assert drv.odr_hz / (1 + delay) <= 50
    ak = chip.ak
    assert ak is not None
    before, t0 = ak.triggers, clock.now()
    for _ in range(50):
        clock.advance(0.02)
        drv.read_fifo()
    assert ak.triggers - before <= 50 * (clock.now() - t0) + 1 and ak.ignored == 0


def test_magnetometer_is_sample_and_hold_between_triggers() -> None:
    clock, chip, _, drv = setup(ImuSettings(rate_hz=1000, accel_range_g=16, gyro_range_dps=2000))
    drv.init()
    assert chip.written(0x34)[-1] == 19  # I2C_MST_DLY: every 20th sample, 50 Hz
    rows = []
    for _ in range(12):  # 512 bytes hold 25 ms at 1 kHz: drain every 20 ms
        clock.advance(0.02)
        rows.append(drv.read_fifo().samples)
    samples = np.concatenate(rows)
    mag = samples[:, 6:9]
    changes = np.flatnonzero(np.any(np.diff(mag, axis=0) != 0, axis=1)) + 1
    assert len(changes) >= 10 and set(np.diff(changes)) == {20}
    # each held value is the field at the sample that triggered it, 20 samples earlier
    n = len(samples)
    _, truth = chip.truth()
    truth = truth[-n:]
    for k in changes[1:]:
        assert np.abs(mag[k] - truth[k - 20, 6:9]).max() <= mag_tolerance()


# -- FIFO bursts and overflow --


def test_long_burst_is_one_i2c_rdwr_and_short_ones_a_block_read() -> None:
    clock, _, bus, drv = setup(bus_cls=SpyBus)
    assert isinstance(bus, SpyBus)
    drv.init()
    clock.advance(0.2)
    read = drv.read_fifo()
    assert len(read.samples) == 20 and bus.rdwr_reads == [400]  # 20 frames of 20 bytes
    clock.advance(0.011)
    read = drv.read_fifo()
    assert len(read.samples) == 1 and bus.block_reads[-1] == (0x74, 20)
    assert bus.rdwr_reads == [400]


def test_overflow_is_reported_and_a_reset_starts_clean() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.4)  # 40 frames of 20 bytes into 512
    chip.advance()  # (the emulator samples lazily, when the bus touches it)
    assert chip.overflows > 0 and chip.registers[0x3A] & 0x10  # FIFO_OFLOW_INT
    read = drv.read_fifo()
    assert read.overflow and len(read.samples) == 0
    assert drv.read_fifo().overflow  # remembered until the FIFO is reset
    drv.reset_fifo()
    assert drv.fifo_count() == 0
    clock.advance(0.1)
    read = drv.read_fifo()
    n = len(read.samples)
    assert not read.overflow and n == 10
    _, truth = chip.truth()
    assert np.abs(read.samples[:, 0:3] - truth[-n:, 0:3]).max() <= ACC_LSB_16G / 2 + 1e-5


def test_the_overflow_flag_counts_even_when_the_fifo_is_no_longer_full() -> None:
    clock, chip, bus, drv = setup()
    drv.init()
    clock.advance(0.4)
    chip.advance()
    bus.read_i2c_block_data(0x68, 0x74, 32)  # someone else drained part of it
    bus.read_i2c_block_data(0x68, 0x74, 32)
    assert drv._count_bytes() < 512 - 3 * 20  # the head-room rule alone would miss it
    assert drv.read_fifo().overflow


def test_a_reset_clears_an_overflow_flag_raised_meanwhile() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.23)
    assert drv.read_fifo().overflow  # by the head-room rule; the chip has not overflowed
    clock.advance(0.1)
    chip.advance()
    assert chip.registers[0x3A] & 0x10  # now it has, before the reset
    drv.reset_fifo()
    clock.advance(0.05)
    read = drv.read_fifo()
    assert not read.overflow and len(read.samples) == 5


def test_max_samples_caps_a_drain() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.1)
    assert len(drv.read_fifo(3).samples) == 3 and drv.fifo_count() == 7
    _, truth = chip.truth()
    assert np.abs(drv.read_fifo().samples[:, 0:3] - truth[-7:, 0:3]).max() <= ACC_LSB_16G


def test_a_nearly_full_fifo_counts_as_overflow_before_it_tears() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.23)  # 23 frames = 460 bytes: less than 3 frames of head-room left
    chip.advance()
    assert chip.overflows == 0
    assert drv.read_fifo().overflow


def test_overflow_stays_reported_until_a_reset_completes() -> None:
    clock, chip, bus, drv = setup(bus_cls=SpyBus)
    assert isinstance(bus, SpyBus)
    drv.init()
    clock.advance(0.4)
    assert drv.read_fifo().overflow
    assert not chip.registers[0x3A] & 0x10  # reading INT_STATUS cleared the chip's flag
    bus.fail = fail_once("byte", 0x3A)  # the reset's last step fails
    with pytest.raises(OSError):
        drv.reset_fifo()
    assert drv.read_fifo().overflow
    drv.reset_fifo()
    clock.advance(0.05)
    assert len(drv.read_fifo().samples) == 5


@pytest.mark.parametrize(("code", "torn"), [(errno.EIO, True), (errno.EREMOTEIO, False)])
def test_a_failed_burst_may_have_torn_a_frame(code: int, torn: bool) -> None:
    clock, _, bus, drv = setup(bus_cls=SpyBus)
    assert isinstance(bus, SpyBus)
    drv.init()
    clock.advance(0.1)
    bus.fail = fail_once("rdwr", 0x74, code)
    with pytest.raises(OSError):
        drv.read_fifo()
    read = drv.read_fifo()
    assert read.overflow is torn
    assert len(read.samples) == (0 if torn else 10)


@pytest.mark.parametrize(("code", "torn"), [(errno.ETIMEDOUT, True), (errno.EREMOTEIO, False)])
def test_a_burst_repeated_by_the_retrying_bus(code: int, torn: bool) -> None:
    clock, _, spy, _ = setup(bus_cls=SpyBus)
    assert isinstance(spy, SpyBus)
    drv = Mpu9250(RetryingBus(spy), 0x68, WIDE)
    drv.init()
    clock.advance(0.1)
    spy.fail = fail_once("rdwr", 0x74, code)
    read = drv.read_fifo()  # the repeat succeeded, but after a timeout it may start mid-frame
    assert read.overflow is torn and len(read.samples) == (0 if torn else 10)


# -- identity --


@pytest.mark.parametrize(
    ("chip_who", "driver_cls", "message"),
    [
        (0x68, Mpu9250, r"WHO_AM_I \(0x75\) 0x68 at 0x68 is an MPU-6050 or MPU-9150"),
        (0x70, Mpu9250, r'0x70 at 0x68 is an MPU-6500 .* use driver = "mpu6500"'),
        (0x71, Mpu6500, r'0x71 at 0x68 is an MPU-9250, not an MPU-6500: use driver = "mpu9250"'),
        (0x00, Mpu9250, r"0x00 at 0x68 is no chip fsqd knows, not an MPU-9250"),
    ],
)
def test_wrong_who_am_i_says_what_was_found(
    chip_who: int, driver_cls: type[Mpu6500], message: str
) -> None:
    _, chip, _, drv = setup(driver_cls=driver_cls, who_am_i=chip_who)
    with pytest.raises(ChipIdError, match=message):
        drv.init()
    assert chip.written(0x6B) == []  # nothing configured on a chip it does not know


def test_mpu9250_with_a_different_magnetometer() -> None:
    _, chip, _, drv = setup()
    assert chip.ak is not None
    chip.ak.wia = {0x00: 0x47}
    with pytest.raises(ChipIdError, match="behind the MPU-9250 at 0x68 says WIA 0x47, not the"):
        drv.init()


def test_an_aux_transfer_that_never_finishes_is_a_bus_error() -> None:
    _, chip, _, drv = setup()
    chip.master.run = lambda *a, **k: (0, None, 0)  # type: ignore[method-assign]
    with pytest.raises(OSError, match="did not finish"):
        drv.init()


def test_mpu9250_without_an_answering_magnetometer() -> None:
    _, _, _, drv = setup(chip_cls=EmulatedMpu6500, who_am_i=0x71)
    with pytest.raises(ChipIdError, match="no AK8963 magnetometer answers behind the MPU-9250 at"):
        drv.init()


def test_mpu9255_is_accepted() -> None:
    clock, _, _, drv = setup(who_am_i=0x73)
    drv.init()
    clock.advance(0.05)
    assert len(drv.read_fifo().samples) == 5


def test_mpu6500_has_no_magnetometer() -> None:
    clock, chip, _, drv = setup(chip_cls=EmulatedMpu6500, driver_cls=Mpu6500)
    drv.init()
    assert chip.written(0x23)[-1] == 0x78 and chip.written(0x25) == []
    assert drv.fifo_capacity == 39 and not drv.has_mag
    clock.advance(0.1)
    read = drv.read_fifo()
    assert len(read.samples) == 10 and np.isnan(read.samples[:, 6:9]).all()


def test_registry() -> None:
    assert get_spec("mpu9250").addresses == (0x68, 0x69)
    assert get_spec("mpu6500").who_am_i == (0x75, 0x70)
    clock = ManualClock()
    chips = [EmulatedMpu9250(0x69, clock=clock), EmulatedMpu9255(0x68, clock=clock)]
    bus = EmulatedBus(chips, clock=clock)
    assert [s.name for s in identify(lambda r: bus.read_byte_data(0x69, r), 0x69)] == ["mpu9250"]
    assert [s.name for s in identify(lambda r: bus.read_byte_data(0x68, r), 0x68)] == ["mpu9255"]


def test_mpu9255_through_the_acquisition() -> None:
    run = acquisition("mpu9255", 0x68, 100)
    run.step(2.0)
    t, x = run.samples()
    assert run.status().state == "ok" and len(t) > 150
    assert np.linalg.norm(x[:, 6:9], axis=1).min() > 25


def test_close_puts_the_chip_to_sleep() -> None:
    _, chip, _, drv = setup()
    drv.init()
    drv.close()
    assert chip.sampling_rate_hz == 0 and chip.written(0x2A)[-1] == 0


# -- the full acquisition path --


@pytest.mark.parametrize(
    ("rate", "poll_ms", "seconds"), [(100, 20, 10.0), (100, None, 5.0), (1000, None, 3.0)]
)
def test_acquisition_loses_nothing_and_stamps_within_1ms(
    rate: float, poll_ms: float | None, seconds: float
) -> None:
    run = acquisition("mpu9250", 0x68, rate, poll_ms=poll_ms)
    run.step(seconds)
    t, x = run.samples()
    dt, truth = truth_run(t, x, run.chip, lsb=ACC_LSB_16G)
    assert len(t) >= rate * (seconds - 0.5)
    assert np.abs(x[:, 0:3] - truth[:, 0:3]).max() <= ACC_LSB_16G / 2 + 1e-5
    assert np.abs(x[:, 3:6] - truth[:, 3:6]).max() <= GYRO_LSB_2000 / 2 + 1e-6
    if rate <= 100:  # held values tested above; here the 100 Hz lag of 2 samples, then 3
        late2 = np.abs(x[3:, 6:9] - truth[1:-2, 6:9]).max(axis=1) <= mag_tolerance()
        late3 = np.abs(x[3:, 6:9] - truth[:-3, 6:9]).max(axis=1) <= mag_tolerance()
        assert np.all(late2 | late3) and late2.sum() >= len(late2) // 2
    assert np.abs(dt).max() < 1e-3
    status = run.status()
    assert (status.lost, status.overruns, status.errors, status.segments) == (0, 0, 0, 1)
    assert status.state == "ok" and run.segments == 1


@pytest.mark.parametrize("error", [0.02, -0.02])
def test_acquisition_tracks_a_2_percent_oscillator_error(error: float) -> None:
    """The MPU-9250 has no clock trim register: the rate comes from the anchors alone."""
    run = acquisition("mpu9250", 0x68, 100, poll_ms=None, oscillator_error=error)
    run.step(10.0)
    t, x = run.samples()
    dt, truth = truth_run(t, x, run.chip, lsb=ACC_LSB_16G)
    assert np.abs(x[:, 0:3] - truth[:, 0:3]).max() <= ACC_LSB_16G / 2 + 1e-5
    assert run.status().rate_hz == pytest.approx(100 * (1 + error), rel=1e-3)
    assert np.abs(dt).max() < 1e-3
    assert run.status().lost == 0


def check_segments(run: object, lsb: float) -> None:
    from invensensekit import Run

    assert isinstance(run, Run)
    t, x = run.samples()
    seg = np.concatenate(run.seg)
    assert np.all(np.diff(t) > 0)
    for s in np.unique(seg):
        sel = seg == s
        _, truth = truth_run(t[sel], x[sel], run.chip, lsb=lsb)
        assert np.abs(x[sel, 0:3] - truth[:, 0:3]).max() <= lsb / 2 + 1e-5


def test_acquisition_survives_transfer_errors_and_counts_them() -> None:
    run = acquisition("mpu9250", 0x68, 100, error_rate=0.05, seed=3)
    run.step(8.0)
    # A torn burst in the last moments loses samples before any later one is delivered
    # to date them: a quiet bus for a moment lets the accounting below see every loss.
    errors, run.bus.error_rate = run.bus.error_rate, 0.0
    run.step(0.5)
    run.bus.error_rate = errors
    status = run.status()
    assert status.errors == sum(run.bus.injected.values()) > 100
    assert status.samples > 700
    assert status.overruns >= run.segments - 1  # torn bursts restart the FIFO
    check_segments(run, ACC_LSB_16G)
    t, _ = run.samples()
    produced = round((t[-1] - t[0]) * 100) + 1
    assert status.samples + status.lost == produced


def test_acquisition_reconfigures_a_chip_that_lost_power() -> None:
    run = acquisition("mpu9250", 0x68, 100)
    run.step(2.0)
    run.bus.disappear(0x68, 1.0)
    run.step(4.0)
    status = run.status()
    assert run.chip.power_cycles == 1 and status.reinits >= 1
    assert status.state == "degraded" and run.segments == 2
    t, x = run.samples()
    gap = np.diff(t).max()
    assert gap > 1.0 and status.lost == round(gap * 100) - 1  # back-off and re-init included
    check_segments(run, ACC_LSB_16G)
    after = t > t[-1] - 1.0
    assert np.linalg.norm(x[after, 6:9], axis=1).min() > 25  # the AK8963 set up again


def test_acquisition_survives_a_hung_bus_with_a_counted_overrun() -> None:
    run = acquisition("mpu9250", 0x68, 100)
    run.step(2.0)
    run.bus.hang(0.5)
    run.step(3.0)
    status = run.status()
    t, _ = run.samples()
    assert status.overruns == 1 and run.segments == 2  # 0.5 s > the FIFO's 250 ms
    assert status.lost == round(np.diff(t).max() * 100) - 1 >= 40
    check_segments(run, ACC_LSB_16G)


def test_acquisition_reports_the_wrong_chip() -> None:
    run = acquisition("mpu9250", 0x68, 100, who_am_i=0x68)  # [sensor.emulated] who_am_i
    run.step(1.0)
    status = run.status()
    assert status.state == "lost" and "is an MPU-6050 or MPU-9150" in status.message
    assert status.samples == 0 and run.chip.written(0x6B) == []


def test_two_mpu9250s_on_one_bus_each_read_their_own_magnetometer() -> None:
    """Both AK8963s sit at 0x0C, but only behind their own MPU's aux master."""
    text = "".join(
        f'[[sensor]]\nname = "s{a:x}"\ndriver = "mpu9250"\nbus = "emulated"\n'
        f"address = 0x{a:02x}\ngyro_range_dps = 2000\naccel_range_g = 16\n"
        for a in (0x68, 0x69)
    )
    sensors = parse_sensors(Table(tomllib.loads(text), "two.toml").tables("sensor"))
    clock = ManualClock()
    acq = open_acquisition(sensors, 2, clock=clock)
    rows = []
    end = clock.now() + 5.0
    while clock.now() < end:
        acq.step()
        rows += [c.x for c in acq.read()]
        clock.sleep(acq.poll_s)
    x = np.concatenate(rows)
    assert x.shape[1] == 18 and len(x) > 400
    for device in (0, 1):
        field = np.linalg.norm(x[:, 9 * device + 6 : 9 * device + 9], axis=1)
        assert field.min() > 25 and field.max() < 75
    assert not np.allclose(x[:, 6:9], x[:, 15:18])  # two mountings, two magnetometers
    # (the first sensor's rows from before the second one started are not aligned: "lost")
    assert all(s.overruns == 0 and s.segments == 1 and s.state == "ok" for s in acq.status())


def test_the_magnetometer_answers_on_the_host_bus_only_in_bypass() -> None:
    clock, chip, bus, drv = setup()
    other = bus.add(EmulatedMpu9250(0x69, clock=clock))
    bus.add(BypassPort([chip, other], clock=clock))  # type: ignore[list-item]
    drv.init()
    with pytest.raises(OSError):  # the aux master owns the AK8963: nothing at 0x0C
        bus.read_byte_data(0x0C, 0x00)
    bus.write_byte_data(0x68, 0x6A, 0x00)  # master off, bypass still off
    with pytest.raises(OSError):
        bus.read_byte_data(0x0C, 0x00)
    bus.write_byte_data(0x68, 0x37, 0x02)  # INT_PIN_CFG.BYPASS_EN
    assert bus.read_byte_data(0x0C, 0x00) == 0x48
    clock.advance(0.01)  # a single shot the master started may still be measuring
    bus.write_byte_data(0x0C, 0x0A, 0x0F)  # fuse ROM: the ASA the driver read
    assert bytes(bus.read_i2c_block_data(0x0C, 0x10, 3)) == drv.asa
    bus.write_byte_data(0x0C, 0x0A, 0x00)
    bus.write_byte_data(0x0C, 0x0A, 0x16)  # continuous 100 Hz, 16-bit
    clock.advance(0.05)
    data = bytes(bus.read_i2c_block_data(0x0C, 0x02, 8))
    assert data[0] & 0x01 and data[7] == 0x10  # DRDY (DOR too: 5 unread); BITM, no HOFL
    asa = np.frombuffer(drv.asa, np.uint8).astype(float)
    ak = np.frombuffer(data[1:7], "<i2") * 0.15 * (asa + 128) / 256
    _, truth = chip.truth()
    field = np.array([ak[1], ak[0], -ak[2]])  # into the MPU's axes
    assert np.abs(truth[-3:, 6:9] - field).max(axis=1).min() <= mag_tolerance()
    bus.write_byte_data(0x69, 0x37, 0x02)  # a second board in bypass: two AK8963s at 0x0C
    with pytest.raises(OSError):
        bus.read_byte_data(0x0C, 0x00)


def test_temperature_reads_the_datasheet_formula() -> None:
    clock, _, bus, drv = setup(temperature_c=-5.0)
    drv.init()
    clock.advance(0.05)
    raw = int.from_bytes(bytes(bus.read_i2c_block_data(0x68, 0x41, 2)), "big", signed=True)
    assert raw / 333.87 + 21 == pytest.approx(-5.0, abs=0.5 / 333.87)
