"""A segmentation model on the edge: the server, `edge predict` and `edgeops predict` answer with the
same mask at the uploaded image's size, and the edge decodes images exactly as training did."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from edgeops.edge import agent, inference
from edgeops.edge.publish import publish
from edgeops.edge.server import create_app
from edgeops.edge.targets import open_target
from edgeops.images import load_rgb

LABELS = ["red", "green", "blue"]
SIZE = 16


def build_segmentation_ir(folder: Path) -> Path:
    """Scores [1,3,H,W]: class i = colour channel i, so the answer for a picture is known."""
    import openvino as ov
    import openvino.opset13 as ops

    from edgeops.pipeline.export import write_model_dir

    image = ops.parameter([1, SIZE, SIZE, 3], ov.Type.u8, name="image")
    x = ops.transpose(ops.convert(image, ov.Type.f32), ops.constant(np.array([0, 3, 1, 2], np.int64)))
    weights = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    scores = ops.convolution(x, ops.constant(weights), [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov.Model([scores], [image], "colours")
    meta = {"task": "segmentation", "variant": "ptq", "precision": "FP32", "labels": LABELS}
    write_model_dir(model, folder, meta)
    return folder


def half_red_half_blue(width: int = 60, height: int = 40) -> bytes:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2, 0] = 250
    pixels[:, width // 2 :, 2] = 250
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_mask(answer: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))))


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    store = open_target(f"file://{tmp_path}/target")
    publish(build_segmentation_ir(tmp_path / "m1"), store, "seg", "1", "production")
    agent.sync(store, "seg", "production", tmp_path / "agent")
    return tmp_path / "agent"


@pytest.fixture
def client(agent_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(agent_dir, poll_seconds=0.05)) as c:
        yield c


def test_server_answers_with_the_mask_at_the_image_size(client: TestClient) -> None:
    r = client.post("/predict", files={"file": ("x.png", half_red_half_blue(), "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    mask = decode_mask(answer)
    assert mask.shape == (40, 60) and answer["width"] == 60 and answer["height"] == 40
    assert (mask[:, :25] == 0).all() and (mask[:, 35:] == 2).all()
    assert answer["class_fractions"]["red"] == pytest.approx(0.5, abs=0.05)
    assert answer["class_fractions"]["green"] == 0.0 and answer["classes_present"] == ["red", "blue"]
    model = client.get("/model").json()
    assert model["task"] == "segmentation" and model["output"]["shape"] == [1, 3, SIZE, SIZE]


def test_edge_predict_and_edgeops_predict_give_the_same_mask(agent_dir: Path, tmp_path: Path) -> None:
    from edgeops.cli import app
    from edgeops.edge.cli import edge_app

    image = tmp_path / "picture.png"
    image.write_bytes(half_red_half_blue())
    edge = CliRunner().invoke(edge_app, ["predict", str(image), "--dir", str(agent_dir)])
    assert edge.exit_code == 0, edge.output
    edge_mask = decode_mask(json.loads(edge.output.splitlines()[0]))
    out = tmp_path / "out"
    local = CliRunner().invoke(
        app, ["predict", str(image), "--model", str(tmp_path / "m1"), "--out", str(out)]
    )
    assert local.exit_code == 0, local.output
    assert "red 50.0%" in local.output and "blue 50.0%" in local.output
    assert np.array_equal(np.asarray(Image.open(out / "picture_mask.png")), edge_mask)
    assert Image.open(out / "picture_overlay.png").size == (60, 40)


def test_edge_decodes_a_16bit_png_as_training_did(agent_dir: Path, tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    batch, size = inference.load_current(agent_dir).preprocess(path.read_bytes())
    assert size == (40, 30)
    assert np.array_equal(batch[0], load_rgb(path, SIZE))  # not clipped to white by convert("RGB")
