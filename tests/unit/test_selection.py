import pytest

from edgeops.config import GatesConfig
from edgeops.errors import EdgeopsError
from edgeops.pipeline.selection import candidates, check_gates, choose, pareto_front


def result(acc, p50, size, status="ok"):
    if status != "ok":
        return {"status": "failed", "error": "boom"}
    return {
        "status": "ok",
        "accuracy": acc,
        "size_mb": size,
        "benchmark": {"default": {"latency_ms_p50": p50}, "f32": {"latency_ms_p50": p50 * 2}},
    }


RESULTS = {
    "fp32": result(0.90, 10.0, 40.0),
    "fp16": result(0.90, 9.0, 20.0),
    "ptq": result(0.85, 3.0, 10.0),  # fastest, but drops 5 points
    "ptq_ac": result(0.895, 4.0, 11.0),
    "qat": result(0.90, 4.05, 10.5),  # within 2% of ptq_ac: a tie, and smaller
    "prune_int8": result(0, 0, 0, status="failed"),
}


def test_fastest_passing_variant_wins_and_ties_go_to_smaller():
    cands = candidates(RESULTS, GatesConfig(max_accuracy_drop=0.01))
    chosen = choose(cands)
    assert chosen is not None and chosen.variant == "qat"
    by_name = {c.variant: c for c in cands}
    assert "accuracy drop 0.0500" in by_name["ptq"].failures[0]
    assert by_name["prune_int8"].failures == ["compression failed: boom"]


def test_looser_gate_picks_the_fastest():
    chosen = choose(candidates(RESULTS, GatesConfig(max_accuracy_drop=0.06)))
    assert chosen is not None and chosen.variant == "ptq"


def test_latency_and_size_gates():
    gates = GatesConfig(max_accuracy_drop=0.2, latency_budget_ms=3.5, max_size_mb=9.0)
    cands = candidates(RESULTS, gates)
    assert choose(cands) is None
    ptq = next(c for c in cands if c.variant == "ptq")
    assert ptq.failures == ["size 10.000 MB > max_size_mb 9.0"]


def test_min_accuracy_gate():
    assert check_gates(0.5, 0.0, None, None, GatesConfig(min_accuracy=0.6)) == [
        "accuracy 0.5000 < min_accuracy 0.6"
    ]
    assert check_gates(0.7, 0.0, None, None, GatesConfig(min_accuracy=0.6)) == []


def test_pareto_front():
    front = pareto_front(candidates(RESULTS, GatesConfig()))
    assert set(front) == {"ptq", "ptq_ac", "qat"}


def test_fp32_is_required_as_reference():
    with pytest.raises(EdgeopsError, match="fp32"):
        candidates({"ptq": RESULTS["ptq"]}, GatesConfig())
