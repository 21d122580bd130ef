"""evaluate@<variant> writes the task's pictures of the test results from the variant's result, in the
shape tasks/evaluate.py builds it (metric, score, score_f32, metrics); for classification, the
confusion matrix that replaced plots/confusion/<variant>.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeops.paths import variant_pictures
from edgeops.vision import Split, get_task

LABELS = ["cat", "dog", "eel"]


def test_confusion_picture_from_an_evaluate_result(tmp_path: Path) -> None:
    task = get_task("classification")
    split = Split(np.zeros((6, 8, 8, 3), np.uint8), np.array([0, 0, 1, 1, 2, 2], dtype=np.int64))
    predicted = np.array([0, 1, 1, 1, 2, 0])
    metrics = task.score(predicted, split, LABELS)
    assert metrics["accuracy"] == 4 / 6 and metrics["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    result = {  # what tasks/evaluate.py passes to task.pictures (benchmark etc. left out)
        "variant": "ptq",
        "status": "ok",
        "task": task.name,
        "precision": "INT8",
        "metric": task.metric,
        "score": metrics[task.metric],
        "score_f32": metrics[task.metric],
        "metrics": metrics,
    }
    out = tmp_path / variant_pictures("small_cnn", "ptq")
    out.mkdir(parents=True)
    written = task.pictures(result, predicted, split, LABELS, out)
    assert written == [out / "confusion.png"]
    assert written[0].read_bytes().startswith(b"\x89PNG") and written[0].stat().st_size > 1000
