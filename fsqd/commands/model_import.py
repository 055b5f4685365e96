"""``fsqd model import``: a full exported FSQ model -> a checked model package."""

from __future__ import annotations

import dataclasses
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
from fsqd.backends.onnx import open_session
from fsqd.errors import ConfigError, ModelError, OutputError, UsageError
from fsqd.model.batching import fixed_batch_of, run_padded
from fsqd.model.card import HeadSpec, InputSpec, ModelCard, OutputSpec, expected_input_shape
from fsqd.model.graphcheck import record_check
from fsqd.model.onnxio import load_onnx
from fsqd.model.package import CARD_FILE, load_package
from fsqd.model.surgery import (
    FsqSite,
    Graph,
    extract,
    find_fsq,
    find_head,
    index_outputs,
    rename_input,
)
from fsqd.outfile import resolved
from fsqd.pipeline import CodePipeline, rates_match
from fsqd.safefile import MODEL_MAX, kind_of, read_bytes
from fsqd.units import Channel

DEFAULT_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
DEFAULT_UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3 + ("uT",) * 3
KNOWN_UNITS = dict(zip(DEFAULT_CHANNELS, DEFAULT_UNITS, strict=True))
# ONNX metadata keys a model may carry its training sample rate under.
RATE_METADATA = ("sample_rate_hz", "rate_hz")
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
    sample_rate_hz: float | None = None  # required unless the model's metadata says it
    hop: int | None = None  # default: half a window
    channels: tuple[str, ...] | None = None  # default: the 9 standard channels
    units: tuple[str, ...] | None = None  # default: from the channel names
    head_output: str | None = None  # which float output is the head, when several are
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
    index_outputs: tuple[str, ...] = ()  # FSQ indices the graph returns, checked
    other_outputs: tuple[str, ...] = ()  # graph outputs the package does not keep


def _session(model: Any) -> Any:
    return open_session(model.SerializeToString())


def _channels(opts: ImportOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, units): the 9 standard channels unless --channels says otherwise."""
    names = opts.channels or DEFAULT_CHANNELS
    if len(set(names)) != len(names):
        raise UsageError(f"--channels names a channel twice: {','.join(names)}")
    if opts.units is not None:
        if len(opts.units) != len(names):
            raise UsageError(
                f"--units gives {len(opts.units)} units for {len(names)} channels "
                f"({','.join(names)})"
            )
        return names, opts.units
    unknown = [n for n in names if n not in KNOWN_UNITS]
    if unknown:
        raise UsageError(
            f"no known unit for the channels {','.join(unknown)}: pass --units, one per "
            "channel, e.g. m/s^2,rad/s,uT"
        )
    return names, tuple(KNOWN_UNITS[n] for n in names)


def _sample_rate(model: Any, opts: ImportOptions) -> float:
    """--rate, or the rate in the model's metadata; refuse to guess."""
    meta = {p.key: p.value for p in model.metadata_props}
    found = next(((k, meta[k]) for k in RATE_METADATA if k in meta), None)
    graph_rate = None
    if found is not None:
        try:
            graph_rate = float(found[1])
        except ValueError:
            raise ModelError(
                f"the model's metadata {found[0]}={found[1]!r} is not a number"
            ) from None
    rate = opts.sample_rate_hz
    if rate is None and graph_rate is None:
        raise UsageError(
            "the model does not record its sample rate: pass --rate HZ, the rate its "
            "training data had"
        )
    if rate is not None and graph_rate is not None and not rates_match(rate, graph_rate):
        raise UsageError(
            f"--rate {rate:g} disagrees with the model's metadata {found and found[0]}="
            f"{graph_rate:g}"
        )
    value = rate if rate is not None else graph_rate
    assert value is not None
    if not (0 < value < float("inf")):
        raise UsageError(f"--rate must be a positive number of Hz, got {value:g}")
    return value


def _input_layout(
    shape: Sequence[Any], opts: ImportOptions, channels: tuple[str, ...]
) -> tuple[str, int, int]:
    """(layout, devices, window) from the ONNX input shape."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    layout = opts.layout or {4: "NCDT", 3: "NCT"}.get(len(dims))
    if layout is None or len(layout) != len(dims):
        raise ConfigError(
            f"cannot tell the axis order of an input of shape {list(shape)}; pass --layout"
        )
    size = dict(zip(layout, dims, strict=True))
    window, devices = size.get("T"), size.get("D", 1)
    if window is None or devices is None:
        raise ConfigError(
            f"input shape {list(shape)} read as {layout} needs a fixed size for D and T; "
            "pass --layout if the axes are in another order"
        )
    c = size.get("C")
    if c != len(channels):
        names = ",".join(channels)
        raise ConfigError(
            f"input shape {list(shape)} read as {layout} has {c} channels but {len(channels)} "
            f"are named ({names}); pass --channels with {c} names (and --units), "
            "or --layout if the axes are in another order"
        )
    return layout, devices, window


def _check_out(out: Path, overwrite: bool) -> None:
    """--out must be a new directory, or a package to replace with --force; never a file,
    never someone's other directory."""
    if not out.exists():
        return
    if not out.is_dir():
        what = "a file" if out.is_file() else kind_of(out.stat().st_mode)
        raise ConfigError(f"{out}: is {what}; --out names the package directory to create")
    is_package = (out / CARD_FILE).is_file()
    if not is_package and any(out.iterdir()):
        raise ConfigError(
            f"{out}: is a directory that is not a model package (no {CARD_FILE}); "
            "choose a new --out (fsqd will not replace it, even with --force)"
        )
    if not overwrite:
        raise ConfigError(f"{out}: already exists (pass --force to replace it)")


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

    # A symlink is followed (the package replaces what it points to, the link stays).
    out = resolved(out)
    _check_out(out, opts.overwrite)
    channels, units = _channels(opts)
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
    layout, devices, window = _input_layout(in_shape, opts, channels)
    rate = _sample_rate(model, opts)

    encoder = extract(model, [input_name], [site.bounded])
    probe_shape = [1 if d is None else d for d in in_shape]
    zeros = np.zeros(probe_shape, np.float32)
    (probe,) = _session(encoder).run([site.bounded], {input_name: zeros})
    _fix_output_shape(encoder, site.bounded, tuple(probe.shape))
    width = int(np.prod(probe.shape[1:]))

    head_model = None
    head_spec = None
    head_io = find_head(graph, site.codes, opts.head_output) if site.codes else None
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
    elif opts.head_output is not None:
        raise ConfigError("--head-output given but the model does not compute the FSQ codes")

    n = len(channels)
    digest = hashlib.sha256(read_bytes(full, limit=MODEL_MAX, what="an ONNX model")).hexdigest()
    card = ModelCard(
        name=opts.name or full.stem,
        version=opts.version,
        sample_rate_hz=rate,
        window=window,
        hop=opts.hop or max(1, window // 2),
        devices=devices,
        channels=tuple(Channel(c, u) for c, u in zip(channels, units, strict=True)),
        input=InputSpec(input_name, layout, tuple([fixed_batch_of(in_shape), *in_shape[1:]])),
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
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise OutputError(f"{out}: cannot create the package: {e.strerror or e}") from None
    try:
        onnx.save(encoder, str(tmp / card.encoder_onnx))
        if head_model is not None and head_spec is not None:
            onnx.save(head_model, str(tmp / head_spec.file))
        (tmp / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        verified, diff = verify_against_full(tmp, model, site)
        # The graph check passed (the verification opened the encoder): record it with the
        # encoder's sha256, so `fsqd run` need not load the graph with onnx again.
        card = dataclasses.replace(card, graph_check=record_check(load_package(tmp)))
        (tmp / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)  # mkdtemp makes it private; a package is meant to be shared
        tmp.rename(out)
    except OSError as e:
        raise OutputError(f"{out}: cannot write the package: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    command = f"hailo parser onnx {full} --hw-arch hailo8 --end-node-names {site.end_node} -y"
    indices = tuple(index_outputs(graph, site.codes)) if site.codes else ()
    kept = {head_spec.output} if head_spec is not None else set()
    others = tuple(o for o in graph.outputs if o not in kept and o not in indices)
    return ImportReport(card, site, command, verified, diff, indices, others)


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
    graph = Graph(full)
    if site.codes and site.codes not in graph.outputs:
        probe.graph.output.append(
            onnx.helper.make_tensor_value_info(site.codes, onnx.TensorProto.FLOAT, None)
        )
    session = _session(probe)
    batch = fixed_batch_of(session.get_inputs()[0].shape)
    outputs = run_padded(lambda v: session.run(None, {card.input.name: v}), x, batch)
    by_name = dict(zip([o.name for o in probe.graph.output], outputs, strict=True))

    encoded = pipeline.encode(x)
    zhat, pipeline_index = encoded.codes, encoded.index
    if site.codes:
        want: npt.NDArray[np.float32] = np.asarray(by_name[site.codes]).reshape(zhat.shape)
        bad = int(np.count_nonzero((want != zhat).any(axis=1)))
        if bad:
            raise ModelError(
                f"self-check failed: host FSQ codes differ from the full model's on {bad} of "
                f"{len(x)} windows"
            )
        # FSQ's own codebook indices, when the graph returns them (e.g. (logits, indices)).
        for name in index_outputs(graph, site.codes):
            idx = np.asarray(by_name[name]).reshape(-1).astype(np.int64)
            if idx.shape == pipeline_index.shape and not np.array_equal(idx, pipeline_index):
                bad = int(np.count_nonzero(idx != pipeline_index))
                raise ModelError(
                    f"self-check failed: host FSQ indices differ from the model's {name!r} on "
                    f"{bad} of {len(x)} windows"
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
