"""The detection metric is COCO's (pycocotools) on boxes at the model's input size."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.vision import Split, get_task
from edgeops.vision.detection.metrics import detection_metrics

TASK = get_task("detection")
LABELS = ["cell", "debris"]


def targets(*images: list[tuple[float, float, float, float, int, int]], width: int = 4) -> np.ndarray:
    """(N, M, 6) padded with class -1 rows, as prepare stores them."""
    out = np.zeros((len(images), width, 6), np.float32)
    out[:, :, 4] = -1
    for i, rows in enumerate(images):
        for j, row in enumerate(rows):
            out[i, j] = row
    return out


def predictions(*images: list[tuple[float, float, float, float, float, int]], k: int = 100) -> np.ndarray:
    out = np.zeros((len(images), k, 6), np.float32)
    for i, rows in enumerate(images):
        for j, row in enumerate(rows):
            out[i, j] = row
    return out


TRUTH = targets([(10, 10, 30, 30, 0, 0), (40, 40, 60, 70, 1, 0)], [(5, 5, 25, 20, 0, 0)])


def test_perfect_boxes_score_one_and_empty_rows_are_ignored() -> None:
    perfect = predictions([(10, 10, 30, 30, 0.9, 0), (40, 40, 60, 70, 0.8, 1)], [(5, 5, 25, 20, 0.7, 0)])
    metrics = detection_metrics(perfect, TRUTH, LABELS)
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["mAP50"] == pytest.approx(1.0)
    assert metrics["per_class"] == {"cell": pytest.approx(1.0), "debris": pytest.approx(1.0)}
    assert metrics["per_class_recall"]["cell"] == pytest.approx(1.0)
    assert metrics["boxes"] == 3 and metrics["n"] == 2


def test_loose_boxes_pass_at_iou_half_but_not_at_the_strict_thresholds() -> None:
    # each box shifted by 4 px on a 20 px side: IoU = 16*20/(24*20) ~ 0.67
    loose = predictions([(14, 10, 34, 30, 0.9, 0), (44, 40, 64, 70, 0.8, 1)], [(9, 5, 29, 20, 0.7, 0)])
    metrics = detection_metrics(loose, TRUTH, LABELS)
    assert metrics["mAP50"] == pytest.approx(1.0)
    assert 0.2 < metrics["mAP"] < 0.5  # matched at IoU .5, .55, .6, .65 only: 4 of 10 thresholds


def test_wrong_class_and_misses_lower_ap_per_class() -> None:
    wrong = predictions([(10, 10, 30, 30, 0.9, 1)], [(5, 5, 25, 20, 0.7, 0)])
    metrics = detection_metrics(wrong, TRUTH, LABELS)
    assert metrics["per_class"]["debris"] == pytest.approx(0.0)
    assert metrics["per_class"]["cell"] == pytest.approx(0.5, abs=0.01)  # one of two cells found
    assert metrics["per_class_recall"]["cell"] == pytest.approx(0.5)


def test_crowd_boxes_are_neither_misses_nor_false_positives() -> None:
    with_crowd = targets([(10, 10, 30, 30, 0, 0), (60, 60, 90, 90, 0, 1)])
    found_only_the_object = predictions([(10, 10, 30, 30, 0.9, 0)])
    assert detection_metrics(found_only_the_object, with_crowd, LABELS)["mAP"] == pytest.approx(1.0)
    also_inside_crowd = predictions([(10, 10, 30, 30, 0.9, 0), (62, 62, 88, 88, 0.95, 0)])
    assert detection_metrics(also_inside_crowd, with_crowd, LABELS)["mAP"] == pytest.approx(1.0)
    without_crowd_flag = with_crowd.copy()
    without_crowd_flag[0, 1, 5] = 0
    assert detection_metrics(found_only_the_object, without_crowd_flag, LABELS)["mAP50"] < 0.6


def test_no_detections_is_zero_and_absent_classes_are_none() -> None:
    only_cells = targets([(10, 10, 30, 30, 0, 0)])
    metrics = detection_metrics(predictions([]), only_cells, LABELS)
    assert metrics["mAP"] == 0.0 and metrics["per_class"] == {"cell": 0.0, "debris": None}


def test_task_score_decodes_ir_outputs_and_keeps_curves_out_of_the_numbers() -> None:
    boxes = np.zeros((1, 100, 5), np.float32)
    labels = np.zeros((1, 100), np.int64)
    boxes[0, 0] = (10, 10, 30, 30, 0.9)
    rows = TASK.decode_output((boxes, labels))
    assert rows.shape == (1, 100, 6) and rows[0, 0].tolist() == [10, 10, 30, 30, pytest.approx(0.9), 0]
    metrics = TASK.score(
        rows, Split(np.zeros((1, 64, 64, 3), np.uint8), targets([(10, 10, 30, 30, 0, 0)])), LABELS
    )
    assert metrics["mAP"] == pytest.approx(1.0) and "pr_curve" not in metrics


def test_the_best_f1_threshold_keeps_true_boxes_and_drops_the_false_one() -> None:
    scored = predictions(
        [(10, 10, 30, 30, 0.9, 0), (40, 40, 60, 70, 0.8, 1), (70, 70, 90, 90, 0.5, 0)],  # the last is false
        [(5, 5, 25, 20, 0.7, 0)],
    )
    metrics = detection_metrics(scored, TRUTH, LABELS)
    assert metrics["f1_50"] == pytest.approx(1.0)
    # cell: all found at score >= 0.7 (the false 0.5 box would cost precision); debris at 0.8; median 0.75
    assert metrics["f1_score_threshold"] == pytest.approx(0.75)
    assert TASK.serving_defaults(metrics) == {"score_threshold": 0.75}
    assert TASK.serving_defaults({"f1_score_threshold": None}) == {"score_threshold": 0.3}  # nothing found
