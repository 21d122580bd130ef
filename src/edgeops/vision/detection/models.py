"""The detection model zoo: anchor-free, CenterNet/TTFNet-style dense outputs at 1/4 of the input size.

forward(x) returns ONE tensor (N, C + 4, S/4, S/4): C class-heatmap logits (an object's centre cell peaks)
then 4 box channels, log-distances from the cell centre to the box's left, top, right and bottom edges in
units of the stride (`decode.DetectionDecoder` and `loss.detection_loss` share that convention). One tensor
out keeps the IR's raw contract trivial and lets the decoder be converted and stitched separately.

Stride 4 because the objects this targets are small (~15-35 px): each sits on ~4-9 cells, enough for a
clear peak and for box regression from several cells. Everything is plain 3x3 convolutions + BatchNorm +
ReLU (no depthwise, no attention): that is what trains fast from scratch on a few dozen tiles and what NNCF
quantizes to INT8 with no accuracy loss and a real speed-up."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeops.errors import EdgeopsError

STRIDE = 4  # output cells per input pixel, for every model of the zoo

# first = default
MODELS: tuple[str, ...] = ("centernet", "centernet_small", "centernet_wide")

_WIDTHS: dict[str, tuple[int, ...]] = {
    "centernet": (32, 64, 128, 192),
    "centernet_small": (24, 48, 96, 128),
    "centernet_wide": (48, 96, 192, 256),
}

# a heatmap bias of -4.6 (sigmoid ~ 0.01) keeps the focal loss of the ~all-background first steps small
_PRIOR_BIAS = -4.6


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


def _double(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(_conv_bn(c_in, c_out), _conv_bn(c_out, c_out))


class _Up(nn.Module):
    """x2 bilinear upsampling, concatenation with the skip, two convolutions (as in the segmentation UNet)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.conv = _double(c_in + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class CenterNet(nn.Module):
    """A small U-shaped encoder-decoder whose output stays at stride 4, with two heads.

    Stem: two stride-2 convs to 1/4 (16 then widths[0] channels). Encoder: four levels at 1/4..1/32 (two
    convs each, stride-2 conv between levels). Decoder: back to 1/4 with skips, so the heads see both
    local detail (box edges) and a receptive field larger than the objects (touching objects, uneven
    background). Heads: one for the heatmap, one for the box, each a 3x3 conv + 1x1 conv, concatenated."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = _WIDTHS["centernet"]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = STRIDE
        self.stem = nn.Sequential(_conv_bn(3, 16, stride=2), _conv_bn(16, widths[0], stride=2))
        self.encoder = nn.ModuleList()
        c_in = widths[0]
        for i, w in enumerate(widths):
            down = [_conv_bn(c_in, w, stride=2)] if i else [_conv_bn(c_in, w)]
            self.encoder.append(nn.Sequential(*down, _conv_bn(w, w)))
            c_in = w
        self.decoder = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.decoder.append(_Up(c_in, w, w))
            c_in = w
        head = max(32, widths[0])
        heatmap_out, box_out = nn.Conv2d(head, num_classes, 1), nn.Conv2d(head, 4, 1)
        assert heatmap_out.bias is not None and box_out.bias is not None  # Conv2d(bias=True)
        nn.init.constant_(heatmap_out.bias, _PRIOR_BIAS)
        nn.init.normal_(box_out.weight, std=0.01)
        nn.init.constant_(box_out.bias, 1.0)  # exp(1) * 4 ~ 11 px: a typical half-size
        self.heatmap = nn.Sequential(_conv_bn(c_in, head), heatmap_out)
        self.box = nn.Sequential(_conv_bn(c_in, head), box_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x, skips.pop())
        return torch.cat([self.heatmap(x), self.box(x)], dim=1)


def build_model(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """A zoo model trained from scratch. `pretrained=True` is an error: there are no offline weights for
    these detectors and they reach their accuracy from scratch in about a minute on small tiles."""
    if name not in _WIDTHS:
        raise EdgeopsError(f"unknown detection model {name!r}: one of {', '.join(MODELS)}")
    if pretrained:
        raise EdgeopsError(f"{name} has no pretrained weights: set train.pretrained: false")
    return CenterNet(num_classes, _WIDTHS[name])
