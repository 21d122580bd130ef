"""Detection end to end: `edgeops run --data` on a COCO set infers the task, builds all six variants, and
the selected IR scores through plain OpenVINO + pycocotools, at each image's original size (the
acceptance check's way), what the pipeline reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from edgeops.files import read_model_json
from edgeops.vision.detection.demo import make_detection_demo
from tests.integration.test_segmentation_pipeline import make_project

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
VARIANTS = ["fp32", "fp16", "ptq", "ptq_ac", "qat", "prune_int8"]
KEY = "centernet"  # the one model candidate (params.yaml's default)
SIZE = 96


def plain_openvino_coco_map(model_dir: Path, data: Path, test_files: list[str]) -> tuple[float, float]:
    """PIL RGB + bilinear resize in, `boxes` + `labels` out, boxes scaled back to the original image,
    scored by pycocotools against the dataset's own annotations.json (categories matched by name)."""
    import contextlib
    import io

    import openvino as ov
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    meta = json.loads((model_dir / "model.json").read_text())
    _, h, w, _ = meta["input"]["shape"]
    compiled = ov.Core().compile_model(str(model_dir / "model.xml"), "CPU")
    coco = json.loads((data / "annotations.json").read_text())
    keep = {im["id"] for im in coco["images"] if im["file_name"] in {Path(f).name for f in test_files}}
    coco["images"] = [im for im in coco["images"] if im["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco
        gt.createIndex()
    by_name = {c["name"]: c["id"] for c in coco["categories"]}
    detections = []
    for im in coco["images"]:
        image = Image.open(data / "images" / im["file_name"])
        sx, sy = image.size[0] / w, image.size[1] / h
        result = compiled([np.asarray(image.convert("RGB").resize((w, h), Image.BILINEAR))[None]])
        boxes, labels = result[compiled.output("boxes")][0], result[compiled.output("labels")][0]
        for (x0, y0, x1, y1, score), label in zip(boxes, labels, strict=True):
            if score > 0 and x1 > x0 and y1 > y0:
                detections.append(
                    {
                        "image_id": im["id"],
                        "category_id": by_name[meta["labels"][int(label)]],
                        "score": float(score),
                        "bbox": [
                            float(x0 * sx),
                            float(y0 * sy),
                            float((x1 - x0) * sx),
                            float((y1 - y0) * sy),
                        ],
                    }
                )
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


@pytest.fixture(scope="module")
def det_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("det")
    data = make_detection_demo(base / "shapes", seed=3, count=40)
    project = make_project(base / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["by_task"]["detection"].update(image_size=SIZE, epochs=10, batch_size=8)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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


def test_task_inferred_and_every_variant_built(det_run: dict) -> None:
    project = det_run["project"]
    assert "task = detection (from the layout: COCO (images/ + annotations.json))" in det_run["stdout"]
    for variant in VARIANTS:
        result = json.loads((project / "metrics" / "variants" / KEY / f"{variant}.json").read_text())
        assert result["status"] == "ok", result
        assert result["metric"] == "mAP" and 0.0 <= result["score"] <= 1.0
        assert set(result["metrics"]["per_class"]) == {"circle", "square", "triangle"}
        assert {"mAP50", "mAP75", "per_class_recall"} <= set(result["metrics"])
        pictures = project / "plots" / "pictures" / KEY / variant
        assert {"boxes.png", "precision_recall.png", "precision_recall.csv"} <= {
            p.name for p in pictures.iterdir()
        }
    report = (project / "reports" / "compression.md").read_text()
    assert "| candidate / variant | precision | mAP |" in report and "Per-class AP" in report


def test_int8_variants_keep_box_decoding_in_float(det_run: dict) -> None:
    """NNCF quantized the network, not the decoding: no FakeQuantize feeds a postprocessor operation."""
    import openvino as ov

    for variant in ("ptq", "ptq_ac", "qat", "prune_int8"):
        model = ov.Core().read_model(det_run["project"] / "models" / KEY / variant / "model.xml")
        ops = model.get_ordered_ops()
        assert any(op.get_type_name() == "FakeQuantize" for op in ops), variant
        decoding = [op for op in ops if op.get_friendly_name().startswith("postprocessor/")]
        assert decoding, variant
        for op in decoding:
            producers = [op.input_value(i).get_node().get_type_name() for i in range(op.get_input_size())]
            assert "FakeQuantize" not in producers, (variant, op.get_friendly_name())


def test_selected_ir_scores_the_same_through_plain_openvino(det_run: dict) -> None:
    project, data = det_run["project"], det_run["data"]
    selected = project / "models" / "selected"
    contract = read_model_json(selected)
    assert contract["task"] == "detection" and contract["output"]["names"] == ["boxes", "labels"]
    assert 0.0 < contract["output"]["serving"]["score_threshold"] < 1.0  # chosen on val for the best F1
    manifest = json.loads((project / "data" / "prepared" / "manifest.json").read_text())
    reported = json.loads(
        (project / "metrics" / "variants" / contract["candidate"] / f"{contract['variant']}.json").read_text()
    )
    test_files = [row[0] for row in manifest["splits"]["test"]]
    mean_ap, map50 = plain_openvino_coco_map(selected, data, test_files)
    assert mean_ap == pytest.approx(reported["score"], abs=2e-3)
    assert map50 == pytest.approx(reported["metrics"]["mAP50"], abs=2e-3)
    assert map50 > 0.3  # coloured shapes: a trained detector is far above an untrained one (~0)


def test_predict_writes_boxes_in_image_pixels(det_run: dict, tmp_path: Path) -> None:
    project, data = det_run["project"], det_run["data"]
    image = sorted((data / "images").iterdir())[1]
    run = subprocess.run(
        [
            str(BIN / "edgeops"),
            "predict",
            str(image),
            "--json",
            "--score-threshold",
            "0.05",
            "--out",
            str(tmp_path),
        ],
        cwd=project,
        env=det_run["env"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    width, height = Image.open(image).size
    assert (answer["width"], answer["height"]) == (width, height) and answer["boxes"]
    for box in answer["boxes"]:
        x0, y0, x1, y1 = box["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and box["score"] >= 0.05
    assert Image.open(tmp_path / f"{image.stem}_boxes.png").size == (width, height)
