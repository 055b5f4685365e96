"""The report's charts as PNG bytes (matplotlib, Agg: no display needed).

Each behaviour keeps one colour on every chart of a report (``palette``), so the
timeline, the budget and the durations read together.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fsqd.fleet.analysis import PERCENTILES, DayReport, day_bounds
from fsqd.hdrhistogram import HdrHistogram

__all__ = [
    "GAP_COLOUR",
    "budget_png",
    "completeness_png",
    "durations_png",
    "latency_png",
    "palette",
    "perplexity_png",
    "timeline_png",
]

GAP_COLOUR = "#d62728"
_COLOURS = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31"]  # fmt: skip
DPI = 100


def palette(behaviours: list[str]) -> dict[str, str]:
    return {b: _COLOURS[i % len(_COLOURS)] for i, b in enumerate(sorted(set(behaviours)))}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _day_axis(ax: Axes) -> None:
    """Hours of the UTC day, 00:00 to 24:00."""
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])


def budget_png(day: DayReport, colours: dict[str, str]) -> bytes:
    share = day.budget_share
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * max(len(share), 1)), layout="constrained")
    names = list(share)
    ax.barh(names, [100 * share[n] for n in names], color=[colours[n] for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the coded time (%)")
    ax.set_title(f"{day.node} {day.date}: activity budget (from {day.source})")
    return _png(fig)


def timeline_png(day: DayReport, colours: dict[str, str]) -> bytes:
    lo, _ = day_bounds(day.date)
    fig, ax = plt.subplots(figsize=(10, 1.8), layout="constrained")
    for name in colours:
        spans = [
            ((s.start - lo) / 3600, s.duration_s / 3600)
            for s in day.segments
            if s.behaviour == name
        ]
        if spans:
            ax.broken_barh(spans, (0.3, 0.6), color=colours[name], label=name)
    gaps = day.completeness.gaps if day.completeness else []
    if gaps:
        # At least a minute wide, so a lost window or two still shows at this scale.
        spans = [((a - lo) / 3600, max(b - a, 60.0) / 3600) for a, b in gaps]
        ax.broken_barh(spans, (0.0, 0.25), color=GAP_COLOUR, label="missing windows")
    _day_axis(ax)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_title(f"{day.node} {day.date}: behaviour timeline (UTC), missing windows below")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    return _png(fig)


def durations_png(day: DayReport, colours: dict[str, str]) -> bytes:
    d = day.durations()
    names = sorted(d)
    fig, ax = plt.subplots(figsize=(6, 2.6), layout="constrained")
    if names:
        box = ax.boxplot(
            [d[n] for n in names], orientation="horizontal", patch_artist=True, tick_labels=names
        )
        for patch, n in zip(box["boxes"], names, strict=True):
            patch.set_facecolor(colours[n])
        ax.set_xscale("log")
    ax.set_xlabel("segment duration (s)")
    ax.set_title(f"{day.node} {day.date}: state durations")
    return _png(fig)


def perplexity_png(day: DayReport) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 2.4), layout="constrained")
    lo, _ = day_bounds(day.date)
    if day.perplexity:
        xs = [(t - lo) / 3600 + 0.5 for t, _ in day.perplexity]  # the hour's middle
        ax.plot(xs, [v for _, v in day.perplexity], marker="o", color="#1f77b4")
    _day_axis(ax)
    ax.set_ylabel("perplexity (codes)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{day.node} {day.date}: code-usage perplexity per hour")
    return _png(fig)


def completeness_png(days: list[DayReport]) -> bytes:
    """One bar per node-day: the share of the expected windows that are in the store."""
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.3 * max(len(days), 1)), layout="constrained")
    names = [f"{d.node} {d.date}" for d in days]
    shares = [100 * (d.completeness.share if d.completeness else 0.0) for d in days]
    ax.barh(names, shares, color="#2ca02c")
    ax.barh(names, [100 - s for s in shares], left=shares, color=GAP_COLOUR)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("windows present (%), missing in red")
    ax.set_title("data completeness")
    return _png(fig)


def latency_png(fleet: HdrHistogram, per_node: dict[str, HdrHistogram]) -> bytes:
    """Latency by percentile (the HdrHistogram view): the fleet's merged histogram, each node."""
    fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
    qs = [0.0, 25.0, *PERCENTILES, 99.99]
    xs = [1.0 / (1.0 - q / 100.0) for q in qs]
    for node, h in sorted(per_node.items()):
        ax.plot(
            xs, [h.get_value_at_percentile(q) / 1000 for q in qs], lw=0.8, alpha=0.5, label=node
        )
    ax.plot(xs, [fleet.get_value_at_percentile(q) / 1000 for q in qs], lw=2.5, color="black",
            label="fleet (merged)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{q:g}" for q in qs])
    ax.set_xlabel("percentile")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("latency percentiles from the merged HdrHistograms of every stats message")
    ax.legend(fontsize=7, frameon=False, ncols=2)
    return _png(fig)
