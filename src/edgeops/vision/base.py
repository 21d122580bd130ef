"""The task interface: everything that differs between vision tasks, behind one class.

Stages, flows, selection, gates, registry, promotion and the edge agent call a `VisionTask` and know
no task. A task's numpy parts (decode_output, score, answer) must not import torch: the edge agent
and `edgeops predict` use them with openvino + numpy + Pillow only. Torch parts (models, loss,
augmentation) are imported lazily inside the methods that need them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

Progress = Callable[[int, int], None]
# What an IR returns for a batch: its one output, or a tuple of its outputs in IR order (detection: boxes, labels)
Raw = np.ndarray | tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Split:
    """One decoded split, as the prepare stage stores it."""

    images: np.ndarray  # u8 NHWC RGB at the model's input size
    targets: np.ndarray  # what training compares outputs to: class indices (N,), label maps (N,H,W) ...
    # the targets at each image's original size, where the task's metric is measured there (masks)
    originals: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class Dataset:
    """A scanned and validated dataset: what prepare splits and decodes."""

    root: Path
    layout: str  # how it was read, for the log: "image folder", "images/ + masks/", "Pascal VOC"
    classes: list[str]
    items: list[Any]  # the task's own sample records
    files: list[Path]  # every file the dataset is made of, relative to root (for the fingerprint)
    ignored: tuple[str, ...] = ()  # what the scan skipped, one note each
    notes: tuple[str, ...] = ()  # other facts worth a log line
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerOptions:
    """What a caller of `answer` may choose; each task reads the options that apply to it."""

    top_k: int = 5  # classification: how many labels
    score_threshold: float | None = None  # detection: drop boxes below it (None = the model's own threshold)
    max_boxes: int | None = None  # detection: at most this many boxes, highest score first

    def filled(self, serving: dict[str, Any]) -> AnswerOptions:
        """These options, with the model's serving defaults (model.json output.serving) where unset."""
        unset = {
            k: v for k, v in serving.items() if k in self.__dataclass_fields__ and getattr(self, k) is None
        }
        return replace(self, **unset)


@dataclass(frozen=True)
class TaskDefaults:
    """The settings `edgeops run --data` uses for this task when params.yaml has none."""

    model: str
    image_size: int | str  # a size, or "auto": `input_size` picks it from the dataset
    epochs: int | str  # a number, or "auto": the model's recipe
    batch_size: int
    lr: float | str  # a number, or "auto": the model's recipe


@dataclass(frozen=True)
class Recipe:
    """How a zoo model trains when params.yaml says `epochs: auto` / `lr: auto`: the epochs it needs to
    converge (a maximum when train.budget_seconds is set) and its peak one-cycle learning rate.
    imagenet_weights: the model can start from ImageNet weights (`train.pretrained: true`).
    min_image_size: below this input size the model is not worth training; `model: auto` trains it at this size.
    qat_freeze_bn_after: the QAT fine-tuning epochs after which BatchNorm statistics freeze (None = never) when
    compress.variants.qat.freeze_bn_after_epochs is auto."""

    epochs: int
    lr: float
    imagenet_weights: bool = False
    min_image_size: int = 0
    qat_freeze_bn_after: int | None = 1


class VisionTask:
    """Base class of a vision task. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    metric: ClassVar[str]  # the primary metric: selection, gates and promotion compare it (higher = better)
    per_class_metric: ClassVar[str]  # what `score` reports per class, e.g. "accuracy", "IoU"
    models: ClassVar[tuple[str, ...]]  # the model zoo names for params.yaml
    defaults: ClassVar[TaskDefaults]
    recipes: ClassVar[dict[str, Recipe]]  # every model of the zoo: its measured training defaults
    model_api_type: ClassVar[str]  # OpenVINO Model API `model_type`
    output_names: ClassVar[tuple[str, ...]]  # the IR's output tensor names, in order

    # ----------------------------------------------------------------- data
    def detect(self, root: Path) -> str | None:
        """A short description of the layout if `root` looks like this task's dataset, else None."""
        raise NotImplementedError

    def scan(self, root: Path, min_per_class: int) -> Dataset:
        """List and validate the dataset (layout, names, pairing); one EdgeopsError line if broken."""
        raise NotImplementedError

    def split(
        self, dataset: Dataset, fractions: dict[str, float], seed: int, min_per_class: int
    ) -> dict[str, list[int]]:
        """Indices into dataset.items for train, val and test."""
        raise NotImplementedError

    def decode(
        self, dataset: Dataset, indices: list[int], size: int, keep_originals: bool, progress: Progress | None
    ) -> tuple[Split, list[str]]:
        """Decode the items at the model input size; returns the split and a 'path (reason)' per bad file."""
        raise NotImplementedError

    def input_size(self, dataset: Dataset) -> int:
        """The model input size for `image_size: auto`, from the dataset (e.g. its image sizes)."""
        from edgeops.errors import EdgeopsError

        raise EdgeopsError(f"image_size: auto is not supported for {self.name}: set a number of pixels")

    def describe_split(self, dataset: Dataset, indices: list[int]) -> list[list[Any]]:
        """What the manifest records per item (paths and labels), so a split can be audited."""
        raise NotImplementedError

    # ----------------------------------------------------------------- model (torch)
    def build_model(self, name: str, num_classes: int, pretrained: bool) -> torch.nn.Module:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def augment(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random changes that keep the answer right (a mask moves with its image)."""
        raise NotImplementedError

    def postprocessor(self, model: torch.nn.Module, image_size: int) -> torch.nn.Module | None:
        """A torch module that turns the network's raw output into the IR's outputs (detection: box decoding),
        or None when the network's output is the IR's output. It is converted to OpenVINO on its own and
        appended after the (quantized) network, so quantization never sees it."""
        return None

    # ----------------------------------------------------------------- metric (numpy)
    def decode_output(self, raw: Raw) -> np.ndarray:
        """The IR's outputs for a batch (N, ...) -> one prediction per image (class index, label map, boxes)."""
        raise NotImplementedError

    def score(self, predictions: np.ndarray, split: Split, labels: list[str]) -> dict[str, Any]:
        """The task's metrics of predictions against a split: `self.metric`, `n`, `per_class` (label ->
        value or None), and anything else worth keeping. The one implementation of the metric."""
        raise NotImplementedError

    # ----------------------------------------------------------------- IR contract
    def output_contract(self, labels: list[str], input_size: tuple[int, int]) -> dict[str, Any]:
        """model.json `output`: what the IR's output means, for an edge app."""
        raise NotImplementedError

    def serving_defaults(self, val_metrics: dict[str, Any]) -> dict[str, Any]:
        """AnswerOptions defaults a model ships with (model.json output.serving), chosen on the val split's
        metrics of that very model (e.g. detection's score threshold)."""
        return {}

    def model_info(self, labels: list[str], serving: dict[str, Any]) -> dict[str, str]:
        """OpenVINO Model API metadata (rt_info model_info) beyond labels and model_type."""
        return {}

    # ----------------------------------------------------------------- serving (numpy)
    def answer(
        self,
        raw: Raw,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        labels: list[str],
        options: AnswerOptions,
    ) -> dict[str, Any]:
        """The JSON answer for one image: input_size = the model's (width, height), original_size = the
        uploaded image's; answers are in the original image's pixels."""
        raise NotImplementedError

    def summary_line(self, answer: dict[str, Any]) -> str:
        """One line for `edgeops predict`."""
        raise NotImplementedError

    def save_answer(self, answer: dict[str, Any], image: Image.Image, out_dir: Path, stem: str) -> list[Path]:
        """Files `edgeops predict --out` writes for one image (e.g. a mask and an overlay)."""
        return []

    # ----------------------------------------------------------------- report
    def pictures(
        self, result: dict[str, Any], predictions: np.ndarray, split: Split, labels: list[str], out_dir: Path
    ) -> list[Path]:
        """Pictures of one variant's test results (confusion matrix, overlays) written into out_dir."""
        return []

    def report_sections(self, results: dict[str, dict[str, Any]], chosen: str, reference: str) -> list[str]:
        """Markdown lines for the compression report: the chosen variant vs the reference FP32, per class."""
        return per_class_change_table(self.per_class_metric, results, chosen, reference)


def single_output(raw: Raw) -> np.ndarray:
    """The one output of a single-output task's IR (a tuple here means a model of another task)."""
    if isinstance(raw, tuple):
        raise ValueError(f"expected one output, got {len(raw)}: is this model of another task?")
    return raw


def per_class_change(selected: dict, reference: dict) -> list[tuple[str, float, float, float]]:
    """(label, fp32 value, selected value, change), worst change first."""
    rows = []
    for label, ref in reference["metrics"]["per_class"].items():
        new = selected["metrics"]["per_class"].get(label)
        if ref is not None and new is not None:
            rows.append((label, ref, new, new - ref))
    return sorted(rows, key=lambda r: r[3])


def per_class_change_table(
    metric_name: str, results: dict[str, dict], chosen: str, reference: str
) -> list[str]:
    changes = per_class_change(results[chosen], results[reference])
    worse = [r for r in changes if r[3] < 0]
    lines = ["", f"## Per-class {metric_name} of `{chosen}` vs `{reference}`", ""]
    lines += ["| class | fp32 | selected | change |", "|---|---|---|---|"]
    lines += [f"| {label} | {a:.4f} | {b:.4f} | {d:+.4f} |" for label, a, b, d in changes]
    lines += ["", f"Classes that got worse: {', '.join(r[0] for r in worse) if worse else 'none'}."]
    return lines
