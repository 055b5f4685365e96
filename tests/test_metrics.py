"""Stage histograms: thread safety, periods, out-of-range values, mergeable blobs."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from fsqd.metrics import HIGH_US, StageTimer, decode_histogram, encode, new_histogram


def test_recording_from_many_threads_loses_nothing() -> None:
    timer = StageTimer()
    n_threads, per_thread = 4, 20_000
    start = threading.Barrier(n_threads)

    def work(k: int) -> None:
        start.wait()
        for i in range(per_thread):
            # Each thread its own stage and a shared one, created concurrently.
            timer.add("shared", (1 + i % 1000) * 1000)
            timer.add(f"own{k}", 5000)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    period = timer.roll()
    assert period.stages["shared"].count == n_threads * per_thread
    assert period.cumulative["shared"].count == n_threads * per_thread
    for k in range(n_threads):
        assert period.stages[f"own{k}"].count == per_thread
    assert timer.stages["shared"].total_ns == n_threads * sum(
        (1 + i % 1000) * 1000 for i in range(per_thread)
    )


def test_roll_while_recording_keeps_every_value_in_exactly_one_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Switch threads as often as the interpreter can, so a missing lock shows.
    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _roll_while_recording()
    finally:
        sys.setswitchinterval(old)


def _roll_while_recording() -> None:
    timer = StageTimer()
    stop = threading.Event()
    recorded = [0]

    def work() -> None:
        while not stop.is_set():
            timer.add("x", 1000)
            recorded[0] += 1

    t = threading.Thread(target=work)
    t.start()
    periods = []
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        periods.append(timer.roll())
    stop.set()
    t.join()
    periods.append(timer.roll())
    assert sum(p.stages["x"].count for p in periods if "x" in p.stages) == recorded[0]
    assert periods[-1].cumulative["x"].count == recorded[0]


def test_period_resets_cumulative_does_not() -> None:
    timer = StageTimer()
    for us in (100, 200, 300):
        timer.add("infer", us * 1000)
    first = timer.roll()
    assert first.stages["infer"].count == 3
    assert first.stages["infer"].max == 300
    timer.add("infer", 50_000_000)  # 50 ms
    second = timer.roll()
    assert second.stages["infer"].count == 1
    assert second.stages["infer"].p50 == second.stages["infer"].max
    assert 49_950 <= second.stages["infer"].max <= 50_050
    assert second.cumulative["infer"].count == 4
    empty = timer.roll().stages["infer"]
    assert (empty.count, empty.p99, empty.max) == (0, 0, 0)


def test_out_of_range_is_counted_and_kept_at_the_top() -> None:
    timer = StageTimer()
    timer.add("e2e", 120 * 10**9)  # two minutes: beyond the range
    timer.add("e2e", -5)  # a clock that went backwards: the bottom of the range
    timer.add("e2e", 1_000_000)
    p = timer.roll()
    s = p.stages["e2e"]
    assert s.count == 3 and s.out_of_range == 1
    assert s.max >= HIGH_US * 0.999
    assert p.cumulative["e2e"].out_of_range == 1
    assert timer.roll().stages["e2e"].out_of_range == 0
    assert "1 out of range" in timer.table(1)


def test_percentiles_and_blobs_merge_across_nodes() -> None:
    a, b = StageTimer(), StageTimer()
    for i in range(1, 1001):
        a.add("e2e", i * 1000)  # 1..1000 us
        b.add("e2e", (i + 1000) * 1000)  # 1001..2000 us
    pa, pb = a.roll(), b.roll()
    s = pa.stages["e2e"].as_dict()
    assert s["count"] == 1000
    assert abs(s["p50"] - 500) <= 1 and abs(s["p99"] - 990) <= 1 and s["p99.9"] <= s["max"]
    fleet = new_histogram()
    for p in (pa, pb):
        fleet.add(decode_histogram(encode(p.histograms["e2e"])))
    assert fleet.get_total_count() == 2000
    assert abs(fleet.get_value_at_percentile(50) - 1000) <= 2
    assert abs(fleet.get_max_value() - 2000) <= 2


def test_stage_context_manager_times_the_block() -> None:
    timer = StageTimer()
    with timer.stage("sleep", 3):
        threading.Event().wait(0.01)
    st = timer.stages["sleep"]
    assert st.items == 3 and st.total_ns >= 10_000_000
    assert timer.roll().stages["sleep"].p50 >= 10_000
