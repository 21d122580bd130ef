"""The segmentation loss: cross-entropy plus soft Dice (torch); 255 = ignore in both."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeops.vision.segmentation.dataset import IGNORE


def cross_entropy_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy keeps every pixel right; Dice keeps small classes from being drowned by background."""
    ce = F.cross_entropy(logits, targets, ignore_index=IGNORE)
    valid = (targets != IGNORE).unsqueeze(1)
    probs = logits.softmax(1) * valid
    one_hot = F.one_hot(targets.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    intersection = (probs * one_hot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    dice = (2 * intersection + 1) / (total + 1)
    return ce + (1 - dice.mean())
