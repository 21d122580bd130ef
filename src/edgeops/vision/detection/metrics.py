"""Detection metrics by the maintained COCO evaluator (pycocotools), the one implementation of the metric.

Boxes are compared at the model's input size: ground truth scaled there by prepare, predictions as the IR
returns them. IoU does not change when both boxes are scaled by the same factors per axis, so mAP equals
the mAP at each image's original size (only COCO's small/medium/large area split would differ)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

# a prediction row: x0, y0, x1, y1, score, label (input pixels); a target row: x0, y0, x1, y1, class, crowd
BOX, SCORE, LABEL = slice(0, 4), 4, 5
CLASS, CROWD = 4, 5


def _coco_ground_truth(targets: np.ndarray, num_classes: int) -> Any:
    from pycocotools.coco import COCO

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, rows in enumerate(targets):
        images.append({"id": image_id})
        for x0, y0, x1, y1, cls, crowd in rows[rows[:, CLASS] >= 0]:
            w, h = float(x1 - x0), float(y1 - y0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": [float(x0), float(y0), w, h],
                    "area": w * h,
                    "iscrowd": int(crowd > 0),
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": str(c)} for c in range(num_classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _detections(predictions: np.ndarray) -> list[dict[str, Any]]:
    out = []
    for image_id, rows in enumerate(predictions):
        for x0, y0, x1, y1, score, label in rows:
            if score > 0 and x1 > x0 and y1 > y0:
                out.append(
                    {
                        "image_id": image_id,
                        "category_id": int(label),
                        "score": float(score),
                        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    }
                )
    return out


def detection_metrics(predictions: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """COCO mAP@[.5:.95] (`mAP`, the primary), mAP@.5, mAP@.75, per-class AP and recall (IoU .5, 100
    detections), and the precision-recall curve at IoU .5 averaged over the classes present.

    predictions: (N, K, 6) rows x0, y0, x1, y1, score, label; rows with score 0 are empty.
    targets: (N, M, 6) rows x0, y0, x1, y1, class, crowd; rows with class -1 are padding. Crowd boxes are
    matched without counting as misses (COCO's iscrowd)."""
    from pycocotools.cocoeval import COCOeval

    present = sorted({int(c) for c in targets[..., CLASS].ravel() if c >= 0})
    result: dict[str, Any] = {
        "mAP": 0.0,
        "mAP50": 0.0,
        "mAP75": 0.0,
        "f1_50": 0.0,  # the best F1 at IoU .5 over score thresholds (median over classes) ...
        "f1_score_threshold": None,  # ... and the score threshold that reaches it
        "n": int(len(targets)),
        "boxes": int((targets[..., CLASS] >= 0).sum()),
        "per_class": {label: (0.0 if i in present else None) for i, label in enumerate(labels)},
        "per_class_recall": {label: (0.0 if i in present else None) for i, label in enumerate(labels)},
        "pr_curve": {"recall": np.linspace(0, 1, 101).round(2).tolist(), "precision": [0.0] * 101},
    }
    detections = _detections(predictions)
    if not detections or not present:
        return result
    gt = _coco_ground_truth(targets, len(labels))
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [IoU thresholds, recall points, classes, areas, max dets]
    recall = evaluation.eval["recall"]  # [IoU thresholds, classes, areas, max dets]
    result.update(
        mAP=float(evaluation.stats[0]), mAP50=float(evaluation.stats[1]), mAP75=float(evaluation.stats[2])
    )
    for k in present:
        per_class = precision[:, :, k, 0, -1]
        result["per_class"][labels[k]] = (
            float(per_class[per_class > -1].mean()) if (per_class > -1).any() else 0.0
        )
        result["per_class_recall"][labels[k]] = float(max(recall[0, k, 0, -1], 0.0))
    best_f1, thresholds = [], []
    recall_points = np.asarray(evaluation.params.recThrs)
    for k in present:
        p, s = precision[0, :, k, 0, -1], evaluation.eval["scores"][0, :, k, 0, -1]
        f1 = np.where(p > 0, 2 * p * recall_points / np.maximum(p + recall_points, 1e-9), 0.0)
        best = int(np.argmax(f1))
        best_f1.append(float(f1[best]))
        if f1[best] > 0:
            thresholds.append(float(s[best]))
    result["f1_50"] = float(np.median(best_f1))
    result["f1_score_threshold"] = float(np.median(thresholds)) if thresholds else None
    curve = precision[0, :, present, 0, -1]  # (classes present, recall points) at IoU .5
    result["pr_curve"]["precision"] = np.where(curve > -1, curve, 0).mean(0).round(4).tolist()
    return result
