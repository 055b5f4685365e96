"""The on-disk spool: order, batching, bounds, durability across processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fsqd.errors import OutputError
from fsqd.sinks.spool import Spool, SpoolRow


def rows(ids: range) -> list[SpoolRow]:
    return [SpoolRow(i, 1000 + i, 1.7e9 + i / 10, f'{{"seq":{1000 + i}}}'.encode()) for i in ids]


def test_wal_and_synchronous_normal(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 100)
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
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


def test_corrupt_file_is_output_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutputError, match="cannot open the spool"):
        Spool(path, 10)


def test_failed_commit_rolls_back(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", 10)
    s.commit(rows(range(1, 3)), [])
    s._db.execute("DROP TABLE spool")
    s._db.execute("CREATE TABLE spool (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    with pytest.raises(OutputError, match="spool write failed"):
        s.commit(rows(range(3, 4)), [])
    assert not s._db.in_transaction
    s.close()
    assert (
        sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 0
    )
