"""The one configuration model: mirrors params.yaml; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeops.errors import EdgeopsError

PARAMS_FILE = "params.yaml"

ModelName = Literal["small_cnn", "mobilenet_v3_small", "resnet18"]
ALL_VARIANTS: tuple[str, ...] = ("fp32", "fp16", "ptq", "ptq_ac", "qat", "prune_int8")


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
    image_size: int = Field(32, ge=16, le=1024, description="model input height = width")
    split: SplitConfig = SplitConfig()
    min_images_per_class: int = Field(5, ge=3)


class TrainConfig(Strict):
    model: ModelName = "small_cnn"
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    augment: bool = True
    num_threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")


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
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-4, gt=0)
    subset_size: int = Field(300, ge=1)


class PruneConfig(Strict):
    ratio: float = Field(0.5, gt=0, lt=1, description="target fraction of zero weights")
    epochs: int = Field(3, ge=1)
    lr: float = Field(5e-4, gt=0)
    subset_size: int = Field(300, ge=1)


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
    """Used both to select a variant and to promote a registered version."""

    max_accuracy_drop: float = Field(0.01, ge=0, le=1, description="vs FP32 of the same run")
    latency_budget_ms: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)
    min_accuracy: float | None = Field(None, ge=0, le=1)


class MlflowConfig(Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "edgeops"
    model_name: str = Field("edgeops-classifier", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


class Params(Strict):
    seed: int = 0
    task: Literal["classification"] = "classification"
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    compress: CompressConfig = CompressConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    gates: GatesConfig = GatesConfig()
    mlflow: MlflowConfig = MlflowConfig()
    targets: TargetsConfig = TargetsConfig()


def _describe(error: ValidationError, source: str) -> str:
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
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
