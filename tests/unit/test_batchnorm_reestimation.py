"""Eval-mode BatchNorm statistics after training: re-estimated on the train images, so a model
that fits its training data in train mode does not collapse to one class in eval mode (MobileNetV3
from scratch on small data did: train loss near 0, eval and IR accuracy at chance)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgeops.errors import EdgeopsError
from edgeops.pipeline.train import fit, reestimate_batchnorm, seed_everything, validation_score
from edgeops.vision import Split, get_task
from edgeops.vision.classification.models import build_model
from edgeops.vision.preprocess import normalize

TASK = get_task("classification")
LABELS = ["square", "cross"]


def _shapes_split(n_per_class: int, size: int, seed: int) -> Split:
    """Two learnable classes: a bright square vs a bright cross, random offset and colour noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
            c, r = size // 2 + int(rng.integers(-2, 3)), size // 4
            colour = rng.integers(150, 256, size=3, dtype=np.uint8)
            if label == 0:
                img[c - r : c + r, c - r : c + r] = colour
            else:
                img[c - r : c + r, c - 2 : c + 2] = colour
                img[c - 2 : c + 2, c - r : c + r] = colour
            images.append(img)
            labels.append(label)
    return Split(np.stack(images), np.array(labels, dtype=np.int64))


def test_running_statistics_become_the_average_over_train_batches():
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", 2).eval()
    first_conv, first_bn = model.features[0][0], model.features[0][1]
    data = _shapes_split(8, 32, seed=0)  # 17 images: two batches of 8, plus a single image skipped
    data = Split(np.concatenate([data.images, data.images[:1]]), np.concatenate([data.targets, [0]]))
    assert reestimate_batchnorm(model, data, batch_size=8)
    # the batches are a fixed random sample (a split may be in class order)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).numpy()
    with torch.no_grad():
        a, b = (first_conv(normalize(torch.from_numpy(data.images[order[i : i + 8]]))) for i in (0, 8))
    expected_mean = (a.mean((0, 2, 3)) + b.mean((0, 2, 3))) / 2
    expected_var = (a.transpose(0, 1).flatten(1).var(1) + b.transpose(0, 1).flatten(1).var(1)) / 2
    torch.testing.assert_close(first_bn.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_bn.running_var, expected_var, rtol=1e-4, atol=1e-5)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not model.training


def test_a_capped_sample_comes_from_every_class_of_a_class_ordered_split():
    torch.manual_seed(0)
    model = build_model("small_cnn", 2).eval()
    data = _shapes_split(64, 16, seed=0)  # class 0, then class 1
    seen: list[torch.Tensor] = []
    model.features[0].register_forward_pre_hook(
        lambda _, inputs: seen.append(inputs[0]) if model.training else None
    )
    assert reestimate_batchnorm(model, data, batch_size=16, max_images=32)
    assert sum(len(x) for x in seen) == 32  # two batches, then it stops
    sampled = {tuple(x.flatten()[:20].tolist()) for x in torch.cat(seen)}
    classes = {
        int(data.targets[i]) for i in range(len(data))
        if tuple(normalize(torch.from_numpy(data.images[i : i + 1])).flatten()[:20].tolist()) in sampled
    }  # fmt: skip
    assert classes == {0, 1}


def test_model_without_batchnorm_is_left_alone():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    assert not reestimate_batchnorm(model, _shapes_split(2, 8, seed=0))


def test_mobilenet_from_scratch_is_accurate_in_eval_mode():
    seed_everything(0, 1)
    train, val = _shapes_split(24, 32, seed=1), _shapes_split(8, 32, seed=2)
    model = build_model("mobilenet_v3_small", 2)
    model, history = fit(
        model, TASK, LABELS, train, val, epochs=12, lr=3e-3, batch_size=16, seed=0, log=lambda _: None
    )
    assert min(row["train_loss"] for row in history) < 0.5  # it learned the training data ...
    assert validation_score(model, TASK, val, LABELS) >= 0.9  # ... and eval mode (what the IR runs) shows it


def test_batch_size_one_on_a_batchnorm_model_is_refused_not_silently_untrained():
    model = build_model("small_cnn", 2)
    before = copy.deepcopy(model.state_dict())
    data = _shapes_split(4, 16, seed=0)
    with pytest.raises(EdgeopsError, match="train.batch_size to 2 or more"):
        fit(model, TASK, LABELS, data, data, epochs=1, lr=1e-3, batch_size=1, seed=0, log=lambda _: None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
