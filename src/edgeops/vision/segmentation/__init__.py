"""Semantic segmentation: images + index masks in, a class per pixel out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeops.images import load_rgb, printable, unreadable_reason
from edgeops.vision.base import (
    AnswerOptions,
    Dataset,
    Progress,
    Raw,
    Recipe,
    Split,
    TaskDefaults,
    VisionTask,
    single_output,
)
from edgeops.vision.segmentation.dataset import (
    IGNORE,
    detect_layout,
    read_mask,
    resize_mask,
    scan_segmentation,
)
from edgeops.vision.segmentation.metrics import label_map, segmentation_metrics
from edgeops.vision.segmentation.render import class_fractions, mask_image, mask_png_base64, overlay

if TYPE_CHECKING:
    import torch
    from PIL import Image


class SegmentationTask(VisionTask):
    name = "segmentation"
    metric = "mIoU"
    per_class_metric = "IoU"
    models = ("unet", "lraspp_mobilenet_v3")
    defaults = TaskDefaults(model="unet", image_size=256, epochs=14, batch_size=8, lr=3e-3)
    # the task's long-standing defaults for every model, measured per model on the demo and on a set of
    # handwritten-digit scenes (README "Model zoo"): no other model was clearly better, so they stay
    recipes = {
        "unet": Recipe(epochs=14, lr=3e-3),
        "lraspp_mobilenet_v3": Recipe(epochs=14, lr=3e-3, imagenet_weights=True),
    }
    model_api_type = "Segmentation"
    output_names = ("scores",)

    def detect(self, root: Path) -> str | None:
        return detect_layout(root)

    def scan(self, root: Path, min_per_class: int) -> Dataset:
        return scan_segmentation(root)

    def split(
        self, dataset: Dataset, fractions: dict[str, float], seed: int, min_per_class: int
    ) -> dict[str, list[int]]:
        """Seeded random split; val and test get at least one image each."""
        n = len(dataset.items)
        order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
        n_val = max(1, round(n * fractions["val"]))
        n_test = max(1, round(n * fractions["test"]))
        n_train = n - n_val - n_test
        return {
            "train": sorted(order[:n_train]),
            "val": sorted(order[n_train : n_train + n_val]),
            "test": sorted(order[n_train + n_val :]),
        }

    def decode(
        self, dataset: Dataset, indices: list[int], size: int, keep_originals: bool, progress: Progress | None
    ) -> tuple[Split, list[str]]:
        images = np.zeros((len(indices), size, size, 3), np.uint8)
        masks = np.full((len(indices), size, size), IGNORE, np.uint8)
        originals: list[np.ndarray] = []
        bad: list[str] = []
        for i, index in enumerate(indices):
            pair = dataset.items[index]
            image_path, mask_path = dataset.root / pair.path, dataset.root / pair.mask
            try:
                images[i] = load_rgb(image_path, size)
            except Exception as e:  # the file's own problem: name it
                bad.append(f"{printable(image_path)} ({unreadable_reason(image_path, e)})")
            try:
                mask = read_mask(mask_path)
            except Exception as e:
                bad.append(f"{printable(mask_path)} ({unreadable_reason(mask_path, e)})")
                mask = np.full((size, size), IGNORE, np.uint8)
            masks[i] = resize_mask(mask, (size, size))
            if keep_originals:
                originals.append(mask)
            if progress and (i + 1) % 200 == 0:
                progress(i + 1, len(indices))
        return Split(images, masks, originals if keep_originals else None), bad

    def describe_split(self, dataset: Dataset, indices: list[int]) -> list[list[Any]]:
        return [[dataset.items[i].path.as_posix(), dataset.items[i].mask.as_posix()] for i in indices]

    def build_model(self, name: str, num_classes: int, pretrained: bool) -> torch.nn.Module:
        from edgeops.vision.segmentation.models import build_model

        return build_model(name, num_classes, pretrained)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        from edgeops.vision.segmentation.loss import cross_entropy_dice

        return cross_entropy_dice(outputs, targets)

    def augment(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from edgeops.vision.segmentation.augment import random_crops

        return random_crops(x, y, generator)

    def decode_output(self, raw: Raw) -> np.ndarray:
        raw = single_output(raw)
        return label_map(raw)

    def score(self, predictions: np.ndarray, split: Split, labels: list[str]) -> dict[str, Any]:
        truths = split.originals if split.originals is not None else list(split.targets)
        return segmentation_metrics(predictions, truths, labels)

    def output_contract(self, labels: list[str], input_size: tuple[int, int]) -> dict[str, Any]:
        width, height = input_size
        return {
            "name": self.output_names[0],
            "kind": "per-class scores",
            "shape": [1, len(labels), height, width],
            "layout": "NCHW",
            "classes": len(labels),
            "decode": "argmax over C = class index per pixel (index into labels) at the input size; "
            "resize that label map NEAREST to the original image",
        }

    def model_info(self, labels: list[str], serving: dict[str, Any]) -> dict[str, str]:
        return {"return_soft_prediction": "False"}

    def answer(
        self,
        raw: Raw,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        labels: list[str],
        options: AnswerOptions,
    ) -> dict[str, Any]:
        raw = single_output(raw)
        labels_at_input = label_map(raw)[0]
        mask = resize_mask(labels_at_input, original_size)
        fractions = class_fractions(mask, labels)
        return {
            "width": original_size[0],
            "height": original_size[1],
            "class_fractions": fractions,
            "classes_present": [name for name, f in fractions.items() if f > 0],
            "mask_png_base64": mask_png_base64(mask),
            "mask_format": "PNG, palette mode: pixel value = index into labels, at the image's size",
        }

    def summary_line(self, answer: dict[str, Any]) -> str:
        shown = sorted(answer["class_fractions"].items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {fraction:.1%}" for name, fraction in shown if fraction > 0)

    def save_answer(self, answer: dict[str, Any], image: Image.Image, out_dir: Path, stem: str) -> list[Path]:
        import base64
        import io

        from PIL import Image

        out_dir.mkdir(parents=True, exist_ok=True)
        mask_path, overlay_path = out_dir / f"{stem}_mask.png", out_dir / f"{stem}_overlay.png"
        mask_bytes = base64.b64decode(answer["mask_png_base64"])
        mask_path.write_bytes(mask_bytes)
        labels = np.asarray(Image.open(io.BytesIO(mask_bytes)))
        overlay(image, labels).save(overlay_path)
        return [mask_path, overlay_path]

    def pictures(
        self, result: dict[str, Any], predictions: np.ndarray, split: Split, labels: list[str], out_dir: Path
    ) -> list[Path]:
        from edgeops.vision.segmentation.plots import overlay_grid

        path = out_dir / "overlays.png"
        overlay_grid(result, predictions, split, path)
        return [path]


TASK = SegmentationTask()
__all__ = ["TASK", "SegmentationTask", "mask_image"]
