"""Stage `train`: train the task's configured model (or each candidate of a list / auto, keeping the best);
keep the best checkpoint by the validation metric.

Each epoch's loss, validation metric and learning rate go live into the pipeline's MLflow run."""

import csv
import json
from collections.abc import Callable
from dataclasses import asdict

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.paths import CHECKPOINT, PREPARED, TRAIN_HISTORY, TRAIN_METRICS
from edgeops.pipeline.prepare import load_split, read_manifest
from edgeops.pipeline.train import save_checkpoint, train_model, undertrained_note
from edgeops.registry import live
from edgeops.registry.tracking import metric_safe
from edgeops.vision import Split, get_task


def main() -> None:
    params = load_params()
    manifest = read_manifest(PREPARED)
    task = get_task(manifest["task"])
    train, val = load_split(PREPARED, "train"), load_split(PREPARED, "val")
    run = live.open_pipeline_run(params)
    live.log_dataset(run, manifest, params.data.path)
    several = len(params.candidates(manifest["image_size"])) > 1
    loggers: dict[str, Callable[[dict], None]] = {}

    def on_epoch(model: str, row: dict) -> None:  # several candidates: each has its own curves
        if model not in loggers:
            loggers[model] = live.epoch_logger(run, task.metric, f"{metric_safe(model)}_" if several else "")
        loggers[model](row)

    def splits_at(size: int) -> tuple[Split, Split]:
        return load_split(PREPARED, "train", size), load_split(PREPARED, "val", size)

    result = train_model(params, train, val, manifest["classes"], log, on_epoch, splits_at)
    meta = {
        "task": manifest["task"],
        "model": result.kept.model,
        "classes": manifest["classes"],
        "image_size": result.kept.image_size,
        "dataset_fingerprint": manifest["fingerprint"],
    }
    save_checkpoint(result.model, CHECKPOINT, meta)
    TRAIN_HISTORY.parent.mkdir(parents=True, exist_ok=True)
    with open(TRAIN_HISTORY, "w", newline="") as f:  # the kept model's curve
        writer = csv.DictWriter(f, fieldnames=list(result.history[0]))
        writer.writeheader()
        writer.writerows(result.history)
    best = result.kept.best_val
    TRAIN_METRICS.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "metric": task.metric,
        "model": result.kept.model,
        "image_size": result.kept.image_size,
        "best_val_score": best,
        "epochs": result.kept.epochs,
        "stopped": result.kept.stopped,  # max_epochs, budget or patience
    }
    note = undertrained_note(task.name, result.kept.name, result.history)
    if note:
        log(f"train: WARNING {note}")
        summary["note"] = note
        run.set_tags({"train_note": note})
    if several:
        summary["candidate"] = result.kept.name  # the model, with @size when trained at another input size
        summary["candidates"] = [asdict(c) for c in result.candidates]
    TRAIN_METRICS.write_text(json.dumps(summary, indent=2))
    metrics = {f"best_val_{metric_safe(task.metric)}": best, "epochs_trained": float(result.kept.epochs)}
    if several:
        metrics |= {
            f"{metric_safe(c.name)}_best_val_{metric_safe(task.metric)}": c.best_val
            for c in result.candidates
        }
        run.set_tags(
            {"model": result.kept.name, "model_candidates": ",".join(c.name for c in result.candidates)}
        )
    run.log_metrics(metrics)
    run.log_params({f"trained.{metric_safe(c.name)}.epochs": c.max_epochs for c in result.candidates})
    run.log_params({f"trained.{metric_safe(c.name)}.lr": c.lr for c in result.candidates})
    run.log_artifact(TRAIN_HISTORY, "training")
    log(f"train: best val {task.metric} {best:.4f} ({result.kept.name}), checkpoint {CHECKPOINT}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
