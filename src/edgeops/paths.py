"""Where each stage writes, relative to the project root: one place, used by tasks, flows and tests.

Per model candidate (its key in candidates.yaml, e.g. `small_cnn`) and compression variant (e.g. `qat`)."""

from pathlib import Path

DEMO_DATA = Path("data/demo")
DEMO_SEGMENTATION_DATA = Path("data/demo-segmentation")
DEMO_DETECTION_DATA = Path("data/demo-detection")
DEMO_DATASETS = (DEMO_DATA, DEMO_SEGMENTATION_DATA, DEMO_DETECTION_DATA)  # the demo stage writes them
CANDIDATES = Path("candidates.yaml")  # written from params.yaml by edgeops.pipeline.plan
PREPARED = Path("data/prepared")
CHECKPOINTS = Path("checkpoints")
TRAIN_HISTORIES = Path("plots/train")
TRAIN_METRICS = Path("metrics/train")
MODELS = Path("models")
SELECTED = MODELS / "selected"
VARIANT_METRICS = Path("metrics/variants")
PICTURES = Path("plots/pictures")
SUMMARY = Path("metrics/summary.json")
SELECTION = Path("reports/selection.json")
REPORT = Path("reports/compression.md")
PARETO_PLOT = Path("reports/metric_vs_latency.png")
REGISTRATION = Path("reports/registration.json")


def checkpoint(candidate: str) -> Path:
    return CHECKPOINTS / f"{candidate}.pt"


def train_history(candidate: str) -> Path:
    return TRAIN_HISTORIES / f"{candidate}.csv"


def train_metrics(candidate: str) -> Path:
    return TRAIN_METRICS / f"{candidate}.json"


def variant_id(candidate: str, variant: str) -> str:
    """One compressed model's name in the report, selection and MLflow: `small_cnn/qat`."""
    return f"{candidate}/{variant}"


def split_variant_id(name: str) -> tuple[str, str]:
    """The inverse of variant_id: `small_cnn/qat` -> (`small_cnn`, `qat`)."""
    candidate, _, variant = name.rpartition("/")
    return candidate, variant


def variant_dir(candidate: str, variant: str) -> Path:
    return MODELS / candidate / variant


def variant_metrics(candidate: str, variant: str) -> Path:
    return VARIANT_METRICS / candidate / f"{variant}.json"


def variant_pictures(candidate: str, variant: str) -> Path:
    return PICTURES / candidate / variant
