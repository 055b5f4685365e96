"""The aux I2C master of the emulated InvenSense chips, which talks to the AKM
magnetometer die (``fsqd.imu.emulated.akm``).

Each master cycle runs slaves 0-3 in order, those with their delay bit set
only every ``1 + I2C_MST_DLY`` cycles; reads fill EXT_SENS_DATA one after another, the
AK's address counter wrapping as the AK's datasheet says; slave 4 does one transfer at
the next cycle, then sets I2C_SLV4_DONE (or I2C_SLV4_NACK for an absent address) and
clears its enable bit. A cycle comes with every host sample, or (ICM-20948, duty-cycled
master) on the master's own clock. Not modelled: byte swapping and grouping (the
drivers do not ask for them), the time a transfer takes on the aux bus.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fsqd.imu.emulated.akm import AK_ADDRESS, EmulatedAk

F64 = npt.NDArray[np.float64]


class AuxLayout(NamedTuple):
    """Where a chip keeps its aux master's registers: the slave and delay ones in one
    register file (``aux``), EXT_SENS_DATA and I2C_MST_STATUS in another (``out``; the
    same one on a chip without banks)."""

    slaves: tuple[tuple[int, int, int, int], ...]  # (ADDR, REG, CTRL, DO) of slaves 0-3
    slv4: tuple[int, int, int, int]  # (ADDR, REG, CTRL, DO) of slave 4
    slv4_di: int  # I2C_SLV4_DI
    delay_ctrl: int  # I2C_MST_DELAY_CTRL
    ext: int  # EXT_SENS_DATA_00
    ext_len: int
    status: int  # I2C_MST_STATUS


class AuxMaster:
    """The aux I2C master's per-sample work, on register accessors the chip provides."""

    def __init__(self, ak: EmulatedAk | None) -> None:
        self.ak = ak
        self.cycles = 0
        self.nacks = 0
        self.resets = 0
        self.stuck = False  # a fault: every aux transfer NACKs until the master is reset

    def reset(self) -> None:
        self.cycles = 0
        self.resets += 1
        self.stuck = False

    def run(
        self,
        t: float,
        field: F64,
        *,
        slaves: list[tuple[int, int, int, int]],  # (addr, reg, ctrl, do) for slaves 0-3
        delay_mask: int,  # I2C_MST_DELAY_CTRL bits 0-3
        delay: int,  # I2C_MST_DLY
        ext: bytearray,  # EXT_SENS_DATA, filled from its start
        slv4: tuple[int, int, int, int] | None,  # (addr, reg, ctrl, do) when enabled
    ) -> tuple[int, int | None, int]:
        """One master cycle at sample time ``t``.

        Returns (status bits to OR into I2C_MST_STATUS, the byte slave 4 read or None,
        the number of EXT_SENS_DATA bytes in use).
        """
        ak = self.ak
        if ak is not None:
            ak.tick(t, field)
        status = 0
        offset = 0
        slow_turn = self.cycles % (1 + delay) == 0
        for i, (addr, reg, ctrl, do) in enumerate(slaves):
            if not ctrl & 0x80:
                continue
            length = ctrl & 0x0F
            if (delay_mask >> i) & 1 and not slow_turn:
                offset += length if addr & 0x80 else 0  # its bytes stay as they were
                continue
            if ak is None or self.stuck or (addr & 0x7F) != AK_ADDRESS:
                status |= 1 << i  # I2C_SLVi_NACK
                self.nacks += 1
                continue
            if addr & 0x80:
                data = ak.read_block(reg, length)
                for j in range(length):
                    if offset + j < len(ext):
                        ext[offset + j] = data[j]
                offset += length
            else:
                ak.write(reg, do, t, field)
        data_in = None
        if slv4 is not None:
            addr, reg, _ctrl, do = slv4
            if ak is None or self.stuck or (addr & 0x7F) != AK_ADDRESS:
                status |= 0x10  # I2C_SLV4_NACK
                self.nacks += 1
            elif addr & 0x80:
                data_in = ak.read(reg)
            else:
                ak.write(reg, do, t, field)
            status |= 0x40  # I2C_SLV4_DONE
        self.cycles += 1
        return status, data_in, offset

    def cycle_on(
        self, t: float, field: F64, aux: bytearray, out: bytearray, at: AuxLayout
    ) -> bytearray:
        """One master cycle at ``t`` on a chip's registers, laid out as ``at`` says:
        EXT_SENS_DATA and I2C_MST_STATUS updated, slave 4 disabled once done and its byte
        in I2C_SLV4_DI. Returns EXT_SENS_DATA as it is after the cycle."""
        slaves = [(aux[a], aux[r], aux[c], aux[d]) for a, r, c, d in at.slaves]
        a4, r4, c4, d4 = at.slv4
        slv4 = (aux[a4], aux[r4], aux[c4], aux[d4]) if aux[c4] & 0x80 else None
        lo, hi = at.ext, at.ext + at.ext_len
        ext = bytearray(out[lo:hi])
        status, data_in, _ = self.run(
            t,
            field,
            slaves=slaves,
            delay_mask=aux[at.delay_ctrl] & 0x0F,
            delay=aux[c4] & 0x1F,  # I2C_MST_DLY
            ext=ext,
            slv4=slv4,
        )
        out[lo:hi] = ext
        out[at.status] |= status
        if slv4 is not None:
            aux[c4] &= 0x7F
            if data_in is not None:
                aux[at.slv4_di] = data_in
        return ext


__all__ = ["AuxLayout", "AuxMaster"]
