"""Augmentation that moves each mask with its image (torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeops.vision.segmentation.dataset import IGNORE


def flip_and_shift(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per batch: random horizontal and vertical flips, and a shift of up to 1/8 of the size. The image is
    padded by edge replication, the mask with 255 (ignore), so invented pixels are never trained on."""
    flips = torch.rand(2, generator=generator)
    if flips[0] < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    if flips[1] < 0.5:
        x, y = x.flip(-2), y.flip(-2)
    height, width = x.shape[-2:]
    pad = max(1, min(height, width) // 8)
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")[..., dy : dy + height, dx : dx + width]
    y = F.pad(y, (pad, pad, pad, pad), value=IGNORE)[..., dy : dy + height, dx : dx + width]
    return x, y
