"""Class names come from users' folder names: MLflow must accept every metric key made from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeops.registry.tracking import variant_metrics

LABELS = ["cat, striped", 'say "cheese"', "café au lait", "a/b", "x?y*z", "x_y_z", "plain"]


def result_with(labels: list[str]) -> dict:
    per_class = {label: i / 10 for i, label in enumerate(labels)}
    return {
        "metric": "accuracy",
        "score": 0.9,
        "score_f32": 0.9,
        "metrics": {"accuracy": 0.9, "n": 70, "per_class": per_class},
        "size_mb": 1.0,
        "benchmark": {"f32": {"latency_ms_p50": 1.0, "latency_ms_p90": 2.0, "throughput_fps": 10.0}},
    }


def test_metrics_of_any_class_names_are_accepted_by_mlflow(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    metrics = variant_metrics(result_with(LABELS), fp32_score=0.95)
    assert metrics["accuracy"] == 0.9 and metrics["accuracy_f32_hint"] == 0.9
    assert metrics["accuracy_drop"] == pytest.approx(0.05)
    per_class = {k: v for k, v in metrics.items() if k.startswith("per_class_accuracy.")}
    assert len(per_class) == len(LABELS)  # "x?y*z" and "x_y_z" both kept, no overwrite
    assert sorted(per_class.values()) == [i / 10 for i in range(len(LABELS))]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)  # raised MlflowException on ',' and '"' before
    logged = client.get_run(run.info.run_id).data.metrics
    assert logged["per_class_accuracy.café au lait"] == 0.2 and logged["per_class_accuracy.a/b"] == 0.3
