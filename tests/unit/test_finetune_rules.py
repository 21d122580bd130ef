"""Fine-tuning in `qat` and `prune_int8` follows the training rules: its own budget and patience in fit,
why it stopped recorded; QAT freezes BatchNorm statistics after the first epoch and notes when the FP32
model it starts from was still improving at the train stage's last epoch."""

from __future__ import annotations

import csv
import random

import pytest
import torch
from torch import nn

from edgeops.config import PruneConfig, QatConfig, parse_params
from edgeops.errors import EdgeopsError
from edgeops.pipeline import compress
from edgeops.pipeline import train as train_module
from edgeops.pipeline.report import training_section
from edgeops.pipeline.train import (
    CONVERGENCE_WARNING,
    convergence_warning,
    fit,
    freeze_batchnorm,
    planned_epochs,
    read_history,
    stop_reason,
    undertrained_note,
)
from edgeops.vision import get_task
from edgeops.vision.base import Recipe
from edgeops.vision.classification.models import build_model
from tests.unit.test_batchnorm_reestimation import LABELS, TASK, _shapes_split


def _bn_and_conv(model: nn.Module) -> tuple[nn.BatchNorm2d, nn.Conv2d]:
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return bn, conv


# ------------------------------------------------------------------------------------------ BatchNorm


def test_frozen_batchnorm_keeps_its_statistics_while_the_weights_train() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", 2)
    model.train()
    assert freeze_batchnorm(model) == 5
    bn, conv = _bn_and_conv(model)
    mean, var, conv_w, bn_w = (
        t.detach().clone() for t in (bn.running_mean, bn.running_var, conv.weight, bn.weight)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(8, 3, 16, 16) * 3 + 1), torch.arange(8) % 2)
    loss.backward()
    optimizer.step()
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert not torch.equal(conv.weight, conv_w)
    assert not torch.equal(bn.weight, bn_w)  # the affine part still trains
    assert model.training and model.classifier.training  # only BatchNorm is in eval mode


def _bn_snapshots(freeze_bn_after: int | None) -> tuple[list[torch.Tensor], list[torch.Tensor], list[bool]]:
    """Running mean and a conv weight after every epoch of a 3-epoch fit, and BN's mode in every batch."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 2)
    bn, conv = _bn_and_conv(model)
    means, weights, modes = [], [], []
    bn.register_forward_pre_hook(lambda module, _: modes.append(module.training) if model.training else None)

    def snapshot(row: dict) -> None:
        means.append(bn.running_mean.clone())
        weights.append(conv.weight.detach().clone())

    data = _shapes_split(8, 16, seed=0)
    fit(
        model, TASK, LABELS, data, data, epochs=3, lr=1e-2, batch_size=8, seed=0,
        log=lambda _: None, on_epoch=snapshot, freeze_bn_after=freeze_bn_after,
    )  # fmt: skip
    return means, weights, modes


def test_fit_freezes_batchnorm_after_the_given_epoch() -> None:
    means, weights, modes = _bn_snapshots(freeze_bn_after=1)
    assert torch.equal(means[0], means[1]) and torch.equal(means[1], means[2])  # frozen after epoch 1
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    # epoch 1: 2 train batches + 1 re-estimation batch in train mode; epochs 2-3: 2 batches each, BN frozen
    assert modes == [True] * 3 + [False] * 4  # model.train() at each epoch's start did not unfreeze it


def test_fit_without_freeze_updates_batchnorm_every_epoch() -> None:
    means, _, modes = _bn_snapshots(freeze_bn_after=None)
    assert not torch.equal(means[0], means[1]) and not torch.equal(means[1], means[2])
    assert modes == [True] * 9  # and re-estimated after every epoch


def test_qat_freezes_batchnorm_of_the_nncf_model_and_records_why_it_stopped(monkeypatch) -> None:
    """NNCF 3.4's torch QAT model is the same nn.Module class with its BatchNorm2d layers (quantizers are
    hooks in `__nncf_hooks`); the freeze has to hold there too."""
    snapshots: list[torch.Tensor] = []
    real_fit = compress.fit

    def recording_fit(model, *args, **kwargs):
        assert type(model).__name__ == "SmallCNN"
        bn, _ = _bn_and_conv(model)
        snapshots.append(bn.running_mean.clone())  # the quantized model's statistics, before fine-tuning
        kwargs["on_epoch"] = lambda row: snapshots.append(bn.running_mean.clone())
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(compress, "fit", recording_fit)
    torch.manual_seed(0)
    model = build_model("small_cnn", 2).eval()
    data = _shapes_split(8, 16, seed=0)
    still_improving = [
        {"epoch": 1, "val_score": 0.6, "stopped": None},
        {"epoch": 2, "val_score": 0.8, "stopped": "max_epochs"},
    ]
    config = QatConfig(epochs=3, lr=1e-3, subset_size=8)
    result = compress.qat(
        model, 16, data, data, config, 0, lambda _: None, TASK, LABELS, batch_size=8,
        train_history=still_improving,
    )  # fmt: skip
    assert len(snapshots) == 4  # before fine-tuning, then after each of the 3 epochs
    assert not torch.equal(snapshots[0], snapshots[1])  # epoch 1 updates the statistics (default 1) ...
    assert torch.equal(snapshots[1], snapshots[2]) and torch.equal(
        snapshots[2], snapshots[3]
    )  # ... then frozen
    assert result.details["finetune_stopped"] == "max_epochs"
    assert result.details["freeze_bn_after_epochs"] == 1
    assert result.details["notes"] == [CONVERGENCE_WARNING]


@pytest.mark.parametrize(
    ("setting", "recipe_value", "expected"), [("auto", 0, 0), ("auto", None, None), (2, 0, 2)]
)
def test_qat_freeze_auto_takes_the_model_recipe_and_a_number_wins(
    setting, recipe_value, expected, monkeypatch
) -> None:
    seen = {}

    def spy_fit(model, *args, **kwargs):
        seen["freeze_bn_after"] = kwargs["freeze_bn_after"]
        return model, [{"epoch": 1, "val_score": 0.5, "stopped": "max_epochs", "kept": False}]

    monkeypatch.setattr(compress, "fit", spy_fit)
    torch.manual_seed(0)
    model = build_model("small_cnn", 2).eval()
    data = _shapes_split(8, 16, seed=0)
    config = QatConfig(epochs=1, subset_size=8, freeze_bn_after_epochs=setting)
    recipe = Recipe(epochs=1, lr=1e-3, qat_freeze_bn_after=recipe_value)
    result = compress.qat(model, 16, data, data, config, 0, lambda _: None, TASK, LABELS, 8, recipe=recipe)
    assert seen["freeze_bn_after"] == expected == result.details["freeze_bn_after_epochs"]
    assert get_task("classification").recipes["mobilenet_v3_small"].qat_freeze_bn_after == 0  # measured


# ------------------------------------------------------------------------------------------ budget


@pytest.mark.parametrize("seed", range(20))
def test_fine_tuning_never_overruns_its_budget_by_more_than_one_epoch(seed: int) -> None:
    """fit's loop, with its pure functions, on epochs of varying length (the pace may change after the
    first epoch, on which the plan is made)."""
    rng = random.Random(seed)
    budget, max_epochs = rng.uniform(5, 100), rng.randint(1, 40)
    elapsed, longest, planned = 0.0, 0.0, max_epochs
    for epoch in range(1, max_epochs + 1):
        seconds = rng.uniform(0.5, 20)
        elapsed, longest = elapsed + seconds, max(longest, seconds)
        if epoch == 1:
            planned = planned_epochs(max_epochs, budget, seconds)
        if stop_reason(epoch, max_epochs, planned, elapsed, seconds, budget, epoch, None):
            break
    assert elapsed <= budget + longest


class _FakeClock:
    """time.perf_counter for fit, advanced by each epoch's validation: epochs of known length."""

    def __init__(self, epoch_seconds: list[float]) -> None:
        self.now, self.epoch_seconds = 1000.0, list(epoch_seconds)

    def perf_counter(self) -> float:
        return self.now


def _fake_epochs(monkeypatch, epoch_seconds: list[float]) -> _FakeClock:
    clock = _FakeClock(epoch_seconds)
    real_validation = train_module.validation_score

    def validation_and_time(*args, **kwargs):
        clock.now += clock.epoch_seconds.pop(0) if clock.epoch_seconds else 10.0
        return real_validation(*args, **kwargs)

    monkeypatch.setattr(train_module, "time", clock)
    monkeypatch.setattr(train_module, "validation_score", validation_and_time)
    return clock


@pytest.mark.parametrize("variant", ["qat", "prune_int8"])
def test_fine_tuning_stops_on_its_own_budget(variant: str, monkeypatch) -> None:
    clock = _fake_epochs(monkeypatch, [10.0, 10.0, 14.0, 14.0, 14.0])  # slower after the plan is made
    start = clock.now
    torch.manual_seed(0)
    model = build_model("small_cnn", 2).eval()
    data = _shapes_split(8, 16, seed=0)
    args = (model, 16, data, data)
    if variant == "qat":
        config = QatConfig(epochs=20, lr=1e-3, subset_size=8, budget_seconds=35)
        result = compress.qat(*args, config, 0, lambda _: None, TASK, LABELS, batch_size=8, train_history=[])
    else:
        prune = PruneConfig(ratio=0.5, epochs=20, lr=1e-3, subset_size=8, budget_seconds=35)
        result = compress.prune_int8(*args, prune, 0, lambda _: None, TASK, LABELS, batch_size=8)
        assert result.details["sparsity"] == pytest.approx(0.5, abs=0.01)  # the ramp fit the budget
    history = result.details["history"]
    assert result.details["finetune_stopped"] == "budget" == history[-1]["stopped"]
    assert len(history) == 3  # 3 epochs planned at 10 s each (34 s in all); a fourth would overrun 35 s
    assert clock.now - start <= 35 + max(row["seconds"] for row in history)


def test_pruning_budget_reaches_the_target_ratio_within_the_planned_epochs(monkeypatch) -> None:
    _fake_epochs(monkeypatch, [10.0] * 10)
    ratios: list[float] = []
    real_fit = compress.fit

    def recording_fit(*args, **kwargs):
        after_epoch = kwargs["after_epoch"]
        scheduler = after_epoch.__self__

        def step_and_record(epoch: int) -> None:
            after_epoch(epoch)
            ratios.append(scheduler.current_ratio)

        return real_fit(*args, **{**kwargs, "after_epoch": step_and_record})

    monkeypatch.setattr(compress, "fit", recording_fit)
    torch.manual_seed(0)
    data = _shapes_split(8, 16, seed=0)
    config = PruneConfig(ratio=0.5, epochs=20, lr=1e-3, subset_size=8, budget_seconds=40)
    model = build_model("small_cnn", 2).eval()
    compress.prune_int8(model, 16, data, data, config, 0, lambda _: None, TASK, LABELS, batch_size=8)
    assert len(ratios) == 4  # 4 epochs of 10 s fit 40 s
    assert ratios[0] < ratios[1] < ratios[2] == ratios[3] == pytest.approx(0.5)  # target at planned - 1


def test_patience_counts_only_eligible_epochs_and_keeps_an_eligible_one() -> None:
    """Pruning: epochs before the target sparsity neither become the kept model nor start patience."""
    data = _shapes_split(4, 16, seed=0)
    model = build_model("small_cnn", 2)
    kept: dict[int, torch.Tensor] = {}
    conv = _bn_and_conv(model)[1]
    _, history = fit(
        model, TASK, LABELS, data, data, epochs=20, lr=1e-12, batch_size=8, seed=0, log=lambda _: None,
        patience=2, eligible=lambda epoch: epoch >= 4,
        on_epoch=lambda row: kept.__setitem__(row["epoch"], conv.weight.detach().clone()),
    )  # fmt: skip
    assert history[-1]["stopped"] == "patience"
    eligible_scores = [row["val_score"] for row in history[3:]]
    best = 4 + eligible_scores.index(max(eligible_scores))
    assert len(history) == best + 2
    assert torch.equal(conv.weight, kept[best])


# ------------------------------------------------------------------------------------------ convergence


@pytest.mark.parametrize(
    ("scores", "stopped", "warned"),
    [
        ([0.5, 0.6, 0.7], "max_epochs", True),  # still improving at the last epoch
        ([0.5, 0.7, 0.7], "max_epochs", False),  # the last epoch ties the best: converged enough
        ([0.5, 0.7, 0.704], "max_epochs", False),  # better by less than the delta
        # MobileNet after 8 epochs: its best was the 7th, still climbing (the last quarter is 2 epochs)
        ([0.12, 0.2, 0.3, 0.45, 0.55, 0.62, 0.68, 0.672], "max_epochs", True),
        ([0.12, 0.2, 0.3, 0.45, 0.55, 0.68, 0.683, 0.679], "max_epochs", False),  # flat at the end
        ([0.5, 0.7, 0.6], "max_epochs", False),  # the best was earlier
        ([0.5, 0.6, 0.7], "budget", False),  # the user's budget: not a max-epochs stop
        ([0.5, 0.6, 0.7], "patience", False),
        ([0.5], "max_epochs", True),  # one epoch: nothing before it, still improving
        ([], None, False),
    ],
)
def test_convergence_warning(scores: list[float], stopped: str | None, warned: bool) -> None:
    history = [{"epoch": i + 1, "val_score": s, "stopped": None} for i, s in enumerate(scores)]
    if history:
        history[-1]["stopped"] = stopped
    assert convergence_warning(history) == (CONVERGENCE_WARNING if warned else None)


def test_convergence_is_checked_on_the_train_stage_csv(tmp_path) -> None:
    rows = [
        {"epoch": 1, "train_loss": 1.0, "val_score": 0.5, "lr": 0.1, "seconds": 1.0, "stopped": None},
        {"epoch": 2, "train_loss": 0.5, "val_score": 0.9, "lr": 0.1, "seconds": 1.0, "stopped": "max_epochs"},
    ]
    path = tmp_path / "train_history.csv"
    with open(path, "w", newline="") as f:  # as tasks/train.py writes it
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    history = read_history(path)
    assert history is not None
    assert [row["stopped"] for row in history] == [None, "max_epochs"]
    assert convergence_warning(history) == CONVERGENCE_WARNING
    note = undertrained_note("classification", "small_cnn", history)
    assert note == (
        "small_cnn was still improving when its 2 epochs ran out: more epochs (by_task.classification.epochs) "
        "would likely give a better model"
    )
    assert (
        undertrained_note("classification", "small_cnn", [{**history[0], "stopped": "max_epochs"}])
        is not None
    )
    assert (
        undertrained_note("classification", "small_cnn", [*history[:1], {**history[1], "val_score": 0.4}])
        is None
    )
    assert (
        undertrained_note("classification", "small_cnn", [history[0], {**history[1], "stopped": "budget"}])
        is None
    )
    trained = {"model": "small_cnn", "best_val": 0.9, "epochs": 2, "stopped": "max_epochs", "note": note}
    report = "\n".join(training_section("accuracy", {"small_cnn": trained}))
    assert f"**Note (small_cnn):** {note}." in report
    assert read_history(tmp_path / "missing.csv") is None
    (tmp_path / "other.csv").write_text("epoch,loss\n1,0.5\n")
    assert read_history(tmp_path / "other.csv") is None  # advice only: never fails the variant


def test_finetune_settings_are_validated() -> None:
    variants = parse_params({"compress": {"variants": {"qat": {}, "prune_int8": {}}}}).compress.variants
    assert variants.qat is not None and variants.qat.freeze_bn_after_epochs == "auto"
    assert variants.qat.budget_seconds is None and variants.qat.patience is None
    assert variants.prune_int8 is not None and variants.prune_int8.budget_seconds is None
    for variant, bad in [
        ("qat", {"budget_seconds": 0}),
        ("qat", {"patience": 0}),
        ("qat", {"freeze_bn_after_epochs": -1}),
        ("qat", {"freeze_bn_after_epochs": "always"}),
        ("prune_int8", {"budget_seconds": -5}),
        ("prune_int8", {"freeze_bn_after_epochs": 1}),  # QAT only
    ]:
        with pytest.raises(EdgeopsError):
            parse_params({"compress": {"variants": {variant: bad}}})


@pytest.mark.parametrize("start_score", [2.0, -1.0])
def test_fit_keeps_the_starting_model_unless_an_epoch_beats_its_score(start_score: float) -> None:
    """QAT: fine-tuning that does not beat the score right after quantization must not make it worse."""
    torch.manual_seed(0)
    data = _shapes_split(8, 16, seed=0)
    model = build_model("small_cnn", 2)
    conv = _bn_and_conv(model)[1]
    start = conv.weight.detach().clone()
    lines: list[str] = []
    _, history = fit(
        model, TASK, LABELS, data, data, epochs=2, lr=1e-2, batch_size=8, seed=0, log=lines.append,
        start_score=start_score,
    )  # fmt: skip
    if start_score > 1:  # no accuracy beats it: the model comes back as it was given
        assert torch.equal(conv.weight, start)
        assert not any(row["kept"] for row in history)
        assert "the starting model is kept" in lines[-1]
    else:
        assert not torch.equal(conv.weight, start)
        assert sum(row["kept"] for row in history) == 1
