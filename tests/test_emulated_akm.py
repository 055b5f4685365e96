"""The emulated AKM dies against their datasheets: measurement time, DRDY/DOR, data
protection, the overflow sum rule, output ranges, the address counter."""

from __future__ import annotations

import numpy as np
import pytest

from fsqd.imu.emulated.akm import EmulatedAk

# A field in the AK8963's own axes is (chip y, chip x, -chip z); these tests use the AK09916
# (x, -y, -z) or give fields whose mapping does not matter (sums and norms).
FIELD = np.array([20.0, -10.0, 40.0])  # uT, host chip axes


def ak8963(**kw: object) -> EmulatedAk:
    return EmulatedAk("ak8963", asa=(128, 128, 128), **kw)  # type: ignore[arg-type]


def codes(ak: EmulatedAk) -> np.ndarray:
    return np.frombuffer(bytes(ak.regs[ak.hxl : ak.hxl + 6]), "<i2")


def test_a_single_measurement_is_ready_after_its_measurement_time() -> None:
    ak = ak8963(measure_s=9e-3)  # the datasheet's longest
    ak.write(0x0A, 0x11, 0.0, FIELD)  # 16-bit single
    ak.tick(8.9e-3, FIELD * 2)
    assert not ak.read(0x02) & 0x01 and not codes(ak).any()  # not ready: old (no) data
    ak.tick(9.0e-3, FIELD * 2)
    assert ak.read(0x02) & 0x01  # DRDY; the field when it was triggered
    assert np.allclose(codes(ak) * 0.15, [-10.0, 20.0, -40.0], atol=0.08)
    assert ak.mode == 0 and ak.regs[0x0A] == 0x10  # powered itself down, BIT kept


def test_a_trigger_during_a_measurement_is_ignored() -> None:
    ak = ak8963()
    ak.write(0x0A, 0x11, 0.0, FIELD)
    ak.write(0x0A, 0x11, 5e-3, -FIELD)  # still measuring: ignored
    assert ak.ignored == 1 and ak.triggers == 1
    ak.tick(7.2e-3, -FIELD)
    assert ak.read(0x02) & 0x01 and codes(ak)[2] < 0  # the first trigger's field (z: -40)
    ak.write(0x0A, 0x11, 7.3e-3, -FIELD)  # after it: a new measurement
    assert ak.triggers == 2


@pytest.mark.parametrize("model", ["ak8963", "ak09916"])
def test_drdy_and_dor_clear_on_a_data_or_st2_read_not_on_st1(model: str) -> None:
    ak = EmulatedAk(model)
    cont = 0x16 if model == "ak8963" else 0x08  # continuous 100 Hz
    ak.write(ak.mode_reg, cont, 0.0, FIELD)
    ak.tick(0.025, FIELD)  # two measurements, the first unread: DOR
    assert ak.read(ak.st1) == 0x03 and ak.read(ak.st1) == 0x03  # reading ST1 clears nothing
    ak.read(ak.hxl + 3)  # any data register
    assert ak.regs[ak.st1] == 0x00
    ak.read(ak.st2)
    ak.tick(0.035, FIELD)
    assert ak.regs[ak.st1] == 0x01
    ak.read(ak.st2)  # ST2 alone clears too
    assert ak.regs[ak.st1] == 0x00


@pytest.mark.parametrize("model", ["ak8963", "ak09916"])
def test_data_are_protected_from_a_data_read_until_st2(model: str) -> None:
    ak = EmulatedAk(model)
    cont = 0x16 if model == "ak8963" else 0x08
    ak.write(ak.mode_reg, cont, 0.0, FIELD)
    ak.tick(0.011, FIELD)
    first = codes(ak).copy()
    ak.read_block(ak.hxl, 6)  # a data read without ST2: held
    ak.tick(0.021, FIELD * 2)
    assert np.array_equal(codes(ak), first) and ak.skipped == 1
    assert ak.regs[ak.st1] & 0x02  # the skipped measurement shows as DOR
    ak.read(ak.st2)  # the read ends: the next measurement is stored
    ak.tick(0.031, FIELD * 2)
    assert np.allclose(np.abs(codes(ak)), 2 * np.abs(first), atol=1)


@pytest.mark.parametrize(("model", "sens"), [("ak8963", 0.15), ("ak09916", 0.15)])
def test_overflow_is_the_sum_rule(model: str, sens: float) -> None:
    ak = EmulatedAk(model, asa=(128, 128, 128))
    single = 0x11 if model == "ak8963" else 0x01
    below = np.array([1700.0, 1600.0, 1600.0])  # each axis in range, sum 4900 < 4912
    ak.write(ak.mode_reg, single, 0.0, below)
    ak.tick(0.01, below)
    assert not ak.read(ak.st2) & 0x08
    above = np.array([1700.0, 1610.0, 1610.0])  # 4920: overflow, no axis saturated
    ak.write(ak.mode_reg, single, 0.02, above)
    ak.tick(0.03, above)
    assert ak.read(ak.st2) & 0x08
    assert np.abs(codes(ak)).max() < 32752  # the registers are not saturated


def test_ak8963_14_and_16_bit_ranges() -> None:
    ak = ak8963()
    strong = np.array([0.0, 0.0, 4800.0])  # 4800 uT on z: in range, under the sum rule
    ak.write(0x0A, 0x01, 0.0, strong)  # 14-bit: 0.6 uT/LSB, +-8190
    ak.tick(0.01, strong)
    assert codes(ak)[2] == -8000 and ak.read(0x09) == 0x00  # BITM 0, no overflow
    ak.write(0x0A, 0x11, 0.02, strong)  # 16-bit: 0.15 uT/LSB, +-32760
    ak.tick(0.03, strong)
    assert codes(ak)[2] == -32000 and ak.read(0x09) == 0x10  # BITM 1
    huge = np.array([0.0, 0.0, 5000.0])
    ak.write(0x0A, 0x01, 0.04, huge)
    ak.tick(0.05, huge)
    assert codes(ak)[2] == -8190 and ak.read(0x09) == 0x08  # clipped at 14 bits, HOFL


def test_the_address_counters_wrap_as_the_datasheets_say() -> None:
    ak = EmulatedAk("ak09916")
    assert ak.read_block(0x03, 2) == bytes([0x00, 0x00])  # 0x03 -> 0x10 (ST1)
    assert ak.read_block(0x18, 2) == bytes([0x00, 0x48])  # ST2 -> WIA1
    assert ak.next_register(0x32) == 0x30
    ak8 = ak8963()
    assert ak8.read_block(0x0C, 2)[1] == 0x48  # ASTC -> WIA
    assert ak8.next_register(0x12) == 0x10


def test_ak8963_self_test_needs_astc() -> None:
    ak = ak8963()
    ak.write(0x0A, 0x18, 0.0, FIELD)  # self-test mode, ASTC.SELF off: no source
    ak.tick(0.01, FIELD)
    assert not codes(ak).any()
    ak.write(0x0C, 0x40, 0.02, FIELD)
    ak.write(0x0A, 0x18, 0.02, FIELD)
    ak.tick(0.03, FIELD)
    assert list(codes(ak)) == [32, -48, -1650]  # ASA 128: no adjustment
