"""Stage `train`: train the task's configured model; keep the best checkpoint by the validation metric.

Each epoch's loss, validation metric and learning rate go live into the pipeline's MLflow run."""

import csv
import json

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.paths import CHECKPOINT, PREPARED, TRAIN_HISTORY, TRAIN_METRICS
from edgeops.pipeline.prepare import load_split, read_manifest
from edgeops.pipeline.train import save_checkpoint, train_model
from edgeops.registry import live
from edgeops.registry.tracking import metric_safe
from edgeops.vision import get_task


def main() -> None:
    params = load_params()
    manifest = read_manifest(PREPARED)
    task = get_task(manifest["task"])
    train, val = load_split(PREPARED, "train"), load_split(PREPARED, "val")
    run = live.open_pipeline_run(params)
    live.log_dataset(run, manifest, params.data.path)
    model, history = train_model(
        params, train, val, manifest["classes"], log, on_epoch=live.epoch_logger(run, task.metric)
    )
    meta = {
        "task": manifest["task"],
        "model": params.settings.model,
        "classes": manifest["classes"],
        "image_size": manifest["image_size"],
        "dataset_fingerprint": manifest["fingerprint"],
    }
    save_checkpoint(model, CHECKPOINT, meta)
    TRAIN_HISTORY.parent.mkdir(parents=True, exist_ok=True)
    with open(TRAIN_HISTORY, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    best = max(row["val_score"] for row in history)
    TRAIN_METRICS.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "metric": task.metric,
        "best_val_score": best,
        "epochs": len(history),
        "stopped": history[-1]["stopped"],  # max_epochs, budget or patience
    }
    TRAIN_METRICS.write_text(json.dumps(summary, indent=2))
    run.log_metrics({f"best_val_{metric_safe(task.metric)}": best, "epochs_trained": float(len(history))})
    run.log_artifact(TRAIN_HISTORY, "training")
    log(f"train: best val {task.metric} {best:.4f}, checkpoint {CHECKPOINT}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
