"""The M1.3 Conv2d-FSQ architecture in torch, built and exported like users build theirs.

Needs the ``train`` extra (torch, vector-quantize-pytorch); the daemon never imports this.

Architecture (DESIGN.md section 2): Conv2d(9->32, k=(1,5), pad (0,2)) + BN + ReLU, 32->64,
64->128, global average pool, Linear(128->len(levels)), FSQ(levels), classifier head
Linear(d->256) ReLU Dropout Linear(256->classes). The export wraps it in a module named
``fsq_model`` so node names read ``/fsq_model/fsq/...`` as in users' graphs.

Users' graphs often return more than the logits: ``outputs`` picks the export's outputs from
``logits`` (the head), ``codes`` (zhat), ``indices`` (FSQ's int32 codebook indices, so
``(logits, indices)`` is what a model passing vector-quantize-pytorch's return value on
gives) and ``probs`` (softmax of the logits). ``second_fsq`` quantizes the projection with
two FSQs (the importer must refuse it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from vector_quantize_pytorch import FSQ


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, (1, 5), padding=(0, 2)), nn.BatchNorm2d(cout), nn.ReLU()]


class ConvFSQ(nn.Module):
    def __init__(
        self, levels: list[int], classes: int | None, channels: int = 9, second_fsq: bool = False
    ) -> None:
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
        self.fsq2 = FSQ(levels) if second_fsq else None
        self.outputs: tuple[str, ...] = ("logits",)  # what forward returns, in order
        self.classifier: nn.Module | None = None
        if classes is not None:
            self.classifier = nn.Sequential(
                nn.Linear(len(levels), 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes)
            )

    def quantized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zhat, indices) for input (N, 9, D, T)."""
        z = self.encoder(x)
        zhat, idx = self.fsq(z.unsqueeze(1))
        if self.fsq2 is not None:  # a second FSQ of the same projection, added on
            zhat = zhat + self.fsq2(z.unsqueeze(1) * 0.5)[0]
        return zhat.squeeze(1), idx.squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        zhat, idx = self.quantized(x)
        logits = zhat if self.classifier is None else self.classifier(zhat)
        if self.outputs == ("logits",):
            return logits
        values = {
            "logits": logits,
            "codes": zhat,
            "indices": idx,
            "probs": torch.softmax(logits, dim=-1),
        }
        return tuple(values[name] for name in self.outputs)


class Exported(nn.Module):
    """The wrapper users export; its attribute name gives the ``/fsq_model/`` prefix."""

    def __init__(self, model: ConvFSQ) -> None:
        super().__init__()
        self.fsq_model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.fsq_model(x)


OUTPUT_NAMES = {
    "logits": "behavior_logits",
    "codes": "fsq_codes",
    "indices": "fsq_indices",
    "probs": "behavior_probs",
}


def export_onnx(
    model: ConvFSQ,
    devices: int,
    window: int,
    path: Path,
    outputs: tuple[str, ...] = ("logits",),
    fixed_batch: int | None = None,
) -> None:
    """torch.onnx.export like the user's: TorchScript exporter, opset 11, dynamic batch
    (or, with ``fixed_batch``, no dynamic axes: the batch size is baked into the graph)."""
    # The exporter restores the wrapper's train/eval mode afterwards, and a fresh wrapper is
    # in training mode: without eval() here the model comes back with batch-norm training on.
    model.outputs = outputs
    wrapper = Exported(model).eval()
    channels = model.encoder[0].in_channels
    dummy = torch.zeros(fixed_batch or 1, channels, devices, window)
    names = [OUTPUT_NAMES[o] for o in outputs]
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        dynamo=False,
        opset_version=11,
        input_names=["imu_data"],
        output_names=names,
        dynamic_axes=None
        if fixed_batch
        else {"imu_data": {0: "batch"}, **{n: {0: "batch"} for n in names}},
    )
