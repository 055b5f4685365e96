"""Train the bundled default model on simulated IMU data and build its package.

Deterministic from ``--seed``. Needs the ``train`` extra (torch, vector-quantize-pytorch):

    pip install -e '.[train]'
    python tools/train_default_model.py            # writes fsqd/models/default/

Steps: simulate labelled recordings with ``fsqd.sim`` (one device, 100 Hz), cut
100-sample windows (hop 25) whose samples share one behaviour, compute per-channel
normalisation statistics on the training samples, train the M1.3 Conv2d-FSQ model with
levels 8,6,5,5,4 and a behaviour head, export it like users export theirs (full model,
Round inside, opset 11), and build the package with ``fsqd model import``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from m13 import ConvFSQ, export_onnx

from fsqd.cli import main as fsqd_main
from fsqd.sim import SimConfig, simulate
from fsqd.units import BEHAVIOURS

LEVELS = [8, 6, 5, 5, 4]
WINDOW = 100
ROOT = Path(__file__).resolve().parent.parent


def labelled_windows(
    hours: float, seed: int, hop: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(windows (N, 100, 9), labels (N,), raw samples) from one simulated recording."""
    rec = simulate(hours * 3600, SimConfig(rate_hz=100.0, devices=1, seed=seed))
    view = np.lib.stride_tricks.sliding_window_view(rec.x, WINDOW, axis=0)[::hop]  # (N, 9, T)
    lab = np.lib.stride_tricks.sliding_window_view(rec.labels, WINDOW)[::hop]
    pure = (lab == lab[:, :1]).all(axis=1)  # windows inside one bout only
    x = np.ascontiguousarray(view[pure].transpose(0, 2, 1))
    return x, lab[pure, 0].astype(np.int64), rec.x


def to_model_input(
    x: npt.NDArray[np.float32], mean: npt.NDArray[np.float32], std: npt.NDArray[np.float32]
) -> torch.Tensor:
    """(N, T, 9) raw -> normalised (N, 9, 1, T), exactly as the daemon does on the host."""
    z = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(z.transpose(0, 2, 1)[:, :, None, :]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0, help="simulated training data")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "fsqd" / "models" / "default")
    ap.add_argument(
        "--export-copy",
        type=Path,
        default=ROOT / "tests" / "fixtures" / "models" / "default_full.onnx",
    )
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    x_train, y_train, raw = labelled_windows(args.hours, args.seed, hop=25)
    x_val, y_val, _ = labelled_windows(0.5, args.seed + 1000, hop=50)
    mean = raw.mean(axis=0).astype(np.float32)
    std = raw.std(axis=0).astype(np.float32)
    xt, yt = to_model_input(x_train, mean, std), torch.from_numpy(y_train)
    xv, yv = to_model_input(x_val, mean, std), torch.from_numpy(y_val)
    counts = np.bincount(y_train, minlength=len(BEHAVIOURS))
    print(
        f"train windows {len(yt)} per class {dict(zip(BEHAVIOURS, counts.tolist(), strict=True))}"
    )

    model = ConvFSQ(LEVELS, classes=len(BEHAVIOURS))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = args.epochs * ((len(yt) + 255) // 256)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    best_acc, best_state = -1.0, model.state_dict()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(yt), generator=gen)
        total = 0.0
        for i in range(0, len(order), 256):
            idx = order[i : i + 256]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(xv).argmax(1) == yv).float().mean())
        print(f"epoch {epoch + 1}: loss {total / len(yt):.4f}, held-out accuracy {acc:.3f}")
        if acc > best_acc:
            best_acc, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    acc = best_acc

    with torch.no_grad():
        _, codes = model.quantized(xv)
    used = len(torch.unique(codes))
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "fsqd-sim-behaviour.onnx"
        norm = Path(tmp) / "norm.json"
        export_onnx(model, devices=1, window=WINDOW, path=full)
        norm.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}))
        args.export_copy.parent.mkdir(parents=True, exist_ok=True)
        args.export_copy.write_bytes(full.read_bytes())
        trained_on = (
            f"{args.hours:g} h of fsqd's own IMU simulator (fsqd.sim, seed {args.seed}, "
            f"1 device, 100 Hz), {len(yt)} single-behaviour windows; held-out accuracy "
            f"{acc:.3f} on 0.5 h of simulator data (seed {args.seed + 1000}); not trained on "
            "real animals or people"
        )
        code = fsqd_main([
            "model", "import", str(full), "--out", str(args.out), "--force",
            "--levels", ",".join(map(str, LEVELS)), "--norm", str(norm),
            "--labels", ",".join(BEHAVIOURS), "--name", "fsqd-sim-behaviour",
            "--model-version", "1.0.0", "--hop", "50",
            "--description", "Demo behaviour model (" + ", ".join(BEHAVIOURS) + ") "
            "for one 9-axis IMU at 100 Hz",
            "--trained-on", trained_on,
        ])  # fmt: skip
    print(f"{used} distinct codes on held-out windows; done in {time.time() - t0:.0f} s")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
