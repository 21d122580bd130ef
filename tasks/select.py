"""Stage `select`: choose the variant to register, write the compression report and summary metrics."""

import json

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.errors import EdgeopsError
from edgeops.paths import PARETO_PLOT, REPORT, SELECTION, SUMMARY, confusion_plot, variant_metrics
from edgeops.report import confusion_matrix_plot, markdown, pareto_plot, speedup
from edgeops.selection import candidates, choose, pareto_front


def main() -> None:
    params = load_params()
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
    pareto_plot(cands, front, chosen, PARETO_PLOT)
    for v, result in results.items():
        if result["status"] == "ok":
            confusion_matrix_plot(result, confusion_plot(v))
    REPORT.write_text(markdown(results, cands, chosen, front, PARETO_PLOT.name))
    selection = {
        "selected": chosen.variant if chosen else None,
        "gates": params.gates.model_dump(),
        "pareto_front": front,
        "variants": {
            c.variant: {
                "passed": c.passed,
                "failures": c.failures,
                "accuracy": c.accuracy,
                "accuracy_drop": c.accuracy_drop,
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
        **{f"{c.variant}.accuracy": c.accuracy for c in cands if c.accuracy is not None},
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
