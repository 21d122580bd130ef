"""The built-in detection demo: circles, squares and triangles pasted on textured backgrounds.

Written as COCO (images/ + annotations.json), the layout users bring, so it goes through the same reader.
Category ids are sparse (1, 3, 7), as in real COCO exports; images vary in size and format; objects vary
in size (about 1/9 to 1/3 of the short side), shade and overlap; a few images have no object (negatives)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edgeops.vision.segmentation.demo import _draw_shape, _shade, _texture

CATEGORIES = [{"id": 1, "name": "circle"}, {"id": 3, "name": "square"}, {"id": 7, "name": "triangle"}]


def make_detection_demo(out_dir: str | Path, seed: int = 0, count: int = 48) -> Path:
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(count):
        # small images: image_size auto picks 160 px, so the demo trains in about a minute on 2 cores
        width, height = (int(v) for v in rng.choice([128, 144, 160], size=2))
        image = _texture(rng, width, height)
        draw = ImageDraw.Draw(image)
        scratch = ImageDraw.Draw(Image.new("L", (width, height)))  # _draw_shape also draws a mask
        objects = 0 if i % 12 == 5 else int(rng.integers(1, 6))
        for _ in range(objects):
            kind = int(rng.integers(1, len(CATEGORIES) + 1))
            short = min(width, height)
            side = int(rng.integers(short // 9, short // 3))
            x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            _draw_shape(draw, scratch, kind, (x0, y0, x0 + side, y0 + side), _shade(rng, kind))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": CATEGORIES[kind - 1]["id"],
                    "bbox": [x0, y0, side + 1, side + 1],  # PIL fills both end pixels
                    "area": (side + 1) ** 2,
                    "iscrowd": 0,
                }
            )
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        noisy = np.asarray(image, np.float32) + rng.normal(0, 8, size=(height, width, 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
        name = f"{i:03d}.jpg" if i % 3 == 0 else f"{i:03d}.png"
        if name.endswith(".jpg"):
            image.save(tmp / "images" / name, quality=92)
        else:
            image.save(tmp / "images" / name)
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
    coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (tmp / "annotations.json").write_text(json.dumps(coco, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
