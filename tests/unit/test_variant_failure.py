"""A compression method that crashes is recorded for its variant; the other variants go on."""

from __future__ import annotations

import json
import sys

import pytest

import tasks.compress
import tasks.evaluate
from edgeops.config import GatesConfig
from edgeops.pipeline.selection import candidates, choose


def test_crashing_variant_is_recorded_not_fatal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/manifest.json").write_text(
        json.dumps({"classes": ["a", "b"], "task": "classification", "fingerprint": "f" * 64})
    )
    (tmp_path / "params.yaml").write_text("compress: {variants: {fp32: {}, ptq_ac: {}}}\n")
    monkeypatch.setenv("EDGEOPS_PIPELINE_ID", "one-pipeline")

    def crash(params, entry, candidate, variant, on_epoch=None):
        raise RuntimeError("accuracy control could not converge\nsecond line")

    monkeypatch.setattr(tasks.compress, "build", crash)
    monkeypatch.setattr(sys, "argv", ["tasks.compress", "small_cnn", "ptq_ac"])
    tasks.compress.main()  # returns normally: the DVC stage succeeds with a recorded failure
    failure = json.loads((tmp_path / "models/small_cnn/ptq_ac/FAILED.json").read_text())
    assert failure["error"] == "RuntimeError: accuracy control could not converge"
    assert not (tmp_path / "models/small_cnn/ptq_ac/model.xml").exists()

    monkeypatch.setattr(sys, "argv", ["tasks.evaluate", "small_cnn", "ptq_ac"])
    tasks.evaluate.main()
    result = json.loads((tmp_path / "metrics/variants/small_cnn/ptq_ac.json").read_text())
    assert result["status"] == "failed"
    # one failed nested run in MLflow, with the reason and the traceback
    from mlflow import MlflowClient

    runs = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_runs(
        [
            "0",
            *[e.experiment_id for e in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()],
        ],
        filter_string="tags.variant = 'ptq_ac'",
    )
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert runs[0].info.run_name == "small_cnn/ptq_ac" and runs[0].data.tags["candidate"] == "small_cnn"
    assert runs[0].data.tags["error"] == "RuntimeError: accuracy control could not converge"

    fp32 = {
        "status": "ok",
        "metric": "accuracy",
        "score": 0.9,
        "score_f32": 0.9,
        "metrics": {"accuracy": 0.9, "n": 10, "per_class": {"a": 0.8, "b": 1.0}},
        "size_mb": 1.0,
        "benchmark": {"default": {"latency_ms_p50": 1.0}, "f32": {"latency_ms_p50": 2.0}},
    }
    cands = candidates({"small_cnn/fp32": fp32, "small_cnn/ptq_ac": result}, GatesConfig())
    assert choose(cands).name == "small_cnn/fp32"  # type: ignore[union-attr]
    assert cands[1].failures == ["compression failed: RuntimeError: accuracy control could not converge"]


def test_fp32_failure_is_fatal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/manifest.json").write_text(
        json.dumps({"classes": ["a", "b"], "task": "classification"})
    )
    (tmp_path / "params.yaml").write_text("compress: {variants: {fp32: {}, ptq_ac: {}}}\n")
    monkeypatch.setattr(tasks.compress, "build", lambda *_: (_ for _ in ()).throw(RuntimeError("boom")))
    monkeypatch.setattr(sys, "argv", ["tasks.compress", "small_cnn", "fp32"])
    with pytest.raises(RuntimeError):
        tasks.compress.main()  # without fp32 there is no reference: the pipeline must stop
