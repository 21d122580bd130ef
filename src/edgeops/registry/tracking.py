"""MLflow: one parent run per pipeline run, a nested run per variant, the selected IR registered."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from edgeops.config import MlflowConfig
from edgeops.errors import EdgeopsError, ServiceUnavailable
from edgeops.files import sha256_bytes

T = TypeVar("T")

if TYPE_CHECKING:
    from edgeops.registry.live import LiveRun


def mlflow_call(what: str, fn: Callable[[], T]) -> T:
    """One clear line when the tracking server fails mid-pipeline (MLflow already retried with backoff)."""
    try:
        return fn()
    except EdgeopsError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ServiceUnavailable(
            f"MLflow failed while {what}: {first} (check the tracking server / mlflow.tracking_uri, then rerun: "
            "DVC resumes from the stages already done)"
        ) from None


# marks the experiment as model training (MLflow 3.17's UI still starts in its GenAI view: see ui_url)
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "edgeops pipeline runs: one parent run per pipeline run (params, dataset, "
    "training curves, report), one nested run per model candidate and compression variant, named "
    "`<candidate>/<variant>` (metrics, IR, MLflow model).",
}


def ui_url(experiment_id: str | None, base: str = "http://127.0.0.1:5000") -> str:
    """Where `make ui` shows the experiment's runs. MLflow 3's UI starts in its GenAI view whatever the
    experiment's kind tag says; workflowType=machine_learning opens the training runs."""
    if not experiment_id:
        return base
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def connect(config: MlflowConfig, project_root: Path) -> Any:
    """Point MLflow at the configured store; returns the experiment id.

    With the embedded sqlite default, artifacts are pinned to <project>/mlruns whatever the
    current directory is (MLflow would otherwise put them relative to the cwd)."""
    import mlflow

    # MLflow's HTTP defaults (7 retries, backoff factor 2) wait ~4 minutes before reporting a stopped
    # server; these ride out a server restart (~30 s) and then say so. The variables override them.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((project_root / uri.removeprefix("sqlite:///")).resolve())
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(config.experiment)
        if experiment is None:
            location = (project_root / "mlruns").resolve().as_uri() if uri.startswith("sqlite:") else None
            return mlflow.create_experiment(
                config.experiment, artifact_location=location, tags=EXPERIMENT_TAGS
            )
        if any(experiment.tags.get(k) != v for k, v in EXPERIMENT_TAGS.items()):
            for key, value in EXPERIMENT_TAGS.items():
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    except Exception as e:
        if isinstance(e, EdgeopsError):
            raise
        raise ServiceUnavailable(
            f"cannot reach the MLflow tracking store {uri}: {(str(e).splitlines() or [''])[0][:200]} "
            "(start the server or fix mlflow.tracking_uri / MLFLOW_TRACKING_URI)"
        ) from None


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested dicts -> dotted keys, for MLflow params."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


def variant_metrics(result: dict, fp32_score: float | None = None) -> dict[str, float]:
    """The numbers of one variant's evaluation, as flat MLflow metrics (score = the task's metric)."""
    metric = metric_safe(result["metric"])
    metrics: dict[str, float] = {
        metric: result["score"],
        f"{metric}_f32_hint": result["score_f32"],
        "size_mb": result["size_mb"],
    }
    if fp32_score is not None:
        metrics[f"{metric}_drop"] = fp32_score - result["score"]
    for key, value in result["metrics"].items():
        if isinstance(value, (int | float)) and not isinstance(value, bool) and key != result["metric"]:
            metrics[f"test.{metric_safe(key)}"] = float(value)
    for hint, row in result["benchmark"].items():
        for key in ("latency_ms_p50", "latency_ms_p90", "throughput_fps"):
            metrics[f"{key}.{hint}"] = row[key]
    for key, value in result.get("compression", {}).items():
        if isinstance(value, (bool, int | float)):
            metrics[f"compression.{key}"] = float(value)
    for i, (label, value) in enumerate(result["metrics"].get("per_class", {}).items()):
        if value is not None:
            key = f"per_class_{metric}.{metric_safe(label)}"
            metrics[key if key not in metrics else f"{key}_{i}"] = value
    return metrics


def metric_safe(label: str) -> str:
    """A class name as MLflow accepts it in a metric key (letters, digits, _ - . space : / only)."""
    return re.sub(r"[^\w\-. :/]", "_", label)[:200] or "_"


def register_version(
    name: str, run_id: str, model_uri: str, tags: dict[str, str], description: str, model_description: str
) -> str:
    """A new version of the registered model whose source is the variant's MLflow model (pyfunc + IR)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        client.create_registered_model(name, description=model_description)
    except MlflowException as e:
        if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
            raise
        client.update_registered_model(name, description=model_description)
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = client.create_model_version(
            name, source=model_uri, run_id=run_id, tags=tags, description=description, model_id=model_id
        )
    return str(version.version)


def log_variant(
    run: LiveRun,
    result: dict,
    evaluation_text: str,
    model_dir: Path,
    pictures: Path,
    example: np.ndarray | None,
    parent_run_id: str,
) -> str | None:
    """One variant's evaluation into its nested run: metrics, evaluation.json, pictures, the IR folder
    (`model/`, for the edge targets) and the same IR as an MLflow model; returns that model's URI."""
    import mlflow

    run.set_tags({"status": result["status"], "evaluation_sha256": sha256_bytes(evaluation_text.encode())})
    if result["status"] != "ok" or example is None:
        run.set_tags({"error": result.get("error", "")})
        run.log_artifact(model_dir / "FAILED.json")  # with the traceback
        return None
    run.log_metrics(variant_metrics(result))
    mlflow_call(
        "uploading evaluation.json",
        lambda: run.client.log_text(run.run_id, evaluation_text, "evaluation.json"),
    )
    if pictures.is_dir():
        run.log_artifact(pictures, "pictures")
    staged = with_lineage(model_dir, {"mlflow_run_id": run.run_id, "mlflow_parent_run_id": parent_run_id})
    try:
        run.log_artifact(staged, "model")
        tags = {"variant": result["variant"], "task": result["task"], "precision": result["precision"]}
        with quiet_mlflow(), mlflow.start_run(run_id=run.run_id):
            from edgeops.registry import pyfunc  # MLflow warns about its untyped predict() on import

            info = mlflow_call(
                "logging the MLflow model",
                lambda: pyfunc.log_model(staged, result["variant"], small_example(example), tags),
            )
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    run.set_tags({"mlflow_model_uri": info.model_uri})
    return str(info.model_uri)


def small_example(images: np.ndarray, longest: int = 48) -> np.ndarray:
    """A downscaled first image as the model's input example: the pyfunc resizes any size, and the
    example is stored as JSON twice."""
    from PIL import Image

    image = Image.fromarray(np.asarray(images[0], np.uint8))
    scale = min(1.0, longest / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR))[None]


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO lines and warnings about pickling and type hints are noise in a stage's log."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def with_lineage(model_dir: Path, updates: dict) -> Path:
    """A temp copy of model_dir whose model.json carries the MLflow lineage (files hashes unchanged)."""
    tmp = Path(tempfile.mkdtemp(prefix="edgeops-model-"))
    target = tmp / "model"
    shutil.copytree(model_dir, target)
    contract = json.loads((target / "model.json").read_text())
    contract.update(updates)
    (target / "model.json").write_text(json.dumps(contract, indent=2))
    return target
