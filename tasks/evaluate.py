"""Stage `evaluate@<variant>`: accuracy through the OpenVINO runtime, then latency/throughput/size."""

import csv
import json
import sys

from edgeops.benchmark import benchmark_model_dir
from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.data.prepare import load_split, read_manifest
from edgeops.evaluate import evaluate_model_dir
from edgeops.paths import PREDICTIONS, PREPARED, variant_dir, variant_metrics
from edgeops.runtime import cpu_info, read_model_json


def main() -> None:
    variant = sys.argv[1]
    params = load_params()
    model_dir = variant_dir(variant)
    out = variant_metrics(variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    predictions_csv = PREDICTIONS / f"{variant}.csv"
    predictions_csv.parent.mkdir(parents=True, exist_ok=True)
    failed = model_dir / "FAILED.json"
    if failed.exists():
        failure = json.loads(failed.read_text())
        out.write_text(
            json.dumps({"variant": variant, "status": "failed", "error": failure["error"]}, indent=2)
        )
        predictions_csv.write_text("actual,predicted\n")
        log(f"evaluate@{variant}: skipped, compression failed: {failure['error']}")
        return
    contract = read_model_json(model_dir)
    labels = read_manifest(PREPARED)["classes"]
    test = load_split(PREPARED, "test")
    metrics, predicted = evaluate_model_dir(model_dir, test, labels)
    log(
        f"evaluate@{variant}: test accuracy {metrics['accuracy']:.4f} (f32 hint {metrics['accuracy_f32']:.4f})"
    )
    rows = benchmark_model_dir(model_dir, params.benchmark.seconds, params.benchmark.warmup)
    for row in rows:
        log(
            f"evaluate@{variant}: [{row['precision_hint']}] p50 {row['latency_ms_p50']:.3f} ms "
            f"p90 {row['latency_ms_p90']:.3f} ms, {row['throughput_fps']:.0f} fps"
        )
    result = {
        "variant": variant,
        "status": "ok",
        "precision": contract["precision"],
        **metrics,
        "benchmark": {row["precision_hint"]: row for row in rows},
        "size_mb": rows[0]["size_mb"],
        "compression": {k: v for k, v in contract.get("compression", {}).items() if k != "history"},
        "files": contract["files"],
        "hardware": cpu_info(),
    }
    out.write_text(json.dumps(result, indent=2))
    with open(predictions_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows([labels[a], labels[p]] for a, p in zip(test.labels, predicted, strict=True))


if __name__ == "__main__":
    run_main(main, fast_exit=True)
