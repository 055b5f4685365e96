"""`fsqd run` through the real command line, with the simulator as the sensor source.

Used by tests that need a daemon process (signals, sd_notify) before or beside the
emulated I2C sensors: ``python tests/sim_daemon.py run --config CFG ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import fsqd.daemon.wiring
from fsqd.cli import main
from fsqd.testing import SimulatedAcquisition


def _source(config: Any, clock: Any) -> SimulatedAcquisition:
    return SimulatedAcquisition(chunk=2)


fsqd.daemon.wiring.open_source = _source
sys.exit(main(sys.argv[1:]))
