"""Where each stage writes, relative to the project root: one place, used by tasks, flows and tests."""

from pathlib import Path

DEMO_DATA = Path("data/demo")
DEMO_SEGMENTATION_DATA = Path("data/demo-segmentation")
DEMO_DETECTION_DATA = Path("data/demo-detection")
DEMO_DATASETS = (DEMO_DATA, DEMO_SEGMENTATION_DATA, DEMO_DETECTION_DATA)  # the demo stage writes them
PREPARED = Path("data/prepared")
CHECKPOINT = Path("checkpoints/model.pt")
TRAIN_HISTORY = Path("plots/train_history.csv")
TRAIN_METRICS = Path("metrics/train.json")
MODELS = Path("models")
SELECTED = MODELS / "selected"
VARIANT_METRICS = Path("metrics/variants")
PICTURES = Path("plots/pictures")
SUMMARY = Path("metrics/summary.json")
SELECTION = Path("reports/selection.json")
REPORT = Path("reports/compression.md")
PARETO_PLOT = Path("reports/metric_vs_latency.png")
REGISTRATION = Path("reports/registration.json")


def variant_dir(variant: str) -> Path:
    return MODELS / variant


def variant_metrics(variant: str) -> Path:
    return VARIANT_METRICS / f"{variant}.json"


def variant_pictures(variant: str) -> Path:
    return PICTURES / variant
