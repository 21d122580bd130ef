"""Stage `select`: choose the model to register among every model candidate and compression variant, write
the compression report and the summary metrics."""

import json

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.errors import EdgeopsError
from edgeops.paths import (
    PARETO_PLOT,
    PREPARED,
    REPORT,
    SELECTION,
    SUMMARY,
    split_variant_id,
    train_metrics,
    variant_id,
    variant_metrics,
    variant_pictures,
)
from edgeops.pipeline import plan
from edgeops.pipeline.prepare import read_manifest
from edgeops.pipeline.report import markdown, pareto_plot, speedup
from edgeops.pipeline.selection import LATENCY_HINT, Candidate, candidates, choose, pareto_front, reference
from edgeops.vision import get_task


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits) + 0.0  # + 0.0: no "-0.0" in the file


def headline(metric: str, cands: list[Candidate], chosen: Candidate | None) -> dict:
    """metrics/summary.json, the one DVC metrics file of the variants: the headline numbers only.

    DVC flattens it to `selected`, `metric`, `<candidate>.<variant>.score`, `.drop`, `.p50_default_ms`,
    `.size_mb`, so `dvc exp show` stays narrow and `dvc metrics diff` reads like a summary. Per-class
    breakdowns, benchmark details and hardware stay in metrics/variants/<candidate>/<variant>.json (stage
    outputs, not DVC metrics) and reports/compression.md. score = the task's primary metric (`metric`);
    drop = the reference FP32 model's score minus this one (positive = worse); p50_default_ms = batch-1 p50
    latency in ms with the runtime's default precision hint (what an edge device gets; bf16 where the CPU
    has it). A variant whose compression failed is `{"failed": true}`; no model passing the gates:
    `selected` is null (DVC then shows no value).
    """
    models: dict[str, dict] = {}
    for c in cands:
        candidate, variant = split_variant_id(c.name)
        if c.score is None:
            models.setdefault(candidate, {})[variant] = {"failed": True}
            continue
        models.setdefault(candidate, {})[variant] = {
            "score": _round(c.score, 5),
            "drop": _round(c.score_drop, 5),
            f"p50_{LATENCY_HINT}_ms": _round(c.latency_ms, 4),  # p50_default_ms
            "size_mb": _round(c.size_mb, 4),
        }
    return {"selected": chosen.name if chosen else None, "metric": metric, **models}


def main() -> None:
    params = load_params()
    keys = list(plan.current(params))
    task = get_task(read_manifest(PREPARED)["task"])
    variants = params.compress.variants.enabled()
    results = {}
    for key in keys:
        for v in variants:
            path = variant_metrics(key, v)
            if not path.exists():
                raise EdgeopsError(f"{path} not found: run `dvc repro` to evaluate every variant first")
            results[variant_id(key, v)] = json.loads(path.read_text())
    ref = reference(results)
    cands = candidates(results, params.gates)
    chosen = choose(cands, params.gates.prefer)
    front = pareto_front(cands)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    pareto_plot(task.metric, cands, front, chosen, PARETO_PLOT)
    pictures = {
        variant_id(key, v): [f"../{p.as_posix()}" for p in sorted(variant_pictures(key, v).glob("*.png"))]
        for key in keys
        for v in variants
        if variant_pictures(key, v).is_dir()
    }
    training = {
        key: json.loads(train_metrics(key).read_text()) for key in keys if train_metrics(key).exists()
    }
    REPORT.write_text(
        markdown(
            task, results, cands, chosen, front, PARETO_PLOT.name, pictures, training, params.gates.prefer
        )
    )
    selection = {
        "selected": chosen.name if chosen else None,
        "candidate": split_variant_id(chosen.name)[0] if chosen else None,
        "variant": split_variant_id(chosen.name)[1] if chosen else None,
        "reference": ref,
        "task": task.name,
        "metric": task.metric,
        "gates": params.gates.model_dump(),
        "pareto_front": front,
        "variants": {
            c.name: {
                "passed": c.passed,
                "failures": c.failures,
                "score": c.score,
                "score_drop": c.score_drop,
                "latency_ms_p50": c.latency_ms,
                "size_mb": c.size_mb,
                "speedup_vs_fp32_f32": speedup(results, c.name, ref),
            }
            for c in cands
        },
    }
    SELECTION.write_text(json.dumps(selection, indent=2))
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(headline(task.metric, cands, chosen), indent=2))
    width = max(len(c.name) for c in cands)
    for c in cands:
        log(f"select: {c.name:<{width}} {'pass' if c.passed else 'FAIL: ' + '; '.join(c.failures)}")
    if chosen is None:
        raise EdgeopsError(f"no model passes the gates (see {REPORT}): relax `gates` in params.yaml")
    log(f"select: chose {chosen.name} (drops measured from {ref}) -> report {REPORT}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
