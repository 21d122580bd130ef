"""Test data made on the fly (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(
    root: Path, classes: dict[str, int], size: int = 16, mode: str = "RGB", fmt: str = "png", seed: int = 0
) -> Path:
    """Each class gets a distinct colour/brightness pattern so a model can tell them apart."""
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = np.zeros((size, size, 3), np.uint8)
            base[..., k % 3] = 200
            base[: size // 2] //= 1 + k
            noise = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
            img = Image.fromarray(base + noise, "RGB")
            if mode == "L":
                img = img.convert("L")
            img.save(root / name / f"{i:03d}.{fmt}")
    return root
