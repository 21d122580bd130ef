"""Where each stage writes, relative to the project root: one place, used by tasks, flows and tests."""

from pathlib import Path

DEMO_DATA = Path("data/demo")
PREPARED = Path("data/prepared")
CHECKPOINT = Path("checkpoints/model.pt")
TRAIN_HISTORY = Path("plots/train_history.csv")
TRAIN_METRICS = Path("metrics/train.json")
MODELS = Path("models")
SELECTED = MODELS / "selected"
VARIANT_METRICS = Path("metrics/variants")
PREDICTIONS = Path("plots/predictions")
SUMMARY = Path("metrics/summary.json")
SELECTION = Path("reports/selection.json")
REPORT = Path("reports/compression.md")
PARETO_PLOT = Path("reports/accuracy_vs_latency.png")
CONFUSION_PLOTS = Path("plots/confusion")
REGISTRATION = Path("reports/registration.json")


def variant_dir(variant: str) -> Path:
    return MODELS / variant


def variant_metrics(variant: str) -> Path:
    return VARIANT_METRICS / f"{variant}.json"


def confusion_plot(variant: str) -> Path:
    return CONFUSION_PLOTS / f"{variant}.png"
