"""The M1.3 Conv2d-FSQ architecture in torch, built and exported like users build theirs.

Needs the ``train`` extra (torch, vector-quantize-pytorch); the daemon never imports this.

Architecture (DESIGN.md section 2): Conv2d(9->32, k=(1,5), pad (0,2)) + BN + ReLU, 32->64,
64->128, global average pool, Linear(128->len(levels)), FSQ(levels), classifier head
Linear(d->256) ReLU Dropout Linear(256->classes). The export wraps it in a module named
``fsq_model`` so node names read ``/fsq_model/fsq/...`` as in users' graphs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from vector_quantize_pytorch import FSQ


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, (1, 5), padding=(0, 2)), nn.BatchNorm2d(cout), nn.ReLU()]


class ConvFSQ(nn.Module):
    def __init__(self, levels: list[int], classes: int | None, channels: int = 9) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            *_block(channels, 32),
            *_block(32, 64),
            *_block(64, 128),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, len(levels)),
        )
        self.fsq = FSQ(levels)
        self.classifier: nn.Module | None = None
        if classes is not None:
            self.classifier = nn.Sequential(
                nn.Linear(len(levels), 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes)
            )

    def quantized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zhat, indices) for input (N, 9, D, T)."""
        z = self.encoder(x)
        zhat, idx = self.fsq(z.unsqueeze(1))
        return zhat.squeeze(1), idx.squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zhat, _ = self.quantized(x)
        return zhat if self.classifier is None else self.classifier(zhat)


class Exported(nn.Module):
    """The wrapper users export; its attribute name gives the ``/fsq_model/`` prefix."""

    def __init__(self, model: ConvFSQ) -> None:
        super().__init__()
        self.fsq_model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fsq_model(x)


def export_onnx(model: ConvFSQ, devices: int, window: int, path: Path) -> None:
    """torch.onnx.export like the user's: TorchScript exporter, opset 11, dynamic batch."""
    # The exporter restores the wrapper's train/eval mode afterwards, and a fresh wrapper is
    # in training mode: without eval() here the model comes back with batch-norm training on.
    wrapper = Exported(model).eval()
    dummy = torch.zeros(1, 9, devices, window)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        dynamo=False,
        opset_version=11,
        input_names=["imu_data"],
        output_names=["behavior_logits"],
        dynamic_axes={"imu_data": {0: "batch"}, "behavior_logits": {0: "batch"}},
    )
