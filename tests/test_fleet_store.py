"""The store without a broker: two writers, one lock; holes suspected, confirmed, closed."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from fleetkit import T0, code, gaps, keys

from fsqd.fleet.rows import Row, parse_message
from fsqd.fleet.seqset import SeqSet
from fsqd.fleet.store import Store


class Clock:
    def __init__(self) -> None:
        self.t = T0 + 100

    def __call__(self) -> float:
        return self.t


def rows(seqs: range | list[int], node: str = "n1", run: str = "r1") -> list[Row]:
    return [parse_message(f"fsqd/{node}/codes", code(run, s), T0 + s) for s in seqs]


def opened(root: Path, name: str, clock: Clock, **kw: int) -> Store:
    s = Store(root, name, clock=clock, **kw)  # type: ignore[arg-type]
    s.open()
    return s


def test_two_writers_holding_the_same_message_store_it_once(tmp_path: Path) -> None:
    clock = Clock()
    a, b = opened(tmp_path, "a", clock), opened(tmp_path, "b", clock)
    # Neither has the copies' partition loaded; b commits second and drops its copies.
    ra = a.commit(rows(range(0, 10)), clock.t)
    rb = b.commit(rows(range(5, 15)), clock.t)
    assert (ra.rows, ra.duplicates, rb.rows, rb.duplicates) == (10, 0, 5, 5)
    assert sorted(keys(tmp_path)) == [("n1", "r1", s) for s in range(15)]


def test_a_batch_with_repeats_and_a_restart_store_each_key_once(tmp_path: Path) -> None:
    clock = Clock()
    a = opened(tmp_path, "a", clock)
    assert a.commit(rows([1, 2, 2, 3, 1]), clock.t).rows == 3
    a.close()
    again = opened(tmp_path, "a", clock)  # a new process: the index comes from the files
    r = again.commit(rows([2, 3, 4]), clock.t)
    assert (r.rows, r.duplicates) == (1, 2)
    assert again.is_duplicate(rows([2])[0])  # loaded by the commit
    assert len(keys(tmp_path)) == 4


def test_compaction_merges_small_files_and_keeps_every_row_once(tmp_path: Path) -> None:
    clock = Clock()
    a = opened(tmp_path, "a", clock, compact_files=4)
    for i in range(18):
        a.commit(rows(range(i * 10, i * 10 + 10)), clock.t)
    files = sorted((tmp_path / "codes").rglob("*.parquet"))
    # 18 commits: four merges into level 1 (16 files), four level-1 files into one of level 2.
    assert sorted(f.name.split(".")[1] for f in files) == ["c2", "parquet", "parquet"]
    assert sorted(keys(tmp_path)) == [("n1", "r1", s) for s in range(180)]
    merged = max(files, key=lambda p: pq.ParquetFile(p).metadata.num_rows)
    assert pq.read_table(merged)["seq"].to_pylist() == sorted(
        pq.read_table(merged)["seq"].to_pylist()
    )


def test_a_hole_is_confirmed_only_once_every_live_collector_is_past_it(tmp_path: Path) -> None:
    clock = Clock()
    a, b = opened(tmp_path, "a", clock), opened(tmp_path, "b", clock)
    b.heartbeat(clock.t - 50)  # b is alive and still holds what it received after then
    a.commit(rows([0, 1, 2, 6, 7]), clock.t)
    (g,) = gaps(tmp_path)
    assert (g["from_seq"], g["to_seq"], g["confirmed"]) == (3, 5, False)
    # b had the hole's windows all along: it commits them, the suspicion goes away.
    clock.t += 1
    b.commit(rows([3, 4, 5]), clock.t)
    assert gaps(tmp_path) == []
    # A real loss: confirmed once b has committed past the time the hole was seen ...
    clock.t += 1
    a.commit(rows([8, 11]), clock.t)
    assert [g["confirmed"] for g in gaps(tmp_path)] == [False]
    clock.t += 1
    b.commit([], clock.t)
    assert [(g["from_seq"], g["to_seq"], g["confirmed"]) for g in gaps(tmp_path)] == [(9, 10, True)]
    # ... and closed, kept, when the windows arrive late after all: one of them first (the
    # record is closed, the window still missing stays open), then the other.
    clock.t += 1
    a.commit(rows([9]), clock.t)
    spans = [(g["from_seq"], g["to_seq"], g["closed_at"] is None) for g in gaps(tmp_path)]
    assert spans == [(9, 10, False), (10, 10, True)]
    a.commit(rows([10]), clock.t)
    assert all(g["closed_by_late_arrival"] and g["confirmed"] for g in gaps(tmp_path))


def test_a_dead_collector_does_not_hold_up_confirmation(tmp_path: Path) -> None:
    clock = Clock()
    a, b = opened(tmp_path, "a", clock, live_s=60), opened(tmp_path, "b", clock)
    b.heartbeat(clock.t - 1000)
    clock.t += 61  # b's checkpoint is older than live_s: b is gone
    a.commit(rows([0, 5]), clock.t)
    clock.t += 1
    a.commit([], clock.t)
    assert [g["confirmed"] for g in gaps(tmp_path)] == [True]


def test_seqset_adds_ranges_and_finds_holes() -> None:
    s = SeqSet([1, 2, 3, 7, 9])
    assert s.intervals() == [(1, 3), (7, 7), (9, 9)]
    assert s.add_range(4, 8) == 4 and s.intervals() == [(1, 9)]
    assert not s.add(5) and s.holes() == []
    assert SeqSet([0, 4, 5]).holes() == [(1, 3)]


def test_a_compaction_cut_after_its_rename_is_finished_at_the_next_start(tmp_path: Path) -> None:
    clock = Clock()
    a = opened(tmp_path, "a", clock)
    a.commit(rows(range(0, 5)), clock.t)
    a.commit(rows(range(5, 10)), clock.t)
    inputs = sorted((tmp_path / "codes").rglob("*.parquet"))
    # The merged file was renamed in, then the process died before deleting its inputs.
    merged = inputs[0].with_name("a-0000000099.parquet")
    merged.write_bytes(inputs[0].read_bytes())
    plan = {
        "out": str(merged.relative_to(tmp_path)),
        "tmp": "x",
        "inputs": [str(p.relative_to(tmp_path)) for p in inputs],
    }
    a._save_checkpoint([], plan)
    a.close()
    opened(tmp_path, "a", clock)
    assert sorted((tmp_path / "codes").rglob("*.parquet")) == [merged]


def test_a_suspected_hole_shrinks_to_what_is_still_missing_and_waits_its_grace(
    tmp_path: Path,
) -> None:
    clock = Clock()
    a = opened(tmp_path, "a", clock, gap_grace_s=30)
    a.commit(rows([0, 9]), clock.t)
    clock.t += 1
    a.commit(rows([4, 5]), clock.t)  # the middle was in flight elsewhere
    spans = [(g["from_seq"], g["to_seq"], g["confirmed"]) for g in gaps(tmp_path)]
    assert sorted(spans) == [(1, 3, False), (6, 8, False)]
    clock.t += 20
    a.commit([], clock.t)
    assert not any(g["confirmed"] for g in gaps(tmp_path))  # 21 s < the 30 s grace
    clock.t += 10
    a.commit([], clock.t)
    assert all(g["confirmed"] for g in gaps(tmp_path))
