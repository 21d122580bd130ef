"""Turning a label map into what people and apps use: an index PNG with a palette, an overlay, fractions.
numpy + Pillow only (the edge agent uses it)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from edgeops.vision.segmentation.dataset import IGNORE


def palette(num_classes: int) -> np.ndarray:
    """The Pascal VOC colour map: (256, 3) u8; class 0 black, 255 (ignore) white."""
    colours = np.zeros((256, 3), np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours[index] = (r, g, b)
    colours[IGNORE] = (255, 255, 255)
    return colours


def mask_image(labels: np.ndarray) -> Image.Image:
    """A palette PNG whose pixel values are the class indices (and which shows in colour)."""
    img = Image.fromarray(labels.astype(np.uint8), "P")
    img.putpalette(palette(256).reshape(-1).tolist())
    return img


def mask_png_base64(labels: np.ndarray) -> str:
    buffer = io.BytesIO()
    mask_image(labels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def overlay(image: Image.Image, labels: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The image with each non-background class tinted in its palette colour."""
    rgb = np.asarray(image.convert("RGB").resize((labels.shape[1], labels.shape[0])), np.float32)
    colours = palette(256)[labels].astype(np.float32)
    tinted = np.where((labels > 0)[..., None], (1 - alpha) * rgb + alpha * colours, rgb)
    return Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8), "RGB")


def class_fractions(labels: np.ndarray, names: list[str]) -> dict[str, float]:
    counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=len(names))[: len(names)]
    total = max(1, int(labels.size))
    return {name: float(counts[i] / total) for i, name in enumerate(names)}
