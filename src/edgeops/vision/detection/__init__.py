"""Object detection: images + boxes (COCO, YOLO or Pascal VOC) in, boxes with labels and scores out."""

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
)
from edgeops.vision.detection.dataset import BoxSample, detect_layout, scan_detection, split_detection
from edgeops.vision.detection.metrics import detection_metrics
from edgeops.vision.detection.render import boxes_in_original_pixels, draw_boxes

if TYPE_CHECKING:
    import torch
    from PIL import Image

MAX_DETECTIONS = 100  # K: rows of the IR's `boxes` output (COCO evaluates up to 100 per image)
AUTO_SIZE_RANGE = (128, 320)  # image_size: auto stays within these (pixels)
SCORE_THRESHOLD = 0.3  # serving's threshold when the val split cannot choose one; mAP uses every box


class DetectionTask(VisionTask):
    name = "detection"
    metric = "mAP"  # COCO mAP@[.5:.95]
    per_class_metric = "AP"
    models = ("centernet", "centernet_small", "centernet_wide")  # models.MODELS (that module imports torch)
    defaults = TaskDefaults(model="centernet", image_size="auto", epochs=40, batch_size=8, lr=3e-3)
    # the task's long-standing defaults for every model, measured per model on the demo and on a set of
    # handwritten-digit scenes (README "Model zoo"): no other model was clearly better, so they stay
    recipes = {name: Recipe(epochs=40, lr=3e-3) for name in models}
    model_api_type = "ssd"  # Model API's SSD wrapper reads `boxes` [1,K,5] + `labels` [1,K]
    output_names = ("boxes", "labels")

    def detect(self, root: Path) -> str | None:
        return detect_layout(root)

    def scan(self, root: Path, min_per_class: int) -> Dataset:
        return scan_detection(root)

    def split(
        self, dataset: Dataset, fractions: dict[str, float], seed: int, min_per_class: int
    ) -> dict[str, list[int]]:
        return split_detection(dataset, fractions, seed)

    def decode(
        self, dataset: Dataset, indices: list[int], size: int, keep_originals: bool, progress: Progress | None
    ) -> tuple[Split, list[str]]:
        """Images resized (plainly, as the edge app does) to size x size, boxes scaled with them: targets
        (N, M, 6) rows x0, y0, x1, y1, class, crowd in input pixels, padded with class -1 rows."""
        samples: list[BoxSample] = [dataset.items[i] for i in indices]
        most = max([1, *(len(s.boxes) for s in samples)])
        images = np.zeros((len(samples), size, size, 3), np.uint8)
        targets = np.zeros((len(samples), most, 6), np.float32)
        targets[:, :, 4] = -1
        bad: list[str] = []
        for i, sample in enumerate(samples):
            path = dataset.root / sample.path
            try:
                images[i] = load_rgb(path, size)
            except Exception as e:  # the file's own problem: name it
                bad.append(f"{printable(path)} ({unreadable_reason(path, e)})")
            width, height = sample.size
            scale = np.array([size / width, size / height, size / width, size / height], np.float32)
            m = len(sample.boxes)
            targets[i, :m, :4] = sample.boxes * scale
            targets[i, :m, 4] = sample.classes
            targets[i, :m, 5] = sample.crowd
            if progress and (i + 1) % 200 == 0:
                progress(i + 1, len(samples))
        return Split(images, targets), bad

    def input_size(self, dataset: Dataset) -> int:
        """The median longest image side, rounded up to a multiple of 32 (the network's coarsest stride),
        within AUTO_SIZE_RANGE: small tiles are not upscaled (4x the compute for no new pixels), large
        photos are capped for CPU speed (set a number to go beyond)."""
        sides = sorted(max(sample.size) for sample in dataset.items)
        median = sides[len(sides) // 2]
        low, high = AUTO_SIZE_RANGE
        return int(min(high, max(low, -(-median // 32) * 32)))

    def describe_split(self, dataset: Dataset, indices: list[int]) -> list[list[Any]]:
        return [[dataset.items[i].path.as_posix(), len(dataset.items[i].boxes)] for i in indices]

    def build_model(self, name: str, num_classes: int, pretrained: bool) -> torch.nn.Module:
        from edgeops.vision.detection.models import build_model

        return build_model(name, num_classes, pretrained)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        from edgeops.vision.detection.loss import detection_loss

        return detection_loss(outputs, targets)

    def augment(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from edgeops.vision.detection.augment import augment_boxes

        return augment_boxes(x, y, generator)

    def postprocessor(self, model: torch.nn.Module, image_size: int) -> torch.nn.Module:
        """Peak decoding of the heatmap into MAX_DETECTIONS boxes: inside the IR, never quantized."""
        from edgeops.vision.detection.decode import DetectionDecoder
        from edgeops.vision.detection.models import STRIDE

        return DetectionDecoder(stride=STRIDE, max_detections=MAX_DETECTIONS)

    def decode_output(self, raw: Raw) -> np.ndarray:
        """(boxes (N,K,5), labels (N,K)) -> (N, K, 6) rows x0, y0, x1, y1, score, label in input pixels."""
        if not isinstance(raw, tuple) or len(raw) != 2:
            raise ValueError("a detection model has two outputs, boxes and labels")
        boxes, labels = raw
        return np.concatenate([boxes.astype(np.float32), labels[..., None].astype(np.float32)], axis=-1)

    def score(self, predictions: np.ndarray, split: Split, labels: list[str]) -> dict[str, Any]:
        metrics = detection_metrics(predictions, split.targets, labels)
        metrics.pop("pr_curve")  # a picture, not a number: `pictures` draws it
        return metrics

    def output_contract(self, labels: list[str], input_size: tuple[int, int]) -> dict[str, Any]:
        return {
            "name": "boxes",
            "names": list(self.output_names),
            "kind": "boxes",
            "shape": [1, MAX_DETECTIONS, 5],
            "labels_shape": [1, MAX_DETECTIONS],
            "classes": len(labels),
            "decode": "boxes rows are x0, y0, x1, y1, score in input pixels, best first; rows with score 0 "
            "are empty; labels = index into labels per row. Scale x by original_width / input_width and "
            "y by original_height / input_height for the original image; keep rows with score >= "
            "serving.score_threshold for display (chosen for the best F1 on the val split; mAP uses every "
            "row with score > 0). Already de-duplicated (peak decoding): no NMS needed.",
        }

    def serving_defaults(self, val_metrics: dict[str, Any]) -> dict[str, Any]:
        """The score threshold with the best F1 at IoU .5 on the val split (median over classes)."""
        chosen = val_metrics.get("f1_score_threshold")
        return {"score_threshold": round(float(chosen), 4) if chosen is not None else SCORE_THRESHOLD}

    def model_info(self, labels: list[str], serving: dict[str, Any]) -> dict[str, str]:
        threshold = serving.get("score_threshold", SCORE_THRESHOLD)
        return {"confidence_threshold": str(threshold), "iou_threshold": "1.0"}

    def answer(
        self,
        raw: Raw,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        labels: list[str],
        options: AnswerOptions,
    ) -> dict[str, Any]:
        threshold = (
            SCORE_THRESHOLD if options.score_threshold is None else options.score_threshold
        )  # no model.json
        boxes = boxes_in_original_pixels(
            self.decode_output(raw)[0], input_size, original_size, labels, threshold, options.max_boxes
        )
        return {"width": original_size[0], "height": original_size[1], "boxes": boxes}

    def summary_line(self, answer: dict[str, Any]) -> str:
        if not answer["boxes"]:
            return "no boxes"
        counts: dict[str, int] = {}
        for box in answer["boxes"]:
            counts[box["label"]] = counts.get(box["label"], 0) + 1
        return f"{len(answer['boxes'])} boxes: " + ", ".join(f"{n} {label}" for label, n in counts.items())

    def save_answer(self, answer: dict[str, Any], image: Image.Image, out_dir: Path, stem: str) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{stem}_boxes.png"
        labels = sorted({box["label"] for box in answer["boxes"]})
        drawn = [(box["box"], box["label"], box["score"]) for box in answer["boxes"]]
        draw_boxes(image, drawn, labels).save(path)
        return [path]

    def pictures(
        self, result: dict[str, Any], predictions: np.ndarray, split: Split, labels: list[str], out_dir: Path
    ) -> list[Path]:
        from edgeops.vision.detection.plots import boxes_grid, precision_recall

        boxes_path, curve_png, curve_csv = (
            out_dir / "boxes.png",
            out_dir / "precision_recall.png",
            out_dir / "precision_recall.csv",
        )
        boxes_grid(result, predictions, split, labels, SCORE_THRESHOLD, boxes_path)
        curve = detection_metrics(predictions, split.targets, labels)["pr_curve"]
        precision_recall(result, curve, curve_png, curve_csv)
        return [boxes_path, curve_png, curve_csv]


TASK = DetectionTask()
__all__ = ["TASK", "DetectionTask"]
