"""OpenVINO's Model API loads every task's IR through the `model_info` metadata and gives edgeops' answer.

Our IR takes u8 NHWC RGB and normalizes inside; model_info says mean 0, scale 1, no channel swap, so
the Model API feeds pixels unchanged. Images here are already at the input size: for other sizes the
Model API resizes with OpenCV, edgeops with Pillow (see docs/model-contract.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeops.pipeline.export import float_ir, write_model_dir
from edgeops.runtime import compile_model, raw_output
from edgeops.vision import AnswerOptions, get_task

model_api = pytest.importorskip("model_api.models")


def export(tmp_path: Path, task_name: str, model_name: str, labels: list[str], size: int) -> Path:
    torch.manual_seed(0)
    task = get_task(task_name)
    model = task.build_model(model_name, len(labels), pretrained=False).eval()
    meta = {"task": task_name, "variant": "fp32", "precision": "FP32", "labels": labels}
    write_model_dir(float_ir(model, task, size), tmp_path / task_name, meta)
    return tmp_path / task_name


def pictures(size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    smooth = [np.kron(rng.integers(0, 256, (size // 4, size // 4, 3)), np.ones((4, 4, 1))) for _ in range(3)]
    return [p.astype(np.uint8) for p in smooth]


def test_classification_ir_in_model_api(tmp_path: Path) -> None:
    labels = ["cat", "dog", "eel"]
    folder = export(tmp_path, "classification", "small_cnn", labels, 32)
    wrapped = model_api.Model.create_model(str(folder / "model.xml"), device="CPU")
    assert type(wrapped).__name__ == "ClassificationModel"
    compiled, task = compile_model(folder, "f32"), get_task("classification")
    for image in pictures(32):
        ours = task.answer(raw_output(compiled, image), (32, 32), (32, 32), labels, AnswerOptions(top_k=1))
        theirs = wrapped(image).top_labels[0]
        assert (theirs.id, theirs.name) == (labels.index(ours["label"]), ours["label"])


def test_segmentation_ir_in_model_api(tmp_path: Path) -> None:
    labels = ["background", "cell", "debris"]
    folder = export(tmp_path, "segmentation", "unet", labels, 32)
    wrapped = model_api.Model.create_model(str(folder / "model.xml"), device="CPU")
    assert type(wrapped).__name__ == "SegmentationModel"
    compiled, task = compile_model(folder, "f32"), get_task("segmentation")
    for image in pictures(32):
        ours = task.decode_output(raw_output(compiled, image))[0]
        theirs = np.asarray(wrapped(image))  # 0.4.7 returns the label map itself
        assert theirs.shape == ours.shape
        assert (theirs == ours).mean() > 0.99  # float rounding may flip a near-tie pixel


def test_detection_ir_in_model_api(tmp_path: Path) -> None:
    """Model API's SSD wrapper reads our `boxes` + `labels`, scales them to the image and applies the
    confidence_threshold from model_info: the same boxes `edge serve` answers."""
    from tests.unit.test_edge_detection import DEBRIS_BOX, build_detection_ir

    folder = build_detection_ir(tmp_path / "detection")
    wrapped = model_api.Model.create_model(str(folder / "model.xml"), device="CPU")
    assert type(wrapped).__name__ == "SSD"
    image = np.full((320, 640, 3), 90, np.uint8)
    theirs = wrapped(image)
    compiled, task = compile_model(folder, "f32"), get_task("detection")
    ours = task.answer(
        raw_output(compiled, np.full((64, 64, 3), 90, np.uint8)),
        (64, 64),
        (640, 320),
        ["cell", "debris"],
        AnswerOptions(),
    )
    assert [b["label"] for b in ours["boxes"]] == list(theirs.label_names) == ["debris"]
    np.testing.assert_allclose(theirs.bboxes[0], ours["boxes"][0]["box"], atol=1.0)
    np.testing.assert_allclose(theirs.bboxes[0], DEBRIS_BOX, atol=1.0)
    assert theirs.scores[0] == pytest.approx(ours["boxes"][0]["score"], abs=1e-3)
