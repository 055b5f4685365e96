"""Export an example M1.3 Conv2d-FSQ model the way users export theirs, plus torch's answers.

Writes ``OUT/full.onnx`` (opset 11, dynamic batch, Round inside) and ``OUT/parity.npz`` with
keys ``x`` (N, 9, D, 100) float32 windows, ``indices`` int64, ``zhat`` float32 and, with a head,
``logits`` float32, all computed by torch and vector-quantize-pytorch. Weights are random
(seeded) with non-trivial batch-norm statistics so constant folding has something to fold.

    pip install -e '.[train]'
    python tools/export_fsq_model.py --levels 8,6,5,5,4 --devices 2 --classes 10 --out DIR
    python tools/export_fsq_model.py --outputs logits,indices --out DIR  # what FSQ returns
    python tools/export_fsq_model.py --channels 6 --out DIR              # accelerometer + gyro
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from m13 import ConvFSQ, export_onnx


def build(
    levels: list[int], classes: int | None, seed: int, channels: int = 9, second_fsq: bool = False
) -> ConvFSQ:
    torch.manual_seed(seed)
    model = ConvFSQ(levels, classes, channels, second_fsq)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    # Spread the projection so every FSQ level gets used by normal inputs.
    last = model.encoder[-1]
    assert isinstance(last, torch.nn.Linear)
    last.weight.data.mul_(20.0)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="8,6,5,5,4")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10, help="0 exports codes without a head")
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=9, help="input channels (9 = acc+gyro+mag)")
    ap.add_argument(
        "--outputs",
        default="logits",
        help="comma-separated graph outputs: logits, codes, indices, probs (default logits)",
    )
    ap.add_argument("--fixed-batch", type=int, help="export without a dynamic batch axis")
    ap.add_argument("--second-fsq", action="store_true", help="two FSQs (a model to refuse)")
    ap.add_argument("--rate-metadata", type=float, help="record sample_rate_hz in the metadata")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    levels = [int(v) for v in args.levels.split(",")]
    model = build(levels, args.classes or None, args.seed, args.channels, args.second_fsq)
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = tuple(args.outputs.split(","))
    export_onnx(model, args.devices, 100, args.out / "full.onnx", outputs, args.fixed_batch)
    if args.rate_metadata is not None:
        import onnx

        full = onnx.load(str(args.out / "full.onnx"))
        onnx.helper.set_model_props(full, {"sample_rate_hz": f"{args.rate_metadata:g}"})
        onnx.save(full, str(args.out / "full.onnx"))

    rng = np.random.default_rng(args.seed)
    # Per-window channel offsets survive the global average pool, so codes spread out.
    x = rng.normal(0.0, 1.0, (args.windows, args.channels, args.devices, 100))
    x += rng.normal(0.0, 1.5, (args.windows, args.channels, 1, 1))
    x = x.astype(np.float32)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        zhat, idx = model.quantized(xt)
        arrays = {"x": x, "indices": idx.numpy().astype(np.int64), "zhat": zhat.numpy()}
        if model.classifier is not None:
            arrays["logits"] = model.classifier(zhat).numpy()
    np.savez_compressed(args.out / "parity.npz", **arrays)
    used = len(np.unique(arrays["indices"]))
    print(f"wrote {args.out}/full.onnx and parity.npz ({args.windows} windows, {used} codes)")


if __name__ == "__main__":
    main()
