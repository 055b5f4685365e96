"""[[sensor]] tables: defaults, every check a one-line ConfigError naming table and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsqd.errors import ConfigError
from fsqd.imu.acquire.config import mount_matrix, read_sensor_file
from fsqd.testing import sensors_from

BASE = '[[sensor]]\nname = "collar"\ndriver = "lsm6dsox"\nbus = 1\n'


def test_defaults() -> None:
    (s,) = sensors_from(BASE)
    assert (s.address, s.rate_hz, s.mag_driver, s.mag_address) == (0x6A, 100.0, "lis3mdl", 0x1C)
    assert s.mount == ("x", "y", "z") and s.fill is None and not s.is_emulated
    assert s.poll_ms is None  # from the FIFO's depth


def test_full_table() -> None:
    (s,) = sensors_from(
        BASE
        + 'address = 0x6b\nrate_hz = 416\nmag_driver = "none"\nmount = ["-y", "x", "z"]\n'
        + "gyro_bias = [0.01, 0, -0.02]\nmag_offset = [10, -5, 3.5]\n"
        + "accel_scale = [1.01, 0.99, 1]\npoll_ms = 10\n"
    )
    assert s.address == 0x6B and s.mag_driver is None and s.gyro_bias == (0.01, 0.0, -0.02)
    assert s.poll_ms == 10.0
    np.testing.assert_array_equal(mount_matrix(s.mount), [[0, -1, 0], [1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("adress = 0x6a\n", "adress: unknown key (did you mean 'address'?)"),
        ("address = 0x90\n", "address: must be a 7-bit address 0x03..0x77, got 0x90"),
        ("address = 0x68\n", "address: a lsm6dsox answers at 0x6a or 0x6b, not 0x68"),
        ("rate_hz = -5\n", "rate_hz: must be > 0"),
        ('rate_hz = "fast"\n', "rate_hz: expected a number, got 'fast' (str)"),
        ('mount = ["x", "y"]\n', "mount: expected 3 signed axes"),
        ('mount = ["x", "x", "z"]\n', "mount: must use each of x, y, z once"),
        ('mount = ["-x", "y", "z"]\n', "is a mirror image"),
        ("gyro_bias = [1, 2]\n", "gyro_bias: expected 3 numbers"),
        ("accel_scale = [1, 0, 1]\n", "accel_scale: expected 3 positive numbers"),
        ("poll_ms = 100\n", "poll_ms: must be >= 10 and <= 50"),
        ('mag_driver = "lsm6dsox"\n', "mag_driver: unknown mag driver 'lsm6dsox'"),
        ('mag_driver = "none"\nmag_address = 0x1c\n', 'mag_driver is "none"'),
        ('fill = "copy"\n', 'fill: must be "duplicate"'),
        ("[sensor.emulated]\nseed = 1\n", 'emulated: only applies with bus = "emulated"'),
    ],
)
def test_each_problem_is_one_line(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        sensors_from(BASE + extra)
    text = str(e.value)
    assert message in text and "\n" not in text
    assert text.startswith("test.toml [[sensor]] #1")


def test_unknown_driver_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"driver: unknown imu driver 'lsm6ds3'; known: .*lsm6dsox"
    ):
        sensors_from(BASE.replace("lsm6dsox", "lsm6ds3"))


def test_bus_forms() -> None:
    assert sensors_from(BASE.replace("bus = 1", 'bus = "/dev/i2c-3"'))[0].bus == "/dev/i2c-3"
    assert sensors_from(BASE.replace("bus = 1", 'bus = "2"'))[0].bus == 2
    assert sensors_from(BASE.replace("bus = 1", 'bus = "emulated"'))[0].is_emulated
    for bad in ('"i2c1"', "-1", "true"):
        with pytest.raises(ConfigError, match="bus"):
            sensors_from(BASE.replace("bus = 1", f"bus = {bad}"))


def test_emulated_options() -> None:
    text = BASE.replace("bus = 1", 'bus = "emulated"')
    (s,) = sensors_from(
        text + '[sensor.emulated]\noscillator_error = 0.02\nbehaviours = ["rest"]\n'
    )
    assert s.emulated.oscillator_error == 0.02 and s.emulated.behaviours == ("rest",)
    with pytest.raises(ConfigError, match=r"oscillator_error: must be >= -0\.1 and <= 0\.1"):
        sensors_from(text + "[sensor.emulated]\noscillator_error = 0.5\n")
    with pytest.raises(ConfigError, match="behaviours"):
        sensors_from(text + '[sensor.emulated]\nbehaviours = ["sleep"]\n')
    with pytest.raises(ConfigError, match="emulated\\] seeed: unknown key"):
        sensors_from(text + "[sensor.emulated]\nseeed = 1\n")


def test_several_sensors_checked_together() -> None:
    two = BASE + BASE.replace("collar", "back") + "address = 0x6b\nmag_address = 0x1e\n"
    assert [s.name for s in sensors_from(two)] == ["collar", "back"]
    with pytest.raises(ConfigError, match="'collar' is used by another"):
        sensors_from(BASE + BASE)
    with pytest.raises(ConfigError, match="0x1c on bus 1 is already 'collar'"):
        sensors_from(BASE + BASE.replace("collar", "back") + "address = 0x6b\n")
    with pytest.raises(ConfigError, match="only the first"):
        sensors_from(two + 'fill = "duplicate"\n')


def test_read_sensor_file_ignores_other_tables(tmp_path: Path) -> None:
    p = tmp_path / "fsqd.toml"
    p.write_text('[mqtt]\nhost = "x"\n' + BASE)
    assert read_sensor_file(p)[0].name == "collar"
    p.write_text("[mqtt]\n")
    with pytest.raises(ConfigError, match="no \\[\\[sensor\\]\\] table"):
        read_sensor_file(p)
    p.write_text("[[sensor]\n")
    with pytest.raises(ConfigError, match=r"fsqd\.toml: "):
        read_sensor_file(p)
    with pytest.raises(ConfigError, match="no such config file"):
        read_sensor_file(tmp_path / "none.toml")
