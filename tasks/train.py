"""Stage `train`: train the configured model from scratch; keep the best checkpoint by val accuracy."""

import csv
import json

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.data.prepare import load_split, read_manifest
from edgeops.paths import CHECKPOINT, PREPARED, TRAIN_HISTORY, TRAIN_METRICS
from edgeops.train import save_checkpoint, train_model


def main() -> None:
    params = load_params()
    manifest = read_manifest(PREPARED)
    train, val = load_split(PREPARED, "train"), load_split(PREPARED, "val")
    model, history = train_model(params.train, train, val, len(manifest["classes"]), params.seed, log)
    meta = {
        "model": params.train.model,
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
    best = max(row["val_accuracy"] for row in history)
    TRAIN_METRICS.parent.mkdir(parents=True, exist_ok=True)
    TRAIN_METRICS.write_text(json.dumps({"best_val_accuracy": best, "epochs": len(history)}, indent=2))
    log(f"train: best val accuracy {best:.4f}, checkpoint {CHECKPOINT}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
