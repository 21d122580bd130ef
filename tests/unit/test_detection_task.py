"""Detection's task pieces: the IR's box decoding equals the torch decoding training validates with,
the whole IR equals the torch network + decoder, and `image_size: auto`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeops.vision import Dataset, Split, get_task
from edgeops.vision.detection.dataset import BoxSample

TASK = get_task("detection")


def raw_with_peaks(seed: int, classes: int = 3, cells: int = 16) -> torch.Tensor:
    """Raw outputs with well separated peak scores (no near-ties, so top-k order is defined)."""
    rng = np.random.default_rng(seed)
    raw = np.full((1, classes + 4, cells, cells), -8.0, np.float32)
    raw[0, :classes] += rng.uniform(0, 0.5, size=(classes, cells, cells))  # background ripples
    for i, (c, y, x) in enumerate(
        zip(rng.integers(0, classes, 20), rng.integers(0, cells, 20), rng.integers(0, cells, 20), strict=True)
    ):
        raw[0, c, y, x] = 4.0 - 0.3 * i
    raw[0, classes:] = rng.uniform(-1, 2, size=(4, cells, cells))
    return torch.from_numpy(raw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ir_decoding_equals_torch_decoding(seed: int) -> None:
    import openvino as ov

    from edgeops.pipeline.export import append_postprocessor

    raw = raw_with_peaks(seed)
    decoder = TASK.postprocessor(torch.nn.Identity(), 64)
    assert decoder is not None
    expected_boxes, expected_labels = (t.numpy() for t in decoder(raw))
    # the network here is an identity on the raw tensor: the IR is the decoder alone, stitched as export does
    param = ov.opset13.parameter(list(raw.shape), ov.Type.f32)
    network = ov.Model([ov.opset13.result(param)], [param])
    ir = ov.Core().compile_model(
        append_postprocessor(network, decoder), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    result = ir([raw.numpy()])
    boxes, labels = result[ir.output(0)], result[ir.output(1)]
    planted = int((expected_boxes[0, :, 4] > 0.01).sum())  # planted peaks (some may neighbour each other)
    assert planted >= 12 and (expected_boxes[0, :10, 4] > 0.5).all()
    np.testing.assert_allclose(boxes[0, :planted], expected_boxes[0, :planted], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(labels[0, :planted], expected_labels[0, :planted])


def test_whole_ir_matches_torch_network_plus_decoder() -> None:
    """A trained-looking network is not needed: what matters is that float_ir = network, then decoder."""
    from edgeops.pipeline.export import float_ir
    from edgeops.pipeline.train import predict
    from edgeops.runtime import core, predict_all

    torch.manual_seed(0)
    model = TASK.build_model(TASK.models[0], 2, pretrained=False).eval()
    with torch.no_grad():  # a sharper heatmap than the prior's: peaks well apart in score
        model.heatmap[-1].bias.fill_(0.0)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    split = Split(images, np.full((2, 1, 6), -1, np.float32))
    ours = predict(model, TASK, split)
    compiled = core().compile_model(float_ir(model, TASK, 64), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    theirs = predict_all(compiled, images, TASK.decode_output)
    assert ours.shape == theirs.shape == (2, 100, 6)
    top = 10
    np.testing.assert_allclose(theirs[:, :top, 4], ours[:, :top, 4], atol=2e-3)  # scores
    same_rows = np.abs(theirs[:, :top, :4] - ours[:, :top, :4]).max(-1) < 0.05
    assert same_rows.mean() >= 0.8  # rows may swap only where two scores nearly tie


def dataset_of(sizes: list[tuple[int, int]]) -> Dataset:
    items = [
        BoxSample(
            Path(f"{i}.png"), size, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
        )
        for i, size in enumerate(sizes)
    ]
    return Dataset(Path("."), "COCO", ["cell"], items, [])


def test_auto_input_size_follows_the_images_without_upscaling_or_huge_inputs() -> None:
    assert TASK.input_size(dataset_of([(128, 128)] * 5)) == 128
    assert TASK.input_size(dataset_of([(100, 60)] * 3)) == 128  # never below the minimum
    assert TASK.input_size(dataset_of([(200, 150), (250, 240), (230, 100)])) == 256  # median 230 -> 256
    assert TASK.input_size(dataset_of([(1920, 1080)] * 4)) == 320  # capped for CPU speed


def test_the_task_lists_the_zoo_the_models_module_builds() -> None:
    from edgeops.vision.detection.models import MODELS, build_model

    assert TASK.models == MODELS and TASK.defaults.model == MODELS[0]
    for name in MODELS:
        raw = build_model(name, 2).eval()(torch.zeros(1, 3, 64, 64))
        assert raw.shape == (1, 2 + 4, 16, 16)
