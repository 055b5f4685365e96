"""The LSM6DSOX / ISM330DHCX tagged FIFO words, decoded.

Each FIFO word is 7 bytes: a tag byte, TAG_SENSOR[7:3] (1 = gyro, 2 = accel, 3 =
temperature) TAG_CNT[2:1] (the time slot, mod 4) parity[0], then three little-endian
int16 values. With both sensors batched at the ODR, every time slot holds one gyro and
one accel word: together they are one sample. A slot that lost its partner (after an
overrun) is dropped; a half slot at the end of a read waits for the next.

While the sensors start, the chip writes words whose first value is 0x7FFD..0x7FFF
(Linux ``st_lsm6dsx_push_tagged_data`` drops them).
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

WORD = 7
TAG_GYRO, TAG_ACCEL, TAG_TEMPERATURE = 0x01, 0x02, 0x03
RESET_MARKER = 0x7FFD  # a first value >= this: a word written while the chip boots


def has_reset_marker(words: bytes) -> bool:
    """A word of ``words`` (7-byte FIFO words) whose first value is a bootstrap marker."""
    return any(
        struct.unpack_from("<h", words, i + 1)[0] >= RESET_MARKER
        for i in range(0, len(words), WORD)
    )


def pair_words(
    raw: bytes, accel_lsb: float, gyro_lsb: float
) -> tuple[npt.NDArray[np.float32], bytes, int]:
    """Tagged words -> (n, 9) rows (accel m/s^2, gyro rad/s, NaN for the magnetometer),
    the words of a half slot left at the end, and how many words lost their partner."""
    n = len(raw) // WORD
    if n == 0:
        return np.zeros((0, 9), np.float32), raw, 0
    words = np.frombuffer(raw[: n * WORD], np.uint8).reshape(n, WORD)
    tag = words[:, 0] >> 3
    slot = (words[:, 0] >> 1) & 0x03
    values = words[:, 1:].copy().view("<i2").astype(np.float64)  # (n, 3)
    if (
        n % 2 == 0
        and (tag[0::2] == TAG_GYRO).all()
        and (tag[1::2] == TAG_ACCEL).all()
        and (slot[0::2] == slot[1::2]).all()
    ):  # the usual case: gyro, accel, gyro, accel .. in whole slots
        out = np.empty((n // 2, 9), np.float32)
        out[:, 0:3] = values[1::2] * accel_lsb
        out[:, 3:6] = values[0::2] * gyro_lsb
        out[:, 6:9] = np.nan
        return out, b"", 0
    rows: list[npt.NDArray[np.float64]] = []
    gyro: npt.NDArray[np.float64] | None = None
    accel: npt.NDArray[np.float64] | None = None
    dropped = 0
    current = -1
    start = 0  # first word of the current slot
    for i in range(n):
        if tag[i] not in (TAG_GYRO, TAG_ACCEL):
            continue
        if slot[i] != current:
            if gyro is not None or accel is not None:
                dropped += 1  # a slot that lost its partner
            gyro = accel = None
            current = int(slot[i])
            start = i
        if tag[i] == TAG_GYRO:
            gyro = values[i] * gyro_lsb
        else:
            accel = values[i] * accel_lsb
        if gyro is not None and accel is not None:
            rows.append(np.concatenate([accel, gyro, np.full(3, np.nan)]))
            gyro = accel = None
            current = -1
    carry = raw[start * WORD : n * WORD] if (gyro is not None or accel is not None) else b""
    out = np.array(rows, np.float32).reshape(-1, 9)
    return out, carry, dropped


__all__ = [
    "RESET_MARKER",
    "TAG_ACCEL",
    "TAG_GYRO",
    "TAG_TEMPERATURE",
    "WORD",
    "has_reset_marker",
    "pair_words",
]
