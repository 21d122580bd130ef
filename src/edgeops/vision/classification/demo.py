"""The built-in demo dataset: scikit-learn's handwritten digits, written as an ImageFolder.

It goes through the same reader as a user's data. Images are upscaled, jittered and saved in
mixed formats (PNG/JPEG, grayscale/RGB, several sizes) so the reader is exercised for real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_demo_dataset(out_dir: str | Path, seed: int = 0, per_class: int | None = None) -> Path:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(range(10), 0)
    for i, (img8, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        label = int(label)
        if per_class is not None and counts[label] >= per_class:
            continue
        counts[label] += 1
        gray = (img8 / 16.0 * 255).astype(np.uint8)
        size = int(rng.choice([24, 32, 40]))
        image = Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.BICUBIC)
        if i % 3 == 0:  # some RGB images with a tinted background
            tint = rng.integers(0, 60, size=3)
            arr = np.asarray(image, dtype=np.int32)[..., None] + tint[None, None, :]
            image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="RGB")
        class_dir = tmp / NAMES[label]
        class_dir.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0:
            image.save(class_dir / f"{i:04d}.jpg", quality=95)
        else:
            image.save(class_dir / f"{i:04d}.png")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
