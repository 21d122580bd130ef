"""The IR does its own pre-processing: raw u8 NHWC RGB in == torch on normalized NCHW."""

import json

import numpy as np
import openvino as ov
import pytest
import torch

from edgeops.errors import EdgeopsError
from edgeops.files import MODEL_FORMAT_VERSION, read_model_json, sha256_file
from edgeops.pipeline.export import to_openvino, with_preprocessing, write_model_dir
from edgeops.runtime import compile_model, predict_all, raw_output
from edgeops.vision import get_task
from edgeops.vision.classification.models import build_model
from edgeops.vision.preprocess import normalize

CLASSIFICATION = get_task("classification")


def predict_logits(compiled: ov.CompiledModel, images: np.ndarray) -> np.ndarray:
    """The raw outputs (logits) of every image, one inference each (the IR has batch 1)."""
    return predict_all(compiled, images, lambda raw: raw)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = build_model("small_cnn", 4).eval()
    with torch.no_grad():  # non-trivial BN statistics, so normalization errors would show
        model.train()
        model(torch.randn(16, 3, 24, 24) * 2 + 0.5)
        model.eval()
    return model


def meta():
    return {"task": "classification", "variant": "fp32", "precision": "FP32", "labels": ["a", "b", "c", "d"]}


def test_ir_on_raw_pixels_equals_torch_on_normalized(small_model, tmp_path):
    contract = write_model_dir(with_preprocessing(to_openvino(small_model, 24)), tmp_path / "m", meta())
    pixels = np.random.default_rng(0).integers(0, 256, size=(6, 24, 24, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = small_model(normalize(torch.from_numpy(pixels))).numpy()
    compiled = compile_model(tmp_path / "m", "f32")
    got = predict_logits(compiled, pixels)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(raw_output(compiled, pixels[2])[0], expected[2], rtol=1e-4, atol=1e-4)
    # the task's decoding of the IR outputs = the classes torch predicts
    assert predict_all(compiled, pixels, CLASSIFICATION.decode_output).tolist() == expected.argmax(1).tolist()
    assert contract["input"]["shape"] == [1, 24, 24, 3]


def test_ir_input_contract(small_model, tmp_path):
    write_model_dir(with_preprocessing(to_openvino(small_model, 24)), tmp_path / "m", meta())
    model = ov.Core().read_model(tmp_path / "m" / "model.xml")
    assert model.input(0).get_element_type() == ov.Type.u8
    assert list(model.input(0).get_shape()) == [1, 24, 24, 3]
    assert model.input(0).get_any_name() == "image"
    contract = json.loads((tmp_path / "m" / "model.json").read_text())
    for key in (
        "task",
        "labels",
        "input",
        "output",
        "metric",
        "precision",
        "metrics",
        "files",
        "mlflow_run_id",
    ):
        assert key in contract
    assert contract["format_version"] == MODEL_FORMAT_VERSION
    assert contract["task"] == "classification" and contract["metric"] == "accuracy"
    assert contract["input"]["layout"] == "NHWC" and contract["input"]["color"] == "RGB"
    assert contract["output"]["name"] == "logits" and contract["output"]["shape"] == [1, 4]
    assert model.output(0).get_any_name() == contract["output"]["name"]
    assert read_model_json(tmp_path / "m") == contract
    assert contract["files"]["model.bin"] == sha256_file(tmp_path / "m" / "model.bin")


def test_fp16_weights_are_smaller_and_close(small_model, tmp_path):
    ir = with_preprocessing(to_openvino(small_model, 24))
    write_model_dir(ir, tmp_path / "fp32", meta())
    write_model_dir(ir, tmp_path / "fp16", meta(), compress_to_fp16=True)
    size32 = (tmp_path / "fp32" / "model.bin").stat().st_size
    size16 = (tmp_path / "fp16" / "model.bin").stat().st_size
    assert size16 < 0.6 * size32
    pixels = np.random.default_rng(1).integers(0, 256, size=(3, 24, 24, 3), dtype=np.uint8)
    a = predict_logits(compile_model(tmp_path / "fp32", "f32"), pixels)
    b = predict_logits(compile_model(tmp_path / "fp16", "f32"), pixels)
    np.testing.assert_allclose(a, b, rtol=0.02, atol=0.02)


def test_tampered_model_is_refused(small_model, tmp_path):
    write_model_dir(with_preprocessing(to_openvino(small_model, 24)), tmp_path / "m", meta())
    with open(tmp_path / "m" / "model.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(EdgeopsError, match="sha256"):
        read_model_json(tmp_path / "m")


def test_failed_measure_leaves_no_half_written_folder(small_model, tmp_path):
    def boom(_):
        raise RuntimeError("measurement failed")

    with pytest.raises(RuntimeError):
        write_model_dir(
            with_preprocessing(to_openvino(small_model, 24)), tmp_path / "m", meta(), measure=boom
        )
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp").exists()
