"""What `fsqd model inspect` reports: card, I/O, operators, and what a Hailo-8 cannot run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from fsqd.backends.onnx import open_session
from fsqd.errors import ModelError
from fsqd.model.graphcheck import check_graph
from fsqd.model.onnxio import load_onnx
from fsqd.model.package import ModelPackage
from fsqd.model.surgery import Graph, find_fsq, head_candidates, index_outputs

# Operators the Hailo-8 Dataflow Compiler does not map to the chip. Round is why the FSQ
# runs on the host; control flow and data-dependent ops have no dataflow equivalent.
HAILO8_UNSUPPORTED = {
    "Round": "no rounding on the Hailo-8: cut the model before it (FSQ runs on the host)",
    "If": "control flow is not compiled",
    "Loop": "control flow is not compiled",
    "Scan": "control flow is not compiled",
    "NonZero": "data-dependent output shape",
    "Unique": "data-dependent output shape",
    "RandomNormal": "random generators are not compiled",
    "RandomUniform": "random generators are not compiled",
    "Multinomial": "random generators are not compiled",
}


def onnx_summary(path: Path) -> dict[str, Any]:
    """Inputs, outputs (as onnxruntime sees them), operator counts and Hailo blockers."""
    model = load_onnx(path)
    sess = open_session(path)
    ops = Counter(n.op_type for n in model.graph.node)
    blockers = {op: HAILO8_UNSUPPORTED[op] for op in sorted(ops) if op in HAILO8_UNSUPPORTED}
    return {
        "file": str(path),
        "opset": max(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None
        ),
        "inputs": [{"name": i.name, "shape": i.shape, "type": i.type} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "shape": o.shape, "type": o.type} for o in sess.get_outputs()],
        "operators": dict(sorted(ops.items())),
        "hailo8_unsupported": blockers,
    }


def import_preview(path: Path) -> dict[str, Any]:
    """What `fsqd model import` would find in a full export: the FSQ, the head, the indices."""
    model = load_onnx(path)
    graph = Graph(model)
    try:
        site = find_fsq(graph)
    except ModelError as e:
        return {"fsq": None, "problem": str(e)}
    heads = head_candidates(graph, site.codes) if site.codes else []
    meta = {p.key: p.value for p in model.metadata_props}
    return {
        "fsq": {"levels": list(site.levels), "end_node": site.end_node, "round": site.round_node},
        "head_candidates": heads,
        "index_outputs": index_outputs(graph, site.codes) if site.codes else [],
        "sample_rate_hz": next((meta[k] for k in ("sample_rate_hz", "rate_hz") if k in meta), None),
        "problem": None,
    }


def graph_summary(pkg: ModelPackage) -> dict[str, Any]:
    """The FSQ bound found in the encoder, whether it agrees with the card, the batch size."""
    model = load_onnx(pkg.encoder_onnx)
    check = check_graph(pkg.card, model)
    found = check.found
    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for i in model.graph.input
        if i.name == pkg.card.input.name
        for d in i.type.tensor_type.shape.dim[:1]
    ]
    batch = dims[0] if dims and dims[0] else None
    return {
        "card_stage": check.card_stage,
        "card_levels": list(check.card_levels),
        "bound_in_graph": None
        if found is None
        else {
            "nodes": list(found.nodes),
            "levels": list(found.levels),
            "half_l": list(found.half_l),
            "offset": list(found.offset),
            "shift": list(found.shift),
        },
        "agrees": check.agrees,
        "problem": check.problem,
        "fixed_batch": batch,
    }


def inspect_package(pkg: ModelPackage) -> dict[str, Any]:
    files: dict[str, Any] = {"encoder": onnx_summary(pkg.encoder_onnx)}
    if pkg.head_onnx is not None:
        files["head"] = onnx_summary(pkg.head_onnx)
    hef = pkg.encoder_hef
    return {
        "package": str(pkg.path),
        "model": pkg.label,
        "card": pkg.card,
        "graph": graph_summary(pkg),
        "files": files,
        "hef": None if hef is None else {"file": str(hef), "present": hef.is_file()},
    }
