"""A third vision task that exists only in tests: per-image brightness regression.

It is shaped unlike classification and segmentation (float targets, one number out, its own metric),
so a stage that secretly assumes labels or masks breaks on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from edgeops.images import load_rgb
from edgeops.vision.base import AnswerOptions, Dataset, Progress, Recipe, Split, TaskDefaults, VisionTask

MARKER = "BRIGHTNESS"


class BrightnessTask(VisionTask):
    name = "brightness"
    metric = "closeness"  # 1 - mean absolute error of the brightness in [0, 1]
    per_class_metric = "closeness"
    models = ("tiny",)
    defaults = TaskDefaults(model="tiny", image_size=16, epochs=4, batch_size=8, lr=0.01)
    recipes = {"tiny": Recipe(epochs=4, lr=0.01)}
    model_api_type = "Regression"
    output_names = ("brightness",)

    def detect(self, root: Path) -> str | None:
        return "a BRIGHTNESS marker" if (root / MARKER).exists() else None

    def scan(self, root: Path, min_per_class: int) -> Dataset:
        paths = sorted(p.relative_to(root) for p in root.glob("*.png"))
        return Dataset(root, "flat folder of PNGs", ["brightness"], paths, paths)

    def split(
        self, dataset: Dataset, fractions: dict[str, float], seed: int, min_per_class: int
    ) -> dict[str, list[int]]:
        n = len(dataset.items)
        return {
            "train": list(range(n // 2)),
            "val": list(range(n // 2, 3 * n // 4)),
            "test": list(range(3 * n // 4, n)),
        }

    def decode(
        self, dataset: Dataset, indices: list[int], size: int, keep_originals: bool, progress: Progress | None
    ) -> tuple[Split, list[str]]:
        images = np.stack([load_rgb(dataset.root / dataset.items[i], size) for i in indices])
        return Split(images, images.mean(axis=(1, 2, 3)).astype(np.float32) / 255.0), []

    def describe_split(self, dataset: Dataset, indices: list[int]) -> list[list[Any]]:
        return [[dataset.items[i].as_posix()] for i in indices]

    def build_model(self, name: str, num_classes: int, pretrained: bool) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 1),
        )

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(outputs[:, 0], targets)

    def augment(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def decode_output(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, np.float32).reshape(len(raw), -1)[:, 0]

    def score(self, predictions: np.ndarray, split: Split, labels: list[str]) -> dict[str, Any]:
        closeness = float(1 - np.abs(predictions - split.targets).mean()) if len(predictions) else 0.0
        return {"closeness": closeness, "n": len(predictions), "per_class": {"brightness": closeness}}

    def output_contract(self, labels: list[str], input_size: tuple[int, int]) -> dict[str, Any]:
        return {"name": self.output_names[0], "kind": "brightness in [0, 1]", "shape": [1, 1]}

    def answer(
        self,
        raw: np.ndarray,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        labels: list[str],
        options: AnswerOptions,
    ) -> dict[str, Any]:
        return {"brightness": float(self.decode_output(raw)[0])}

    def summary_line(self, answer: dict[str, Any]) -> str:
        return f"brightness {answer['brightness']:.3f}"


def write_brightness_dataset(root: Path, count: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("")
    for i in range(count):
        level = int(rng.integers(10, 245))
        noise = rng.integers(-10, 10, size=(20, 20, 3))
        Image.fromarray(np.clip(level + noise, 0, 255).astype(np.uint8), "RGB").save(root / f"{i:03d}.png")
    return root


TASK = BrightnessTask()
