"""``[hailo]``: how the Hailo-8 backend opens and uses the device (``fsqd.backends.hailo``)."""

from __future__ import annotations

from dataclasses import dataclass

from fsqd.tomlcheck import Table

__all__ = ["HailoSettings", "parse_hailo"]


@dataclass(frozen=True)
class HailoSettings:
    """The ``[hailo]`` table of the daemon's configuration."""

    multi_process_service: bool = False  # share the device through hailort.service
    timeout_ms: int = 10_000  # per inference job and per readiness wait
    open_attempts: int = 5  # VDevice creation attempts when the device is busy or absent
    backoff_s: float = 0.5  # first wait between attempts; doubles up to backoff_max_s
    backoff_max_s: float = 8.0
    range_warn_share: float = 0.01  # warn when this share of inputs lies outside the HEF's range
    device_path: str = "/dev/hailo0"
    driver_version_file: str = "/sys/module/hailo_pci/version"


def parse_hailo(table: Table) -> HailoSettings:
    """``[hailo]`` -> HailoSettings; unknown keys are a one-line ConfigError."""
    d = HailoSettings()
    s = HailoSettings(
        multi_process_service=table.get("multi_process_service", bool, d.multi_process_service),
        timeout_ms=table.integer("timeout_ms", d.timeout_ms, low=1),
        open_attempts=table.integer("open_attempts", d.open_attempts, low=1),
        backoff_s=table.number("backoff_s", d.backoff_s, low=0.0),
        backoff_max_s=table.number("backoff_max_s", d.backoff_max_s, low=0.0),
        range_warn_share=table.number("range_warn_share", d.range_warn_share, low=0.0, high=1.0),
        device_path=table.get("device_path", str, d.device_path),
        driver_version_file=d.driver_version_file,
    )
    table.done()
    return s
