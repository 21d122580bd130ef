"""The one configuration model: mirrors params.yaml; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeops.errors import EdgeopsError

PARAMS_FILE = "params.yaml"

ALL_VARIANTS: tuple[str, ...] = ("fp32", "fp16", "ptq", "ptq_ac", "qat", "prune_int8")
MIN_SIZE, MAX_SIZE = 16, 1024  # input sizes (pixels) a model may be trained at


def split_candidate(entry: str) -> tuple[str, int | None]:
    """A `model` entry as (zoo model, input size): `mobilenet_v3_small@64` -> (mobilenet_v3_small, 64);
    `small_cnn` -> (small_cnn, None): at by_task.<task>.image_size. When what follows the @ is not a number,
    the whole entry is the model name, which validation reports as an unknown model."""
    model, at, size = entry.partition("@")
    if at and size.isdigit():
        return model, int(size)
    return entry, None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(Strict):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class DataConfig(Strict):
    path: str = "data/demo"
    split: SplitConfig = SplitConfig()
    min_images_per_class: int = Field(5, ge=3, description="classification: images per class at least")


class TaskSettings(Strict):
    """What differs per task: the model, its input size and the training length (params.yaml `by_task`)."""

    model: str | list[str] = Field(
        description="a zoo model; a list of them or auto (the whole zoo): each is a model candidate with its own "
        "stages, and select picks across every candidate and variant. `model@size` trains that model at another "
        "input size"
    )
    image_size: (
        Annotated[int, Field(ge=MIN_SIZE, le=MAX_SIZE)]
        | Literal["auto"]
        | Annotated[list[Annotated[int, Field(ge=MIN_SIZE, le=MAX_SIZE)]], Field(min_length=1)]
    ) = Field(
        description="model input height = width; auto: the task picks it from the images' sizes (detection); "
        "a list: every model is a candidate at each size (the first is the size the data is prepared at)"
    )
    epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        description="training epochs at most; auto: the model's recipe (README 'Model zoo')"
    )
    batch_size: int = Field(ge=1)
    lr: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        description="peak one-cycle learning rate; auto: the model's recipe"
    )


class TrainConfig(Strict):
    """Training settings every task shares; model, size, epochs, batch size and lr are in `by_task`."""

    weight_decay: float = Field(1e-4, ge=0)
    augment: bool = True
    pretrained: bool = Field(False, description="start from ImageNet weights (torchvision backbones)")
    num_threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")
    budget_seconds: float | None = Field(
        None,
        gt=0,
        description="wall-time budget of training, split evenly between the model candidates' train stages; "
        "by_task epochs is then a maximum",
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a better validation score"
    )


class PtqConfig(Strict):
    preset: Literal["performance", "mixed"] = "performance"
    subset_size: int = Field(300, ge=1)
    fast_bias_correction: bool = True
    model_type: Literal["transformer"] | None = None
    ignored_scopes: list[str] = []


class PtqAcConfig(Strict):
    max_drop: float = Field(0.01, ge=0, le=1)
    subset_size: int = Field(300, ge=1)
    preset: Literal["performance", "mixed"] = "performance"


class QatConfig(Strict):
    epochs: int = Field(2, ge=1, description="fine-tuning epochs at most")
    lr: float = Field(1e-4, gt=0)
    subset_size: int = Field(300, ge=1)
    budget_seconds: float | None = Field(
        None, gt=0, description="wall-time budget of the fine-tuning; epochs is then a maximum"
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a better validation score"
    )
    freeze_bn_after_epochs: Annotated[int, Field(ge=0)] | Literal["auto"] | None = Field(
        "auto",
        description="BatchNorm statistics frozen after this many fine-tuning epochs; null = never; "
        "auto: the model's recipe (README 'Model zoo')",
    )


class PruneConfig(Strict):
    ratio: float = Field(0.5, gt=0, lt=1, description="target fraction of zero weights")
    epochs: int = Field(3, ge=1, description="fine-tuning epochs at most")
    lr: float = Field(5e-4, gt=0)
    subset_size: int = Field(300, ge=1)
    budget_seconds: float | None = Field(
        None, gt=0, description="wall-time budget of the fine-tuning; epochs is then a maximum"
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs at the target sparsity without a better score"
    )


class PlainConfig(Strict):
    """fp32/fp16 have no settings; the empty mapping just enables them."""


class VariantsConfig(Strict):
    """The variants to build. A key present = built; remove a key to skip that variant."""

    fp32: PlainConfig = PlainConfig()
    fp16: PlainConfig | None = None
    ptq: PtqConfig | None = None
    ptq_ac: PtqAcConfig | None = None
    qat: QatConfig | None = None
    prune_int8: PruneConfig | None = None

    def enabled(self) -> list[str]:
        return [name for name in ALL_VARIANTS if getattr(self, name) is not None]


class CompressConfig(Strict):
    variants: VariantsConfig = VariantsConfig()


class BenchmarkConfig(Strict):
    seconds: float = Field(2.0, gt=0, description="measuring time per variant and precision hint")
    warmup: int = Field(10, ge=0)


class GatesConfig(Strict):
    """Used both to select a variant and to promote a registered version. The score is the task's
    primary metric: top-1 accuracy (classification), mIoU (segmentation),
    COCO mAP@[.5:.95] (detection)."""

    max_score_drop: float = Field(
        0.01, ge=0, le=1, description="absolute, vs the most accurate FP32 model of the run"
    )
    latency_budget_ms: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)
    min_score: float | None = Field(None, ge=0, le=1)
    prefer: Literal["fastest", "accuracy_first"] = Field(
        "fastest", description="among the variants that pass every gate: the fastest, or the most accurate"
    )


class MlflowConfig(Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "edgeops"
    model_name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="registered model; default edgeops-<task>"
    )


class Target(Strict):
    """An edge target: `file:///abs/dir`, `file://rel/dir`, or `s3://bucket/prefix`."""

    uri: str
    endpoint_url: str | None = None
    region: str | None = None

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        if not (uri.startswith("file://") or uri.startswith("s3://")):
            raise ValueError(f"target uri must start with file:// or s3://, got {uri!r}")
        return uri


class TargetsConfig(Strict):
    staging: list[Target] = []
    production: list[Target] = []


class TeamConfig(Strict):
    """Team mode (`edgeops deploy`): where the deployments run and when `retrain` runs."""

    work_pool: str = Field("edgeops", min_length=1)
    retrain_cron: str | None = Field(
        "0 3 * * 1", description="the `retrain` deployment's schedule; null = none"
    )
    timezone: str = "UTC"
    parallel_candidates: bool = Field(
        True, description="train the model candidates of one run on several workers at once"
    )
    helper_timeout_seconds: float = Field(
        7200, gt=0, description="how long a run waits for a helper worker before doing its candidate itself"
    )

    @field_validator("retrain_cron")
    @classmethod
    def _valid_cron(cls, cron: str | None) -> str | None:
        # the shape only: Prefect checks each field when `edgeops deploy` creates the schedule
        if cron is not None and not (cron.startswith("@") or len(cron.split()) in (5, 6)):
            raise ValueError(f"{cron!r} is not a cron expression (e.g. '0 3 * * 1': Mondays 03:00)")
        return cron


def _default_settings() -> dict[str, TaskSettings]:
    from edgeops.vision import get_task, task_names

    return {name: TaskSettings(**vars(get_task(name).defaults)) for name in task_names()}


class Params(Strict):
    seed: int = 0
    task: str = "classification"
    data: DataConfig = DataConfig()
    by_task: dict[str, TaskSettings] = Field(default_factory=_default_settings)
    train: TrainConfig = TrainConfig()
    compress: CompressConfig = CompressConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    gates: GatesConfig = GatesConfig()
    mlflow: MlflowConfig = MlflowConfig()
    targets: TargetsConfig = TargetsConfig()
    team: TeamConfig = TeamConfig()

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        from edgeops.vision import task_names

        if task not in task_names():
            raise ValueError(f"unknown task {task!r}: one of {', '.join(task_names())}")
        return task

    @model_validator(mode="after")
    def _models_exist(self) -> Params:
        from edgeops.vision import get_task, task_names

        for name, settings in self.by_task.items():
            if name not in task_names():
                raise ValueError(f"by_task.{name}: unknown task (one of {', '.join(task_names())})")
            zoo = get_task(name).models
            chosen = settings.model if isinstance(settings.model, list) else [settings.model]
            for entry in chosen:
                if entry == "auto" and isinstance(settings.model, list):
                    raise ValueError(
                        f"by_task.{name}.model: auto means the whole zoo, it goes alone, not in a list"
                    )
                if entry == "auto":
                    continue
                model, size = split_candidate(entry)
                if model not in zoo:
                    where = f" (in {entry!r})" if model != entry else ""
                    raise ValueError(
                        f"by_task.{name}.model {model!r}{where} is not auto or one of {', '.join(zoo)}"
                        + (" (model@size: a zoo model, @, a size in pixels)" if "@" in entry else "")
                    )
                if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
                    raise ValueError(
                        f"by_task.{name}.model {entry!r}: the size after @ must be {MIN_SIZE}..{MAX_SIZE} pixels"
                    )
            if not chosen:
                raise ValueError(f"by_task.{name}.model: an empty list (name models, or say auto)")
        return self

    @property
    def model_name(self) -> str:
        """The registered model's name in MLflow: mlflow.model_name, or edgeops-<task>."""
        return self.mlflow.model_name or f"edgeops-{self.task}"

    @property
    def settings(self) -> TaskSettings:
        """The settings of the selected task (params.yaml `by_task.<task>`, or the task's defaults)."""
        if self.task in self.by_task:
            return self.by_task[self.task]
        return _default_settings()[self.task]

    def image_sizes(self, image_size: int) -> list[int]:
        """The input sizes a model entry without `@size` trains at: the run's image_size, or each size of an
        `image_size` list (its first is the run's image_size)."""
        sizes = self.settings.image_size
        return list(dict.fromkeys(sizes)) if isinstance(sizes, list) else [image_size]

    def candidates(self, image_size: int | None = None) -> list[str]:
        """The model candidates (one train stage each): the configured model, each of a list, or (auto) the zoo (with
        train.pretrained: the zoo models that have ImageNet weights). An entry is a zoo model, or
        `model@size` for a model trained at another input size than image_size.

        With the run's image_size known: an entry without @size becomes one candidate per size of an
        `image_size` list; entries at image_size lose their `@size` (duplicates go); and auto trains a model
        whose recipe's min_image_size is larger than a size at that minimum (`mobilenet_v3_small@64` at
        32 px) instead of at a size too small for it."""
        from edgeops.vision import get_task

        model, task = self.settings.model, get_task(self.task)
        if model == "auto":
            entries = [
                m for m in task.models if task.recipes[m].imagenet_weights or not self.train.pretrained
            ]
            if not entries:
                raise EdgeopsError(
                    f"train.pretrained: true, but no {self.task} model has ImageNet weights: "
                    "set train.pretrained: false"
                )
            if image_size is not None:
                entries = [
                    f"{m}@{max(size, task.recipes[m].min_image_size)}"
                    for m in entries
                    for size in self.image_sizes(image_size)
                ]
        else:
            entries = model if isinstance(model, list) else [model]
            if image_size is not None:
                entries = [
                    f"{m}@{at}"
                    for m, size in map(split_candidate, entries)
                    for at in ([size] if size is not None else self.image_sizes(image_size))
                ]
        if image_size is not None:
            entries = [
                m if size in (None, image_size) else f"{m}@{size}"
                for m, size in map(split_candidate, entries)
            ]
        return list(dict.fromkeys(entries))

    def candidate_sizes(self, image_size: int) -> list[int]:
        """The input sizes of the candidates other than image_size: prepare decodes the data at each too."""
        sizes = {split_candidate(entry)[1] for entry in self.candidates(image_size)}
        return sorted(size for size in sizes if size is not None and size != image_size)

    def epochs_and_lr(self, model: str) -> tuple[int, float]:
        """The task settings' epochs and lr, `auto` replaced by that model's recipe."""
        from edgeops.vision import get_task

        settings, recipe = self.settings, get_task(self.task).recipes[model]
        epochs = recipe.epochs if settings.epochs == "auto" else settings.epochs
        return epochs, recipe.lr if settings.lr == "auto" else settings.lr


# keys of earlier params.yaml files and where they live now
MOVED_KEYS = {
    "data.image_size": "by_task.<task>.image_size",
    "train.model": "by_task.<task>.model",
    "train.epochs": "by_task.<task>.epochs",
    "train.batch_size": "by_task.<task>.batch_size",
    "train.lr": "by_task.<task>.lr",
    "gates.max_accuracy_drop": "gates.max_score_drop",
    "gates.min_accuracy": "gates.min_score",
}


def _describe(error: ValidationError, source: str) -> str:
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden" and where in MOVED_KEYS:
            problems.append(f"'{where}' is now '{MOVED_KEYS[where]}'")
        elif e["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'")
        else:
            problems.append(f"'{where}': {e['msg']}")
    return f"{source}: " + "; ".join(problems) + " (see README 'Configuration' for valid keys)"


def parse_params(raw: object, source: str = PARAMS_FILE) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise EdgeopsError(f"{source}: expected a mapping of keys at top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise EdgeopsError(_describe(e, source)) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise EdgeopsError(f"{path} not found: run from the project root or pass --params")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EdgeopsError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    return parse_params(raw, str(path))
