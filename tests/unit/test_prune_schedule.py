"""prune_int8 raises sparsity at the end of every fine-tuning epoch, also when the last batch of an
epoch holds a single image (skipped by BatchNorm models): before, the ramp hooked the last *trained*
step, never came, and the whole ramp collapsed into one jump after fine-tuning had ended."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nncf.torch.function_hook.pruning.magnitude.schedulers import ExponentialMagnitudePruningScheduler

from edgeops.config import PruneConfig
from edgeops.pipeline import compress
from edgeops.pipeline.train import fit
from edgeops.vision import Split, get_task
from edgeops.vision.classification.models import build_model

TASK = get_task("classification")
LABELS = ["dark", "bright"]


def _split(n: int, size: int = 16, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 2
    images = rng.integers(0, 80, size=(n, size, size, 3), dtype=np.uint8)
    images[labels == 1, : size // 2] += 150  # class 1: bright top half
    return Split(images, labels)


@pytest.mark.parametrize("n_train", [64, 65])  # 65 = one full batch of 64 + a single image
def test_sparsity_ramps_once_per_epoch(n_train, monkeypatch):
    steps: list[int] = []
    original = ExponentialMagnitudePruningScheduler.step

    def recording_step(self, epoch):
        steps.append(epoch)
        return original(self, epoch)

    monkeypatch.setattr(ExponentialMagnitudePruningScheduler, "step", recording_step)
    torch.manual_seed(0)
    model = build_model("small_cnn", 2).eval()
    config = PruneConfig(ratio=0.5, epochs=3, lr=1e-3, subset_size=8)
    result = compress.prune_int8(
        model, 16, _split(n_train), _split(8, seed=1), config, 0, lambda _: None, TASK, LABELS
    )
    assert steps == [0, 1, 2, 3, 3]  # start, after each epoch, and the final "make sure"
    assert result.details["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_fit_calls_after_epoch_once_per_epoch_even_if_the_last_batch_is_skipped():
    torch.manual_seed(0)
    calls: list[int] = []
    fit(
        build_model("small_cnn", 2),
        TASK,
        LABELS,
        _split(65),
        _split(8, seed=1),
        epochs=2,
        lr=1e-3,
        batch_size=64,
        seed=0,
        log=lambda _: None,
        after_epoch=calls.append,
    )
    assert calls == [1, 2]
