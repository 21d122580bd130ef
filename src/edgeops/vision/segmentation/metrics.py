"""mIoU (primary), per-class IoU, Dice and pixel accuracy: the one segmentation metric (numpy).

One confusion matrix over all pixels of all images (255 = ignore); IoU_c = tp / (tp + fp + fn);
mIoU = the mean over classes present in the ground truth. Predictions are compared at the ground
truth's size (resized nearest), as an edge app would use them."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeops.vision.segmentation.dataset import IGNORE, resize_mask


def confusion(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """rows = truth, columns = prediction; ignored pixels (255) left out."""
    keep = truth != IGNORE
    t = truth[keep].astype(np.int64)
    p = np.clip(predicted[keep].astype(np.int64), 0, num_classes - 1)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def segmentation_metrics(
    predictions: np.ndarray, truths: list[np.ndarray] | np.ndarray, labels: list[str]
) -> dict[str, Any]:
    n = len(labels)
    matrix = np.zeros((n, n), np.int64)
    for predicted, truth in zip(predictions, truths, strict=True):
        predicted = resize_mask(np.asarray(predicted), (truth.shape[1], truth.shape[0]))
        matrix += confusion(predicted, truth, n)
    tp = np.diag(matrix).astype(np.float64)
    in_truth, in_prediction = matrix.sum(1), matrix.sum(0)
    union = in_truth + in_prediction - tp
    present = in_truth > 0
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    dice = np.where(in_truth + in_prediction > 0, 2 * tp / np.maximum(in_truth + in_prediction, 1), np.nan)
    total = matrix.sum()
    return {
        "mIoU": float(iou[present].mean()) if present.any() else 0.0,
        "mean_dice": float(dice[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "n": int(len(predictions)),
        "per_class": {label: float(iou[i]) if present[i] else None for i, label in enumerate(labels)},
        "per_class_dice": {label: float(dice[i]) if present[i] else None for i, label in enumerate(labels)},
        "confusion": matrix.tolist(),
    }


def label_map(raw: np.ndarray) -> np.ndarray:
    """Per-class scores (N, C, H, W) -> label maps (N, H, W) u8."""
    return np.asarray(raw).argmax(axis=1).astype(np.uint8)
