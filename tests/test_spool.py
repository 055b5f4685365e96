"""The on-disk spool: order, batching, bounds, durability across processes."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from fsqd.errors import OutputError
from fsqd.sinks.spool import ROW_OVERHEAD, Spool, SpoolRow


def rows(ids: range) -> list[SpoolRow]:
    return [SpoolRow(i, 1000 + i, 1.7e9 + i / 10, f'{{"seq":{1000 + i}}}'.encode()) for i in ids]


def test_wal_and_synchronous_normal(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 100)
    assert s._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    s.close()


def test_commit_read_delete_in_id_order(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 100)
    r = s.commit(rows(range(1, 11)), [])
    assert (r.inserted, r.depth, r.max_id, r.dropped) == (10, 10, 10, 0)
    assert r.oldest_t_submit == pytest.approx(1.7e9 + 0.1)
    assert [x.id for x in s.read(0, 4)] == [1, 2, 3, 4]
    assert [x.id for x in s.read(4, 100)] == list(range(5, 11))
    got = s.read(0, 1)[0]
    assert got == rows(range(1, 2))[0]
    r = s.commit([], [1, 2, 5])
    assert (r.deleted, r.depth) == (3, 7)
    assert [x.id for x in s.read(0, 100)] == [3, 4, 6, 7, 8, 9, 10]
    assert s.commits == 2
    s.close()


def test_full_spool_drops_the_oldest(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 5)
    s.commit(rows(range(1, 4)), [])
    r = s.commit(rows(range(4, 9)), [])
    assert (r.dropped, r.depth) == (3, 5)
    assert [x.id for x in s.read(0, 100)] == [4, 5, 6, 7, 8]
    s.close()


def test_reinserting_a_row_is_harmless(tmp_path: Path) -> None:
    # The sink's final flush may rewrite rows a cancelled commit already wrote.
    s = Spool(tmp_path / "s.db", 10)
    s.commit(rows(range(1, 4)), [])
    r = s.commit(rows(range(2, 5)), [])
    assert r.depth == 4
    s.close()


def test_rows_survive_a_killed_process(tmp_path: Path) -> None:
    """A commit is in the WAL file: a process killed right after loses nothing."""
    path = tmp_path / "s.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from fsqd.sinks.spool import Spool, SpoolRow
        s = Spool(Path({str(path)!r}), 100)
        s.commit([SpoolRow(i, i, 0.0, b"x") for i in range(1, 8)], [])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    root = Path(__file__).parent.parent
    p = subprocess.run([sys.executable, "-c", script], cwd=root, timeout=60)
    assert p.returncode == -9
    s = Spool(path, 100)
    assert s.depth() == 7 and s.max_id() == 7
    s.close()


def test_unusable_path_is_one_line_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="cannot open the spool"):
        Spool(blocker / "spool.db", 10)


def test_failed_commit_rolls_back(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 10)
    s.commit(rows(range(1, 3)), [])
    s._conn().execute("DROP TABLE spool")
    s._conn().execute("CREATE TABLE spool (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    with pytest.raises(OutputError, match="spool write failed"):
        s.commit(rows(range(3, 4)), [])
    assert not s._conn().in_transaction
    s.close()
    assert (
        sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 0
    )


# -- corruption: set aside, salvage, carry on --

PAGE = 4096


def filled(path: Path, n: int = 3000, run_id: str = "r1") -> dict[int, SpoolRow]:
    """A closed spool of ``n`` JSON codes (checkpointed into the main file)."""
    s = Spool(path, 1_000_000, 1 << 30, run_id=run_id)
    first = s.first_id
    made = [
        SpoolRow(first + i, i, 1.7e9 + i, json.dumps({"seq": i, "pad": "x" * 200}).encode())
        for i in range(n)
    ]
    s.commit(made, [])
    s.close()
    return {r.id: r for r in made}


def spool_errors(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["log_level"] == "error"]


def random_bytes(path: Path, rng: random.Random) -> None:
    path.write_bytes(rng.randbytes(path.stat().st_size))


def truncated(path: Path, rng: random.Random) -> None:
    os.truncate(path, path.stat().st_size // 2)


def three_garbage_pages(path: Path, rng: random.Random) -> None:
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as f:
        for page in rng.sample(range(pages // 4, 3 * pages // 4), 3):
            f.seek(page * PAGE)
            f.write(rng.randbytes(PAGE))


def garbage_in_cells(path: Path, rng: random.Random) -> None:
    """The second half of three leaf pages: page headers intact, so only a check of the
    cells (quick_check) finds it before a read trips on it."""
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as f:
        for page in rng.sample(range(pages // 4, 3 * pages // 4), 3):
            f.seek(page * PAGE + PAGE // 2)
            f.write(rng.randbytes(PAGE // 2))


@pytest.mark.parametrize(
    ("damage", "at_least", "at_most"),
    [
        (random_bytes, 0, 0),
        (truncated, 1000, 1600),
        (three_garbage_pages, 2900, 2990),
        (garbage_in_cells, 2900, 2995),
    ],
    ids=["random-bytes", "truncated", "three-garbage-pages", "garbage-in-cells"],
)
def test_a_corrupt_spool_is_set_aside_and_its_readable_rows_kept(
    tmp_path: Path,
    damage: Callable[[Path, random.Random], None],
    at_least: int,
    at_most: int,
) -> None:
    path = tmp_path / "spool.sqlite"
    made = filled(path)
    damage(path, random.Random(7))
    with structlog.testing.capture_logs() as logs:
        s = Spool(path, 1_000_000, 1 << 30, run_id="r2")
    # One ERROR line, naming where the file went; the node keeps running.
    (err,) = spool_errors(logs)
    assert err["event"].startswith("spool corrupt")
    aside = sorted(tmp_path.glob("spool.sqlite.corrupt-*"))
    assert [p.name for p in aside] == [err["moved_to"]]
    assert err["salvaged"] == s.depth() == s.salvaged and s.corrupt == 1
    # Whatever came back is the original rows, in their order.
    got = s.read(0, 10_000)
    assert at_least <= len(got) <= at_most
    assert all(made[r.id] == r for r in got)
    assert [r.id for r in got] == sorted(r.id for r in got)
    # The fresh spool works, its new rows after the salvaged ones.
    assert all(r.id < s.first_id for r in got)
    new = SpoolRow(s.first_id, 9999, 1.8e9, b'{"seq":9999}')
    assert s.commit([new], []).depth == len(got) + 1
    assert s.read(0, 10_000)[-1] == new
    s.close()
    assert Spool(path, 1_000_000, 1 << 30).depth() == len(got) + 1  # and it reopens


def test_a_damaged_free_list_is_found_at_open_before_a_write_trips_on_it(
    tmp_path: Path,
) -> None:
    """Reading every row does not touch the free list; the next write takes pages from it.
    quick_check at open finds it while nothing depends on the spool yet."""
    path = tmp_path / "spool.sqlite"
    made = filled(path)
    s = Spool(path, 1_000_000, 1 << 30)
    s.commit([], sorted(made)[:1500])  # the oldest half delivered: their pages are free
    s.close()
    kept = {i: made[i] for i in sorted(made)[1500:]}
    with path.open("r+b") as f:
        f.seek(32)  # the header's first free-list trunk page
        trunk = int.from_bytes(f.read(4), "big")
        assert trunk > 0
        f.seek((trunk - 1) * PAGE)
        f.write(random.Random(1).randbytes(PAGE))
    with structlog.testing.capture_logs() as logs:
        s = Spool(path, 1_000_000, 1 << 30)
    assert len(spool_errors(logs)) == 1 and s.corrupt == 1
    assert {r.id: r for r in s.read(0, 10_000)} == kept  # every row was still readable
    s.close()


FRAME = 24 + PAGE  # a WAL frame: its header, then the page


def wal_spool(path: Path) -> tuple[Spool, list[SpoolRow], int]:
    """Rows 0..999 in the main file, then two more commits (1000..1099, 1100..1199)
    that are only in the WAL; returns the WAL's size before the last commit too."""
    filled(path, 1000)
    s = Spool(path, 1_000_000, 1 << 30, run_id="r2")
    first = s.first_id
    later = [
        SpoolRow(first + i, i, 1.8e9, json.dumps({"seq": i, "pad": "y" * 200}).encode())
        for i in range(200)
    ]
    s.commit(later[:100], [])
    before_last = path.with_name(path.name + "-wal").stat().st_size
    s.commit(later[100:], [])
    return s, later, before_last


def newest_leaf_frame(wal: Path, start: int) -> int:
    """The offset of the frame, past ``start``, holding the highest page number: a leaf
    the last commit added (never the table's root)."""
    data = wal.read_bytes()
    frames = range(start, len(data) - FRAME + 1, FRAME)
    return max(frames, key=lambda at: int.from_bytes(data[at : at + 4], "big"))


def test_a_corrupt_wal_left_by_a_crash_keeps_the_commits_before_the_damage(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.sqlite"
    s, later, before_last = wal_spool(path)
    crash = tmp_path / "crash"
    crash.mkdir()
    # What a power cut leaves: the main file and the WAL, no -shm.
    shutil.copy(path, crash / path.name)
    shutil.copy(path.with_name(path.name + "-wal"), crash / (path.name + "-wal"))
    s.close()
    wal = crash / (path.name + "-wal")
    at = newest_leaf_frame(wal, before_last)
    with wal.open("r+b") as f:  # garbage in a page of the last commit
        f.seek(at + 24)
        f.write(random.Random(3).randbytes(PAGE))
    with structlog.testing.capture_logs() as logs:
        s = Spool(crash / path.name, 1_000_000, 1 << 30, run_id="r3")
    # SQLite checks each WAL frame's checksum and stops at the first bad one: the last
    # commit is gone, the earlier ones are whole, and nothing is corrupt.
    assert spool_errors(logs) == []
    got = s.read(0, 10_000)
    assert len(got) == 1100 and got[-100:] == later[:100]
    assert s.corrupt == 0
    s.close()


def test_a_wal_damaged_under_a_running_spool_is_healed_at_the_next_statement(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.sqlite"
    s, later, before_last = wal_spool(path)
    made = {r.id: r for r in s.read(0, 10_000)}
    assert len(made) == 1200
    wal = path.with_name(path.name + "-wal")
    at = newest_leaf_frame(wal, before_last)
    with wal.open("r+b") as f:  # a page of the last commit, under the running spool
        f.seek(at + 24)
        f.write(random.Random(5).randbytes(PAGE))
    s._conn().execute("PRAGMA shrink_memory")  # let the next read come from the file
    with structlog.testing.capture_logs() as logs:
        got = s.read(0, 10_000)
    (err,) = spool_errors(logs)
    assert err["event"].startswith("spool corrupt")
    assert s.corrupt == 1
    # Everything but the damaged page's rows, unchanged and in order.
    assert 1150 <= len(got) < 1200
    assert all(made[r.id] == r for r in got)
    assert [r.id for r in got] == sorted(r.id for r in got)
    # The same run goes on writing, after what was salvaged.
    more = [SpoolRow(later[-1].id + 1, 5000, 1.9e9, b'{"seq":5000}')]
    assert s.commit(more, []).depth == len(got) + 1
    s.close()


def test_corruption_found_by_a_later_statement_is_healed(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    made = filled(path)
    s = Spool(path, 1_000_000, 1 << 30, run_id="r2")
    three_garbage_pages(path, random.Random(11))
    s._conn().execute("PRAGMA shrink_memory")
    with structlog.testing.capture_logs() as logs:
        got = s.read(0, 10_000)  # what the sender does after a reconnect
    assert len(spool_errors(logs)) == 1 and s.corrupt == 1
    assert 2900 <= len(got) < 3000
    assert all(made[r.id] == r for r in got)
    first = SpoolRow(s.first_id, 1, 1.8e9, b'{"seq":1}')
    assert s.commit([first], []).depth == len(got) + 1
    s.close()


def test_at_most_three_corrupt_spools_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    for i in range(5):
        path.write_bytes(b"not a database, take %d " % i * 200)
        with structlog.testing.capture_logs():
            Spool(path, 10, 1 << 20).close()
    aside = [
        p for p in tmp_path.glob("spool.sqlite.corrupt-*") if p.name[-4:] not in ("-wal", "-shm")
    ]
    # The newest three, whatever their names sort like (several in one second: -2 .. -5).
    assert sorted(p.read_bytes()[:22] for p in aside) == [
        b"not a database, take %d" % i for i in (2, 3, 4)
    ]


def test_a_database_that_is_not_a_spool_is_set_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE spool (name TEXT, value TEXT)")
    db.commit()
    db.close()
    with structlog.testing.capture_logs() as logs:
        s = Spool(path, 10)
    (err,) = spool_errors(logs)
    assert "columns" in err["error"] and s.depth() == 0
    assert s.commit([SpoolRow(s.first_id, 0, 1.0, b"{}")], []).depth == 1
    s.close()


def test_a_spool_that_could_not_be_rebuilt_tries_again_at_its_next_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsqd.sinks.spool.file as spool_module

    path = tmp_path / "spool.sqlite"
    filled(path, 100)
    s = Spool(path, 1000, 1 << 30)
    real = spool_module.allocate_run
    fail = [True]

    def flaky(*args: Any, **kw: Any) -> int:
        if fail.pop() if fail else False:
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kw)

    monkeypatch.setattr(spool_module, "allocate_run", flaky)
    random_bytes(path, random.Random(2))
    s._conn().execute("PRAGMA shrink_memory")
    with structlog.testing.capture_logs(), pytest.raises(OutputError, match="fresh spool"):
        s.read(0, 10)  # corrupt: set aside, but the fresh file cannot be finished
    assert s.read(0, 10) == []  # the next use opens it
    assert s.commit([SpoolRow(s.first_id, 0, 1.0, b"{}")], []).depth == 1
    s.close()


# -- keys two runs cannot share, and the version-1 file --


def test_two_runs_on_one_file_never_share_a_row_id(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    a = Spool(path, 100, run_id="a")
    b = Spool(path, 100, run_id="b")  # both open at once, as two processes would
    assert a.first_id != b.first_id
    a.commit([SpoolRow(a.first_id + i, i, 1.0, b"a") for i in range(10)], [])
    b.commit([SpoolRow(b.first_id + i, i, 1.0, b"b") for i in range(10)], [])
    c = Spool(path, 100, run_id="c")
    assert c.depth() == 20  # nothing silently ignored
    assert c.first_id > max(a.first_id, b.first_id)
    assert [r.payload for r in c.read(0, 100)] == [b"a"] * 10 + [b"b"] * 10
    # Runs whose rows are all gone are forgotten.
    c.commit([], [r.id for r in c.read(0, 100)])
    d = Spool(path, 100, run_id="d")
    assert [r[0] for r in d._conn().execute("SELECT run_id FROM runs")] == ["d"]
    for s in (a, b, c, d):
        s.close()


V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    t_submit REAL NOT NULL,
    payload BLOB NOT NULL
)
"""


def v1_spool(path: Path, n: int) -> None:
    """A spool as fsqd 0.1 wrote it: WAL, the version-1 table, no user_version."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(V1_SCHEMA)
    db.executemany(
        "INSERT INTO spool VALUES (?, ?, ?, ?)",
        [(i, 100 + i, 1.7e9 + i, f'{{"seq":{100 + i}}}'.encode()) for i in range(1, n + 1)],
    )
    db.close()


def test_a_version_1_spool_is_upgraded_and_its_rows_come_first(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    v1_spool(path, 50)
    with structlog.testing.capture_logs() as logs:
        s = Spool(path, 1000, run_id="new")
    assert [e["event"] for e in logs] == ["spool upgraded"] and logs[0]["codes"] == 50
    assert s._conn().execute("PRAGMA user_version").fetchone()[0] == 2
    assert s.depth() == 50 and s.first_id > 50
    s.commit([SpoolRow(s.first_id, 7, 1.8e9, b'{"seq":7}')], [])
    assert [r.seq for r in s.read(0, 100)] == [*range(101, 151), 7]
    s.close()


# -- the byte budget --


def sized(first: int, n: int, size: int) -> list[SpoolRow]:
    return [SpoolRow(first + i, i, 1.0, b"x" * (size - ROW_OVERHEAD)) for i in range(n)]


def test_the_byte_budget_drops_the_oldest(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 1_000_000, 100 * 1000)  # 100 rows of 1000 bytes
    first = s.first_id
    r = s.commit(sized(first, 80, 1000), [])
    assert (r.inserted, r.dropped, r.depth, r.bytes) == (80, 0, 80, 80_000)
    r = s.commit(sized(first + 80, 50, 1000), [])
    assert (r.inserted, r.dropped, r.depth, r.bytes) == (50, 30, 100, 100_000)
    assert s.read(0, 1)[0].id == first + 30
    # A batch bigger than the budget on its own: only its newest part is written.
    r = s.commit(sized(first + 130, 250, 1000), [])
    assert (r.inserted, r.dropped, r.depth, r.accepted) == (100, 250, 100, 250)
    assert [x.id for x in s.read(0, 1000)] == list(range(first + 280, first + 380))
    # Deletes give the bytes back.
    r = s.commit([], [first + 280, first + 281])
    assert (r.deleted, r.bytes) == (2, 98_000)
    s.close()
    assert Spool(tmp_path / "s.db", 1_000_000, 100 * 1000).size_bytes() == 98_000


def test_a_drained_spool_gives_its_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = Spool(path, 1_000_000, 1 << 30)
    s.commit(sized(s.first_id, 2000, 500), [])
    s._checkpoint()
    big = path.stat().st_size
    assert big > 1_000_000
    s.commit([], [r.id for r in s.read(0, 5000)])
    assert path.stat().st_size < big // 20
    s.close()
