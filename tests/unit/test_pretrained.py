"""`train.pretrained`: ImageNet weights come from the torch hub cache; offline without them, one line
names the file and where to put it. Weights files here are made by the test, in a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from edgeops.errors import EdgeopsError
from edgeops.vision import get_task


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno 101] Network is unreachable")

    import torchvision.models._api as torchvision_api

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", refuse)


def test_classification_backbone_loads_from_the_cache(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18(num_classes=1000)
    torch.save(imagenet.state_dict(), hub / weights.url.rsplit("/", 1)[-1])
    model = get_task("classification").build_model("resnet18", 5, pretrained=True)
    assert torch.equal(model.conv1.weight, imagenet.conv1.weight)
    assert model.fc.out_features == 5  # the head is new, for the user's classes


def test_segmentation_backbone_loads_from_the_cache(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch)
    weights = torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1
    torch.manual_seed(2)
    imagenet = torchvision.models.mobilenet_v3_large(num_classes=1000)
    torch.save(imagenet.state_dict(), hub / weights.url.rsplit("/", 1)[-1])
    model = get_task("segmentation").build_model("lraspp_mobilenet_v3", 3, pretrained=True)
    assert torch.equal(model.net.backbone["0"][0].weight, imagenet.features[0][0].weight)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_offline_without_the_file_names_it(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch)
    with pytest.raises(EdgeopsError) as error:
        get_task("classification").build_model("mobilenet_v3_small", 3, pretrained=True)
    message = str(error.value)
    assert "mobilenet_v3_small-047dcff4.pth" in message and str(hub) in message
    assert "train.pretrained: false" in message and "\n" not in message


def test_models_without_pretrained_weights_say_so() -> None:
    with pytest.raises(EdgeopsError, match="small_cnn has no pretrained weights"):
        get_task("classification").build_model("small_cnn", 3, pretrained=True)
