"""Segmentation pictures for reports and MLflow: image | ground truth | prediction for a few test images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from edgeops.vision.base import Split
from edgeops.vision.segmentation.dataset import resize_mask
from edgeops.vision.segmentation.render import overlay

MAX_ROWS = 4


def overlay_grid(result: dict[str, Any], predictions: np.ndarray, split: Split, path: Path) -> None:
    rows = min(MAX_ROWS, len(predictions))
    size = split.images.shape[1]
    cell = max(size, 128)
    header = 18
    canvas = Image.new("RGB", (3 * cell, rows * cell + header), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text(
        (4, 3),
        f"{result['variant']}: image | ground truth | prediction (test mIoU {result['score']:.3f})",
        fill="black",
    )
    for row in range(rows):
        image = Image.fromarray(split.images[row])
        truth = split.targets[row]
        predicted = resize_mask(predictions[row], (truth.shape[1], truth.shape[0]))
        tiles = [image.convert("RGB"), overlay(image, truth), overlay(image, predicted)]
        for column, tile in enumerate(tiles):
            canvas.paste(
                tile.resize((cell, cell), Image.Resampling.NEAREST), (column * cell, header + row * cell)
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
