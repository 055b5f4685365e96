"""Where samples come from: the IMU simulator and recorded files (I2C drivers later)."""
