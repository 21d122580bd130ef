"""`make bench-zoo`: every model of a task's zoo with its recipe, on one dataset, as the pipeline trains
and compresses it: what the README's "Model zoo" table reports.

    python bench/zoo.py DATA [--task classification] [--size 32] [--models small_cnn,mobilenet_v3_small]
                        [--seeds 0,1] [--epochs N] [--out bench/zoo_results.json]

Per model and seed: the train stage's training (params.yaml's settings, `epochs`/`lr` from the model's
recipe unless --epochs), then fp32, ptq and qat built by the pipeline's own compress functions with
params.yaml's variant settings, each scored on the test split through the OpenVINO runtime with its
default precision hint (the f32 hint too for fp32); the score is the task's metric (top-1, mIoU, mAP).
Prints a table and writes JSON: wall times of training and of each variant's compression, best val, test
scores, and whether qat holds gates.max_score_drop against fp32 (a failing qat is listed with its drop). The split is the pipeline's
(data.split, seed), the data is decoded once per image size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def measure(params, size: int, train, val, test, labels: list[str]) -> dict:  # noqa: ANN001
    """Train one model as the train stage does, then fp32 / ptq / qat as compress builds them."""
    from edgeops.pipeline import compress, plan
    from edgeops.pipeline.train import train_candidate
    from edgeops.runtime import core, predict_all
    from edgeops.vision import get_task

    task, quiet = get_task(params.task), lambda _: None
    start = time.perf_counter()
    (entry,) = plan.resolve(params).values()  # one model per measurement
    model, history, trained = train_candidate(params, entry, train, val, labels, log=quiet)
    row = {
        "task": params.task,
        "metric": task.metric,
        "model": trained.model,
        "size": size,
        "seed": params.seed,
        "epochs": trained.max_epochs,
        "lr": trained.lr,
        "train_seconds": round(time.perf_counter() - start, 1),
        "epochs_trained": trained.epochs,
        "best_val": round(trained.best_val, 4),
        "stopped": trained.stopped,
    }

    def test_score(ov_model, hint: str | None = None) -> float:  # noqa: ANN001
        config = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
        predicted = predict_all(
            core().compile_model(ov_model, "CPU", config), test.images, task.decode_output
        )
        return round(float(task.score(predicted, test, labels)[task.metric]), 4)

    variants, seed = params.compress.variants, params.seed
    builders = {
        "fp32": lambda: compress.fp32(model, size, task),
        "ptq": lambda: compress.ptq(model, size, train, variants.ptq, seed, quiet, task),
        "qat": lambda: compress.qat(
            model, size, train, val, variants.qat, seed, quiet, task, labels,
            params.settings.batch_size, None, history, task.recipes[trained.model],
        ),
    }  # fmt: skip
    for name, build in builders.items():
        start = time.perf_counter()
        built = build()
        row[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
        row[f"{name}_test"] = test_score(built.model)
        if name == "fp32":
            row["fp32_test_f32_hint"] = test_score(built.model, "f32")
    row["qat_drop"] = round(row["fp32_test"] - row["qat_test"], 4)
    row["qat_holds_gate"] = row["qat_drop"] <= params.gates.max_score_drop
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--task", default="classification", help="classification | segmentation | detection")
    parser.add_argument(
        "--size", type=int, default=None, help="input size; default: params.yaml's for the task"
    )
    parser.add_argument("--models", default=None, help="comma-separated; default: the task's whole zoo")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=None, help="instead of each model's recipe")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "zoo_results.json")
    args = parser.parse_args()

    import yaml

    from edgeops.config import parse_params
    from edgeops.pipeline.prepare import load_split, prepare_dataset
    from edgeops.vision import get_task

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["task"] = args.task
    raw["data"]["path"] = str(args.data)
    settings = raw["by_task"][args.task]
    if args.size:
        settings["image_size"] = args.size
    if args.epochs:
        settings["epochs"] = args.epochs
    models = args.models.split(",") if args.models else list(get_task(args.task).models)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            raw["seed"] = seed
            prepared = Path(tmp) / f"seed{seed}"
            labels = prepare_dataset(parse_params(raw), prepared, log=lambda _: None)["classes"]
            train, val, test = (load_split(prepared, s) for s in ("train", "val", "test"))
            size = train.images.shape[1]  # what prepare made of image_size (detection: auto)
            for model_name in models:
                settings["model"] = model_name
                rows.append(measure(parse_params(raw), size, train, val, test, labels))
                print(json.dumps(rows[-1]), flush=True)
    args.out.write_text(json.dumps({"data": str(args.data), "rows": rows}, indent=2))
    print(f"{args.task}: {get_task(args.task).metric} on the test split")
    header = "model                 size seed epochs  train s  val     fp32    ptq     qat     qat gate"
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<21} {r['size']:>4} {r['seed']:>4} {r['epochs']:>6} {r['train_seconds']:>8.1f}  "
            f"{r['best_val']:.4f}  {r['fp32_test']:.4f}  {r['ptq_test']:.4f}  {r['qat_test']:.4f}  "
            f"{'pass' if r['qat_holds_gate'] else 'FAIL (drop ' + format(r['qat_drop'], '.4f') + ')'}"
        )
    print(f"test scores through OpenVINO, default precision hint; JSON: {args.out}")


if __name__ == "__main__":
    main()
