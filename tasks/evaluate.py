"""Stage `evaluate@<candidate>-<variant>`: the task's metric through the OpenVINO runtime, then latency/throughput/size,
and the task's pictures of the test results; all of it, with the IR as an MLflow model, into the
variant's run of the pipeline's MLflow run."""

import json
import shutil
import sys

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.files import read_model_json
from edgeops.paths import PREPARED, variant_dir, variant_id, variant_metrics, variant_pictures
from edgeops.pipeline.benchmark import benchmark_model_dir
from edgeops.pipeline.evaluate import evaluate_model_dir
from edgeops.pipeline.prepare import load_split, read_manifest
from edgeops.registry import live
from edgeops.registry.tracking import log_variant
from edgeops.runtime import cpu_info
from edgeops.vision import get_task


def main() -> None:
    candidate, variant = sys.argv[1], sys.argv[2]
    name = variant_id(candidate, variant)
    params = load_params()
    model_dir = variant_dir(candidate, variant)
    out = variant_metrics(candidate, variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    pictures = variant_pictures(candidate, variant)
    shutil.rmtree(pictures, ignore_errors=True)
    pictures.mkdir(parents=True)
    pipeline_run = live.open_pipeline_run(params)
    run = live.variant_run(
        pipeline_run, candidate, variant, getattr(params.compress.variants, variant).model_dump()
    )
    failed = model_dir / "FAILED.json"
    if failed.exists():
        failure = json.loads(failed.read_text())
        text = json.dumps(
            {"candidate": candidate, "variant": variant, "status": "failed", "error": failure["error"]},
            indent=2,
        )
        log_variant(run, json.loads(text), text, model_dir, pictures, None, pipeline_run.run_id)
        live.finish_variant_run(run, "FAILED")
        out.write_text(text)
        log(f"evaluate {name}: skipped, compression failed: {failure['error']}")
        return
    contract = read_model_json(model_dir)
    manifest = read_manifest(PREPARED)
    task, labels = get_task(manifest["task"]), manifest["classes"]
    test = load_split(PREPARED, "test", contract["input"]["shape"][1])  # NHWC: at the model's input size
    evaluation, predicted = evaluate_model_dir(model_dir, task, test, labels)
    log(
        f"evaluate {name}: test {task.metric} {evaluation['score']:.4f} "
        f"(f32 hint {evaluation['score_f32']:.4f})"
    )
    rows = benchmark_model_dir(model_dir, params.benchmark.seconds, params.benchmark.warmup)
    for row in rows:
        log(
            f"evaluate {name}: [{row['precision_hint']}] p50 {row['latency_ms_p50']:.3f} ms "
            f"p90 {row['latency_ms_p90']:.3f} ms, {row['throughput_fps']:.0f} fps"
        )
    result = {
        "candidate": candidate,
        "model": contract.get("model"),
        "variant": variant,
        "status": "ok",
        "task": task.name,
        "precision": contract["precision"],
        **evaluation,
        "benchmark": {row["precision_hint"]: row for row in rows},
        "size_mb": rows[0]["size_mb"],
        "compression": {k: v for k, v in contract.get("compression", {}).items() if k != "history"},
        "files": contract["files"],
        "hardware": cpu_info(),
    }
    task.pictures(result, predicted, test, labels, pictures)
    text = json.dumps(result, indent=2)
    log_variant(run, result, text, model_dir, pictures, test.images[:1], pipeline_run.run_id)
    live.finish_variant_run(run)
    out.write_text(text)


if __name__ == "__main__":
    run_main(main, fast_exit=True)
