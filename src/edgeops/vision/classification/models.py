"""The classification model zoo: from scratch, or from ImageNet weights (`train.pretrained`)."""

from __future__ import annotations

import torch
from torch import nn

from edgeops.errors import EdgeopsError


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


def build_model(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    import torchvision

    from edgeops.vision.pretrained import imagenet_state_dict, load_backbone

    if name == "small_cnn":
        if pretrained:
            raise EdgeopsError(
                "small_cnn has no pretrained weights: set train.pretrained: false or pick another model"
            )
        return SmallCNN(num_classes)
    if name == "mobilenet_v3_small":
        model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=num_classes)
        if pretrained:
            weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
            load_backbone(model, imagenet_state_dict(weights), ("classifier.3",))
        # torchvision's BN momentum (0.01) is too slow for short training on small data.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        return model
    if name == "resnet18":
        model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        if pretrained:
            weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
            load_backbone(model, imagenet_state_dict(weights), ("fc.",))
        return model
    raise ValueError(f"unknown model {name!r}")
