"""Stage `register`: finish the pipeline's MLflow run and register the selected model's MLflow model (one
variant of one model candidate).

The variant runs were logged by their evaluate stages (in this pipeline run or an earlier one, when DVC
kept that variant): the one to register is found by the sha256 of its evaluation file. Writes
models/selected/ (the chosen IR, its model.json carrying the MLflow lineage) and reports/registration.json."""

import json
import os
import shutil
import time
from pathlib import Path

import yaml

from edgeops.config import Params, load_params
from edgeops.console import git_commit, log, run_main
from edgeops.errors import EdgeopsError
from edgeops.files import read_model_json, sha256_bytes, sha256_file
from edgeops.paths import (
    CANDIDATES,
    PARETO_PLOT,
    PREPARED,
    REGISTRATION,
    REPORT,
    SELECTED,
    SELECTION,
    SUMMARY,
    variant_dir,
    variant_id,
    variant_metrics,
    variant_pictures,
)
from edgeops.pipeline import plan
from edgeops.pipeline.prepare import load_split, read_manifest
from edgeops.registry import live
from edgeops.registry import tracking as registry
from edgeops.registry.descriptions import model_description, version_description


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


def chosen_variant_run(
    pipeline_run: live.LiveRun, params: Params, candidate: str, variant: str, evaluation_text: str
) -> tuple[str, str, str]:
    """(variant run id, its parent run id, MLflow model URI) of the evaluation that selection read.

    Logged by evaluate, in this pipeline run or an earlier one; if the tracking store lost it (e.g. a
    fresh store with DVC's cache), it is logged now into this pipeline run."""
    sha = sha256_bytes(evaluation_text.encode())
    runs = registry.mlflow_call(
        "looking up the selected variant's run",
        lambda: pipeline_run.client.search_runs(
            [pipeline_run.experiment_id],
            filter_string=f"tags.candidate = '{candidate}' and tags.variant = '{variant}' "
            f"and tags.evaluation_sha256 = '{sha}'",
            order_by=["attributes.start_time DESC"],
            max_results=5,
        ),
    )
    for run in runs:
        uri = run.data.tags.get("mlflow_model_uri")
        if uri:
            return run.info.run_id, run.data.tags.get("mlflow.parentRunId", ""), uri
    settings = getattr(params.compress.variants, variant).model_dump()
    run = live.variant_run(pipeline_run, candidate, variant, settings)
    size = read_model_json(variant_dir(candidate, variant), verify=False)["input"]["shape"][1]  # NHWC
    example = load_split(PREPARED, "test", size).images[:1]
    uri = registry.log_variant(
        run,
        json.loads(evaluation_text),
        evaluation_text,
        variant_dir(candidate, variant),
        variant_pictures(candidate, variant),
        example,
        pipeline_run.run_id,
    )
    live.finish_variant_run(run)
    if uri is None:
        raise EdgeopsError(
            f"the selected {candidate}/{variant} has no model: rerun `dvc repro -f evaluate@{candidate}-{variant}`"
        )
    return run.run_id, pipeline_run.run_id, uri


def nested_variant_runs(pipeline_run: live.LiveRun) -> dict[str, str]:
    """run id -> `candidate/variant` of the variant runs nested under the pipeline run."""
    runs = registry.mlflow_call(
        "reading the pipeline's variant runs",
        lambda: pipeline_run.client.search_runs(
            [pipeline_run.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{pipeline_run.run_id}'",
            max_results=1000,
        ),
    )
    return {
        run.info.run_id: variant_id(run.data.tags["candidate"], run.data.tags["variant"])
        for run in runs
        if "candidate" in run.data.tags and "variant" in run.data.tags
    }


def main() -> None:
    params = load_params()
    manifest = read_manifest(PREPARED)
    selection = json.loads(SELECTION.read_text())
    chosen = selection["selected"]
    if not chosen:
        raise EdgeopsError("no model was selected: see reports/compression.md")
    candidate, variant = selection["candidate"], selection["variant"]
    texts = {
        variant_id(key, v): variant_metrics(key, v).read_text()
        for key in plan.current(params)
        for v in params.compress.variants.enabled()
    }
    results = {name: json.loads(text) for name, text in texts.items()}
    metric = results[chosen]["metric"]
    fp32_score = results[selection["reference"]]["score"]
    model_name = params.model_name
    start = time.time()
    pipeline_run = live.open_pipeline_run(params)
    live.log_dataset(pipeline_run, manifest, params.data.path)
    safe = registry.metric_safe(metric)
    # the drop vs this run's reference FP32, on the variant runs of this pipeline run (team helpers' too)
    for run_id, name in nested_variant_runs(pipeline_run).items():
        if results.get(name, {}).get("status") == "ok":
            drop = {f"{safe}_drop": fp32_score - results[name]["score"]}
            live.LiveRun(pipeline_run.client, run_id, pipeline_run.experiment_id).log_metrics(drop)
    run_id, source_parent, model_uri = chosen_variant_run(
        pipeline_run, params, candidate, variant, texts[chosen]
    )
    chosen_result = results[chosen]
    lineage = {
        "git_commit": git_commit() or "unknown",
        "dataset_fingerprint": manifest["fingerprint"],
        "data_dvc_md5": data_dvc_hash(params.data.path) or "unknown",
        "dvc_lock_sha256": sha256_file("dvc.lock") if Path("dvc.lock").exists() else "unknown",
        "data_path": params.data.path,
    }
    tags = {
        "candidate": candidate,
        "model": chosen_result.get("model") or candidate,
        "variant": variant,
        "precision": chosen_result["precision"],
        "task": manifest["task"],
        "metric": metric,
        "score": f"{chosen_result['score']:.6f}",
        "fp32_score": f"{fp32_score:.6f}",  # the reference: the most accurate FP32 candidate
        "fp32_reference": selection["reference"],
        "score_drop": f"{fp32_score - chosen_result['score']:.6f}",
        "latency_ms_p50": f"{chosen_result['benchmark']['default']['latency_ms_p50']:.6f}",
        "size_mb": f"{chosen_result['size_mb']:.6f}",
        "dataset_fingerprint": manifest["fingerprint"],
        "git_commit": lineage["git_commit"],
        "dvc_lock_sha256": lineage["dvc_lock_sha256"],
        "parent_run_id": source_parent,
    }
    version = registry.mlflow_call(
        "registering the model version",
        lambda: registry.register_version(
            model_name,
            run_id,
            model_uri,
            tags,
            version_description(chosen_result, fp32_score, manifest["classes"], selection, lineage),
            model_description(manifest["task"], manifest["classes"], metric),
        ),
    )
    pipeline_run.set_tags(
        {
            "selected": chosen,
            "selected_variant": variant,
            "selected_model": chosen_result.get("model") or candidate,
            "registered_version": version,
            **lineage,
        }
    )
    pipeline_run.log_metrics(
        {f"selected.{safe}": chosen_result["score"], f"fp32.{safe}": fp32_score}
        | {f"selected.{safe}_drop": fp32_score - chosen_result["score"]}
        | {"selected.latency_ms_p50": chosen_result["benchmark"]["default"]["latency_ms_p50"]}
    )
    for path in (REPORT, PARETO_PLOT, SELECTION, SUMMARY, Path("params.yaml"), CANDIDATES, Path("dvc.lock")):
        pipeline_run.log_artifact(path, "pipeline")
    staged = registry.with_lineage(
        variant_dir(candidate, variant),
        {
            "mlflow_run_id": run_id,
            "mlflow_parent_run_id": source_parent,
            "registered_model": {"name": model_name, "version": version},
        },
    )
    tmp = SELECTED.with_name(SELECTED.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.move(str(staged), tmp)
    shutil.rmtree(staged.parent, ignore_errors=True)
    shutil.rmtree(SELECTED, ignore_errors=True)
    tmp.rename(SELECTED)
    registration = {
        "model_name": model_name,
        "version": version,
        "selected": chosen,
        "candidate": candidate,
        "variant": variant,
        "model_uri": model_uri,
        "variant_run_id": run_id,
        "pipeline_run_id": pipeline_run.run_id,
        "experiment_id": pipeline_run.experiment_id,
        "tracking_uri": pipeline_run.client.tracking_uri,
        "seconds": time.time() - start,
    }
    REGISTRATION.write_text(json.dumps(registration, indent=2))
    # under the flow the run ends with the flow: DVC may order stages after this one (e.g. demo)
    if not os.environ.get(live.PIPELINE_ID_ENV):
        live.end_pipeline_run("FINISHED")
    log(f"register: {model_name} version {version} ({chosen}), pipeline run {pipeline_run.run_id}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
