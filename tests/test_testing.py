"""fsqd.testing is public: its example works as written and every exported name exists."""

from __future__ import annotations

import numpy as np

import fsqd.testing
from fsqd.testing import EmulatedBus, Lsm6dsoxChip, ManualClock, Signal, one_sensor, rig


def test_every_exported_name_exists() -> None:
    missing = [n for n in fsqd.testing.__all__ if not hasattr(fsqd.testing, n)]
    assert missing == []


def test_the_module_example_runs_and_reads_gravity() -> None:
    """The docstring's example, as a user would run it: two seconds at 104 Hz."""
    r = rig(one_sensor(rate_hz=104))
    r.run(2.0)
    t, x = r.samples()
    assert x.shape[1] == 9 and 190 <= len(t) <= 210  # 104 Hz, minus the start-up
    assert np.all(np.diff(t) > 0)
    # The default simulated animal moves; gravity is still the mean pull on the accelerometer.
    assert 8.5 < float(np.linalg.norm(x[:, :3].mean(axis=0))) < 11.5


def test_a_user_builds_a_bus_of_their_own() -> None:
    """The parts compose without the config: a chip on a bus on a manual clock."""
    clock = ManualClock()
    bus = EmulatedBus(clock=clock)
    bus.add(Lsm6dsoxChip(0x6A, clock=clock, signal=Signal(seed=3, behaviours=("rest",))))
    assert bus.read_byte_data(0x6A, 0x0F) == 0x6C  # WHO_AM_I


def test_the_documented_example_of_a_users_own_test_passes() -> None:
    """docs/architecture.md shows a user's test written with fsqd.testing: it runs as shown."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    section = doc[doc.index("## Testing your own setup") :]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    scope: dict[str, object] = {}
    exec(compile(code, "docs/architecture.md", "exec"), scope)
    tests = [f for name, f in scope.items() if name.startswith("test_") and callable(f)]
    assert tests
    for test in tests:
        test()
