"""The MQTT sink's durable queue: codes the broker has not acknowledged, on disk.

``store`` (``Spool``: bounded, batched SQLite commits that survive corruption and a full
disk), ``rows`` (rows, commit results, batching), ``file`` (opening, salvaging, dropping
the oldest), ``repair`` (telling and salvaging a corrupt file), ``schema`` (tables and the
run counter behind unique ids), ``space`` (the size bound and the free-space reserve) and
``backlog`` (the bounded in-memory queue in front of the disk).
"""

from fsqd.sinks.spool.backlog import Backlog, QueuedCode
from fsqd.sinks.spool.file import ROW_OVERHEAD
from fsqd.sinks.spool.rows import CommitResult, SpoolRow
from fsqd.sinks.spool.store import Spool

__all__ = ["ROW_OVERHEAD", "Backlog", "CommitResult", "QueuedCode", "Spool", "SpoolRow"]
