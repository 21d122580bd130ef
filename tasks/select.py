"""Stage `select`: choose the variant to register, write the compression report and summary metrics."""

import json

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.errors import EdgeopsError
from edgeops.paths import PARETO_PLOT, PREPARED, REPORT, SELECTION, SUMMARY, variant_metrics, variant_pictures
from edgeops.pipeline.prepare import read_manifest
from edgeops.pipeline.report import markdown, pareto_plot, speedup
from edgeops.pipeline.selection import candidates, choose, pareto_front
from edgeops.vision import get_task


def main() -> None:
    params = load_params()
    task = get_task(read_manifest(PREPARED)["task"])
    variants = params.compress.variants.enabled()
    results = {}
    for v in variants:
        path = variant_metrics(v)
        if not path.exists():
            raise EdgeopsError(f"{path} not found: run `dvc repro` to evaluate every variant first")
        results[v] = json.loads(path.read_text())
    cands = candidates(results, params.gates)
    chosen = choose(cands)
    front = pareto_front(cands)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    pareto_plot(task.metric, cands, front, chosen, PARETO_PLOT)
    pictures = {
        v: [f"../{p.as_posix()}" for p in sorted(variant_pictures(v).glob("*.png"))]
        for v in variants
        if variant_pictures(v).is_dir()
    }
    REPORT.write_text(markdown(task, results, cands, chosen, front, PARETO_PLOT.name, pictures))
    selection = {
        "selected": chosen.variant if chosen else None,
        "task": task.name,
        "metric": task.metric,
        "gates": params.gates.model_dump(),
        "pareto_front": front,
        "variants": {
            c.variant: {
                "passed": c.passed,
                "failures": c.failures,
                "score": c.score,
                "score_drop": c.score_drop,
                "latency_ms_p50": c.latency_ms,
                "size_mb": c.size_mb,
                "speedup_vs_fp32_f32": speedup(results, c.variant),
            }
            for c in cands
        },
    }
    SELECTION.write_text(json.dumps(selection, indent=2))
    summary = {
        "selected": chosen.variant if chosen else None,
        "metric": task.metric,
        **{f"{c.variant}.score": c.score for c in cands if c.score is not None},
        **{f"{c.variant}.latency_ms_p50": c.latency_ms for c in cands if c.latency_ms is not None},
    }
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2))
    for c in cands:
        log(f"select: {c.variant:<11} {'pass' if c.passed else 'FAIL: ' + '; '.join(c.failures)}")
    if chosen is None:
        raise EdgeopsError(f"no variant passes the gates (see {REPORT}): relax `gates` in params.yaml")
    log(f"select: chose {chosen.variant} -> report {REPORT}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
