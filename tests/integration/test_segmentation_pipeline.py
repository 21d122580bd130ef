"""Segmentation end to end: `edgeops run --data` on an images/ + masks/ set infers the task, builds all six
variants, and the selected IR scores through plain OpenVINO what the pipeline reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from edgeops.files import read_model_json
from tests.seg_helpers import write_images_masks

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VARIANTS = ["fp32", "fp16", "ptq", "ptq_ac", "qat", "prune_int8"]
KEY = "unet"  # the one model candidate (params.yaml's default)
SIZE = 64


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, root)
    for pkg in ("tasks", "flows", "src"):
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["by_task"]["segmentation"].update(image_size=SIZE, epochs=6, batch_size=8)
    variants = params["compress"]["variants"]
    variants["qat"].update(epochs=1, subset_size=50)
    variants["prune_int8"].update(epochs=1, subset_size=50)
    params["benchmark"]["seconds"] = 0.2
    params["mlflow"]["tracking_uri"] = f"sqlite:///{root / 'mlflow.db'}"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True)
    return root


def plain_openvino_miou(model_dir: Path, data: Path, files: list[list[str]]) -> float:
    """The acceptance check's way: PIL RGB + bilinear resize in, argmax, nearest back to the mask, one
    confusion matrix over all pixels, 255 ignored, mean IoU over classes present in the truth."""
    import openvino as ov

    meta = json.loads((model_dir / "model.json").read_text())
    _, h, w, _ = meta["input"]["shape"]
    n = len(meta["labels"])
    compiled = ov.Core().compile_model(str(model_dir / "model.xml"), "CPU")
    conf = np.zeros((n, n), np.int64)
    for image_path, mask_path in files:
        truth = np.asarray(Image.open(data / mask_path))
        pixels = np.asarray(Image.open(data / image_path).convert("RGB").resize((w, h), Image.BILINEAR))
        scores = compiled([pixels[None]])[compiled.output(0)][0]
        pred = np.asarray(
            Image.fromarray(scores.argmax(0).astype(np.uint8)).resize(truth.shape[::-1], Image.NEAREST)
        )
        keep = truth != 255
        np.add.at(conf, (truth[keep].astype(np.int64), pred[keep].astype(np.int64)), 1)
    tp = np.diag(conf).astype(float)
    iou = tp / np.maximum(conf.sum(0) + conf.sum(1) - tp, 1)
    return float(iou[conf.sum(1) > 0].mean())


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("seg")
    data = write_images_masks(
        base / "cells", count=30, classes=3, size=(80, 60), labels=["bg", "cell", "debris"]
    )
    project = make_project(base / "project")
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREFECT_HOME": str(base / "prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run(
        [str(BIN / "edgeops"), "run", "--data", str(data)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return {"project": project, "data": data, "stdout": run.stdout, "env": env}


def test_task_inferred_and_every_variant_built(seg_run: dict) -> None:
    project = seg_run["project"]
    assert "task = segmentation (from the layout: images/ + masks/)" in seg_run["stdout"]
    assert yaml.safe_load((project / "params.yaml").read_text())["task"] == "segmentation"
    for variant in VARIANTS:
        result = json.loads((project / "metrics" / "variants" / KEY / f"{variant}.json").read_text())
        assert result["status"] == "ok", result
        assert result["metric"] == "mIoU" and 0.0 <= result["score"] <= 1.0
        assert set(result["metrics"]["per_class"]) == {"bg", "cell", "debris"}
        assert {"mean_dice", "pixel_accuracy"} <= set(result["metrics"])
        assert (project / "plots" / "pictures" / KEY / variant / "overlays.png").is_file()
    report = (project / "reports" / "compression.md").read_text()
    assert "| candidate / variant | precision | mIoU |" in report and "Per-class IoU" in report


def test_selected_ir_scores_the_same_through_plain_openvino(seg_run: dict) -> None:
    project, data = seg_run["project"], seg_run["data"]
    selected = project / "models" / "selected"
    contract = read_model_json(selected)
    assert contract["task"] == "segmentation" and contract["output"]["shape"] == [1, 3, SIZE, SIZE]
    manifest = json.loads((project / "data" / "prepared" / "manifest.json").read_text())
    reported = json.loads(
        (project / "metrics" / "variants" / contract["candidate"] / f"{contract['variant']}.json").read_text()
    )
    measured = plain_openvino_miou(selected, data, manifest["splits"]["test"])
    assert measured == pytest.approx(reported["score"], abs=1e-6)
    assert measured > 0.5  # colour-coded rectangles: a trained model is far above chance


def test_predict_writes_mask_and_overlay_at_the_image_size(seg_run: dict, tmp_path: Path) -> None:
    project, data = seg_run["project"], seg_run["data"]
    image = next((data / "images").iterdir())
    out = tmp_path / "pred"
    run = subprocess.run(
        [str(BIN / "edgeops"), "predict", str(image), "--out", str(out)],
        cwd=project,
        env=seg_run["env"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    mask = Image.open(out / f"{image.stem}_mask.png")
    assert mask.size == Image.open(image).size and mask.mode == "P"
    assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
