"""`fsqd run` through the real command line and the real acquisition on an emulated bus,
with a fault switch for tests: ``python tests/emulated_daemon.py run --config CFG ...``.

SIGUSR1 hangs every emulated I2C bus (a slave holding SDA low: each transfer blocks for
the adapter timeout and fails with ETIMEDOUT); SIGUSR2 releases it. Everything else is
``fsqd run`` unchanged.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import fsqd.daemon.wiring
from fsqd.cli import main
from fsqd.imu.emulated import EmulatedBus

_open_source = fsqd.daemon.wiring.open_source
_buses: list[EmulatedBus] = []


def _open_with_fault_switch(config: Any, *args: Any, **kwargs: Any) -> Any:
    acquisition = _open_source(config, *args, **kwargs)
    _buses.extend(b for b in acquisition.buses if isinstance(b, EmulatedBus))
    return acquisition


def _hang(*_: object) -> None:
    for bus in _buses:
        bus.hang(3600.0)


def _release(*_: object) -> None:
    for bus in _buses:
        bus.hang(0.0)


fsqd.daemon.wiring.open_source = _open_with_fault_switch
signal.signal(signal.SIGUSR1, _hang)
signal.signal(signal.SIGUSR2, _release)
sys.exit(main(sys.argv[1:]))
