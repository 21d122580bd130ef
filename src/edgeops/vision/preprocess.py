"""The input normalization every task's models share; the exported IR does the same inside itself,
so edge apps feed raw u8 pixels."""

from __future__ import annotations

from typing import Final

import torch

# RGB normalized with the ImageNet statistics (what pretrained torchvision backbones expect).
MEAN: Final = (0.485, 0.456, 0.406)
STD: Final = (0.229, 0.224, 0.225)


def normalize(images_u8_nhwc: torch.Tensor) -> torch.Tensor:
    """u8 NHWC RGB -> float NCHW normalized: what the IR's pre-processing does."""
    x = images_u8_nhwc.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std
