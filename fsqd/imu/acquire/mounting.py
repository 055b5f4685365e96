"""Per-sensor calibration (in the chip's axes) and mounting (chip axes -> body axes)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fsqd.imu.acquire.config import SensorConfig


class Calibration:
    """accel * scale, gyro - bias, mag - hard-iron offset, then rotate into body axes."""

    def __init__(self, config: SensorConfig) -> None:
        m = config.mount_matrix()
        self.rotation = np.zeros((9, 9))
        for i in range(3):
            self.rotation[3 * i : 3 * i + 3, 3 * i : 3 * i + 3] = m
        self.scale = np.array([*config.accel_scale, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
        self.offset = np.array([0.0, 0.0, 0.0, *config.gyro_bias, *config.mag_offset])

    def __call__(self, chip: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """(n, 9) SI values in chip axes -> (n, 9) float32 in body axes."""
        body: npt.NDArray[np.float64] = (chip * self.scale - self.offset) @ self.rotation.T
        return body.astype(np.float32)


__all__ = ["Calibration"]
