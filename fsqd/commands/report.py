"""``fsqd report STORE [--node N] [--from D] [--to D] --out DIR``: charts and one HTML page.

Per node and UTC day: the activity budget, the behaviour timeline with the missing
windows, state durations, code-usage perplexity, completeness; for the fleet, the
latency percentiles of every node's merged HdrHistograms. PNG files and ``report.html``
(the same charts inline) go to DIR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fsqd.errors import DataError, NoInputError, OutputError, UsageError

__all__ = ["ReportOptions", "report"]


@dataclass(frozen=True)
class ReportOptions:
    store: Path
    out: Path
    nodes: tuple[str, ...] = ()
    first: str | None = None  # UTC dates YYYY-MM-DD, inclusive
    last: str | None = None
    title: str = "fsqd fleet report"
    written: list[Path] = field(default_factory=list, compare=False)


def report(opts: ReportOptions) -> int:
    if not opts.store.is_dir():
        raise NoInputError(f"{opts.store}: no such store directory")
    try:
        import matplotlib  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(
            "fsqd report needs pyarrow and matplotlib: pip install 'fsqd[fleet]'"
        ) from None
    from fsqd.fleet.build import build_report

    if opts.out.exists() and not opts.out.is_dir():
        raise OutputError(f"{opts.out}: is not a directory; --out takes a directory")
    # DIR is created only once the store has given everything the report needs: bad input
    # (no data for the dates, a bad date) leaves no empty directory behind.
    page_path = build_report(opts.store, opts.out, opts.nodes, opts.first, opts.last, opts.title)
    if page_path is None:
        raise DataError(f"{opts.store}: no codes or events for the nodes and dates asked for")
    print(page_path)
    return 0
