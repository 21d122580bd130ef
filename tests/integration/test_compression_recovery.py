"""Accuracy recovery where plain PTQ fails: ptq_ac keeps the drop within max_drop, qat wins it back.

The scenario is made, not found: small_cnn is trained on the digits demo set, then given activation
outliers by an exact float reparametrization (tests/compression_helpers.py). The float model is
unchanged, per-tensor INT8 activations are not. Everything is seeded; the module trains once.
Run with `pytest -m integration tests/integration/test_compression_recovery.py -s` to see the figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import torch

from edgeops.config import Params, PtqAcConfig, PtqConfig, QatConfig, SplitConfig, parse_params
from edgeops.pipeline import compress, plan
from edgeops.pipeline.prepare import load_split, prepare_dataset
from edgeops.pipeline.train import train_candidate
from edgeops.runtime import core, predict_all
from edgeops.vision import Split, get_task
from edgeops.vision.classification.demo import make_demo_dataset
from edgeops.vision.classification.models import SmallCNN
from edgeops.vision.preprocess import normalize
from tests.compression_helpers import add_activation_outliers, drop_margin

pytestmark = pytest.mark.integration

SEED = 0
IMAGE_SIZE = 16  # digits are 8x8 originally: 16 px keeps all the information and trains in seconds
# A bigger test split than the pipeline default: a 0.5-point criterion needs a few images per half point.
SPLIT = SplitConfig(train=0.5, val=0.2, test=0.3)
# small_cnn, 8 epochs, batch 64, lr 3e-3: the classification defaults, at IMAGE_SIZE
TRAIN = {"model": "small_cnn", "image_size": IMAGE_SIZE, "epochs": 8, "batch_size": 64, "lr": 3e-3}
TASK = get_task("classification")
MAX_DROP = 0.01
# Two channels x200: the INT8 range after the first block becomes ~500 where the other channels need
# ~4 (measured: plain PTQ falls from 98.9% to 75.3%; 90.2% when torch runs on 1 thread, which trains a
# slightly different model). Measured on this split: x110 costs 2 points, x150 9.5, x300 72, x500
# drops to ~15%: 200 is clearly broken but leaves QAT something to learn from.
OUTLIER_SCALE = 200.0
OUTLIER_CHANNELS = [0, 1]
PTQ = PtqConfig()
PTQ_AC = PtqAcConfig(max_drop=MAX_DROP)
QAT = QatConfig()  # the shipped defaults (2 epochs, lr 1e-4): what a user gets
QAT_MAX_GAP = 0.005  # the "within 0.5 point of FP32"
QAT_OTHER_SEEDS = (1, 2)
# ptq_ac is held to max_drop on val; on test the same model may read higher by sampling alone. The
# int8 and float models are expected to disagree on at most 5% of the test images (asserted), so
# two standard errors of the drop on the test split bound that sampling error (~0.019 for 539 images).
# A tighter bound uses the disagreement actually measured (qat below).
MAX_DISAGREEMENT = 0.05

FIGURES: dict[str, float | int | str] = {}  # printed at the end of the module for the closing note


def _log(message: str) -> None:
    print(message)


@dataclass(frozen=True)
class Result:
    compressed: compress.Compressed
    test_accuracy: float
    test_predictions: np.ndarray
    seconds: float


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    labels: list[str]
    params: Params  # what prepared them, and what trains on them


def _params(data_path: Path) -> Params:
    return parse_params(
        {
            "seed": SEED,
            "task": "classification",
            "data": {"path": str(data_path), "split": SPLIT.model_dump()},
            "by_task": {"classification": TRAIN},
        }
    )


def _predictions(model: ov.Model, split: Split) -> np.ndarray:
    compiled = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return predict_all(compiled, split.images, TASK.decode_output)


def _evaluate(build: Callable[[], compress.Compressed], split: Split, labels: list[str]) -> Result:
    start = time.perf_counter()
    compressed = build()
    seconds = time.perf_counter() - start
    predictions = _predictions(compressed.model, split)
    accuracy = TASK.score(predictions, split, labels)["accuracy"]
    assert accuracy == float((predictions == split.targets).mean())
    return Result(compressed, accuracy, predictions, seconds)


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print("\ncompression recovery figures:")
    for key, value in FIGURES.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Splits:
    folder = tmp_path_factory.mktemp("recovery")
    make_demo_dataset(folder / "digits", seed=SEED)  # all 1797 images
    params = _params(folder / "digits")
    manifest = prepare_dataset(params, folder / "prepared", log=lambda _: None)
    loaded = Splits(
        *(load_split(folder / "prepared", name) for name in ("train", "val", "test")),
        manifest["classes"],
        params,
    )
    assert len(loaded.labels) == 10
    FIGURES["images train/val/test"] = "/".join(
        str(len(s.targets)) for s in (loaded.train, loaded.val, loaded.test)
    )
    return loaded


@pytest.fixture(scope="module")
def trained(splits: Splits) -> SmallCNN:
    start = time.perf_counter()
    (entry,) = plan.resolve(splits.params).values()  # the one model of its params
    model, history, _ = train_candidate(
        splits.params, entry, splits.train, splits.val, splits.labels, log=_log
    )
    FIGURES["train seconds"] = time.perf_counter() - start
    best_val = max(row["val_score"] for row in history)  # the classification metric: accuracy
    # A recovery claim means little against a weak baseline.
    assert best_val >= 0.97, f"the float model did not learn the digits well enough: {best_val:.4f}"
    assert isinstance(model, SmallCNN)
    return model


@pytest.fixture(scope="module")
def sensitive(trained: SmallCNN) -> SmallCNN:
    return add_activation_outliers(trained, OUTLIER_SCALE, OUTLIER_CHANNELS)


@pytest.fixture(scope="module")
def fp32(sensitive: SmallCNN, splits: Splits) -> Result:
    result = _evaluate(lambda: compress.fp32(sensitive, IMAGE_SIZE, TASK), splits.test, splits.labels)
    FIGURES["fp32 test accuracy"] = result.test_accuracy
    return result


@pytest.fixture(scope="module")
def ptq(sensitive: SmallCNN, splits: Splits) -> Result:
    result = _evaluate(
        lambda: compress.ptq(sensitive, IMAGE_SIZE, splits.train, PTQ, SEED, _log, TASK),
        splits.test,
        splits.labels,
    )
    FIGURES["ptq test accuracy"] = result.test_accuracy
    FIGURES["ptq seconds"] = result.seconds
    return result


@pytest.fixture(scope="module")
def ptq_ac(sensitive: SmallCNN, splits: Splits) -> Result:
    result = _evaluate(
        lambda: compress.ptq_ac(
            sensitive, IMAGE_SIZE, splits.train, splits.val, PTQ_AC, SEED, _log, TASK, splits.labels
        ),
        splits.test,
        splits.labels,
    )
    FIGURES["ptq_ac test accuracy"] = result.test_accuracy
    FIGURES["ptq_ac val drop"] = result.compressed.details["val_drop"]
    FIGURES["ptq_ac layers left in float"] = result.compressed.details["float_conv_matmul_ops"]
    FIGURES["ptq_ac seconds"] = result.seconds
    return result


def _qat(sensitive: SmallCNN, splits: Splits, seed: int) -> Result:
    return _evaluate(
        lambda: compress.qat(
            sensitive, IMAGE_SIZE, splits.train, splits.val, QAT, seed, _log, TASK, splits.labels
        ),
        splits.test,
        splits.labels,
    )


@pytest.fixture(scope="module")
def qat(sensitive: SmallCNN, splits: Splits) -> Result:
    result = _qat(sensitive, splits, SEED)
    FIGURES["qat test accuracy"] = result.test_accuracy
    FIGURES["qat val accuracy before fine-tuning"] = result.compressed.details["val_score_before_finetune"]
    FIGURES["qat seconds"] = result.seconds
    return result


@pytest.fixture(scope="module")
def qat_other_seeds(sensitive: SmallCNN, splits: Splits) -> list[Result]:
    results = [_qat(sensitive, splits, seed) for seed in QAT_OTHER_SEEDS]
    for seed, result in zip(QAT_OTHER_SEEDS, results, strict=True):
        FIGURES[f"qat test accuracy, seed {seed}"] = result.test_accuracy
    return results


def test_outliers_leave_the_float_model_unchanged(
    trained: SmallCNN, sensitive: SmallCNN, splits: Splits
) -> None:
    x = normalize(torch.from_numpy(splits.test.images))
    with torch.no_grad():
        before, after = trained.eval()(x), sensitive(x)
    # Float rounding only: scaling by 200 and back is exact up to a few ulps of the logits.
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert torch.equal(after.argmax(1), before.argmax(1))
    # ...and the outliers are really there: the first block's activations now span a much larger range.
    with torch.no_grad():
        plain_range = float(trained.features[0](x).amax())
        outlier_range = float(sensitive.features[0](x).amax())
    assert outlier_range > 50 * plain_range


def test_plain_ptq_is_fine_without_the_outliers(trained: SmallCNN, splits: Splits) -> None:
    """Control: the same weights without outliers quantize within max_drop, so the loss below is
    caused by the outliers, not by the data, the model or the runtime."""
    reference = _evaluate(lambda: compress.fp32(trained, IMAGE_SIZE, TASK), splits.test, splits.labels)
    quantized = _evaluate(
        lambda: compress.ptq(trained, IMAGE_SIZE, splits.train, PTQ, SEED, _log, TASK),
        splits.test,
        splits.labels,
    )
    drop = reference.test_accuracy - quantized.test_accuracy
    FIGURES["control (no outliers) ptq drop"] = drop
    assert drop <= MAX_DROP + drop_margin(len(splits.test.targets), MAX_DISAGREEMENT)


def test_plain_ptq_loses_accuracy(fp32: Result, ptq: Result) -> None:
    drop = fp32.test_accuracy - ptq.test_accuracy
    FIGURES["ptq drop"] = drop
    # Measured ~0.24: demand far more than max_drop so the recovery below is from a real loss.
    assert drop > 5 * MAX_DROP, f"the scenario is not quantization-sensitive: ptq drop {drop:.4f}"


def test_ptq_ac_stays_within_max_drop(fp32: Result, ptq: Result, ptq_ac: Result, splits: Splits) -> None:
    details = ptq_ac.compressed.details
    # On the split NNCF steered by, the criterion holds exactly.
    assert details["met_max_drop"], details
    assert details["val_drop"] <= MAX_DROP + 1e-9
    # It got there by keeping some layers in float, not all of them (small_cnn has 5 convs + 1 linear).
    assert 1 <= details["float_conv_matmul_ops"] < 6, details
    # On held-out test images: within max_drop up to sampling error (see MAX_DISAGREEMENT).
    disagreement = float((ptq_ac.test_predictions != fp32.test_predictions).mean())
    FIGURES["ptq_ac test disagreement with fp32"] = disagreement
    assert disagreement <= MAX_DISAGREEMENT
    drop = fp32.test_accuracy - ptq_ac.test_accuracy
    FIGURES["ptq_ac test drop"] = drop
    assert drop <= MAX_DROP + drop_margin(len(splits.test.targets), MAX_DISAGREEMENT)
    assert ptq_ac.test_accuracy > ptq.test_accuracy + 4 * MAX_DROP  # it did recover


def test_qat_recovers_to_fp32(
    fp32: Result, ptq: Result, qat: Result, qat_other_seeds: list[Result], splits: Splits
) -> None:
    runs = [qat, *qat_other_seeds]
    n = len(splits.test.targets)
    gaps = [fp32.test_accuracy - run.test_accuracy for run in runs]
    disagreements = [float((run.test_predictions != fp32.test_predictions).mean()) for run in runs]
    FIGURES["qat test drop"] = gaps[0]
    FIGURES["qat test drop, median of seeds"] = float(np.median(gaps))
    # Fine-tuning starts from the broken INT8 model (val accuracy far below float) ...
    assert qat.compressed.details["val_score_before_finetune"] < fp32.test_accuracy - 5 * MAX_DROP
    # ... and wins it back. "Within 0.5 point of FP32" is a claim about the population; on 539 test
    # images a run can only be held to it up to two standard errors of its measured drop (from its own
    # disagreement with fp32, see drop_margin). The seed moves a 30-step fine-tune by an image or more
    # (measured gaps over seeds 0-3: 0.37, 2.04, 0.37, 0.37 points), so the criterion is asserted for
    # the majority of three seeded runs and every run must stay within the loose MAX_DISAGREEMENT bound.
    meets = [
        gap <= QAT_MAX_GAP + drop_margin(n, max(d, 1 / n)) for gap, d in zip(gaps, disagreements, strict=True)
    ]
    assert sum(meets) >= 2, f"qat runs below fp32 by {gaps} (disagreement {disagreements})"
    for gap, d in zip(gaps, disagreements, strict=True):
        assert d <= MAX_DISAGREEMENT
        assert gap <= QAT_MAX_GAP + drop_margin(n, MAX_DISAGREEMENT), (
            f"a qat run is {gap:.4f} below fp32 (ptq: {fp32.test_accuracy - ptq.test_accuracy:.4f})"
        )
    FIGURES["qat runs within 0.5 point up to sampling error"] = f"{sum(meets)} of {len(runs)}"
    FIGURES["qat runs literally within 0.5 point"] = f"{sum(g <= QAT_MAX_GAP for g in gaps)} of {len(runs)}"


def test_ptq_is_deterministic(sensitive: SmallCNN, splits: Splits, ptq: Result) -> None:
    again = _evaluate(
        lambda: compress.ptq(sensitive, IMAGE_SIZE, splits.train, PTQ, SEED, _log, TASK),
        splits.test,
        splits.labels,
    )
    assert abs(again.test_accuracy - ptq.test_accuracy) <= 1e-6
    np.testing.assert_array_equal(again.test_predictions, ptq.test_predictions)


def test_qat_is_deterministic(sensitive: SmallCNN, splits: Splits, qat: Result) -> None:
    again = _qat(sensitive, splits, SEED)
    FIGURES["qat rerun test accuracy"] = again.test_accuracy
    # Measured identical on CPU (seeded data order, deterministic torch algorithms); one image of slack.
    assert abs(again.test_accuracy - qat.test_accuracy) <= 1 / len(splits.test.targets) + 1e-9
