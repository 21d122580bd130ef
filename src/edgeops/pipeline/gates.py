"""The one gate check: `select` uses it to pick a variant, `promote` to let a registered version through.

The score is the task's primary metric (higher is better); its drop is measured against the FP32
variant of the same pipeline run. A gate whose measurement is missing fails."""

from __future__ import annotations

from dataclasses import dataclass

from edgeops.config import GatesConfig


@dataclass(frozen=True)
class Measured:
    """What the gates look at, for a variant or a registered version."""

    metric: str  # the score's name, e.g. "accuracy", "mIoU"
    score: float | None
    score_drop: float | None
    latency_ms_p50: float | None
    size_mb: float | None


@dataclass(frozen=True)
class GateResult:
    gate: str
    ok: bool
    value: float | None
    limit: float
    detail: str


def check_gates(measured: Measured, gates: GatesConfig) -> list[GateResult]:
    """Every configured gate against the measurements; unset gates are skipped."""
    checks: list[tuple[str, float | None, float | None, str, bool]] = [
        # gate, measured value, limit, what it measures, higher-is-better
        ("min_score", measured.score, gates.min_score, measured.metric, True),
        ("max_score_drop", measured.score_drop, gates.max_score_drop, f"{measured.metric} drop", False),
        ("latency_budget_ms", measured.latency_ms_p50, gates.latency_budget_ms, "latency p50 ms", False),
        ("max_size_mb", measured.size_mb, gates.max_size_mb, "size MB", False),
    ]
    results = []
    for gate, value, limit, what, higher in checks:
        if limit is None:
            continue
        if value is None:
            results.append(GateResult(gate, False, None, limit, f"{what} not measured"))
            continue
        ok = value >= limit - 1e-9 if higher else value <= limit + 1e-9
        op = (">=" if ok else "<") if higher else ("<=" if ok else ">")
        results.append(GateResult(gate, ok, value, limit, f"{what} {value:.4g} {op} {gate} {limit:.4g}"))
    return results


def failures(results: list[GateResult]) -> list[str]:
    return [r.detail for r in results if not r.ok]
