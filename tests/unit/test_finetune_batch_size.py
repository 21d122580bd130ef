"""QAT and prune_int8 fine-tune with the training batch size (train.batch_size, the user's memory
knob at 224 px), not a fixed 64; tasks/compress passes it on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tasks.compress
from edgeops.config import PruneConfig, QatConfig
from edgeops.pipeline import compress
from edgeops.vision import Split, get_task
from edgeops.vision.classification.models import build_model

TASK = get_task("classification")
LABELS = ["dark", "bright"]


def _split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 2
    images = rng.integers(0, 80, size=(n, 16, 16, 3), dtype=np.uint8)
    images[labels == 1, :8] += 150
    return Split(images, labels)


@pytest.mark.parametrize("variant", ["qat", "prune_int8"])
def test_finetuning_uses_the_given_batch_size(variant, monkeypatch):
    seen: list[int] = []
    real_fit = compress.fit

    def recording_fit(*args, **kwargs):
        seen.append(kwargs["batch_size"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(compress, "fit", recording_fit)
    torch.manual_seed(0)
    model = build_model("small_cnn", 2).eval()
    train, val = _split(24, 0), _split(6, 1)
    if variant == "qat":
        config = QatConfig(epochs=1, subset_size=8)
        compress.qat(model, 16, train, val, config, 0, lambda _: None, TASK, LABELS, batch_size=8)
    else:
        config = PruneConfig(epochs=1, subset_size=8)
        compress.prune_int8(model, 16, train, val, config, 0, lambda _: None, TASK, LABELS, batch_size=8)
    assert seen == [8]


@pytest.mark.parametrize("variant", ["qat", "prune_int8"])
def test_compress_stage_passes_train_batch_size(variant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = "{model: small_cnn, image_size: 16, epochs: 1, batch_size: 12, lr: 0.001}"
    (tmp_path / "params.yaml").write_text(
        f"task: classification\nby_task: {{classification: {settings}}}\n"
        f"compress: {{variants: {{{variant}: {{}}}}}}\n"
    )
    from edgeops.config import load_params
    from edgeops.pipeline import plan

    plan.write(load_params(tmp_path / "params.yaml"), tmp_path)  # the batch size comes from its entry
    meta = {"task": "classification", "model": "small_cnn", "classes": LABELS, "image_size": 16}
    monkeypatch.setattr(tasks.compress, "load_checkpoint", lambda _: (object(), meta))
    monkeypatch.setattr(tasks.compress, "load_split", lambda *_: None)
    calls: list[tuple] = []
    monkeypatch.setattr(compress, variant, lambda *args: calls.append(args))

    def on_epoch(row: dict) -> None: ...

    params = load_params(tmp_path / "params.yaml")
    tasks.compress.build(params, plan.entry(params, "small_cnn", tmp_path), "small_cnn", variant, on_epoch)
    args = calls[0][:-2] if variant == "qat" else calls[0]  # qat also gets the history and the recipe
    if variant == "qat":
        assert calls[0][-2] is None  # no plots/train/small_cnn.csv here
        assert calls[0][-1] is TASK.recipes["small_cnn"]  # for freeze_bn_after_epochs: auto
    assert args[-2] == 12
    assert args[-4:-2] == (TASK, LABELS)  # the task and labels the fine-tuning validates with
    assert args[-1] is on_epoch  # fine-tuning curves go live to MLflow
