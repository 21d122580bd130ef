"""Test data made on the fly (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from edgeops.config import Params


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


def classification_params(data_path: Path | str, image_size: int = 16, **data: object) -> Params:
    """Params for the classification task on data_path, at image_size, with data.* overrides."""
    from edgeops.config import parse_params

    settings = {"model": "small_cnn", "image_size": image_size, "epochs": 1, "batch_size": 8, "lr": 1e-3}
    return parse_params(
        {
            "task": "classification",
            "data": {"path": str(data_path), **data},
            "by_task": {"classification": settings},
        },
        "test params",
    )


def decode_images(root: Path | str, size: int, min_per_class: int = 1) -> np.ndarray:
    """Scan an image folder with the classification task and decode every image at size, as prepare
    does; every unreadable file is named in one EdgeopsError (edgeops.images.unreadable_error)."""
    from edgeops.images import unreadable_error
    from edgeops.vision import get_task

    task = get_task("classification")
    dataset = task.scan(Path(root), min_per_class)
    split, bad = task.decode(dataset, list(range(len(dataset.items))), size, False, None)
    if bad:
        raise unreadable_error(bad)
    assert split.targets.tolist() == [item.label for item in dataset.items]
    return split.images
