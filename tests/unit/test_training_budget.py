"""Training to a budget: epochs as a maximum, a wall-time budget, early stopping on the validation metric."""

from __future__ import annotations

import time

import pytest
import torch

from edgeops.config import parse_params
from edgeops.errors import EdgeopsError
from edgeops.pipeline.train import fit, planned_epochs, stop_reason
from edgeops.vision.classification.models import build_model
from tests.unit.test_batchnorm_reestimation import LABELS, TASK, _shapes_split


def test_planned_epochs_fit_the_budget_at_the_measured_pace() -> None:
    assert planned_epochs(max_epochs=30, budget_seconds=100, epoch_seconds=9) == 11
    assert planned_epochs(max_epochs=5, budget_seconds=100, epoch_seconds=9) == 5  # epochs stay a maximum
    assert planned_epochs(max_epochs=30, budget_seconds=5, epoch_seconds=9) == 1  # at least one epoch


@pytest.mark.parametrize(
    ("epoch", "elapsed", "best_epoch", "patience", "expected"),
    [
        (10, 50, 10, None, "max_epochs"),  # the maximum wins over everything
        (3, 30, 3, None, None),
        (3, 95, 3, None, "budget"),  # 95 s + a 10 s epoch would overrun 100 s: stop before it
        (6, 60, 6, None, "budget"),  # the planned epochs are done
        (4, 40, 1, 3, "patience"),  # 3 epochs without a better score
        (4, 40, 2, 3, None),
    ],
)
def test_stop_reason(
    epoch: int, elapsed: float, best_epoch: int, patience: int | None, expected: str
) -> None:
    reason = stop_reason(epoch, 10, 6 if epoch == 6 else 9, elapsed, 10.0, 100.0, best_epoch, patience)
    assert reason == expected


def test_a_budget_stops_training_within_one_epoch_of_it() -> None:
    torch.manual_seed(0)
    data = _shapes_split(8, 16, seed=0)
    model = build_model("small_cnn", 2)
    budget, pause = 1.5, 0.25

    def slow_epoch(epoch: int) -> None:  # every epoch takes at least `pause`
        time.sleep(pause)

    start = time.perf_counter()
    _, history = fit(
        model, TASK, LABELS, data, data, epochs=100, lr=1e-3, batch_size=8, seed=0,
        log=lambda _: None, after_epoch=slow_epoch, budget_seconds=budget,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    longest = max(row["seconds"] for row in history)
    assert history[-1]["stopped"] == "budget"
    assert 1 <= len(history) < 100
    assert elapsed <= budget + longest + 0.5, (elapsed, longest)  # never more than one epoch over
    assert all(row["stopped"] is None for row in history[:-1])


def test_patience_stops_when_the_score_stops_improving() -> None:
    data = _shapes_split(4, 16, seed=0)
    model = build_model("small_cnn", 2)
    _, history = fit(
        model, TASK, LABELS, data, data, epochs=20, lr=1e-12, batch_size=8, seed=0,
        log=lambda _: None, patience=2,
    )  # fmt: skip
    best = max(range(len(history)), key=lambda i: history[i]["val_score"])  # first best epoch (0-based)
    assert history[-1]["stopped"] == "patience"
    assert len(history) == best + 1 + 2


def test_without_budget_or_patience_all_epochs_run() -> None:
    _, history = fit(
        build_model("small_cnn", 2), TASK, LABELS, _shapes_split(4, 16, 0), _shapes_split(2, 16, 1),
        epochs=3, lr=1e-3, batch_size=8, seed=0, log=lambda _: None,
    )  # fmt: skip
    assert [row["stopped"] for row in history] == [None, None, "max_epochs"]


def test_budget_and_patience_are_validated() -> None:
    assert parse_params({"train": {"budget_seconds": 120, "patience": 5}}).train.budget_seconds == 120
    for bad in ({"budget_seconds": 0}, {"patience": 0}, {"budget": 10}):
        with pytest.raises(EdgeopsError):
            parse_params({"train": bad})
