"""MLflow: one parent run per pipeline run, a nested run per variant, the selected IR registered."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from edgeops.config import MlflowConfig
from edgeops.errors import EdgeopsError


def connect(config: MlflowConfig, project_root: Path) -> Any:
    """Point MLflow at the configured store; returns the experiment id.

    With the embedded sqlite default, artifacts are pinned to <project>/mlruns whatever the
    current directory is (MLflow would otherwise put them relative to the cwd)."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((project_root / uri.removeprefix("sqlite:///")).resolve())
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(config.experiment)
        if experiment is None:
            location = (project_root / "mlruns").resolve().as_uri() if uri.startswith("sqlite:") else None
            return mlflow.create_experiment(config.experiment, artifact_location=location)
        return experiment.experiment_id
    except Exception as e:
        if isinstance(e, EdgeopsError):
            raise
        raise EdgeopsError(
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


def variant_metrics(result: dict, fp32_score: float) -> dict[str, float]:
    """The numbers of one variant's evaluation, as flat MLflow metrics (score = the task's metric)."""
    metric = metric_safe(result["metric"])
    metrics: dict[str, float] = {
        metric: result["score"],
        f"{metric}_f32_hint": result["score_f32"],
        f"{metric}_drop": fp32_score - result["score"],
        "size_mb": result["size_mb"],
    }
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


def register_version(name: str, run: Any, tags: dict[str, str], description: str) -> str:
    """A new version of the registered model whose source is the run's `model` artifact folder."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        client.create_registered_model(name, description="OpenVINO IR (u8 NHWC RGB input) made by edgeops")
    except MlflowException as e:
        if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
            raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags=tags,
            description=description,
        )
    return str(version.version)


def with_lineage(model_dir: Path, updates: dict) -> Path:
    """A temp copy of model_dir whose model.json carries the MLflow lineage (files hashes unchanged)."""
    tmp = Path(tempfile.mkdtemp(prefix="edgeops-model-"))
    target = tmp / "model"
    shutil.copytree(model_dir, target)
    contract = json.loads((target / "model.json").read_text())
    contract.update(updates)
    (target / "model.json").write_text(json.dumps(contract, indent=2))
    return target
