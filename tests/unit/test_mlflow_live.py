"""The pipeline's live MLflow run (registry/live.py) and the registered MLflow model, on a real sqlite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from edgeops.config import Params, parse_params
from edgeops.errors import EdgeopsError, ServiceUnavailable
from edgeops.registry import live, tracking
from edgeops.registry.descriptions import model_description, version_description
from tests.unit.edge_helpers import build_model, image_bytes


@pytest.fixture
def params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Params:
    monkeypatch.chdir(tmp_path)  # the state file and the embedded store live in the project folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(live.PIPELINE_ID_ENV, "pipeline-a")
    monkeypatch.delenv(live.PIPELINE_START_ENV, raising=False)
    return parse_params({"mlflow": {"tracking_uri": "sqlite:///mlflow.db", "experiment": "t"}})


def _status(run_id: str) -> str:
    return str(MlflowClient().get_run(run_id).info.status)


def test_experiment_opens_on_training_runs(params: Params) -> None:
    experiment_id = tracking.connect(params.mlflow, Path("."))
    tags = MlflowClient().get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_stages_of_one_pipeline_share_one_run_and_a_new_pipeline_closes_a_stale_one(
    params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = live.open_pipeline_run(params)
    assert live.open_pipeline_run(params).run_id == first.run_id  # the next stage of the same pipeline
    qat = live.variant_run(first, "small_cnn", "qat", {"epochs": 2})
    assert (
        live.variant_run(first, "small_cnn", "qat", {"epochs": 2}).run_id == qat.run_id
    )  # evaluate after compress
    client = MlflowClient()
    assert client.get_run(qat.run_id).data.tags["mlflow.parentRunId"] == first.run_id
    assert client.get_run(qat.run_id).data.params == {
        "candidate": "small_cnn",
        "variant": "qat",
        "settings.epochs": "2",
    }
    assert _status(first.run_id) == "RUNNING"

    monkeypatch.setenv(live.PIPELINE_ID_ENV, "pipeline-b")  # e.g. the first one was killed
    second = live.open_pipeline_run(params)
    assert second.run_id != first.run_id
    assert _status(first.run_id) == "FAILED" and _status(qat.run_id) == "FAILED"
    assert live.read_state()["run_id"] == second.run_id  # type: ignore[index]

    assert live.end_pipeline_run("FINISHED") == second.run_id
    assert _status(second.run_id) == "FINISHED"
    assert live.read_state() is None
    third = live.open_pipeline_run(params)  # same owner, but its run ended: a new pipeline run
    assert third.run_id not in (first.run_id, second.run_id)


def test_a_helper_joins_the_pipeline_run_nests_its_variant_runs_and_never_ends_it(
    params: Params, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    parent = live.open_pipeline_run(params)
    helper = tmp_path / "helper"  # another workspace (on another worker in team mode)
    monkeypatch.chdir(helper.mkdir() or helper)
    monkeypatch.setenv(live.PIPELINE_ID_ENV, "helper-1")
    live.join_pipeline_run(json.loads((tmp_path / live.STATE).read_text()), "helper-1")
    joined = live.open_pipeline_run(params)
    assert joined.run_id == parent.run_id  # the helper's stages log into the parent's run
    qat = live.variant_run(joined, "small_cnn_32", "qat", {})
    assert MlflowClient().get_run(qat.run_id).data.tags["mlflow.parentRunId"] == parent.run_id

    live.end_pipeline_run("FAILED")  # the helper failed: its own variant runs end, the pipeline goes on
    assert _status(qat.run_id) == "FAILED" and _status(parent.run_id) == "RUNNING"
    assert live.read_state() is None


def test_run_starts_when_the_driving_command_started(params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.time() - 120
    monkeypatch.setenv(live.PIPELINE_START_ENV, str(started))
    run = live.open_pipeline_run(params)
    assert abs(MlflowClient().get_run(run.run_id).info.start_time / 1000 - started) < 1


def test_owner_without_the_flow_is_the_dvc_process_or_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(live.PIPELINE_ID_ENV, raising=False)
    owner = live.pipeline_owner()
    assert owner.startswith(("dvc:", "pid:"))
    assert live.pipeline_owner() == owner  # stable within one process


def test_dataset_input_logged_once_with_the_fingerprint_as_digest(params: Params) -> None:
    run = live.open_pipeline_run(params)
    Path("data/shapes").mkdir(parents=True)
    manifest = {
        "fingerprint": "ab" * 32,
        "task": "classification",
        "classes": ["a", "b"],
        "counts": {"train": 7},
    }
    live.log_dataset(run, manifest, "data/shapes")
    live.log_dataset(run, manifest, "data/shapes")  # a later stage of the same pipeline run
    inputs = MlflowClient().get_run(run.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == manifest["fingerprint"][:32]
    assert inputs[0].dataset.name == "shapes"
    assert json.loads(inputs[0].dataset.source)["uri"].endswith("data/shapes")
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["fingerprint"] == manifest["fingerprint"] and tags["train_images"] == "7"


def test_epochs_are_step_metrics(params: Params) -> None:
    run = live.open_pipeline_run(params)
    log_epoch = live.epoch_logger(run, "accuracy")
    for epoch in (1, 2, 3):
        log_epoch(
            {"epoch": epoch, "train_loss": 1 / epoch, "val_score": 0.5 + epoch / 10, "lr": 0.1, "seconds": 1}
        )
    history = MlflowClient().get_metric_history(run.run_id, "val_accuracy")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.6), (2, 0.7), (3, 0.8)]
    assert len(MlflowClient().get_metric_history(run.run_id, "train_loss")) == 3
    # the stage retried into the same run (its tracking server was down): each epoch stays logged once
    retried = live.epoch_logger(run, "accuracy")
    for epoch in (1, 2, 3, 4):
        retried(
            {"epoch": epoch, "train_loss": 1 / epoch, "val_score": 0.5 + epoch / 10, "lr": 0.1, "seconds": 1}
        )
    steps = [m.step for m in MlflowClient().get_metric_history(run.run_id, "val_accuracy")]
    assert steps == [1, 2, 3, 4]
    assert len(MlflowClient().get_metric_history(run.run_id, "train_loss")) == 4


def test_unreachable_server_is_one_clear_error(params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    bad = parse_params({"mlflow": {"tracking_uri": "http://127.0.0.1:9"}})
    with pytest.raises(ServiceUnavailable, match="cannot reach the MLflow tracking store"):
        live.open_pipeline_run(bad)


def test_an_unavailable_server_exits_75_with_its_own_prefix_so_the_flow_retries_the_stage(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeops.console import UNAVAILABLE, run_main

    monkeypatch.delenv("EDGEOPS_DEBUG", raising=False)

    def down() -> None:
        raise ServiceUnavailable("cannot reach the MLflow tracking store http://x: refused")

    with pytest.raises(SystemExit) as exit_info:
        run_main(down)
    assert exit_info.value.code == UNAVAILABLE == 75
    assert (
        capsys.readouterr().err == "unavailable: cannot reach the MLflow tracking store http://x: refused\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: (_ for _ in ()).throw(EdgeopsError("bad input")))
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: bad input")


def _evaluation(variant: str = "ptq") -> dict:
    return {
        "variant": variant,
        "status": "ok",
        "task": "classification",
        "precision": "INT8",
        "metric": "accuracy",
        "score": 0.9,
        "score_f32": 0.9,
        "metrics": {"accuracy": 0.9},
        "size_mb": 0.01,
        "benchmark": {"default": {"latency_ms_p50": 0.1, "latency_ms_p90": 0.2, "throughput_fps": 1000.0}},
        "hardware": {"cpu": "test CPU"},
    }


def test_registered_version_is_a_pyfunc_model_that_answers_like_the_edge(
    params: Params, tmp_path: Path
) -> None:
    import mlflow

    from edgeops.edge.inference import EdgeModel
    from edgeops.registry.fanout import download_model

    model_dir = build_model(tmp_path / "ptq", size=8)
    pipeline = live.open_pipeline_run(params)
    run = live.variant_run(pipeline, "small_cnn", "ptq", {})
    result = _evaluation()
    text = json.dumps(result)
    example = np.full((1, 20, 30, 3), 200, np.uint8)
    uri = tracking.log_variant(run, result, text, model_dir, tmp_path / "none", example, pipeline.run_id)
    assert uri is not None and uri.startswith("models:/")
    version = tracking.register_version("clf", run.run_id, uri, {"variant": "ptq"}, "v desc", "m desc")
    client = MlflowClient()
    mv = client.get_model_version("clf", version)
    assert mv.run_id == run.run_id and mv.description == "v desc"
    assert client.get_registered_model("clf").description == "m desc"

    # the edge targets still get the plain IR folder, with the run's lineage in model.json
    folder = download_model(client, "clf", version, mlflow.get_tracking_uri(), tmp_path / "download")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["mlflow_run_id"] == run.run_id and (folder / "model.xml").is_file()

    pyfunc = mlflow.pyfunc.load_model(f"models:/clf/{version}")
    assert pyfunc.metadata.get_input_schema().inputs[0].shape == (-1, -1, -1, 3)
    edge = EdgeModel(model_dir)
    for color in [(250, 10, 10), (10, 250, 10), (10, 10, 250)]:
        pixels = np.full((1, 16, 16, 3), color, np.uint8)
        answer = pyfunc.predict(pixels)[0]
        expected = edge.predict_bytes(image_bytes(color))
        assert answer["label"] == expected["label"]
        assert answer["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert client.get_run(run.run_id).data.tags["evaluation_sha256"]


def test_descriptions_say_what_the_version_is() -> None:
    lineage = {
        "data_path": "data/x",
        "dataset_fingerprint": "f" * 64,
        "data_dvc_md5": "m.dir",
        "git_commit": "c" * 40,
        "dvc_lock_sha256": "d" * 64,
    }
    selection = {
        "gates": {"max_score_drop": 0.01, "min_score": None},
        "variants": {"small_cnn/ptq": {"passed": True}},
        "reference": "small_cnn/fp32",
    }
    text = version_description(
        {**_evaluation(), "candidate": "small_cnn"}, 0.91, ["cat", "dog"], selection, lineage
    )
    for expected in (
        "`small_cnn/ptq` (INT8), selected by edgeops among 1 models",
        "test accuracy: 0.9000 (reference FP32 `small_cnn/fp32` 0.9100",
        "max_score_drop 0.01 — all passed",
        "labels (2): cat, dog",
        "fingerprint `ffffffffffffffff…`",
        "git `cccccccccccc`",
    ):
        assert expected in text
    assert "min_score" not in text  # unset gates are not listed
    many = model_description("classification", [f"c{i}" for i in range(40)], "accuracy")
    assert "Labels (40)" in many and "(40 in all)" in many


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_every_task_logs_an_mlflow_model_whose_answers_are_the_edges(
    task: str, params: Params, tmp_path: Path
) -> None:
    """The signature is inferred from the task's real answers (a mask PNG, boxes): logging must work and
    the pyfunc must answer exactly as the edge server does."""
    import io

    import mlflow
    from PIL import Image

    from edgeops.edge.inference import EdgeModel

    if task == "segmentation":
        from tests.unit.test_edge_segmentation import build_segmentation_ir as build
    else:
        from tests.unit.test_edge_detection import build_detection_ir as build
    model_dir = build(tmp_path / task)
    pipeline = live.open_pipeline_run(params)
    run = live.variant_run(pipeline, "small_cnn", "ptq", {})
    result = _evaluation() | {"task": task}
    pixels = np.zeros((1, 40, 60, 3), np.uint8)
    pixels[0, :, :30] = (250, 20, 20)
    pixels[0, :, 30:] = (20, 20, 250)
    uri = tracking.log_variant(
        run, result, json.dumps(result), model_dir, tmp_path / "none", pixels, pipeline.run_id
    )
    assert uri is not None
    answer = mlflow.pyfunc.load_model(uri).predict(pixels)[0]
    buffer = io.BytesIO()
    Image.fromarray(pixels[0]).save(buffer, format="PNG")
    expected = EdgeModel(model_dir).predict_bytes(buffer.getvalue())
    expected.pop("version")
    assert json.loads(json.dumps(answer)) == json.loads(json.dumps(expected))
