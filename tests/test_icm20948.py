"""ICM-20948 driver against its register-level emulator (banks, aux master, AK09916,
512-byte FIFO), and the full acquisition path (``open_acquisition`` with ``bus = "emulated"``)."""

from __future__ import annotations

import errno
import math

import numpy as np
import pytest
from invensensekit import Run, SpyBus, acquisition, fail_once, truth_run

from fsqd.clock import ManualClock
from fsqd.imu.driver import ChipIdError, ImuSettings, get_spec, identify
from fsqd.imu.drivers.icm20948 import Icm20948
from fsqd.imu.emulated import EmulatedBus
from fsqd.imu.emulated.icm20948 import EmulatedIcm20948
from fsqd.imu.emulated.invensense import BypassPort
from fsqd.units import G

WIDE = ImuSettings(rate_hz=100, accel_range_g=16, gyro_range_dps=2000)
ACC_LSB_16G = G / 2048
GYRO_LSB_2000 = math.radians(1 / 16.4)
MAG_TOL = 0.15 / 2 + 1e-4


def setup(
    settings: ImuSettings = WIDE, *, bus_cls: type[EmulatedBus] = EmulatedBus, **kw: object
) -> tuple[ManualClock, EmulatedIcm20948, EmulatedBus, Icm20948]:
    clock = ManualClock()
    chip = EmulatedIcm20948(0x69, clock=clock, keep_truth=True, **kw)  # type: ignore[arg-type]
    bus = bus_cls([chip], clock=clock)
    return clock, chip, bus, Icm20948(bus, 0x69, settings)


# -- configuration, at register level, in the right bank --


@pytest.mark.parametrize(
    ("requested", "divider", "odr"),
    [(100, 10, 102.2727), (1000, 0, 1125.0), (50, 22, 48.913), (225, 4, 225.0), (5, 224, 5.0)],
)
def test_rate_is_1125hz_over_one_plus_the_divider(
    requested: float, divider: int, odr: float
) -> None:
    _, chip, _, drv = setup(ImuSettings(rate_hz=requested))
    assert drv.odr_hz == pytest.approx(odr, abs=1e-3)
    drv.init()
    assert chip.written_in(2, 0x00)[-1] == divider  # GYRO_SMPLRT_DIV
    assert chip.written_in(2, 0x10)[-1] == divider >> 8  # ACCEL_SMPLRT_DIV_1
    assert chip.written_in(2, 0x11)[-1] == divider & 0xFF  # ACCEL_SMPLRT_DIV_2
    assert chip.written_in(2, 0x09) == [1]  # ODR_ALIGN_EN
    assert chip.sampling_rate_hz == pytest.approx(odr, abs=1e-3)


def test_init_writes_the_datasheet_configuration_in_each_bank() -> None:
    _, chip, _, drv = setup(ImuSettings(rate_hz=100, accel_range_g=8, gyro_range_dps=1000))
    drv.init()
    assert chip.written_in(0, 0x06)[:2] == [0x80, 0x01]  # DEVICE_RESET, then awake
    assert chip.written_in(0, 0x07) == [0x00]  # PWR_MGMT_2: every axis on
    assert chip.written_in(0, 0x05) == [0x00]  # LP_CONFIG: no duty cycling
    assert chip.written_in(0, 0x12) == [0x01]  # INT_ENABLE_2: FIFO overflow
    assert chip.written_in(2, 0x01) == [3 << 3 | 2 << 1 | 1]  # 51.2 Hz, +-1000 dps, DLPF
    assert chip.written_in(2, 0x14) == [3 << 3 | 2 << 1 | 1]  # 50.4 Hz, +-8 g, DLPF
    assert chip.written_in(0, 0x01) == [] and chip.written_in(0, 0x14) == []  # no bank slips
    assert chip.written_in(3, 0x01) == [0x17]  # I2C_MST_CTRL: 345.6 kHz, stop between reads
    assert chip.written_in(3, 0x03)[-1] == 0x8C  # slave 0 reads the AK09916 ...
    assert chip.written_in(3, 0x04)[-1] == 0x10  # ... from ST1 ...
    assert chip.written_in(3, 0x05)[-1] == 0x89  # ... 9 bytes, to ST2
    assert chip.written_in(0, 0x66) == [0x01]  # FIFO_EN_1: slave 0
    assert chip.written_in(0, 0x67) == [0x1E]  # FIFO_EN_2: accel, gyro xyz
    assert chip.written_in(0, 0x69) == [0x00]  # FIFO_MODE: stream
    assert chip.written_in(0, 0x68) == [0x1F, 0x00]  # FIFO_RST held, then released
    assert chip.reg(0, 0x03) == 0x60 and chip.bank == 0  # FIFO_EN | I2C_MST_EN; bank 0
    assert chip.ak.writes == [(0x32, 0x01), (0x31, 0x08)]  # soft reset, continuous 100 Hz
    assert (drv.gyro_bandwidth_hz, drv.accel_bandwidth_hz) == (51.2, 50.4)


def test_init_finds_bank_0_whatever_bank_the_chip_was_left_in() -> None:
    _, chip, bus, drv = setup()
    bus.write_byte_data(0x69, 0x7F, 2 << 4)  # another program left it in bank 2
    drv.init()
    assert chip.bank == 0 and chip.reg(0, 0x03) == 0x60


def test_reinit_finds_bank_0_after_someone_switched_banks() -> None:
    _, chip, bus, drv = setup()
    drv.init()
    bus.write_byte_data(0x69, 0x7F, 2 << 4)  # e.g. i2cset while fsqd runs
    drv.init()
    assert chip.bank == 0 and chip.reg(0, 0x03) == 0x60


def test_a_bank_switch_that_failed_after_landing_is_not_trusted() -> None:
    _, chip, bus, drv = setup(bus_cls=SpyBus)
    assert isinstance(bus, SpyBus)
    drv.init()
    real = bus.write_byte_data

    def lands_then_fails(addr: int, reg: int, value: int, force: bool | None = None) -> None:
        real(addr, reg, value, force)
        if reg == 0x7F:
            raise OSError(errno.EIO, "EIO after the data phase")

    bus.write_byte_data = lands_then_fails  # type: ignore[method-assign]
    with pytest.raises(OSError):
        drv._w(2, 0x01, 0x07)  # the bank write lands (bank 2), then reports EIO
    bus.write_byte_data = real  # type: ignore[method-assign]
    assert chip.bank == 2
    drv.reset_fifo()  # bank 0 work: must select bank 0 again, not trust a stale cache
    assert chip.bank == 0 and chip.written_in(2, 0x03) == []


def test_a_drain_costs_three_transfers_and_no_bank_switch() -> None:
    clock, chip, bus, drv = setup()
    drv.init()
    switches, transfers = chip.bank_writes, bus.transfers
    for _ in range(5):
        clock.advance(0.02)
        drv.read_fifo(drv.fifo_count())
    assert chip.bank_writes == switches
    assert bus.transfers - transfers == 5 * 4  # count, overflow status, count, burst


@pytest.mark.parametrize(("g", "dps", "acode", "gcode"), [(2, 250, 0, 0), (16, 2000, 3, 3)])
def test_units_at_the_range_ends(g: float, dps: float, acode: int, gcode: int) -> None:
    clock, chip, _, drv = setup(ImuSettings(accel_range_g=g, gyro_range_dps=dps))
    drv.init()
    assert (chip.reg(2, 0x14) >> 1) & 3 == acode and (chip.reg(2, 0x01) >> 1) & 3 == gcode
    clock.advance(0.2)
    read = drv.read_fifo()
    n = len(read.samples)
    assert n == 20 and not read.overflow
    _, truth = chip.truth()
    a_lsb = G / (16384 / 2**acode)
    g_lsb = math.radians(1 / (131, 65.5, 32.8, 16.4)[gcode])
    clip_a = np.clip(truth[-n:, 0:3], -32768 * a_lsb, 32767 * a_lsb)
    clip_g = np.clip(truth[-n:, 3:6], -32768 * g_lsb, 32767 * g_lsb)
    assert np.abs(read.samples[:, 0:3] - clip_a).max() <= a_lsb / 2 + 1e-5
    assert np.abs(read.samples[:, 3:6] - clip_g).max() <= g_lsb / 2 + 1e-6


def test_magnetometer_axes_and_sample_and_hold() -> None:
    """AK09916 (x, -y, -z) mapped to the accel/gyro axes; at 102.27 Hz about one frame
    in 44 finds no new 100 Hz measurement and repeats the previous one."""
    clock, chip, _, drv = setup()
    drv.init()
    reads = []
    for _ in range(18):  # 512 bytes hold 0.23 s
        clock.advance(0.1)
        reads.append(drv.read_fifo())
    assert not any(r.overflow for r in reads)
    samples = np.concatenate([r.samples for r in reads])
    n = len(samples)
    assert n == 184
    mag = samples[:, 6:9]
    _, truth = chip.truth()
    now, before = truth[-n:, 6:9], truth[-n - 1 : -1, 6:9]
    fresh = np.abs(mag - now).max(axis=1) <= MAG_TOL
    held = np.abs(mag - before).max(axis=1) <= MAG_TOL
    assert np.all(fresh | held)
    repeats = np.all(np.diff(mag, axis=0) == 0, axis=1).sum()
    assert 2 <= repeats <= 6 and drv.decoder.held == repeats
    assert np.linalg.norm(mag, axis=1).min() > 25


# -- FIFO bursts and overflow --


def test_long_burst_is_one_i2c_rdwr() -> None:
    clock, _, bus, drv = setup(bus_cls=SpyBus)
    assert isinstance(bus, SpyBus)
    drv.init()
    clock.advance(0.2)
    assert len(drv.read_fifo().samples) == 20 and bus.rdwr_reads == [420]  # 21-byte frames
    clock.advance(0.01)
    assert len(drv.read_fifo().samples) == 1 and bus.block_reads[-1] == (0x72, 21)


def test_overflow_is_reported_and_a_reset_starts_clean() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.3)  # 30 frames of 21 bytes into 512
    chip.advance()
    assert chip.overflows > 0 and chip.reg(0, 0x1B) & 0x01  # INT_STATUS_2
    read = drv.read_fifo()
    assert read.overflow and len(read.samples) == 0
    drv.reset_fifo()
    assert drv.fifo_count() == 0
    clock.advance(0.1)
    read = drv.read_fifo()
    n = len(read.samples)
    _, truth = chip.truth()
    assert n in (10, 11) and np.abs(read.samples[:, 0:3] - truth[-n:, 0:3]).max() <= ACC_LSB_16G
    assert np.linalg.norm(read.samples[:, 6:9], axis=1).min() > 25  # no torn frames


def test_the_fifo_holds_the_datasheets_512_bytes() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.5)
    chip.advance()
    assert len(chip.fifo) == 512 and chip.overflows > 0
    assert drv.read_fifo().overflow


def test_a_4096_byte_part_only_drains_more_often() -> None:
    clock, chip, _, drv = setup(fifo_bytes=4096)
    drv.init()
    for _ in range(20):
        clock.advance(0.1)
        assert len(drv.read_fifo().samples) in (10, 11)
    assert chip.overflows == 0


def test_a_reset_clears_an_overflow_flag_raised_meanwhile() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.22)
    assert drv.read_fifo().overflow  # by the head-room rule
    clock.advance(0.5)
    chip.advance()
    assert chip.reg(0, 0x1B) & 0x01  # the chip has overflowed since, before the reset
    drv.reset_fifo()
    clock.advance(0.05)
    assert not drv.read_fifo().overflow


def test_a_nearly_full_fifo_counts_as_overflow() -> None:
    clock, chip, _, drv = setup()
    drv.init()
    clock.advance(0.22)  # 22 frames = 462 bytes: under 3 frames of head-room left
    chip.advance()
    assert chip.overflows == 0 and drv.fifo_capacity == 21
    assert drv.read_fifo().overflow


@pytest.mark.parametrize(("code", "torn"), [(errno.ETIMEDOUT, True), (errno.ENXIO, False)])
def test_a_failed_burst_may_have_torn_a_frame(code: int, torn: bool) -> None:
    clock, _, bus, drv = setup(bus_cls=SpyBus)
    assert isinstance(bus, SpyBus)
    drv.init()
    clock.advance(0.1)
    bus.fail = fail_once("rdwr", 0x72, code)
    with pytest.raises(OSError):
        drv.read_fifo()
    assert drv.read_fifo().overflow is torn


# -- identity --


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0xE1, r"0xe1 at 0x69 is an ICM-20649 \(no magnetometer\), not an ICM-20948 \(0xEA\)"),
        (0x71, r"0x71 at 0x69 is no chip fsqd knows, .*try driver = \"mpu9250\""),
    ],
)
def test_wrong_who_am_i_says_what_was_found(value: int, message: str) -> None:
    _, chip, _, drv = setup(who_am_i=value)
    with pytest.raises(ChipIdError, match=message):
        drv.init()
    assert chip.written_in(0, 0x06) == []


def test_a_different_magnetometer_behind_the_aux_master() -> None:
    _, chip, _, drv = setup()
    chip.ak.wia = {0x00: 0x48, 0x01: 0x05}
    with pytest.raises(ChipIdError, match="says WIA2 0x05, not the AK09916's 0x09"):
        drv.init()


def test_an_aux_transfer_that_never_finishes_is_a_bus_error() -> None:
    _, chip, _, drv = setup()
    chip.master.run = lambda *a, **k: (0, None, 0)  # type: ignore[method-assign]
    with pytest.raises(OSError, match="did not finish"):
        drv.init()


def test_no_magnetometer_behind_the_aux_master() -> None:
    _, chip, _, drv = setup()
    chip.master.ak = None
    with pytest.raises(ChipIdError, match="no AK09916 magnetometer answers"):
        drv.init()
    assert chip.written_in(0, 0x03).count(0x22) == 9  # I2C_MST_RST before believing it


def test_an_aux_master_stuck_after_reset_is_reset_and_the_magnetometer_found() -> None:
    clock, chip, _, drv = setup(stuck_aux_after_reset=True)
    drv.init()
    assert chip.written_in(0, 0x03).count(0x22) == 1 and not chip.master.stuck
    clock.advance(0.2)
    read = drv.read_fifo()
    assert np.linalg.norm(read.samples[:, 6:9], axis=1).min() > 25


def test_registry() -> None:
    spec = get_spec("icm20948")
    assert spec.addresses == (0x69, 0x68) and spec.who_am_i == (0x00, 0xEA)
    clock = ManualClock()
    bus = EmulatedBus([EmulatedIcm20948(0x68, clock=clock)], clock=clock)
    assert [s.name for s in identify(lambda r: bus.read_byte_data(0x68, r), 0x68)] == ["icm20948"]


def test_close_powers_the_magnetometer_down_and_the_chip_to_sleep() -> None:
    _, chip, bus, drv = setup()
    drv.init()
    assert chip.ak.mode == 0x08
    drv.close()
    assert chip.ak.mode == 0x00 and chip.sampling_rate_hz == 0
    bus.hang(1.0)
    drv.close()  # never raises for a bus error


# -- the full acquisition path --


@pytest.mark.parametrize(
    ("rate", "odr", "poll_ms", "seconds"),
    [(100, 102.2727, 20, 10.0), (100, 102.2727, None, 5.0), (1000, 1125.0, None, 3.0)],
)
def test_acquisition_loses_nothing_and_stamps_within_1ms(
    rate: float, odr: float, poll_ms: float | None, seconds: float
) -> None:
    run = acquisition("icm20948", 0x69, rate, poll_ms=poll_ms)
    run.step(seconds)
    assert run.acq.nominal_rate_hz == pytest.approx(odr, abs=1e-3)
    t, x = run.samples()
    dt, truth = truth_run(t, x, run.chip, lsb=ACC_LSB_16G)
    assert len(t) >= odr * (seconds - 0.5)
    assert np.abs(x[:, 0:3] - truth[:, 0:3]).max() <= ACC_LSB_16G / 2 + 1e-5
    assert np.abs(x[:, 3:6] - truth[:, 3:6]).max() <= GYRO_LSB_2000 / 2 + 1e-6
    fresh = np.abs(x[1:, 6:9] - truth[1:, 6:9]).max(axis=1) <= MAG_TOL
    held = np.all(x[1:, 6:9] == x[:-1, 6:9], axis=1)
    assert np.all(fresh | held)
    assert np.abs(dt).max() < 1e-3
    status = run.status()
    assert (status.lost, status.overruns, status.errors, status.segments) == (0, 0, 0, 1)
    assert status.state == "ok"


def test_reads_deferred_for_the_window_cadence_never_overflow_the_fifo() -> None:
    """A consumer that cuts 100-sample windows lets the acquisition skip periodic reads
    while the FIFO has room (``want``): that room must be the datasheet's 512 bytes
    (21 frames, 0.2 s at 102.27 Hz), or every deferred drain finds the FIFO overflowed."""
    run = acquisition("icm20948", 0x69, 100, poll_ms=20)
    acq, clock = run.acq, run.clock
    every_s = 100 / acq.nominal_rate_hz
    stamps: list[float] = []
    windows = 0
    end = clock.now() + 10.0
    while clock.now() < end:  # the acquisition thread's loop, on the manual clock
        acq.step()
        for chunk in acq.read():
            stamps += chunk.t.tolist()
        while len(stamps) >= 100 * (windows + 1):  # the consumer: a window ends, a hint
            windows += 1
            acq.want(stamps[100 * windows - 1], every_s)
        done = clock.now()
        if acq._wanted_at <= done:
            acq._wanted_at = math.inf  # served; the next window brings the next hint
        clock.sleep(acq.next_read_at(done) - done)
    status = run.status()
    assert (status.overruns, status.lost, status.segments) == (0, 0, 1) and windows >= 9
    assert acq.readers[0].imu.fifo_capacity == 21 and acq._max_wait_s < 0.11


def test_rate_hint_is_the_factory_clock_trim() -> None:
    _, chip, _, drv = setup(oscillator_error=-0.02)
    drv.init()
    assert chip.reg(1, 0x28) == 0x80 | 25 and drv.clock_trim == -25
    assert drv.rate_hint_hz == pytest.approx(chip.sampling_rate_hz, rel=4e-4)
    _, chip, _, drv = setup(oscillator_error=0.031)
    drv.init()
    assert drv.rate_hint_hz == pytest.approx(chip.sampling_rate_hz, rel=4e-4)


def test_acquisition_tracks_a_2_percent_slow_oscillator() -> None:
    run = acquisition("icm20948", 0x69, 100, oscillator_error=-0.02)
    run.step(10.0)
    t, x = run.samples()
    dt, truth = truth_run(t, x, run.chip, lsb=ACC_LSB_16G)
    assert np.abs(x[:, 0:3] - truth[:, 0:3]).max() <= ACC_LSB_16G / 2 + 1e-5
    assert run.status().rate_hz == pytest.approx(1125 / 11 * 0.98, rel=1e-3)
    assert np.abs(dt[t - t[0] > 0.2]).max() < 1e-3
    assert run.status().lost == 0


def check_segments(run: Run) -> None:
    t, x = run.samples()
    seg = np.concatenate(run.seg)
    assert np.all(np.diff(t) > 0)
    for s in np.unique(seg):
        sel = seg == s
        _, truth = truth_run(t[sel], x[sel], run.chip, lsb=ACC_LSB_16G)
        assert np.abs(x[sel, 0:3] - truth[:, 0:3]).max() <= ACC_LSB_16G / 2 + 1e-5


def test_acquisition_survives_transfer_errors_and_counts_them() -> None:
    run = acquisition("icm20948", 0x69, 100, error_rate=0.05, seed=5)
    run.step(8.0)
    status = run.status()
    assert status.errors == sum(run.bus.injected.values()) > 100
    assert status.overruns >= run.segments - 1  # torn bursts restart the FIFO
    check_segments(run)
    t, _ = run.samples()
    assert status.samples + status.lost == round((t[-1] - t[0]) * 1125 / 11) + 1


def test_acquisition_reconfigures_a_chip_that_lost_power() -> None:
    run = acquisition("icm20948", 0x69, 100)
    run.step(2.0)
    run.bus.disappear(0x69, 1.0)
    run.step(4.0)
    status = run.status()
    assert run.chip.power_cycles == 1 and status.reinits >= 1 and run.segments == 2
    t, x = run.samples()
    assert status.lost == round(np.diff(t).max() * 1125 / 11) - 1
    check_segments(run)
    assert np.linalg.norm(x[t > t[-1] - 1.0, 6:9], axis=1).min() > 25


def test_acquisition_survives_a_hung_bus_with_a_counted_overrun() -> None:
    run = acquisition("icm20948", 0x69, 100)
    run.step(2.0)
    run.bus.hang(0.5)
    run.step(3.0)
    status = run.status()
    t, _ = run.samples()
    assert status.overruns == 1 and run.segments == 2  # 0.5 s > the FIFO's 0.23 s
    assert status.lost == round(np.diff(t).max() * 1125 / 11) - 1 >= 40
    check_segments(run)


def test_acquisition_reports_the_wrong_chip() -> None:
    run = acquisition("icm20948", 0x69, 100, who_am_i=0xE0)  # [sensor.emulated] who_am_i
    run.step(1.0)
    status = run.status()
    assert status.state == "lost" and "is an ICM-20648" in status.message


def test_the_magnetometer_answers_on_the_host_bus_only_in_bypass() -> None:
    clock, chip, bus, drv = setup()
    bus.add(BypassPort([chip], clock=clock))  # type: ignore[list-item]
    drv.init()
    with pytest.raises(OSError):  # the aux master owns the AK09916: nothing at 0x0C
        bus.read_byte_data(0x0C, 0x01)
    bus.write_byte_data(0x69, 0x03, 0x00)  # USER_CTRL: master off (bank 0)
    bus.write_byte_data(0x69, 0x0F, 0x02)  # INT_PIN_CFG.BYPASS_EN
    assert bus.read_byte_data(0x0C, 0x01) == 0x09  # WIA2
    clock.advance(0.05)  # still measuring at 100 Hz, as the driver left it
    data = bytes(bus.read_i2c_block_data(0x0C, 0x10, 9))
    ak = np.frombuffer(data[1:7], "<i2") * 0.15
    _, truth = chip.truth()
    field = np.array([ak[0], -ak[1], -ak[2]])
    assert np.abs(truth[-3:, 6:9] - field).max(axis=1).min() <= MAG_TOL


# -- emulator fidelity: the aux master's own clock, temperature --


@pytest.mark.parametrize(
    ("lp_config", "odr_config", "seconds", "cycles"),
    [
        (0x40, 0, 0.005, (5, 6)),  # reset value: duty-cycled at 1125 Hz
        (0x40, 4, 0.1, (7, 7)),  # 1125 / 2^4 = 70.3 Hz
        (0x00, 4, 0.1, (10, 10)),  # not duty-cycled: with the gyro's 102.27 Hz samples
    ],
)
def test_the_aux_master_runs_on_its_own_clock_when_duty_cycled(
    lp_config: int, odr_config: int, seconds: float, cycles: tuple[int, int]
) -> None:
    clock, chip, bus, _ = setup()
    w = bus.write_byte_data
    w(0x69, 0x06, 0x01)  # awake
    w(0x69, 0x05, lp_config)
    w(0x69, 0x7F, 2 << 4)
    w(0x69, 0x00, 10)  # GYRO_SMPLRT_DIV: 102.27 Hz
    w(0x69, 0x7F, 3 << 4)
    w(0x69, 0x00, odr_config)  # I2C_MST_ODR_CONFIG
    w(0x69, 0x03, 0x8C)  # slave 0 reads WIA2
    w(0x69, 0x04, 0x01)
    w(0x69, 0x05, 0x81)
    w(0x69, 0x7F, 0)
    before = chip.master.cycles
    w(0x69, 0x03, 0x20)  # USER_CTRL.I2C_MST_EN
    clock.advance(seconds)
    w(0x69, 0x03, 0x00)
    assert cycles[0] <= chip.master.cycles - before <= cycles[1]
    assert bus.read_byte_data(0x69, 0x3B) == 0x09  # EXT_SLV_SENS_DATA_00: WIA2


def test_temperature_reads_the_datasheet_formula() -> None:
    clock, _, bus, drv = setup(temperature_c=36.5)
    drv.init()
    clock.advance(0.05)
    raw = int.from_bytes(bytes(bus.read_i2c_block_data(0x69, 0x39, 2)), "big", signed=True)
    assert raw / 333.87 + 21 == pytest.approx(36.5, abs=0.5 / 333.87)
