"""The report as one self-contained HTML page: every chart inline as a data: URI, no network."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from fsqd.fleet.analysis import PERCENTILES, DayReport

__all__ = ["DaySection", "Page", "render"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-top: 1px solid #ccc;
padding-top: .8em; } table { border-collapse: collapse; margin: .5em 0; font-size: .85em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; } img { display: block; margin: .5em 0; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
"""


@dataclass
class DaySection:
    day: DayReport
    charts: dict[str, bytes]  # budget, timeline, durations, perplexity
    gaps: list[Mapping[str, object]] = field(default_factory=list)


@dataclass
class Page:
    title: str
    store: str
    fleet_charts: dict[str, bytes]  # completeness, latency (when stats had histograms)
    latency: dict[str, dict[str, float]]  # "fleet" and each node -> percentile -> ms
    days: list[DaySection]


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _utc(t: object) -> str:
    return "" if t is None else time.strftime("%H:%M:%S", time.gmtime(float(t)))  # type: ignore[arg-type]


def _day(s: DaySection) -> str:
    d = s.day
    share = d.budget_share
    budget = _table(
        ["behaviour", "share", "hours"],
        [[b, f"{100 * share[b]:.1f} %", f"{d.budget_s[b] / 3600:.2f}"] for b in share],
    )
    c = d.completeness
    source = "its behaviour states' segments" if d.source == "events" else "its codes' labels"
    comp = f"<p>Behaviour from {source}.</p>" + (
        f"<p>Windows present: {c.present} of {c.expected} expected "
        f"({100 * c.share:.2f} %); missing stretches: {len(c.gaps)}.</p>"
        if c
        else "<p>No codes this day.</p>"
    )
    gaps = ""
    if s.gaps:
        gaps = _table(
            ["run", "from seq", "to seq", "first seen (UTC)", "closed by late arrival"],
            [
                [str(g["run"]), str(g["from_seq"]), str(g["to_seq"]), _utc(g["first_seen"]),
                 _utc(g["closed_at"]) if g["closed_by_late_arrival"] else "no"]
                for g in s.gaps
            ],
        )  # fmt: skip
    ch = s.charts
    return (
        f'<h2 id="{html.escape(d.node)}-{d.date}">{html.escape(d.node)} &middot; {d.date}</h2>'
        f'<div class="row">{_img(ch["budget"], "activity budget")}{budget}</div>'
        f"{_img(ch['timeline'], 'behaviour timeline')}{comp}{gaps}"
        f'<div class="row">{_img(ch["durations"], "state durations")}'
        f"{_img(ch['perplexity'], 'code-usage perplexity')}</div>"
    )


def render(page: Page) -> str:
    lat = ""
    if page.latency:
        head = ["", *[f"p{q:g}" for q in PERCENTILES], "max", "count"]
        rows = [
            [name, *[f"{v[f'p{q:g}']:.1f}" for q in PERCENTILES], f"{v['max']:.1f}",
             f"{v['count']:.0f}"]
            for name, v in page.latency.items()
        ]  # fmt: skip
        lat = "<p>End-to-end latency (ms), merged histograms:</p>" + _table(head, rows)
    fleet = "".join(_img(png, name) for name, png in page.fleet_charts.items())
    index = "".join(
        f'<li><a href="#{html.escape(s.day.node)}-{s.day.date}">{html.escape(s.day.node)} '
        f"{s.day.date}</a></li>"
        for s in page.days
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(page.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(page.title)}</h1><p>Store: {html.escape(page.store)}</p>"
        f"<h2>Fleet</h2>{fleet}{lat}<ul>{index}</ul>"
        + "".join(_day(s) for s in page.days)
        + "</body></html>"
    )
