"""Augmentation that moves each mask with its image (torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeops.vision.preprocess import MEAN, STD

CROPS_PER_IMAGE = 2
MIN_CROP = 64


def crop_size(size: int) -> int:
    """Training crops are half the input size (at least MIN_CROP): 4x fewer pixels per step, and the fully
    convolutional model still sees full-size images at validation and in the IR."""
    return min(size, max(MIN_CROP, size // 2))


def random_crops(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """CROPS_PER_IMAGE random views of each image and its mask, through one sampling grid per view:
    a crop with +-25% zoom and a small shift, any of the 8 flips/transposes (image bilinear, mask nearest,
    both reflected at the border); then, on the image only, gain, gamma and offset jitter."""
    x, y = x.repeat(CROPS_PER_IMAGE, 1, 1, 1), y.repeat(CROPS_PER_IMAGE, 1, 1)
    n, size = x.shape[0], x.shape[-1]
    crop = crop_size(size)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    zoom = ((crop / size) * torch.exp(uniform(-0.25, 0.25))).clamp(max=1.1)
    shift_x = (1 - zoom).clamp(min=0) * uniform(-1, 1) + uniform(-0.05, 0.05)
    shift_y = (1 - zoom).clamp(min=0) * uniform(-1, 1) + uniform(-0.05, 0.05)
    flip_x = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    flip_y = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    transpose = uniform(0, 1) < 0.5
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(transpose, 0.0, zoom * flip_x)
    theta[:, 0, 1] = torch.where(transpose, zoom * flip_x, 0.0)
    theta[:, 1, 0] = torch.where(transpose, zoom * flip_y, 0.0)
    theta[:, 1, 1] = torch.where(transpose, 0.0, zoom * flip_y)
    theta[:, 0, 2], theta[:, 1, 2] = shift_x, shift_y
    grid = F.affine_grid(theta, [n, 3, crop, crop], align_corners=False)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    pixels = (x * std + mean).clamp(0, 1)  # back to [0, 1] for the photometric jitter
    pixels = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mask = F.grid_sample(
        y[:, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=False
    )
    gain, gamma = uniform(0.7, 1.3).view(n, 1, 1, 1), torch.exp(uniform(-0.35, 0.35)).view(n, 1, 1, 1)
    offset = uniform(-0.06, 0.06).view(n, 1, 1, 1)
    pixels = (pixels.clamp(0, 1) ** gamma * gain + offset).clamp(0, 1)
    return (pixels - mean) / std, mask[:, 0].long()
