"""The LSM6DSOX / ISM330DHCX FIFO of 7-byte tagged words, as the chip keeps it.

In continuous mode a full FIFO overwrites its oldest word and raises FIFO_OVR_IA (until a
word is read) and FIFO_OVR_LATCHED (until FIFO_STATUS2 is read); bypass mode empties it.
Reading FIFO_DATA_OUT_TAG takes the oldest word out; the six data bytes after it read
that word's values (an empty FIFO reads zeros).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from fsqd.imu.drivers import lsm6dsox as reg
from fsqd.imu.drivers import st_fifo


class TaggedFifo:
    """``size`` words; ``overwritten`` counts the words continuous mode lost (truth for
    tests)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.words: deque[bytes] = deque()
        self.overrun = False  # FIFO_OVR_IA
        self.overrun_latched = False  # FIFO_OVR_LATCHED
        self.overwritten = 0
        self._out = bytes(st_fifo.WORD)  # the word FIFO_DATA_OUT shows

    def clear(self) -> None:
        """Bypass mode: empty, the overrun flags down."""
        self.words.clear()
        self.overrun = self.overrun_latched = False

    def full(self) -> bool:
        return len(self.words) >= self.size

    def push(self, tag: int, cnt: int, values: npt.NDArray[np.int16]) -> None:
        """Append a word: ``tag`` the sensor, ``cnt`` TAG_CNT already in bits 2:1."""
        if self.full():
            self.words.popleft()  # continuous mode: the oldest word is overwritten
            self.overwritten += 1
            self.overrun = self.overrun_latched = True
        self.words.append(bytes([tag << 3 | cnt]) + values.astype("<i2").tobytes())

    def status1(self) -> int:
        return len(self.words) & 0xFF

    def status2(self) -> int:
        """DIFF_FIFO[9:8] and the flags; reading it clears FIFO_OVR_LATCHED."""
        value = (len(self.words) >> 8) & 0x03
        value |= reg.FIFO_OVR_IA if self.overrun else 0
        value |= reg.FIFO_FULL_IA if self.full() else 0
        value |= reg.FIFO_OVR_LATCHED if self.overrun_latched else 0
        self.overrun_latched = False
        return value

    def read(self, offset: int) -> int:
        """Byte ``offset`` of FIFO_DATA_OUT; offset 0 (the tag) takes the next word out."""
        if offset == 0:
            self._out = self.words.popleft() if self.words else bytes(st_fifo.WORD)
            self.overrun = False  # no longer completely full
        return self._out[offset]

    def __len__(self) -> int:
        return len(self.words)


__all__ = ["TaggedFifo"]
