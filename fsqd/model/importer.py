"""``fsqd model import``: a full exported FSQ model -> a checked model package."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd import __version__
from fsqd.backends.onnx import load_onnx, open_session
from fsqd.errors import ConfigError, ModelError
from fsqd.model.card import (
    Channel,
    HeadSpec,
    InputSpec,
    ModelCard,
    OutputSpec,
    expected_input_shape,
)
from fsqd.model.package import CARD_FILE, load_package
from fsqd.model.surgery import FsqSite, Graph, extract, find_fsq, find_head_input, rename_input
from fsqd.pipeline import CodePipeline

DEFAULT_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
DEFAULT_UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3 + ("uT",) * 3
HEAD_INPUT = "codes"
VERIFY_WINDOWS = 256


@dataclass(frozen=True)
class ImportOptions:
    levels: tuple[int, ...] | None = None  # checked against the graph's constants
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None
    name: str | None = None
    version: str = "1.0.0"
    sample_rate_hz: float = 100.0
    hop: int | None = None  # default: half a window
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    units: tuple[str, ...] = DEFAULT_UNITS
    layout: str | None = None  # default: NCDT for 4-D input, NCT for 3-D
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False


@dataclass(frozen=True)
class ImportReport:
    card: ModelCard
    site: FsqSite
    hailo_parser_command: str
    verified_windows: int
    max_logit_diff: float | None


def _session(model: Any) -> Any:
    return open_session(model.SerializeToString())


def _input_layout(shape: Sequence[Any], opts: ImportOptions) -> tuple[str, int, int]:
    """(layout, devices, window) from the ONNX input shape."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    layout = opts.layout or {4: "NCDT", 3: "NCT"}.get(len(dims))
    if layout is None or len(layout) != len(dims):
        raise ConfigError(
            f"cannot tell the axis order of an input of shape {list(shape)}; pass --layout"
        )
    size = dict(zip(layout, dims, strict=True))
    window, devices = size.get("T"), size.get("D", 1)
    if window is None or devices is None or size.get("C") != len(opts.channels):
        raise ConfigError(
            f"input shape {list(shape)} read as {layout} needs C={len(opts.channels)} channels "
            "and fixed D and T; pass --layout or --channels"
        )
    return layout, devices, window


def _fix_output_shape(model: Any, name: str, shape: tuple[int, ...]) -> None:
    """Record the encoder output shape ONNX inference could not derive (the FSQ reshapes
    with a runtime shape), and drop shapeless hints so the ONNX checker accepts the cut."""
    import onnx

    del model.graph.output[:]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", *shape[1:]])
    )
    keep = [v for v in model.graph.value_info if v.type.tensor_type.HasField("shape")]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    onnx.checker.check_model(model)


def _check_levels(site: FsqSite, opts: ImportOptions) -> None:
    if opts.levels is not None and tuple(opts.levels) != site.levels:
        raise ConfigError(
            f"--levels {','.join(map(str, opts.levels))} does not match the levels in the "
            f"graph's FSQ constants {','.join(map(str, site.levels))}"
        )


def _norm(values: tuple[float, ...] | None, fill: float, n: int) -> tuple[float, ...]:
    return tuple(values) if values is not None else (fill,) * n


def import_model(full: Path, out: Path, opts: ImportOptions) -> ImportReport:
    """Cut ``full`` at the FSQ, write a package at ``out`` and check it end to end."""
    import onnx

    if out.exists() and not opts.overwrite:
        raise ConfigError(f"{out}: already exists (pass --force to replace it)")
    model = load_onnx(full)
    graph = Graph(model)
    if len(graph.inputs) != 1:
        raise ModelError(f"{full}: expected one input, found {graph.inputs}")
    site = find_fsq(graph)
    _check_levels(site, opts)
    input_name = graph.inputs[0]
    in_vi = next(i for i in model.graph.input if i.name == input_name)
    in_shape = [
        d.dim_value if d.HasField("dim_value") else None for d in in_vi.type.tensor_type.shape.dim
    ]
    layout, devices, window = _input_layout(in_shape, opts)

    encoder = extract(model, [input_name], [site.bounded])
    probe_shape = [1 if d is None else d for d in in_shape]
    zeros = np.zeros(probe_shape, np.float32)
    (probe,) = _session(encoder).run([site.bounded], {input_name: zeros})
    _fix_output_shape(encoder, site.bounded, tuple(probe.shape))
    width = int(np.prod(probe.shape[1:]))

    head_model = None
    head_spec = None
    head_io = find_head_input(graph, site.codes) if site.codes else None
    if head_io is not None:
        head_in, head_out = head_io
        head_model = extract(model, [head_in], [head_out])
        rename_input(head_model, head_in, HEAD_INPUT, width)
        onnx.checker.check_model(head_model)
        classes = int(
            _session(head_model)
            .run(None, {HEAD_INPUT: np.zeros((1, width), np.float32)})[0]
            .shape[-1]
        )
        labels = opts.labels or tuple(f"class_{i}" for i in range(classes))
        if len(labels) != classes:
            raise ConfigError(f"--labels names {len(labels)} classes but the head has {classes}")
        head_spec = HeadSpec("head.onnx", HEAD_INPUT, head_out, tuple(labels))
    elif opts.labels:
        raise ConfigError("--labels given but the model has no classifier head after the FSQ")

    n = len(opts.channels)
    digest = hashlib.sha256(full.read_bytes()).hexdigest()
    card = ModelCard(
        name=opts.name or full.stem,
        version=opts.version,
        sample_rate_hz=opts.sample_rate_hz,
        window=window,
        hop=opts.hop or max(1, window // 2),
        devices=devices,
        channels=tuple(Channel(c, u) for c, u in zip(opts.channels, opts.units, strict=True)),
        input=InputSpec(input_name, layout, tuple([None, *in_shape[1:]])),
        output=OutputSpec(site.bounded, "bounded", width),
        levels=site.levels,
        mean=_norm(opts.mean, 0.0, n),
        std=_norm(opts.std, 1.0, n),
        head=head_spec,
        description=opts.description,
        provenance={
            "source": full.name,
            "source_sha256": digest,
            "fsq_round_node": site.round_node,
            "hailo_end_node": site.end_node,
            "imported_by": f"fsqd {__version__}",
            "imported_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            **opts.provenance,
        },
    )

    # Write into a temporary sibling and rename, so a failed import leaves nothing behind.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        onnx.save(encoder, str(tmp / card.encoder_onnx))
        if head_model is not None and head_spec is not None:
            onnx.save(head_model, str(tmp / head_spec.file))
        (tmp / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        verified, diff = verify_against_full(tmp, model, site)
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)  # mkdtemp makes it private; a package is meant to be shared
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    command = f"hailo parser onnx {full} --hw-arch hailo8 --end-node-names {site.end_node} -y"
    return ImportReport(card, site, command, verified, diff)


def verify_against_full(pkg_dir: Path, full: Any, site: FsqSite) -> tuple[int, float | None]:
    """Run the package (encoder -> host FSQ -> head) and the full model on the same windows.

    The codes must be identical and the logits equal to float tolerance; anything else
    means the cut or the FSQ constants were read wrong.
    """
    import onnx

    pkg = load_package(pkg_dir)
    card = pkg.card
    pipeline = CodePipeline(pkg)  # the same stages replay and the daemon run
    # Widen the input so the FSQ sees every region, saturation included.
    rng = np.random.default_rng(0)
    shape = (VERIFY_WINDOWS, *expected_input_shape(card))
    x = rng.normal(0.0, 2.0, shape).astype(np.float32)
    probe = onnx.ModelProto()
    probe.CopyFrom(full)
    extra = [site.codes] if site.codes else []
    for name in extra:
        probe.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    outputs = _session(probe).run(None, {card.input.name: x})
    by_name = dict(zip([o.name for o in probe.graph.output], outputs, strict=True))

    zhat = pipeline.encode(x).codes
    if site.codes:
        want: npt.NDArray[np.float32] = np.asarray(by_name[site.codes]).reshape(zhat.shape)
        bad = int(np.count_nonzero((want != zhat).any(axis=1)))
        if bad:
            raise ModelError(
                f"self-check failed: host FSQ codes differ from the full model's on {bad} of "
                f"{len(x)} windows"
            )
    if card.head is None or pipeline.head is None:
        return len(x), None
    logits = pipeline.head.logits(zhat)
    ref = np.asarray(by_name[card.head.output])
    diff = float(np.max(np.abs(logits - ref)))
    if not np.allclose(logits, ref, rtol=1e-4, atol=1e-4):
        raise ModelError(
            f"self-check failed: head logits differ from the full model's by {diff:.3g}"
        )
    return len(x), diff
