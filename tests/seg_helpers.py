"""Segmentation test data made on the fly: images/ + masks/ and Pascal VOC layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def blob_pair(
    rng: np.random.Generator, width: int, height: int, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its mask: rectangles of class k drawn in a colour that says k."""
    image = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    for k in range(1, classes):
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x1, y1 = x0 + width // 3, y0 + height // 3
        mask[y0:y1, x0:x1] = k
        image[y0:y1, x0:x1] = (np.array([80 * k % 256, 200, 255 - 60 * k]) + rng.integers(0, 30, 3)).clip(
            0, 255
        )
    return image, mask


def write_images_masks(
    root: Path,
    count: int = 12,
    classes: int = 3,
    size: tuple[int, int] = (40, 32),
    labels: list[str] | None = None,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, mask = blob_pair(rng, *size, classes)
        Image.fromarray(image).save(root / "images" / f"{i:03d}.{'jpg' if i % 2 else 'png'}")
        Image.fromarray(mask, "L").save(root / "masks" / f"{i:03d}.png")
    if labels is not None:
        (root / "labels.txt").write_text("\n".join(labels) + "\n")
    return root


def write_voc(root: Path, count: int = 8, classes: int = 3, with_sets: bool = True, seed: int = 0) -> Path:
    from edgeops.vision.segmentation.render import palette

    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    ids = [f"2007_{i:06d}" for i in range(count)]
    for name in ids:
        image, mask = blob_pair(rng, 48, 36, classes)
        mask[0, :] = 255  # VOC's "void" border
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg")
        pal = Image.fromarray(mask, "P")
        pal.putpalette(palette(256).reshape(-1).tolist())
        pal.save(root / "SegmentationClass" / f"{name}.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3)).astype(np.uint8)).save(
        root / "JPEGImages" / "2008_000001.jpg"
    )
    if with_sets:
        (root / "ImageSets" / "Segmentation").mkdir(parents=True)
        (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[: count // 2]) + "\n")
        (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids[count // 2 :]) + "\n")
    return root
