"""Stage `compress@<candidate>-<variant>`: build one variant of one trained model candidate as an OpenVINO IR
folder (models/<candidate>/<variant>/).

A failing compression method is recorded in models/<variant>/FAILED.json so that the other
variants still get built, evaluated and compared; input errors still stop the pipeline."""

import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from edgeops.config import Params, load_params
from edgeops.console import git_commit, log, run_main
from edgeops.errors import EdgeopsError
from edgeops.paths import PREPARED, checkpoint, train_history, variant_dir, variant_id
from edgeops.pipeline import compress, plan
from edgeops.pipeline.export import write_model_dir
from edgeops.pipeline.prepare import load_split, read_manifest
from edgeops.pipeline.train import load_checkpoint, read_history, seed_everything
from edgeops.registry import live
from edgeops.runtime import compile_model, core, predict_all
from edgeops.vision import get_task


def build(
    params: Params,
    entry: dict[str, Any],
    candidate: str,
    variant: str,
    on_epoch: Callable[[dict], None] | None = None,
) -> compress.Compressed:
    """entry: the candidate's settings in candidates.yaml (fine-tuning uses its batch size)."""
    settings = getattr(params.compress.variants, variant)
    model, meta = load_checkpoint(checkpoint(candidate))
    task, labels = get_task(meta["task"]), meta["classes"]
    size, seed, batch_size = meta["image_size"], params.seed, entry["batch_size"]
    seed_everything(seed)
    if variant == "fp32":
        return compress.fp32(model, size, task)
    if variant == "fp16":
        return compress.fp16(model, size, task)
    train = load_split(PREPARED, "train", size)
    if variant == "ptq":
        return compress.ptq(model, size, train, settings, seed, log, task)
    val = load_split(PREPARED, "val", size)
    if variant == "ptq_ac":
        return compress.ptq_ac(model, size, train, val, settings, seed, log, task, labels)
    if variant == "qat":
        # a dvc.yaml dep of compress: the convergence note reads it
        history = read_history(train_history(candidate))
        return compress.qat(
            model,
            size,
            train,
            val,
            settings,
            seed,
            log,
            task,
            labels,
            batch_size,
            on_epoch,
            history,
            task.recipes[meta["model"]],
        )
    if variant == "prune_int8":
        return compress.prune_int8(
            model, size, train, val, settings, seed, log, task, labels, batch_size, on_epoch
        )
    raise EdgeopsError(f"unknown variant {variant!r}")


def main() -> None:
    candidate, variant = sys.argv[1], sys.argv[2]
    name = variant_id(candidate, variant)
    params = load_params()
    settings = getattr(params.compress.variants, variant)
    if settings is None:
        raise EdgeopsError(f"variant {variant!r} is not enabled under compress.variants in params.yaml")
    entry = plan.entry(params, candidate)
    manifest = read_manifest(PREPARED)
    out = variant_dir(candidate, variant)
    pipeline_run = live.open_pipeline_run(params)
    run = live.variant_run(pipeline_run, candidate, variant, settings.model_dump())
    start = time.perf_counter()
    try:  # QAT / pruning fine-tuning curves go live into the variant's run
        on_epoch = live.epoch_logger(run, get_task(manifest["task"]).metric, "finetune_")
        result = build(params, entry, candidate, variant, on_epoch)
    except EdgeopsError:
        raise
    except Exception as e:
        if variant == "fp32" or os.environ.get("EDGEOPS_DEBUG"):
            raise
        reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        log(f"compress {name}: FAILED ({reason}); the other variants go on")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        failure = {
            "candidate": candidate,
            "variant": variant,
            "error": reason,
            "traceback": traceback.format_exc(),
        }
        (out / "FAILED.json").write_text(json.dumps(failure, indent=2))
        run.set_tags({"status": "failed", "error": reason})
        return
    seconds = time.perf_counter() - start
    size = result.model.input(0).get_partial_shape()[1].get_length()  # NHWC: the checkpoint's input size
    test, val = load_split(PREPARED, "test", size), load_split(PREPARED, "val", size)
    task = get_task(manifest["task"])
    # serving defaults (detection: the score threshold) are chosen on val, never on test
    val_predicted = predict_all(core().compile_model(result.model, "CPU"), val.images, task.decode_output)
    serving = task.serving_defaults(task.score(val_predicted, val, manifest["classes"]))

    def test_metric(folder):
        predicted = predict_all(compile_model(folder), test.images, task.decode_output)
        return {task.metric: task.score(predicted, test, manifest["classes"])[task.metric], "split": "test"}

    run.log_metrics({"compress_seconds": seconds})
    contract = write_model_dir(
        result.model,
        out,
        {
            "task": manifest["task"],
            "candidate": candidate,
            "model": entry["model"],
            "variant": variant,
            "precision": result.precision,
            "labels": manifest["classes"],
            "compression": {**result.details, "seconds": seconds},
            "serving": serving,
            "dataset_fingerprint": manifest["fingerprint"],
            "git_commit": git_commit(),
        },
        compress_to_fp16=result.compress_to_fp16,
        measure=test_metric,
    )
    log(
        f"compress {name}: {result.precision} test {task.metric} {contract['metrics'][task.metric]:.4f} "
        f"in {seconds:.1f}s -> {out}"
    )


if __name__ == "__main__":
    run_main(main, fast_exit=True)
