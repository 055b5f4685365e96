"""The long-running daemon (``fsqd run``): its lifecycle and data path (``app``), its
reports (``telemetry``), SIGHUP (``reload``), building it from a config (``wiring``), and
what it needs of the machine: the wall clock, systemd, logging, the state-dir lock."""

from fsqd.daemon.app import Daemon
from fsqd.daemon.contracts import Acquisition, Counters, LoggingOverride, Notifier, NullNotifier
from fsqd.daemon.wiring import open_sinks, open_source, run_daemon

__all__ = [
    "Acquisition",
    "Counters",
    "Daemon",
    "LoggingOverride",
    "Notifier",
    "NullNotifier",
    "open_sinks",
    "open_source",
    "run_daemon",
]
