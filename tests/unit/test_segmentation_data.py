"""Segmentation datasets: both layouts read, and every kind of bad input named in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeops.errors import EdgeopsError
from edgeops.vision import get_task
from tests.seg_helpers import write_images_masks, write_voc

TASK = get_task("segmentation")


def scan(root: Path):  # noqa: ANN201
    return TASK.scan(root, 5)


def test_images_masks_with_labels(tmp_path: Path) -> None:
    root = write_images_masks(tmp_path / "d", labels=["bg", "cell", "debris"])
    dataset = scan(root)
    assert dataset.classes == ["bg", "cell", "debris"]
    assert len(dataset.items) == 12 and dataset.layout == "images/ + masks/"
    assert Path("labels.txt") in dataset.files  # a renamed class changes the fingerprint
    split, bad = TASK.decode(dataset, [0, 1], 16, True, None)
    assert bad == [] and split.images.shape == (2, 16, 16, 3) and split.targets.shape == (2, 16, 16)
    assert split.originals is not None and split.originals[0].shape == (32, 40)  # kept at the mask's size
    assert set(np.unique(split.targets)) <= {0, 1, 2}


def test_without_labels_classes_are_named_by_index(tmp_path: Path) -> None:
    assert scan(write_images_masks(tmp_path / "d", classes=4)).classes == ["0", "1", "2", "3"]


def test_nested_folders_pair_by_relative_path(tmp_path: Path) -> None:
    root = write_images_masks(tmp_path / "d", count=6)
    for sub in ("images", "masks"):
        (root / sub / "slide1").mkdir()
        for p in sorted((root / sub).glob("00[0-2].*")):
            p.rename(root / sub / "slide1" / p.name)
    dataset = scan(root)
    assert len(dataset.items) == 6
    assert any(str(item.path).startswith("images/slide1/") for item in dataset.items)


def test_voc_layout_with_image_sets_and_palette_masks(tmp_path: Path) -> None:
    dataset = scan(write_voc(tmp_path / "voc"))
    assert dataset.layout == "Pascal VOC" and len(dataset.items) == 8
    assert dataset.classes == [
        "background",
        "aeroplane",
        "bicycle",
    ]  # VOC names, up to the largest index used
    assert any("without a mask" in note for note in dataset.ignored)  # 2008_000001.jpg is not in the set
    split, _ = TASK.decode(dataset, [0], 24, True, None)
    assert split.originals is not None and 255 in split.originals[0]  # the void border stays "ignore"


def test_voc_without_image_sets_uses_every_mask(tmp_path: Path) -> None:
    assert len(scan(write_voc(tmp_path / "voc", with_sets=False)).items) == 8


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: (r / "masks" / "003.png").unlink(), r"1 image\(s\) without a mask .*003\.jpg"),
        (lambda r: (r / "images" / "004.png").unlink(), r"1 mask\(s\) without an image .*004\.png"),
        (
            lambda r: Image.new("L", (10, 10)).save(r / "masks" / "002.png"),
            r"masks/002\.png \(mask is 10x10, its image 40x32",
        ),
        (
            lambda r: Image.fromarray(np.full((32, 40), 7, np.uint8), "L").save(r / "masks" / "005.png"),
            r"masks/005\.png: mask value\(s\) 7 have no label",
        ),
        (
            lambda r: Image.new("RGB", (40, 32), (255, 0, 0)).save(r / "masks" / "006.png"),
            r"masks/006\.png \(an RGB mask, not class indices",
        ),
        (lambda r: (r / "masks" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage"), r"masks/001\.png \("),
        (lambda r: (r / "images" / "000.png").write_bytes(b"not an image"), r"images/000\.png \("),
        (lambda r: (r / "masks" / "008.png").rename(r / "masks" / "008.jpg"), r"JPEG mask"),
    ],
    ids=[
        "image-without-mask",
        "mask-without-image",
        "size",
        "value-without-label",
        "rgb-mask",
        "corrupt-mask",
        "corrupt-image",
        "jpeg-mask",
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, breakage, message: str) -> None:  # noqa: ANN001
    root = write_images_masks(tmp_path / "d", labels=["bg", "a", "b"])
    breakage(root)
    with pytest.raises(EdgeopsError, match=message) as error:
        scan(root)
    assert "\n" not in str(error.value)


def test_masks_with_255_foreground_get_a_hint(tmp_path: Path) -> None:
    root = write_images_masks(tmp_path / "d", classes=2)
    for mask in (root / "masks").iterdir():
        values = np.asarray(Image.open(mask))
        Image.fromarray(np.where(values > 0, 255, 0).astype(np.uint8), "L").save(mask)
    with pytest.raises(EdgeopsError, match="only class 0.*write them as 1"):
        scan(root)


def test_prepare_writes_nothing_on_bad_input(tmp_path: Path) -> None:
    from edgeops.config import Params
    from edgeops.pipeline.prepare import prepare_dataset

    root = write_images_masks(tmp_path / "d", labels=["bg", "a", "b"])
    (root / "masks" / "003.png").unlink()
    params = Params.model_validate({"task": "segmentation", "data": {"path": str(root)}})
    with pytest.raises(EdgeopsError):
        prepare_dataset(params, tmp_path / "prepared", log=lambda _: None)
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "prepared.tmp").exists()
