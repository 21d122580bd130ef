"""Accuracy of an exported model, measured through the OpenVINO runtime on raw u8 pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeops.data.prepare import Split
from edgeops.runtime import compile_model, predict_logits


def classification_metrics(predicted: np.ndarray, actual: np.ndarray, labels: list[str]) -> dict:
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    per_class = {
        label: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float((predicted == actual).mean()) if len(actual) else 0.0,
        "n": int(len(actual)),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }


def evaluate_model_dir(model_dir: str | Path, test: Split, labels: list[str]) -> tuple[dict, np.ndarray]:
    """Top-1 with the runtime default precision (what an edge app gets) and with f32 forced."""
    default_pred = predict_logits(compile_model(model_dir), test.images).argmax(1)
    f32_pred = predict_logits(compile_model(model_dir, "f32"), test.images).argmax(1)
    metrics = classification_metrics(default_pred, test.labels, labels)
    metrics["accuracy_f32"] = float((f32_pred == test.labels).mean()) if len(test.labels) else 0.0
    return metrics, default_pred
