"""Pick the fastest (or, with gates.prefer: accuracy_first, the most accurate) compressed model that passes
every gate, across every model candidate and compression variant, and say why the others did not win.

Results are keyed by `<candidate>/<variant>` (edgeops.paths.variant_id). Score drops are measured against
the reference: the most accurate FP32 model of all candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeops.config import GatesConfig
from edgeops.errors import EdgeopsError
from edgeops.paths import split_variant_id
from edgeops.pipeline.gates import Measured, check_gates, failures

# Latencies this close are measurement noise: the tie goes to the smaller, then more accurate model.
LATENCY_TIE = 0.02
SCORE_TIE = 1e-9  # scores on one test set: equal or not
LATENCY_HINT = "default"  # what an edge device gets without tuning


@dataclass
class Candidate:
    name: str  # `<model candidate>/<compression variant>`, e.g. `small_cnn/qat`
    score: float | None  # the task's primary metric
    score_drop: float | None
    latency_ms: float | None
    size_mb: float | None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def reference(results: dict[str, dict]) -> str:
    """The most accurate FP32 model of all candidates (a tie: the smaller): every drop is measured from it."""
    fp32 = {k: r for k, r in results.items() if split_variant_id(k)[1] == "fp32" and r.get("status") == "ok"}
    if not fp32:
        raise EdgeopsError(
            "no fp32 variant has metrics: the most accurate FP32 model is the reference for drops"
        )
    return max(fp32, key=lambda k: (fp32[k]["score"], -fp32[k]["size_mb"]))


def candidates(results: dict[str, dict], gates: GatesConfig) -> list[Candidate]:
    """results: `<candidate>/<variant>` -> its metrics/variants/<candidate>/<variant>.json content."""
    ref = results[reference(results)]
    metric, ref_score = ref["metric"], ref["score"]
    out = []
    for variant, r in results.items():
        if r.get("status") != "ok":
            out.append(Candidate(variant, None, None, None, None, [f"compression failed: {r.get('error')}"]))
            continue
        drop = ref_score - r["score"]
        latency = r["benchmark"][LATENCY_HINT]["latency_ms_p50"]
        c = Candidate(variant, r["score"], drop, latency, r["size_mb"])
        c.failures = failures(check_gates(Measured(metric, r["score"], drop, latency, r["size_mb"]), gates))
        out.append(c)
    return out


def choose(cands: list[Candidate], prefer: str = "fastest") -> Candidate | None:
    """prefer fastest: the fastest passing variant; accuracy_first: the fastest of the best-scoring ones."""
    passing = [c for c in cands if c.passed]
    if not passing:
        return None
    if prefer == "accuracy_first":
        best = max(c.score or 0.0 for c in passing)
        passing = [c for c in passing if (c.score or 0.0) >= best - SCORE_TIE]
    fastest = min(c.latency_ms or 0.0 for c in passing)
    tied = [c for c in passing if (c.latency_ms or 0.0) <= fastest * (1 + LATENCY_TIE)]
    return min(tied, key=lambda c: (c.size_mb or 0.0, -(c.score or 0.0), c.latency_ms or 0.0))


def pareto_front(cands: list[Candidate]) -> list[str]:
    """Variants no other variant beats on both latency (lower) and score (higher)."""
    ok = [c for c in cands if c.score is not None and c.latency_ms is not None]
    front = []
    for c in ok:
        dominated = any(
            o.latency_ms <= c.latency_ms  # type: ignore[operator]
            and o.score >= c.score  # type: ignore[operator]
            and (o.latency_ms < c.latency_ms or o.score > c.score)  # type: ignore[operator]
            for o in ok
        )
        if not dominated:
            front.append(c.name)
    return front
