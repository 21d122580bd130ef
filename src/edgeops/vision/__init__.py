"""Vision tasks behind one interface (`VisionTask`), chosen by `task` in params.yaml.

Adding a task: a folder `vision/<task>/` whose `__init__` defines `TASK`, and one line in TASKS."""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeops.errors import EdgeopsError
from edgeops.vision.base import AnswerOptions, Dataset, Raw, Split, TaskDefaults, VisionTask

__all__ = [
    "TASKS",
    "AnswerOptions",
    "Dataset",
    "Raw",
    "Split",
    "TaskDefaults",
    "VisionTask",
    "detect_task",
    "get_task",
    "task_names",
]

# task name -> module defining TASK (imported on first use: the edge agent loads only the one it serves)
TASKS: dict[str, str] = {
    "classification": "edgeops.vision.classification",
    "segmentation": "edgeops.vision.segmentation",
    "detection": "edgeops.vision.detection",
}


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> VisionTask:
    if name not in TASKS:
        raise EdgeopsError(f"unknown task {name!r}: one of {', '.join(TASKS)}")
    task = importlib.import_module(TASKS[name]).TASK
    assert isinstance(task, VisionTask)
    return task


def detect_task(root: Path) -> tuple[str, str]:
    """(task, layout) for a dataset folder, from its layout; an error when none or several match."""
    root = Path(root)
    if not root.is_dir():
        raise EdgeopsError(f"dataset path {root} is not a folder (or does not exist)")
    matches = [(name, layout) for name in TASKS if (layout := get_task(name).detect(root))]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise EdgeopsError(
            f"cannot tell the task from the layout of {root}: expected one sub-folder per class "
            "(classification), images/ + masks/ or Pascal VOC JPEGImages/ + SegmentationClass/ "
            "(segmentation), or images/ + annotations.json (COCO), images/ + labels/ (YOLO) or Pascal VOC "
            "JPEGImages/ + Annotations/ (detection); see docs/data.md"
        )
    found = "; ".join(f"{name} ({layout})" for name, layout in matches)
    raise EdgeopsError(f"the layout of {root} fits several tasks: {found}: pass --task to choose one")
