"""The report from the store: read each node-day, analyse, draw, write the PNGs and the page."""

from __future__ import annotations

from pathlib import Path

from fsqd.errors import OutputError
from fsqd.fleet import charts
from fsqd.fleet.analysis import PERCENTILES, analyse_day, merged_latency
from fsqd.fleet.dataset import gaps_table, node_days, read_partition
from fsqd.fleet.html import DaySection, Page, render
from fsqd.hdrhistogram import HdrHistogram
from fsqd.outfile import binary_output

__all__ = ["build_report", "latency_summary", "make_dir", "write_file"]


def latency_summary(h: HdrHistogram) -> dict[str, float]:
    out = {f"p{q:g}": h.get_value_at_percentile(q) / 1000 for q in PERCENTILES}
    return {**out, "max": h.get_max_value() / 1000, "count": float(h.get_total_count())}


def build_report(
    store: Path, out: Path, nodes: tuple[str, ...], first: str | None, last: str | None, title: str
) -> Path | None:
    days = node_days(store, nodes, first, last)
    if not days:
        return None
    gaps = [g for g in gaps_table(store).to_pylist() if g["confirmed"]]
    analysed = []
    behaviours: set[str] = set()
    blobs: dict[str, list[str]] = {}
    for nd in days:
        codes = read_partition(store, "codes", nd.node, nd.date)
        events = read_partition(store, "events", nd.node, nd.date)
        day = analyse_day(nd.node, nd.date, codes, events)
        analysed.append(day)
        behaviours |= set(day.budget_s)
        stats = read_partition(store, "stats", nd.node, nd.date)
        blobs.setdefault(nd.node, []).extend(b for b in stats.column("hdr_e2e").to_pylist() if b)
    make_dir(out)  # only now: every day read and analysed, nothing refused
    colours = charts.palette(sorted(behaviours))
    sections = []
    for day in analysed:
        pngs = {
            "budget": charts.budget_png(day, colours),
            "timeline": charts.timeline_png(day, colours),
            "durations": charts.durations_png(day, colours),
            "perplexity": charts.perplexity_png(day),
        }
        for name, png in pngs.items():
            write_file(out / f"{day.node}_{day.date}_{name}.png", png)
        day_gaps = [g for g in gaps if g["node"] == day.node and g["date"] == day.date]
        sections.append(DaySection(day, pngs, day_gaps))
    fleet_charts = {"completeness": charts.completeness_png(analysed)}
    per_node = {n: h for n, b in blobs.items() if (h := merged_latency(b)) is not None}
    latency: dict[str, dict[str, float]] = {}
    if per_node:
        hists = list(per_node.values())
        fleet = hists[0].copy()
        for h in hists[1:]:
            fleet.add(h)
        fleet_charts["latency"] = charts.latency_png(fleet, per_node)
        latency = {"fleet": latency_summary(fleet)}
        latency |= {n: latency_summary(h) for n, h in sorted(per_node.items())}
    for name, png in fleet_charts.items():
        write_file(out / f"fleet_{name}.png", png)
    page = out / "report.html"
    write_file(page, render(Page(title, str(store), fleet_charts, latency, sections)).encode())
    return page


def make_dir(out: Path) -> None:
    """The report's directory (and its parents), created when missing."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create it: {e.strerror or e}") from None


def write_file(path: Path, data: bytes) -> None:
    """One file of the report, as every output is written (``fsqd.outfile``: whole or not
    at all, a symlink or a FIFO never replaced); a full disk is one line, exit 74."""
    with binary_output(path) as fh:
        try:
            fh.write(data)
        except OSError as e:
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
