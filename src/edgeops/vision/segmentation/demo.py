"""The built-in segmentation demo: circles, squares and triangles on textured backgrounds.

Written as images/ + masks/ + labels.txt, the layout users bring, so it goes through the same reader.
Images vary in size and format (PNG/JPEG); shapes vary in size, shade and overlap. Each class has its
own hue family (reddish circles, greenish squares, bluish triangles) on a greyish texture, so a small
model learns it in a minute on a CPU; shape still decides where one class ends and another begins."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["background", "circle", "square", "triangle"]


def _texture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth grey noise plus stripes: a background a single threshold cannot separate."""
    coarse = rng.integers(0, 256, size=(height // 8 + 2, width // 8 + 2, 1), dtype=np.uint8).repeat(3, axis=2)
    base = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(base, np.float32) * 0.5
    yy, xx = np.mgrid[0:height, 0:width]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = 30 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi)
    arr += stripes[..., None] + rng.uniform(40, 90) + rng.uniform(-8, 8, size=3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _draw_shape(
    draw: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw, kind: int, box: tuple, fill: tuple
) -> None:
    x0, y0, x1, y1 = box
    if kind == 1:
        draw.ellipse(box, fill=fill)
        mask.ellipse(box, fill=kind)
    elif kind == 2:
        draw.rectangle(box, fill=fill)
        mask.rectangle(box, fill=kind)
    else:
        points = [((x0 + x1) / 2, y0), (x1, y1), (x0, y1)]
        draw.polygon(points, fill=fill)
        mask.polygon(points, fill=kind)


def _shade(rng: np.random.Generator, kind: int) -> tuple[int, int, int]:
    """A colour of the class's hue family: red-ish (1), green-ish (2), blue-ish (3)."""
    colour = rng.integers(20, 110, size=3)
    colour[kind - 1] = rng.integers(170, 256)
    return (int(colour[0]), int(colour[1]), int(colour[2]))


def make_segmentation_demo(out_dir: str | Path, seed: int = 0, count: int = 60) -> Path:
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        width, height = (int(v) for v in rng.choice([192, 224, 256, 320], size=2))
        image = _texture(rng, width, height)
        mask = Image.new("L", (width, height), 0)
        draw, mask_draw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 5))):
            kind = int(rng.integers(1, len(CLASSES)))
            side = int(rng.integers(min(width, height) // 6, min(width, height) // 2))
            x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            fill = _shade(rng, kind)
            _draw_shape(draw, mask_draw, kind, (x0, y0, x0 + side, y0 + side), fill)
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        noisy = np.asarray(image, np.float32) + rng.normal(0, 8, size=(height, width, 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
        if i % 3 == 0:
            image.save(tmp / "images" / f"{i:03d}.jpg", quality=92)
        else:
            image.save(tmp / "images" / f"{i:03d}.png")
        mask.save(tmp / "masks" / f"{i:03d}.png")
    (tmp / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
