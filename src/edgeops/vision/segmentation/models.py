"""The segmentation model zoo: per-class scores at the input resolution, from scratch or ImageNet weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeops.errors import EdgeopsError


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


def _double(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(_conv_bn(c_in, c_out), _conv_bn(c_out, c_out))


class _Up(nn.Module):
    """x2 bilinear upsampling, concatenation with the skip, two convolutions."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.conv = _double(c_in + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """A U-Net whose stem strides to 1/4 resolution first (24 then 48 channels), then four levels of 48 to
    256 channels, a decoder back to 1/4, one skip from the 1/2-resolution stem, and bilinear upsampling of
    the scores to the input size.

    Dense work at low resolution with wide layers quantizes well (INT8 convolutions need channels to be
    fast) and costs 1.85 GMAC at 256x256, half of a classic full-resolution U-Net (16..256 channels) that
    reached the same mIoU on microscopy-like tiles (0.917 vs 0.912 FP32) and ran 2x slower."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (48, 96, 192, 256)) -> None:
        super().__init__()
        self.stem_half = _conv_bn(3, 24, stride=2)
        self.stem_quarter = _conv_bn(24, widths[0], stride=2)
        self.encoder = nn.ModuleList()
        c_in = widths[0]
        for w in widths:
            self.encoder.append(_double(c_in, w))
            c_in = w
        self.decoder = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.decoder.append(_Up(c_in, w, w))
            c_in = w
        self.to_half = _Up(c_in, 24, 24)
        self.head = nn.Conv2d(24, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        half = self.stem_half(x)
        x = self.stem_quarter(half)
        skips = []
        for i, block in enumerate(self.encoder):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x, skips.pop())
        x = self.head(self.to_half(x, half))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class LRASPP(nn.Module):
    """torchvision's LR-ASPP on MobileNetV3-Large (weights=None: nothing downloads), scores only."""

    def __init__(self, num_classes: int, pretrained: bool) -> None:
        super().__init__()
        import torchvision

        from edgeops.vision.pretrained import imagenet_state_dict

        self.net = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=num_classes
        )
        if pretrained:
            weights = torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1
            state = imagenet_state_dict(weights)
            backbone = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
            missing = self.net.backbone.load_state_dict(backbone, strict=False).missing_keys
            if missing:
                raise EdgeopsError(
                    f"pretrained weights do not fit lraspp's backbone: e.g. {missing[0]} missing"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def build_model(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    if name == "unet":
        if pretrained:
            raise EdgeopsError(
                "unet has no pretrained weights: set train.pretrained: false or use lraspp_mobilenet_v3"
            )
        return UNet(num_classes)
    if name == "lraspp_mobilenet_v3":
        return LRASPP(num_classes, pretrained)
    raise ValueError(f"unknown model {name!r}")
