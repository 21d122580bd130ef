"""The one segmentation metric agrees with an independent implementation of the acceptance definition:
one confusion matrix over all pixels, 255 ignored, predictions resized (nearest) to each mask, mIoU over
the classes present in the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeops.vision import Split, get_task
from edgeops.vision.segmentation.metrics import segmentation_metrics

LABELS = ["bg", "a", "b", "never"]


def reference_miou(predictions: list[np.ndarray], truths: list[np.ndarray], n: int) -> float:
    conf = np.zeros((n, n), np.int64)
    for pred, truth in zip(predictions, truths, strict=True):
        pred = np.asarray(
            Image.fromarray(pred.astype(np.uint8)).resize(truth.shape[::-1], Image.NEAREST), np.int64
        )
        keep = truth != 255
        np.add.at(conf, (truth[keep].astype(np.int64), np.clip(pred[keep], 0, n - 1)), 1)
    tp = np.diag(conf).astype(float)
    iou = tp / np.maximum(conf.sum(0) + conf.sum(1) - tp, 1)
    return float(iou[conf.sum(1) > 0].mean())


def test_matches_the_reference_on_random_maps_of_other_sizes() -> None:
    rng = np.random.default_rng(0)
    truths = [rng.integers(0, 3, size=(h, w)).astype(np.uint8) for h, w in [(30, 50), (17, 23), (64, 64)]]
    truths[0][:5] = 255
    predictions = np.stack([rng.integers(0, 4, size=(16, 16)).astype(np.uint8) for _ in truths])
    ours = segmentation_metrics(predictions, truths, LABELS)
    assert ours["mIoU"] == pytest.approx(reference_miou(list(predictions), truths, len(LABELS)))
    assert ours["per_class"]["never"] is None  # absent from the truth: not in the mean


def test_perfect_and_hand_counted() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 255]], np.uint8)
    assert segmentation_metrics(truth[None], [truth], LABELS[:2])["mIoU"] == 1.0
    predicted = np.array(
        [[0, 1, 1, 1], [0, 0, 1, 0]], np.uint8
    )  # one bg pixel called "a"; the 255 is ignored
    result = segmentation_metrics(predicted[None], [truth], LABELS[:2])
    assert result["per_class"] == {"bg": pytest.approx(3 / 4), "a": pytest.approx(3 / 4)}
    assert result["pixel_accuracy"] == pytest.approx(6 / 7)
    assert result["per_class_dice"]["a"] == pytest.approx(2 * 3 / (3 + 4))


def test_task_scores_against_original_masks_when_the_split_has_them() -> None:
    task = get_task("segmentation")
    original = np.zeros((40, 40), np.uint8)
    original[:, 20:] = 1
    small = original[::5, ::5]  # the 8x8 training-size target
    split = Split(np.zeros((1, 8, 8, 3), np.uint8), small[None], [original])
    raw = np.zeros((1, 2, 8, 8), np.float32)
    raw[0, 1, :, 4:] = 1.0
    predictions = task.decode_output(raw)
    assert task.score(predictions, split, ["bg", "a"])["mIoU"] == 1.0
