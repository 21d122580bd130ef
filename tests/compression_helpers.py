"""Helpers for compression tests: a quantization-sensitive model made from a trained one, and the
statistical margin for comparing accuracies measured on a finite split."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from edgeops.vision.classification.models import SmallCNN


def add_activation_outliers(model: SmallCNN, scale: float, channels: list[int]) -> SmallCNN:
    """A copy of `model` that computes the same function but has activation outliers.

    The first block is conv -> BN -> ReLU and feeds the second block's conv. Multiplying BN's weight
    and bias of `channels` by `scale` multiplies those ReLU outputs by `scale` (ReLU is positively
    homogeneous), and dividing the next conv's weights for those input channels by `scale` undoes it
    exactly in float. INT8 with one scale per activation tensor must then cover a range `scale` times
    larger than the other channels need, so they keep only a few quantization levels, and the next
    conv's weights for the outlier channels are too small for its per-channel INT8 scale: plain PTQ
    loses accuracy although the float model is unchanged. This is the "outlier channel" failure of
    real models, made on purpose.
    """
    if scale <= 0:
        raise ValueError("scale must be positive: ReLU is only homogeneous for positive factors")
    sensitive = copy.deepcopy(model).eval()
    bn = sensitive.features[0][1]
    next_conv = sensitive.features[1][0]
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(next_conv, nn.Conv2d), "SmallCNN layout changed"
    with torch.no_grad():
        bn.weight[channels] *= scale
        bn.bias[channels] *= scale
        next_conv.weight[:, channels] /= scale
    return sensitive


def drop_margin(n: int, max_disagreement: float) -> float:
    """Two standard errors of an accuracy drop measured on `n` images.

    The drop between two models on the same images is the mean of per-image differences in
    {-1, 0, +1}, non-zero only where their predictions disagree; with a disagreement rate d its
    standard deviation is at most sqrt(d), so the error of the mean is at most sqrt(d / n). A drop
    held within max_drop on one split may therefore read up to about 2 * sqrt(d / n) higher on
    another split of n images without anything being wrong.
    """
    return 2.0 * math.sqrt(max_disagreement / n)
