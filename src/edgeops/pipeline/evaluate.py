"""The task's metric of an exported model, measured through the OpenVINO runtime on raw u8 pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeops.runtime import compile_model, predict_all
from edgeops.vision import Split, VisionTask


def evaluate_model_dir(
    model_dir: str | Path, task: VisionTask, test: Split, labels: list[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """The metrics with the runtime default precision (what an edge app gets), the primary metric also
    with f32 forced; and the default-precision predictions."""
    predicted = predict_all(compile_model(model_dir), test.images, task.decode_output)
    predicted_f32 = predict_all(compile_model(model_dir, "f32"), test.images, task.decode_output)
    metrics = task.score(predicted, test, labels)
    evaluation = {
        "metric": task.metric,
        "score": float(metrics[task.metric]),
        "score_f32": float(task.score(predicted_f32, test, labels)[task.metric]),
        "metrics": metrics,
    }
    return evaluation, predicted
