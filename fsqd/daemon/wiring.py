"""Building the daemon from its config: the sensors, the encoder, the sinks, then the run.

The state directory is locked before anything else (a second daemon there would share
the spool and the broker's client id); samples are stamped on the acquisition clock's
timeline and the wall clock is followed from that same offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from typing import TextIO

from fsqd.clock import SystemClock
from fsqd.config.loader import Config
from fsqd.daemon.app import Daemon
from fsqd.daemon.clock import WallClock
from fsqd.daemon.contracts import Acquisition, LoggingOverride, new_run_id
from fsqd.daemon.instance import StateDirLock
from fsqd.daemon.logging import configure_logging
from fsqd.daemon.systemd import SystemdNotifier
from fsqd.imu.acquire.acquisition import open_acquisition
from fsqd.imu.acquire.config import SensorConfig
from fsqd.sinks.base import Sink

__all__ = [
    "PROBE_TIMEOUT_S",
    "SPOOL_FILE",
    "broker_answers",
    "hardware_of",
    "open_sinks",
    "open_source",
    "run_daemon",
]

# The spool's file in [service] state_dir.
SPOOL_FILE = "spool.sqlite"
# How long `without_broker = "stdout"` waits for a TCP connect to the broker at start.
PROBE_TIMEOUT_S = 0.5


def open_sinks(config: Config, *, stdout: bool, out: TextIO, run_id: str = "") -> list[Sink]:
    """JSON lines when asked, when no broker is configured, or (demo) when none answers."""
    from fsqd.sinks.jsonl import JsonLinesSink

    mqtt = config.mqtt
    if stdout or mqtt is None:
        return [JsonLinesSink(out)]
    if config.service.without_broker == "stdout":
        # The demo's choice: say where the codes go, since it depends on the machine.
        if not broker_answers(mqtt.host, mqtt.port):
            print(
                f"fsqd: no MQTT broker answers at {mqtt.host}:{mqtt.port} "
                f"(TCP connect probe, {PROBE_TIMEOUT_S:g} s): printing codes as JSON lines",
                file=sys.stderr,
            )
            return [JsonLinesSink(out)]
        print(
            f"fsqd: publishing to the MQTT broker at {mqtt.host}:{mqtt.port}, "
            f"topics {mqtt.base_topic}/# (watch with: mosquitto_sub -h {mqtt.host} "
            f"-p {mqtt.port} -t '{mqtt.base_topic}/#' -v)",
            file=sys.stderr,
        )
    from fsqd.sinks.discovery_memory import DiscoveryMemory
    from fsqd.sinks.homeassistant import discovery_for
    from fsqd.sinks.mqtt.sink import MqttSink

    card = config.model.package.card
    discovery = discovery_for(
        config.homeassistant,
        mqtt,
        labels=card.head.labels if card.head is not None else None,
        model_name=card.name,
        model_version=card.version,
        hardware=hardware_of(config.sensors),
        code_reference=card.calibration is not None and card.calibration.code_reference is not None,
    )
    # Discovery left retained under another topic (renamed node, discovery switched off)
    # is cleared on connecting.
    memory = DiscoveryMemory(config.service.state_dir)
    retire = memory.begin(discovery.topic if discovery is not None else None)
    sink: Sink = MqttSink(
        mqtt,
        config.service.state_dir / SPOOL_FILE,
        discovery=discovery,
        run_id=run_id,
        retire=retire,
        on_retired=memory.retired,
    )
    return [sink]


def hardware_of(sensors: Sequence[SensorConfig]) -> str | None:
    """Home Assistant's ``hw_version``: each sensor's drivers (IMU+magnetometer)."""
    parts = []
    for s in sensors:
        name = s.driver + (f"+{s.mag_driver}" if s.mag_driver else "")
        parts.append(f"{name} (emulated)" if s.is_emulated else name)
    return ", ".join(parts) or None


def broker_answers(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """A short TCP connect: is anything listening (connection refused comes back at once)?"""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def open_source(config: Config, clock: SystemClock) -> Acquisition:
    acq: Acquisition = open_acquisition(
        config.sensors, config.model.package.card.devices, clock=clock
    )
    return acq


def run_daemon(
    config: Config,
    *,
    duration_s: float | None,
    stdout: bool,
    out: TextIO | None = None,
    acquisition: Acquisition | None = None,
    log_override: LoggingOverride | None = None,
) -> int:
    with contextlib.ExitStack() as held:
        if not stdout and config.mqtt is not None:
            # Before anything else: a second daemon on this state directory would share
            # the spool and the broker client id (BusyError, exit 75, naming the first).
            held.enter_context(StateDirLock(config.service.state_dir))
        return _run_daemon(
            config,
            duration_s=duration_s,
            stdout=stdout,
            # Looked up now, not at import: a replaced sys.stdout (a caller's) is honoured.
            out=sys.stdout if out is None else out,
            acquisition=acquisition,
            log_override=log_override,
        )


def _run_daemon(
    config: Config,
    *,
    duration_s: float | None,
    stdout: bool,
    out: TextIO,
    acquisition: Acquisition | None,
    log_override: LoggingOverride | None,
) -> int:
    logging = (log_override or LoggingOverride()).apply(config.logging)
    configure_logging(logging.format, logging.level)
    run_id = new_run_id()
    sinks = open_sinks(config, stdout=stdout, out=out, run_id=run_id)
    # Samples are stamped on the acquisition clock's timeline (CLOCK_MONOTONIC + the
    # offset it captured); the wall clock is followed from that same offset.
    sample_clock = SystemClock()
    acquisition = acquisition or open_source(config, sample_clock)
    daemon = Daemon(
        config,
        acquisition=acquisition,
        sinks=sinks,
        clock=WallClock(base=sample_clock.epoch_offset),
        notifier=SystemdNotifier.from_environ(),
        duration_s=duration_s,
        log_override=log_override,
        run_id=run_id,
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(daemon.run())
    return 0
