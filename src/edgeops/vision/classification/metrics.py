"""Top-1 accuracy, per-class accuracy and the confusion matrix: the one classification metric (numpy)."""

from __future__ import annotations

import numpy as np


def classification_metrics(predicted: np.ndarray, actual: np.ndarray, labels: list[str]) -> dict:
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (actual.astype(np.int64), predicted.astype(np.int64)), 1)
    per_class = {
        label: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float((predicted == actual).mean()) if len(actual) else 0.0,
        "n": int(len(actual)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """The k best labels with softmax scores, best first."""
    scores = softmax(logits.reshape(-1))
    order = np.argsort(-scores)[: max(1, k)]
    return [{"label": labels[i] if i < len(labels) else str(i), "score": float(scores[i])} for i in order]
