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


class UNet(nn.Module):
    """A small U-Net: encoder of conv pairs with max-pooling, decoder with bilinear upsampling and skips."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        c_in = 3
        for w in widths:
            self.down.append(nn.Sequential(_conv_bn(c_in, w), _conv_bn(w, w)))
            c_in = w
        self.up = nn.ModuleList()
        for w_skip in reversed(widths[:-1]):
            self.up.append(nn.Sequential(_conv_bn(c_in + w_skip, w_skip), _conv_bn(w_skip, w_skip)))
            c_in = w_skip
        self.head = nn.Conv2d(c_in, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


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
