"""What the command line prints that is more than a line: ``fsqd model inspect``'s report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

__all__ = ["jsonable", "render_inspect"]


def jsonable(o: object) -> object:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)  # type: ignore[call-overload]
    raise TypeError(type(o).__name__)


def render_inspect(info: dict[str, Any]) -> str:
    lines: list[str] = []
    card = info.get("card")
    if card is not None:
        lines += [
            f"model      {info['model']}  ({info['package']})",
            f"about      {card.description or '-'}",
            f"stream     {card.sample_rate_hz:g} Hz, window {card.window}, hop {card.hop}, "
            f"{card.devices} device(s)",
            "channels   " + ", ".join(f"{c.name} [{c.unit}]" for c in card.channels),
            f"normalise  mean [{', '.join(f'{v:.5g}' for v in card.mean)}]",
            f"           std  [{', '.join(f'{v:.5g}' for v in card.std)}]",
            f"input      {card.input.name} {list(card.input.shape)} layout {card.input.layout}",
            f"output     {card.output.name} ({card.output.stage} stage, width {card.output.width})",
            f"fsq        levels {list(card.levels)}, {card.codebook_size} codes",
            "head       " + (", ".join(card.head.labels) if card.head else "none"),
        ]
        lines += _render_graph(info["graph"])
        for k, v in card.provenance.items():
            lines.append(f"provenance {k}: {v}")
        if info.get("hef"):
            lines.append(f"hef        {info['hef']['file']} (present: {info['hef']['present']})")
    if "import" in info:
        lines += _render_preview(info["import"])
    for role, f in info["files"].items():
        lines.append(f"[{role}] {f['file']} (opset {f['opset']})")
        for io in ("inputs", "outputs"):
            for t in f[io]:
                lines.append(f"  {io[:-1]:<6} {t['name']} {t['shape']} {t['type']}")
        ops = ", ".join(f"{k} x{v}" for k, v in f["operators"].items())
        lines.append(f"  ops    {ops}")
        blockers = f["hailo8_unsupported"]
        if blockers:
            for op, why in blockers.items():
                lines.append(f"  hailo8 cannot run {op}: {why}")
        else:
            lines.append("  hailo8 no unsupported operators")
    return "\n".join(lines)


def _render_preview(p: dict[str, Any]) -> list[str]:
    """What `fsqd model import` would find in a full export."""
    if p["fsq"] is None:
        return [f"import     would fail: {p['problem']}"]
    heads = p["head_candidates"]
    if not heads:
        head = "no head (codes only)"
    elif len(heads) == 1:
        head = f"head -> {heads[0]}"
    else:
        head = f"several head candidates ({', '.join(heads)}): pass --head-output"
    rate = p["sample_rate_hz"]
    return [
        f"fsq        levels {p['fsq']['levels']}, Round {p['fsq']['round']}, "
        f"cut at {p['fsq']['end_node']}",
        f"import     {head}; FSQ indices: {', '.join(p['index_outputs']) or 'none'}; "
        + (f"sample rate {rate} Hz (metadata)" if rate else "no sample rate: pass --rate"),
    ]


def _render_graph(g: dict[str, Any]) -> list[str]:
    """The FSQ constants found in encoder.onnx and whether the card agrees with them."""
    bound = g["bound_in_graph"]
    if bound is None:
        found = "no FSQ bound at the encoder's end (the host applies it)"
    else:
        nums = ", ".join(f"{k} [{', '.join(f'{v:.7g}' for v in bound[k])}]" for k in
                         ("half_l", "offset", "shift"))  # fmt: skip
        found = f"bound {' -> '.join(bound['nodes'])}: levels {bound['levels']}, {nums}"
    verdict = "agrees with the card" if g["agrees"] else f"DISAGREES: {g['problem']}"
    batch = g["fixed_batch"]
    return [
        f"graph      {found}",
        f"           {verdict} (stage {g['card_stage']}, levels {g['card_levels']})",
        "batch      "
        + ("dynamic" if batch is None else f"fixed {batch} (inputs are sliced and padded)"),
    ]
