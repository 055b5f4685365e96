"""What an MQTT outage costs the disk: spool writes for N hours at R codes per second.

Drives ``fsqd.sinks.spool.Spool`` exactly as ``MqttSink`` does while the broker is
away (one commit per ``--commit`` seconds carrying that interval's codes), but
without waiting in real time, then drains it as a returning broker would (acks
deleted in batches). Reports commits, write syscalls and bytes (/proc/self/io),
bytes the kernel sent to the block layer (write_bytes; 0 on tmpfs/overlay), the
database and WAL sizes, and fsyncs when run under strace:

    PYTHONPATH=$PWD python tools/bench_spool.py --hours 1 --rate 10
    PYTHONPATH=$PWD strace -f -c -e trace=fsync,fdatasync python tools/bench_spool.py

Payloads are real ``codes`` messages from ``fsqd.sinks.payload.CodeMessages``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from fsqd.sinks.payload import CodeMessages
from fsqd.sinks.spool import Spool, SpoolRow
from fsqd.types import CodeBatch


def io_counters() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        k, v = line.split(":")
        out[k] = int(v)
    return out


def payloads(n: int) -> list[bytes]:
    batch = CodeBatch(
        index=np.arange(n, dtype=np.int64) * 97 % 4800,
        digits=np.tile(np.array([7, 5, 4, 4, 3], dtype=np.int64), (n, 1)),
        codes=np.zeros((n, 5), np.float32),
        label_id=np.arange(n, dtype=np.int64) % 10,
        p=np.full(n, 0.8731, np.float32),
    )
    t_end = 1_790_000_000.0 + np.arange(n) * 0.1
    labels = tuple(f"behaviour_{i}" for i in range(10))
    return CodeMessages("3f9c2a71d0e4", "default@1.0.0", labels)(
        0, batch, t_end - 0.99, t_end, np.full(n, 0.0042), True
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=10.0, help="codes per second (100 Hz, hop 10)")
    ap.add_argument("--commit", type=float, default=1.0, help="seconds between commits")
    ap.add_argument("--drain-batch", type=int, default=200, help="acks deleted per commit")
    ap.add_argument("--dir", type=Path, help="where to put the spool (default: a temp dir)")
    args = ap.parse_args()

    per_commit = round(args.rate * args.commit)
    commits = round(args.hours * 3600 / args.commit)
    sample = payloads(per_commit)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "spool.sqlite"
        spool = Spool(path, 10_000_000)
        io0 = io_counters()
        t0 = time.perf_counter()
        next_id = 1
        for _ in range(commits):
            rows = [SpoolRow(next_id + i, next_id + i, 1.79e9, p) for i, p in enumerate(sample)]
            spool.commit(rows, [])
            next_id += per_commit
        t_outage = time.perf_counter() - t0
        io1 = io_counters()
        db_mb = path.stat().st_size / 1e6
        wal = path.with_name(path.name + "-wal")
        wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
        outage_commits = spool.commits
        ids = list(range(1, next_id))
        for i in range(0, len(ids), args.drain_batch):
            spool.commit([], ids[i : i + args.drain_batch])
        io2 = io_counters()
        spool.close()

    codes = next_id - 1
    print(f"outage: {args.hours:g} h at {args.rate:g} codes/s, a commit every {args.commit:g} s")
    print(f"  codes spooled          {codes}  ({len(sample[0])} bytes each)")
    print(f"  commits                {outage_commits}")
    print(f"  write syscalls         {io1['syscw'] - io0['syscw']}")
    print(f"  bytes written          {(io1['wchar'] - io0['wchar']) / 1e6:.1f} MB (wchar)")
    print(f"  to the block layer     {(io1['write_bytes'] - io0['write_bytes']) / 1e6:.1f} MB")
    print(f"  spool file / WAL       {db_mb:.1f} MB / {wal_mb:.1f} MB")
    print(f"  CPU time               {t_outage:.2f} s")
    print(f"drain: {spool.commits - outage_commits} commits of {args.drain_batch} deletes")
    print(f"  write syscalls         {io2['syscw'] - io1['syscw']}")
    print(f"  bytes written          {(io2['wchar'] - io1['wchar']) / 1e6:.1f} MB (wchar)")


if __name__ == "__main__":
    main()
