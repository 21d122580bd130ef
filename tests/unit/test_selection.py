import pytest

from edgeops.config import GatesConfig
from edgeops.errors import EdgeopsError
from edgeops.pipeline.gates import Measured, check_gates, failures
from edgeops.pipeline.selection import candidates, choose, pareto_front, reference


def result(acc, p50, size, status="ok"):
    if status != "ok":
        return {"status": "failed", "error": "boom"}
    return {
        "status": "ok",
        "metric": "accuracy",
        "score": acc,
        "score_f32": acc,
        "metrics": {"accuracy": acc, "n": 100, "per_class": {}},
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
    cands = candidates(RESULTS, GatesConfig(max_score_drop=0.01))
    chosen = choose(cands)
    assert chosen is not None and chosen.name == "qat"
    by_name = {c.name: c for c in cands}
    assert by_name["ptq"].score_drop == pytest.approx(0.05)
    assert by_name["ptq"].failures == ["accuracy drop 0.05 > max_score_drop 0.01"]
    assert by_name["prune_int8"].failures == ["compression failed: boom"]


def test_looser_gate_picks_the_fastest():
    chosen = choose(candidates(RESULTS, GatesConfig(max_score_drop=0.06)))
    assert chosen is not None and chosen.name == "ptq"


def test_accuracy_first_picks_the_most_accurate_within_the_latency_budget():
    cands = candidates(RESULTS, GatesConfig(max_score_drop=0.06))
    # fp32, fp16 and qat all score 0.90: the fastest of them
    assert choose(cands, "accuracy_first").name == "qat"  # type: ignore[union-attr]
    budget = candidates(RESULTS, GatesConfig(max_score_drop=0.06, latency_budget_ms=4.0))
    assert choose(budget, "accuracy_first").name == "ptq_ac"  # type: ignore[union-attr]
    assert choose(budget).name == "ptq"  # type: ignore[union-attr]


def test_latency_and_size_gates():
    gates = GatesConfig(max_score_drop=0.2, latency_budget_ms=3.5, max_size_mb=9.0)
    cands = candidates(RESULTS, gates)
    assert choose(cands) is None
    ptq = next(c for c in cands if c.name == "ptq")
    assert ptq.failures == ["size MB 10 > max_size_mb 9"]
    ptq_ac = next(c for c in cands if c.name == "ptq_ac")
    assert ptq_ac.failures == ["latency p50 ms 4 > latency_budget_ms 3.5", "size MB 11 > max_size_mb 9"]


def test_min_score_gate():
    gates = GatesConfig(min_score=0.6)
    assert failures(check_gates(Measured("accuracy", 0.5, 0.0, None, None), gates)) == [
        "accuracy 0.5 < min_score 0.6"
    ]
    assert failures(check_gates(Measured("accuracy", 0.7, 0.0, None, None), gates)) == []
    assert failures(check_gates(Measured("mIoU", 0.5, 0.0, None, None), gates)) == [
        "mIoU 0.5 < min_score 0.6"
    ]


def test_a_missing_measurement_fails_its_gate_and_unset_gates_are_skipped():
    gates = GatesConfig(max_score_drop=0.01, latency_budget_ms=5.0, max_size_mb=2.0, min_score=0.5)
    results = check_gates(Measured("accuracy", 0.9, None, None, 1.0), gates)
    assert {r.gate: r.ok for r in results} == {
        "min_score": True,
        "max_score_drop": False,
        "latency_budget_ms": False,
        "max_size_mb": True,
    }
    assert failures(results) == ["accuracy drop not measured", "latency p50 ms not measured"]
    # only max_score_drop is set by default: nothing else is checked, whatever is missing
    assert [r.gate for r in check_gates(Measured("accuracy", None, 0.0, None, None), GatesConfig())] == [
        "max_score_drop"
    ]


def test_gate_limits_are_inclusive():
    gates = GatesConfig(max_score_drop=0.01, latency_budget_ms=5.0, max_size_mb=2.0, min_score=0.5)
    assert failures(check_gates(Measured("accuracy", 0.5, 0.01, 5.0, 2.0), gates)) == []


def test_pareto_front():
    front = pareto_front(candidates(RESULTS, GatesConfig()))
    assert set(front) == {"ptq", "ptq_ac", "qat"}


def test_fp32_is_required_as_reference():
    with pytest.raises(EdgeopsError, match="fp32"):
        candidates({"ptq": RESULTS["ptq"]}, GatesConfig())


# ---------------------------------------------------------------- across model candidates × variants

CANDIDATES = {
    "small_cnn/fp32": result(0.90, 1.0, 0.6),
    "small_cnn/ptq": result(0.915, 0.5, 0.2),  # fastest, but 1.5 points under the best FP32 (resnet18's)
    "resnet18/fp32": result(0.93, 8.0, 45.0),  # the most accurate FP32: the reference for every drop
    "resnet18/ptq": result(0.925, 4.0, 11.0),
    "resnet18/qat": result(0.93, 4.02, 11.2),
}


def test_drops_are_measured_from_the_most_accurate_fp32_of_all_candidates():
    cands = {c.name: c for c in candidates(CANDIDATES, GatesConfig(max_score_drop=0.01))}
    assert reference(CANDIDATES) == "resnet18/fp32"
    assert cands["small_cnn/fp32"].score_drop == pytest.approx(0.03)
    assert cands["small_cnn/ptq"].failures == ["accuracy drop 0.015 > max_score_drop 0.01"]
    chosen = choose(list(cands.values()))
    # resnet18's ptq and qat tie on latency (within 2%): the smaller model wins
    assert chosen is not None and chosen.name == "resnet18/ptq"
    # a looser gate lets the fastest model of any candidate win
    loose = choose(candidates(CANDIDATES, GatesConfig(max_score_drop=0.02)))
    assert loose is not None and loose.name == "small_cnn/ptq"


def test_accuracy_first_across_candidates_within_a_latency_budget():
    gates = GatesConfig(max_score_drop=0.05, latency_budget_ms=5.0, prefer="accuracy_first")
    chosen = choose(candidates(CANDIDATES, gates), gates.prefer)
    assert chosen is not None and chosen.name == "resnet18/qat"  # 0.93, the best within 5 ms
    gates = GatesConfig(max_score_drop=0.05, latency_budget_ms=2.0, prefer="accuracy_first")
    chosen = choose(candidates(CANDIDATES, gates), gates.prefer)
    assert chosen is not None and chosen.name == "small_cnn/ptq"


def test_a_tie_for_the_reference_goes_to_the_smaller_model():
    tied = {"big/fp32": result(0.9, 5.0, 40.0), "small/fp32": result(0.9, 1.0, 1.0)}
    assert reference(tied) == "small/fp32"
    assert reference({"a/fp32": result(0, 0, 0, status="failed"), "b/fp32": result(0.5, 1, 1)}) == "b/fp32"
