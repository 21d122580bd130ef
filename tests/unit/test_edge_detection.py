"""A detector on the edge: its IR (network + appended box decoding) answers the server, `edge predict`
and `edgeops predict` with boxes in the uploaded image's own pixels; thresholds and limits apply."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from edgeops.edge import agent
from edgeops.edge.publish import publish
from edgeops.edge.server import create_app
from edgeops.edge.targets import open_target
from edgeops.vision import get_task

LABELS = ["cell", "debris"]
SIZE = 64  # input; stride 4 -> 16 x 16 cells
TASK = get_task("detection")


class FixedDetections(torch.nn.Module):
    """Raw outputs that do not depend on the image: a sure `debris` at cell (row 4, col 8) whose box
    reaches 8 px to each side, and an unsure `cell` (score ~0.27) at cell (12, 2), 4 px to each side."""

    def __init__(self) -> None:
        super().__init__()
        raw = torch.full((1, 2 + 4, SIZE // 4, SIZE // 4), -9.0)
        raw[0, 1, 4, 8] = 3.0  # sigmoid = 0.953
        raw[0, 2:, 4, 8] = float(np.log(2.0))  # exp(log 2) * stride 4 = 8 px
        raw[0, 0, 12, 2] = -1.0  # sigmoid = 0.269
        raw[0, 2:, 12, 2] = 0.0  # 4 px
        self.register_buffer("raw", raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw + 0 * x.mean()


def build_detection_ir(folder: Path, serving: dict | None = None) -> Path:
    from edgeops.pipeline.export import float_ir, write_model_dir

    meta = {"task": "detection", "variant": "fp32", "precision": "FP32", "labels": LABELS}
    if serving is not None:  # as the compress stage writes it, chosen on val
        meta["serving"] = serving
    write_model_dir(float_ir(FixedDetections(), TASK, SIZE), folder, meta)
    return folder


def picture(width: int = 640, height: int = 320) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    store = open_target(f"file://{tmp_path}/target")
    publish(build_detection_ir(tmp_path / "m1"), store, "det", "1", "production")
    agent.sync(store, "det", "production", tmp_path / "agent")
    return tmp_path / "agent"


@pytest.fixture
def client(agent_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(agent_dir, poll_seconds=0.05)) as c:
        yield c


# the debris box in input pixels is (34-8, 18-8, 34+8, 18+8); the image is 10x wider and 5x taller
DEBRIS_BOX = [260.0, 50.0, 420.0, 130.0]


def test_ir_outputs_follow_the_contract(tmp_path: Path) -> None:
    import openvino as ov

    folder = build_detection_ir(tmp_path / "m")
    contract = json.loads((folder / "model.json").read_text())
    compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU")
    names = [output.get_any_name() for output in compiled.outputs]
    assert names == ["boxes", "labels"] and contract["output"]["names"] == names
    result = compiled([np.zeros((1, SIZE, SIZE, 3), np.uint8)])
    boxes, labels = result[compiled.output("boxes")], result[compiled.output("labels")]
    assert boxes.shape == (1, 100, 5) and labels.shape == (1, 100)
    np.testing.assert_allclose(boxes[0, 0], [26, 10, 42, 26, 0.9526], atol=1e-3)
    assert labels[0, 0] == 1 and boxes[0, 2:, 4].max() < 1e-3  # the flat rest (sigmoid(-9)) barely scores


def test_server_answers_boxes_in_original_pixels(client: TestClient) -> None:
    r = client.post("/predict", files={"file": ("x.png", picture(), "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["version"] == "1" and (answer["width"], answer["height"]) == (640, 320)
    assert len(answer["boxes"]) == 1  # the unsure cell is under the default threshold 0.3
    (box,) = answer["boxes"]
    assert box["label"] == "debris" and box["score"] == pytest.approx(0.953, abs=1e-3)
    assert box["box"] == pytest.approx(DEBRIS_BOX, abs=0.2)


def test_server_threshold_and_max_boxes(client: TestClient) -> None:
    upload = {"file": ("x.png", picture(), "image/png")}
    both = client.post("/predict?score_threshold=0.2", files=upload).json()["boxes"]
    assert [b["label"] for b in both] == ["debris", "cell"]
    assert both[1]["box"] == pytest.approx(
        [60.0, 230.0, 140.0, 270.0], abs=0.2
    )  # centre (10, 50), 4 px each side: x (6..14)*10, y (46..54)*5
    assert [
        b["label"]
        for b in client.post("/predict?score_threshold=0.2&max_boxes=1", files=upload).json()["boxes"]
    ] == ["debris"]
    assert client.post("/predict?score_threshold=0.99", files=upload).json()["boxes"] == []
    assert client.post("/predict?score_threshold=2", files=upload).status_code == 422
    assert client.post("/predict?max_boxes=0", files=upload).status_code == 422


def test_edge_predict_and_edgeops_predict_agree_and_draw(agent_dir: Path, tmp_path: Path) -> None:
    from edgeops.cli import app
    from edgeops.edge.cli import edge_app

    image = tmp_path / "wide.png"
    image.write_bytes(picture())
    runner = CliRunner()
    edge = runner.invoke(
        edge_app, ["predict", str(image), "--dir", str(agent_dir), "--out", str(tmp_path / "e")]
    )
    assert edge.exit_code == 0, edge.output
    edge_answer = json.loads(edge.output.splitlines()[-1])
    local = runner.invoke(
        app,
        [
            "predict",
            str(image),
            "--model",
            str(agent_dir / "current"),
            "--json",
            "--out",
            str(tmp_path / "l"),
        ],
    )
    assert local.exit_code == 0, local.output
    local_answer = json.loads(local.output.splitlines()[-1])
    assert edge_answer["boxes"] == local_answer["boxes"] and edge_answer["boxes"][0]["label"] == "debris"
    drawn = np.asarray(Image.open(tmp_path / "e" / "wide_boxes.png").convert("RGB"))
    assert drawn.shape == (320, 640, 3)
    x0, y0, x1, y1 = (int(v) for v in DEBRIS_BOX)
    assert (drawn[y0 + 20, x0] != 90).any() and (drawn[y0 + 20, (x0 + x1) // 2] == 90).all()  # an outline
    plain = runner.invoke(
        app, ["predict", str(image), "--model", str(agent_dir / "current"), "--out", str(tmp_path / "p")]
    )
    assert "1 boxes: 1 debris" in plain.output


def test_the_models_own_threshold_is_the_default_everywhere(tmp_path: Path) -> None:
    """model.json output.serving (chosen on val by the compress stage) sets the default threshold of the
    server, `edge predict`, `edgeops predict` and Model API; a query still overrides it."""
    import openvino as ov

    folder = build_detection_ir(tmp_path / "m", serving={"score_threshold": 0.2})
    contract = json.loads((folder / "model.json").read_text())
    assert contract["output"]["serving"] == {"score_threshold": 0.2}
    ir = ov.Core().read_model(folder / "model.xml")
    assert float(ir.get_rt_info(["model_info", "confidence_threshold"]).astype(str)) == pytest.approx(0.2)
    store = open_target(f"file://{tmp_path}/target")
    publish(folder, store, "det", "1", "production")
    agent.sync(store, "det", "production", tmp_path / "agent")
    with TestClient(create_app(tmp_path / "agent", poll_seconds=0.05)) as c:
        upload = {"file": ("x.png", picture(), "image/png")}
        assert [b["label"] for b in c.post("/predict", files=upload).json()["boxes"]] == ["debris", "cell"]
        assert [b["label"] for b in c.post("/predict?score_threshold=0.5", files=upload).json()["boxes"]] == [
            "debris"
        ]
    from edgeops.cli import app

    image = tmp_path / "wide.png"
    image.write_bytes(picture())
    local = CliRunner().invoke(
        app, ["predict", str(image), "--model", str(folder), "--json", "--out", str(tmp_path / "o")]
    )
    assert [b["label"] for b in json.loads(local.output.splitlines()[-1])["boxes"]] == ["debris", "cell"]
