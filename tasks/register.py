"""Stage `register`: log the pipeline run to MLflow and register the selected variant's IR.

Writes models/selected/ (the chosen IR, its model.json carrying the MLflow lineage) and
reports/registration.json."""

import json
import shutil
import time
from pathlib import Path

import yaml

from edgeops.config import load_params
from edgeops.console import git_commit, log, run_main
from edgeops.errors import EdgeopsError
from edgeops.paths import (
    PARETO_PLOT,
    PREPARED,
    REGISTRATION,
    REPORT,
    SELECTED,
    SELECTION,
    TRAIN_HISTORY,
    variant_dir,
    variant_metrics,
    variant_pictures,
)
from edgeops.pipeline.prepare import read_manifest
from edgeops.registry import tracking as registry

ROOT = Path(".").resolve()


def data_dvc_hash(data_path: str) -> str | None:
    """The md5 DVC recorded in dvc.lock for the dataset folder the prepare stage read."""
    lock = Path("dvc.lock")
    if not lock.exists():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for dep in stages.get("prepare", {}).get("deps", []):
        if Path(dep["path"]) == Path(data_path):
            return dep.get("md5")
    return None


def main() -> None:
    import mlflow

    params = load_params()
    manifest = read_manifest(PREPARED)
    selection = json.loads(SELECTION.read_text())
    chosen = selection["selected"]
    if not chosen:
        raise EdgeopsError("no variant was selected: see reports/compression.md")
    results = {v: json.loads(variant_metrics(v).read_text()) for v in params.compress.variants.enabled()}
    metric = results["fp32"]["metric"]
    fp32_score = results["fp32"]["score"]
    model_name = params.model_name
    commit = git_commit()
    lineage_tags = {
        "git_commit": commit or "unknown",
        "dataset_fingerprint": manifest["fingerprint"],
        "data_dvc_md5": data_dvc_hash(params.data.path) or "unknown",
        "data_path": params.data.path,
        "task": manifest["task"],
    }
    experiment_id = registry.connect(params.mlflow, ROOT)
    start = time.time()
    run_ids: dict[str, str] = {}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"
    ) as parent:
        mlflow.log_params(registry.flatten("", params.model_dump(exclude={"targets"})))
        mlflow.set_tags({**lineage_tags, "selected_variant": chosen, "model": params.settings.model})
        safe = registry.metric_safe(metric)
        mlflow.log_metrics(
            {f"selected.{safe}": results[chosen]["score"], f"fp32.{safe}": fp32_score}
            | {f"split.{k}": float(n) for k, n in manifest["counts"].items()}
        )
        for path in (REPORT, PARETO_PLOT, SELECTION, TRAIN_HISTORY, Path("params.yaml"), Path("dvc.lock")):
            if path.exists():
                mlflow.log_artifact(str(path), artifact_path="pipeline")
        for variant, result in results.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=variant, nested=True) as child:
                run_ids[variant] = child.info.run_id
                settings = getattr(params.compress.variants, variant)
                mlflow.log_params({"variant": variant, **registry.flatten("settings", settings.model_dump())})
                mlflow.set_tags({**lineage_tags, "variant": variant, "status": result["status"]})
                if result["status"] != "ok":
                    mlflow.set_tag("error", result["error"][:5000])
                    continue
                mlflow.log_metrics(registry.variant_metrics(result, fp32_score))
                mlflow.log_dict(result, "evaluation.json")
                if variant_pictures(variant).is_dir():
                    mlflow.log_artifacts(str(variant_pictures(variant)), artifact_path="pictures")
                lineage = {"mlflow_run_id": child.info.run_id, "mlflow_parent_run_id": parent.info.run_id}
                staged = registry.with_lineage(variant_dir(variant), lineage)
                mlflow.log_artifacts(str(staged), artifact_path="model")
                shutil.rmtree(staged.parent, ignore_errors=True)
        chosen_result = results[chosen]
        tags = {
            "variant": chosen,
            "precision": chosen_result["precision"],
            "task": manifest["task"],
            "metric": metric,
            "score": f"{chosen_result['score']:.6f}",
            "fp32_score": f"{fp32_score:.6f}",
            "score_drop": f"{fp32_score - chosen_result['score']:.6f}",
            "latency_ms_p50": f"{chosen_result['benchmark']['default']['latency_ms_p50']:.6f}",
            "size_mb": f"{chosen_result['size_mb']:.6f}",
            "dataset_fingerprint": manifest["fingerprint"],
            "git_commit": commit or "unknown",
            "parent_run_id": parent.info.run_id,
        }
        child_run = mlflow.get_run(run_ids[chosen])
        version = registry.register_version(
            model_name,
            child_run,
            tags,
            f"{manifest['task']}: {chosen} ({chosen_result['precision']}), "
            f"test {metric} {chosen_result['score']:.4f}",
        )
        mlflow.set_tag("registered_version", version)
    lineage = {
        "mlflow_run_id": run_ids[chosen],
        "mlflow_parent_run_id": parent.info.run_id,
        "registered_model": {"name": model_name, "version": version},
    }
    staged = registry.with_lineage(variant_dir(chosen), lineage)
    tmp = SELECTED.with_name(SELECTED.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.move(str(staged), tmp)
    shutil.rmtree(staged.parent, ignore_errors=True)
    shutil.rmtree(SELECTED, ignore_errors=True)
    tmp.rename(SELECTED)
    registration = {
        "model_name": model_name,
        "version": version,
        "variant": chosen,
        "parent_run_id": parent.info.run_id,
        "variant_run_ids": run_ids,
        "tracking_uri": mlflow.get_tracking_uri(),
        "seconds": time.time() - start,
    }
    REGISTRATION.write_text(json.dumps(registration, indent=2))
    log(f"register: {model_name} version {version} ({chosen}), run {parent.info.run_id}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
