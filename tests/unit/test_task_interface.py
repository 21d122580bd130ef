"""The task interface: a task registered from outside runs through every stage, and the stages
(prepare, train, compress, evaluate, select, register) know nothing of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from edgeops import vision
from edgeops.errors import EdgeopsError
from edgeops.pipeline import plan
from tests.fake_task import write_brightness_dataset


@pytest.fixture
def brightness_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(vision.TASKS, "brightness", "tests.fake_task")


def _params(data: Path, tmp_path: Path) -> dict:
    return {
        "task": "brightness",
        "data": {"path": str(data)},
        "compress": {"variants": {"fp32": {}, "ptq": {"subset_size": 20}}},
        "benchmark": {"seconds": 0.1, "warmup": 1},
        "gates": {"max_score_drop": 0.5},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }


def _run(stage: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    import importlib

    monkeypatch.setattr(sys, "argv", [stage, *args])
    importlib.import_module(f"tasks.{stage}").main()


@pytest.mark.integration
def test_a_third_task_runs_through_every_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, brightness_registered: None
) -> None:
    data = write_brightness_dataset(tmp_path / "bright")
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(_params(data, tmp_path)))
    monkeypatch.chdir(project)
    assert vision.detect_task(data) == ("brightness", "a BRIGHTNESS marker")
    _run("prepare", monkeypatch)
    (key,) = plan.read()  # the brightness task's one model
    for stage, args in [
        ("train", (key,)),
        ("compress", (key, "fp32")),
        ("compress", (key, "ptq")),
        ("evaluate", (key, "fp32")),
        ("evaluate", (key, "ptq")),
        ("select", ()),
        ("register", ()),
    ]:
        _run(stage, monkeypatch, *args)
    contract = json.loads(Path(f"models/{key}/ptq/model.json").read_text())
    assert contract["task"] == "brightness" and contract["metric"] == "closeness"
    assert contract["output"]["name"] == "brightness" and contract["precision"] == "INT8"
    result = json.loads(Path(f"metrics/variants/{key}/ptq.json").read_text())
    assert result["metric"] == "closeness" and 0.5 < result["score"] <= 1.0
    selection = json.loads(Path("reports/selection.json").read_text())
    assert selection["selected"] in (f"{key}/fp32", f"{key}/ptq") and selection["metric"] == "closeness"
    assert "closeness" in Path("reports/compression.md").read_text()
    registration = json.loads(Path("reports/registration.json").read_text())
    assert registration["model_name"] == "edgeops-brightness"
    history = Path(f"plots/train/{key}.csv").read_text().splitlines()
    assert history[0].split(",")[:3] == ["epoch", "train_loss", "val_score"] and len(history) == 5


def test_unknown_task_in_params_is_one_clear_error(tmp_path: Path) -> None:
    from edgeops.config import load_params

    (tmp_path / "params.yaml").write_text("task: pose\n")
    with pytest.raises(
        EdgeopsError, match="unknown task 'pose': one of classification, segmentation, detection"
    ):
        load_params(tmp_path / "params.yaml")


def test_model_must_belong_to_its_task(tmp_path: Path) -> None:
    from edgeops.config import load_params

    (tmp_path / "params.yaml").write_text(
        "by_task:\n  segmentation: {model: resnet18, image_size: 64, epochs: 1, batch_size: 2, lr: 0.1}\n"
    )
    with pytest.raises(
        EdgeopsError, match="by_task.segmentation.model 'resnet18' is not auto or one of unet"
    ):
        load_params(tmp_path / "params.yaml")


def test_old_keys_say_where_they_moved(tmp_path: Path) -> None:
    from edgeops.config import load_params

    (tmp_path / "params.yaml").write_text("data: {image_size: 32}\ngates: {max_accuracy_drop: 0.02}\n")
    with pytest.raises(EdgeopsError) as error:
        load_params(tmp_path / "params.yaml")
    assert "'data.image_size' is now 'by_task.<task>.image_size'" in str(error.value)
    assert "'gates.max_accuracy_drop' is now 'gates.max_score_drop'" in str(error.value)


def test_layout_picks_the_task(tmp_path: Path) -> None:
    (tmp_path / "cls" / "cat").mkdir(parents=True)
    (tmp_path / "cls" / "dog").mkdir()
    (tmp_path / "seg" / "images").mkdir(parents=True)
    (tmp_path / "seg" / "masks").mkdir()
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "voc" / "SegmentationClass").mkdir()
    assert vision.detect_task(tmp_path / "cls")[0] == "classification"
    assert vision.detect_task(tmp_path / "seg") == ("segmentation", "images/ + masks/")
    assert vision.detect_task(tmp_path / "voc") == ("segmentation", "Pascal VOC")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeopsError, match="cannot tell the task from the layout"):
        vision.detect_task(tmp_path / "empty")


def test_ambiguous_layout_asks_for_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, brightness_registered: None
) -> None:
    data = write_brightness_dataset(tmp_path / "both", count=3)
    (data / "images").mkdir()
    (data / "masks").mkdir()
    with pytest.raises(EdgeopsError, match="fits several tasks.*pass --task"):
        vision.detect_task(data)
