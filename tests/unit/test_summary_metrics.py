"""DVC metrics are the headline numbers only: `dvc exp show` fits a screen, `dvc metrics diff` reads like a
summary. The full per-variant evaluations are stage outputs that select and register read, not metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from edgeops.config import load_params
from edgeops.paths import SUMMARY, VARIANT_METRICS, variant_metrics
from edgeops.pipeline import plan

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = {"score", "drop", "p50_default_ms", "size_mb"}


def _result(score: float, p50: float, size: float) -> dict:
    return {
        "status": "ok",
        "metric": "accuracy",
        "precision": "INT8",
        "score": score,
        "score_f32": score,
        "metrics": {"accuracy": score, "n": 100, "per_class": {"cat": score - 0.05, "dog": score + 0.05}},
        "size_mb": size,
        "benchmark": {
            "default": {"latency_ms_p50": p50, "latency_ms_p90": p50 * 1.2, "throughput_fps": 1000 / p50},
            "f32": {"latency_ms_p50": p50 * 2, "latency_ms_p90": p50 * 2.4, "throughput_fps": 500 / p50},
        },
        "hardware": {"cpu": "test CPU", "isa": ["avx2"], "cores": 2},
    }


def test_select_writes_only_the_headline_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.select

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"compress": {"variants": {"fp32": {}, "ptq": {}, "qat": {}}}, "gates": {}})
    )
    plan.write(load_params(tmp_path / "params.yaml"), tmp_path)  # one candidate: small_cnn
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/manifest.json").write_text(
        json.dumps({"task": "classification", "classes": ["cat", "dog"]})
    )
    results = {
        "fp32": _result(0.9, 2.0, 4.0),
        "ptq": _result(0.895, 1.0, 1.0),
        "qat": {"status": "failed", "error": "RuntimeError: boom"},  # its compression failed
    }
    for variant, result in results.items():
        variant_metrics("small_cnn", variant).parent.mkdir(parents=True, exist_ok=True)
        variant_metrics("small_cnn", variant).write_text(json.dumps(result))
    monkeypatch.setattr(sys, "argv", ["tasks.select"])

    tasks.select.main()

    summary = json.loads(SUMMARY.read_text())
    assert set(summary) == {"selected", "metric", "small_cnn"}  # DVC flattens small_cnn.ptq.score, ...
    assert summary["selected"] == "small_cnn/ptq" and summary["metric"] == "accuracy"
    variants = summary["small_cnn"]
    assert variants["fp32"] == {"score": 0.9, "drop": 0.0, "p50_default_ms": 2.0, "size_mb": 4.0}
    assert set(variants["ptq"]) == HEADLINE
    assert variants["ptq"]["drop"] == pytest.approx(0.005)
    assert variants["ptq"]["p50_default_ms"] == 1.0  # the runtime-default hint, not f32 (2.0)
    assert variants["qat"] == {"failed": True}
    # nothing per class, no benchmark rows or hardware: those stay in the variant files and the report
    text = SUMMARY.read_text()
    for detail in ("per_class", "cat", "dog", "benchmark", "hardware", "p90", "fps"):
        assert detail not in text, detail


def test_no_variant_passing_still_writes_the_summary() -> None:
    from edgeops.config import GatesConfig
    from edgeops.pipeline.selection import candidates, choose
    from tasks.select import headline

    results = {"unet/fp32": _result(0.9, 2.0, 4.0), "unet/ptq": {"status": "failed", "error": "boom"}}
    cands = candidates(results, GatesConfig(min_score=0.99))
    summary = headline("accuracy", cands, choose(cands))
    assert summary["selected"] is None  # DVC drops nulls: no `selected` column rather than an error
    assert set(summary["unet"]["fp32"]) == HEADLINE and summary["unet"]["ptq"] == {"failed": True}
    json.dumps(summary)


def _declared(stage: dict, kind: str) -> list[str]:
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in stage.get(kind) or []]


def test_dvc_metrics_are_the_headline_files_not_the_full_evaluations() -> None:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stages = {name: stage.get("do", stage) for name, stage in dvc["stages"].items()}
    metrics = [m for stage in stages.values() for m in _declared(stage, "metrics")]
    metrics += _declared(dvc, "metrics")  # top-level metrics, if any
    full = VARIANT_METRICS.as_posix()
    assert not [m for m in metrics if m == full or m.startswith(full + "/")], metrics
    assert SUMMARY.as_posix() in metrics
    # the full evaluations are still tracked (select and register depend on them), as cached outputs: DVC
    # keeps no run cache for a stage with an uncached plain output, and team helpers' evaluations come back
    # through the run cache
    evaluate = stages["evaluate"]
    out = variant_metrics("${item.candidate}", "${item.variant}").as_posix()
    assert out in evaluate["outs"]  # a plain entry: cached, not persist
