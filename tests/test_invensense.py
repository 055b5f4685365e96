"""The shared InvenSense pieces on hand-made bytes: frame layout, units, the AKM
magnetometers' sensitivity and axes, and the sample-and-hold rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsqd.imu.driver import ImuSettings
from fsqd.imu.drivers.akm import AK09916, AK8963, hold_valid
from fsqd.imu.drivers.invensense import FrameDecoder, Ranges, pick_divider, pick_dlpf, usable_frames
from fsqd.units import G


def mpu_frame(acc: tuple[int, ...], gyr: tuple[int, ...], mag: tuple[int, ...], st1: int, st2: int):
    return (
        np.array(acc, ">i2").tobytes()
        + np.array(gyr, ">i2").tobytes()
        + bytes([st1])
        + np.array(mag, "<i2").tobytes()
        + bytes([st2])
    )


def icm_frame(acc: tuple[int, ...], gyr: tuple[int, ...], mag: tuple[int, ...], st1: int, st2: int):
    return (
        np.array(acc, ">i2").tobytes()
        + np.array(gyr, ">i2").tobytes()
        + bytes([st1])
        + np.array(mag, "<i2").tobytes()
        + bytes([0x00, st2])  # TMPS dummy, ST2
    )


RANGES = Ranges.choose(ImuSettings(accel_range_g=4, gyro_range_dps=500))


def test_ranges_never_clip_what_was_asked() -> None:
    r = Ranges.choose(ImuSettings(accel_range_g=5, gyro_range_dps=1001))
    assert (r.accel_g, r.accel_code, r.gyro_dps, r.gyro_code) == (8.0, 2, 2000.0, 3)
    assert r.accel_si_per_lsb == pytest.approx(G / 4096)
    assert r.gyro_si_per_lsb == pytest.approx(math.radians(1 / 16.4))


def test_divider_and_filter_choice() -> None:
    assert pick_divider(1000, 100, 255) == (9, 100.0)
    assert pick_divider(1125, 100, 255)[0] == 10
    assert pick_divider(1000, 1e6, 255) == (0, 1000.0)
    assert pick_divider(1000, 0.1, 255)[0] == 255
    assert pick_dlpf({1: 184.0, 2: 92.0, 3: 41.0, 6: 5.0}, 100.0) == (3, 41.0)
    assert pick_dlpf({1: 184.0, 2: 92.0, 3: 41.0}, 1000.0) == (1, 184.0)
    assert pick_dlpf({1: 184.0, 2: 92.0}, 10.0) == (2, 92.0)  # nothing fits: the narrowest


def test_mpu9250_frame_layout_units_and_axes() -> None:
    asa = bytes([0x80, 0xC0, 0x40])  # adjustments 1.0, 1.25, 0.75
    sens = AK8963.sensitivity(asa)
    assert sens == pytest.approx([0.15, 0.1875, 0.1125])
    dec = FrameDecoder(RANGES, AK8963.READ_LEN, sens, AK8963.TO_CHIP)
    assert dec.frame == 20
    raw = mpu_frame((8192, -8192, 100), (655, 0, -655), (100, 200, 300), 0x01, 0x10)
    row = dec.decode(raw)[0]
    assert row[0:3] == pytest.approx([G, -G, 100 * G / 8192], rel=1e-6)
    assert row[3:6] == pytest.approx([math.radians(10), 0, -math.radians(10)], rel=1e-6)
    # AK8963 (x, y, z) = (15, 37.5, 33.75) uT -> accel/gyro axes (y, x, -z)
    assert row[6:9] == pytest.approx([37.5, 15.0, -33.75], rel=1e-6)


def test_icm20948_frame_layout_and_axes() -> None:
    dec = FrameDecoder(RANGES, AK09916.READ_LEN, np.full(3, 0.15), AK09916.TO_CHIP)
    assert dec.frame == 21
    row = dec.decode(icm_frame((0, 0, 8192), (0, 0, 0), (100, 200, 300), 0x01, 0x00))[0]
    assert row[2] == pytest.approx(G)
    assert row[6:9] == pytest.approx([15.0, -30.0, -45.0], rel=1e-6)  # (x, -y, -z)


def test_a_repeated_or_overflowed_reading_is_held_and_counted() -> None:
    dec = FrameDecoder(RANGES, AK09916.READ_LEN, np.full(3, 0.15), AK09916.TO_CHIP)
    raw = (
        icm_frame((0, 0, 0), (0, 0, 0), (100, 0, 0), 0x01, 0x00)
        + icm_frame((0, 0, 0), (0, 0, 0), (100, 0, 0), 0x00, 0x00)  # no new data
        + icm_frame((0, 0, 0), (0, 0, 0), (32000, 0, 0), 0x01, 0x08)  # HOFL
        + icm_frame((0, 0, 0), (0, 0, 0), (200, 0, 0), 0x03, 0x00)  # new, one skipped
    )
    rows = dec.decode(raw)
    assert rows[:, 6] == pytest.approx([15.0, 15.0, 15.0, 30.0])
    assert dec.held == 1
    rows = dec.decode(icm_frame((0, 0, 0), (0, 0, 0), (0, 0, 0), 0x01, 0x08))
    assert rows[0, 6] == pytest.approx(30.0)  # held across reads


def test_a_segment_starts_with_its_first_reading_or_none() -> None:
    dec = FrameDecoder(RANGES, AK8963.READ_LEN, np.full(3, 0.15), AK8963.TO_CHIP)
    never = mpu_frame((0, 0, 0), (0, 0, 0), (0, 0, 0), 0x00, 0x00)
    first = mpu_frame((0, 0, 0), (0, 0, 0), (0, 100, 0), 0x01, 0x10)
    rows = dec.decode(never + never + first)
    assert rows[:, 6] == pytest.approx([15.0, 15.0, 15.0])  # held backwards
    fresh = FrameDecoder(RANGES, AK8963.READ_LEN, np.full(3, 0.15), AK8963.TO_CHIP)
    assert np.isnan(fresh.decode(never)[:, 6:9]).all()  # nothing to show: the caller decides


def test_no_magnetometer_gives_nan() -> None:
    dec = FrameDecoder(RANGES)
    assert dec.frame == 12
    rows = dec.decode(bytes(24))
    assert rows.shape == (2, 9) and np.isnan(rows[:, 6:9]).all() and not rows[:, :6].any()


def test_hold_valid_on_its_own() -> None:
    mag = np.arange(12, dtype=float).reshape(4, 3)
    out, have, last = hold_valid(mag, np.array([False, True, False, True]), None)
    assert have.tolist() == [False, True, True, True]
    assert out[2].tolist() == [3, 4, 5] and last is not None and last.tolist() == [9, 10, 11]
    out, have, last = hold_valid(mag, np.zeros(4, bool), np.array([1.0, 2, 3]))
    assert have.all() and (out == [1, 2, 3]).all()


def test_ak8963_rows_are_scaled_by_their_own_st2_bitm() -> None:
    """BITM 0: the die measured in 14 bits (after a reset of the die), 4x the LSB."""
    dec = FrameDecoder(RANGES, AK8963.READ_LEN, np.full(3, 0.15), AK8963.TO_CHIP, bitm=True)
    rows = dec.decode(
        mpu_frame((0, 0, 0), (0, 0, 0), (100, 0, 0), 0x01, 0x10)  # 16-bit: 15 uT
        + mpu_frame((0, 0, 0), (0, 0, 0), (25, 0, 0), 0x01, 0x00)  # 14-bit: 15 uT too
        + mpu_frame((0, 0, 0), (0, 0, 0), (8000, 0, 0), 0x01, 0x08)  # 14-bit, HOFL: held
    )
    assert rows[:, 7] == pytest.approx([15.0, 15.0, 15.0])  # AK x is the chip's y


def test_usable_frames_leave_the_head_room() -> None:
    assert usable_frames(512, 21) == 21 and usable_frames(512, 20) == 22
    assert usable_frames(512, 12) == 39 and usable_frames(4096, 21) == 192
