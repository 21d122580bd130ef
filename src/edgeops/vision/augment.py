"""Augmentations shared by tasks (torch). Geometric ones take the targets along when they are maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad by 1/8 of the size (edge replicate) and crop back at a random offset, per batch."""
    size = x.shape[-1]
    pad = max(1, size // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    return padded[..., dy : dy + size, dx : dx + size]
