"""The model zoo: every model is built from scratch (no hub weights) for n classes."""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

# Inputs are RGB normalized with these ImageNet statistics; the exported IR does the same
# normalization itself, so edge apps feed raw u8 pixels.
MEAN: Final = (0.485, 0.456, 0.406)
STD: Final = (0.229, 0.224, 0.225)


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallCNN(nn.Module):
    """A few conv blocks and a linear head: trains in seconds on CPU, good for small images."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            _conv_bn(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def build_model(name: str, num_classes: int) -> nn.Module:
    import torchvision

    if name == "small_cnn":
        return SmallCNN(num_classes)
    if name == "mobilenet_v3_small":
        model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=num_classes)
        # torchvision's BN momentum (0.01) is too slow for short training on small data.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        return model
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None, num_classes=num_classes)
    raise ValueError(f"unknown model {name!r}")


def normalize(images_u8_nhwc: torch.Tensor) -> torch.Tensor:
    """u8 NHWC RGB -> float NCHW normalized: what the IR's pre-processing does."""
    x = images_u8_nhwc.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std
