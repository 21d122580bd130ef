"""Stage `train@<candidate>`: train one model candidate of candidates.yaml (one, unless by_task.<task>.model
is a list or auto) and keep its best checkpoint by the validation metric. `select` compares the candidates,
after compression, on the same gates.

Each epoch's loss, validation metric and learning rate go live into the pipeline's MLflow run."""

import csv
import json
import sys
from dataclasses import asdict

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.paths import PREPARED, checkpoint, train_history, train_metrics
from edgeops.pipeline import plan
from edgeops.pipeline.prepare import load_split, read_manifest
from edgeops.pipeline.train import save_checkpoint, train_candidate, undertrained_note
from edgeops.registry import live
from edgeops.registry.tracking import metric_safe
from edgeops.vision import get_task


def main() -> None:
    key = sys.argv[1]
    params = load_params()
    entry = plan.entry(params, key)
    several = len(plan.read()) > 1
    manifest = read_manifest(PREPARED)
    task = get_task(manifest["task"])
    size = entry["image_size"] or manifest["image_size"]
    train, val = load_split(PREPARED, "train", size), load_split(PREPARED, "val", size)
    run = live.open_pipeline_run(params)
    live.log_dataset(run, manifest, params.data.path)
    prefix = f"{key}_" if several else ""  # several candidates: each has its own curves
    tag = f"train@{key}" if several else "train"
    model, history, trained = train_candidate(
        params, entry, train, val, manifest["classes"], log, live.epoch_logger(run, task.metric, prefix), tag
    )
    meta = {
        "task": manifest["task"],
        "model": trained.model,
        "candidate": key,
        "classes": manifest["classes"],
        "image_size": size,
        "dataset_fingerprint": manifest["fingerprint"],
    }
    save_checkpoint(model, checkpoint(key), meta)
    history_file = train_history(key)
    history_file.parent.mkdir(parents=True, exist_ok=True)
    with open(history_file, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    summary = {"metric": task.metric, **asdict(trained)}  # stopped: max_epochs, budget or patience
    note = undertrained_note(task.name, trained.name, history)
    if note:
        log(f"{tag}: WARNING {note}")
        summary["note"] = note
        run.set_tags({f"{prefix}train_note": note})
    out = train_metrics(key)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    run.log_metrics(
        {
            f"{prefix}best_val_{metric_safe(task.metric)}": trained.best_val,
            f"{prefix}epochs_trained": float(trained.epochs),
        }
    )
    run.log_params({f"trained.{key}.epochs": trained.max_epochs, f"trained.{key}.lr": trained.lr})
    run.log_artifact(history_file, "training")
    log(
        f"{tag}: best val {task.metric} {trained.best_val:.4f} after {trained.epochs} epochs "
        f"({trained.stopped}), checkpoint {checkpoint(key)}"
    )


if __name__ == "__main__":
    run_main(main, fast_exit=True)
