"""The whole pipeline on a tiny dataset, through a real Prefect server, DVC and a real MLflow server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeops.files import MODEL_FORMAT_VERSION, read_model_json
from edgeops.images import load_rgb
from edgeops.runtime import compile_model
from edgeops.vision.classification.demo import make_demo_dataset
from tests.unit.edge_helpers import free_port, stop_process_group

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VARIANTS = ["fp32", "fp16", "ptq", "ptq_ac", "qat", "prune_int8"]
KEY = "small_cnn_24"  # the one model candidate, small_cnn@24: its stages are train@small_cnn_24, ...


def _wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail(f"server at {url} did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # schedule new deployments' runs quickly
    }
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/health", proc, log)
        yield {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_HOME": str(home)}
    finally:
        stop_process_group(proc)


def make_project(root: Path, data: Path) -> Path:
    """A copy of the project's pipeline (dvc.yaml, tasks, flows) with small settings, in its own git repo."""
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore"):  # our .gitignore too: `dvc exp` must see what git tracks
        shutil.copy(ROOT / name, root)
    for pkg in ("tasks", "flows", "src"):
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"] = "classification"
    params["data"].update(path=str(data))
    # the model at another input size than image_size: prepare decodes both, every stage after train uses 24
    params["by_task"]["classification"].update(model="small_cnn@24", image_size=16, epochs=6, batch_size=32)
    variants = params["compress"]["variants"]
    variants["ptq"]["subset_size"] = 100
    variants["ptq_ac"]["subset_size"] = 100
    variants["qat"].update(epochs=1, subset_size=100)
    variants["prune_int8"].update(epochs=2, subset_size=100)
    params["benchmark"]["seconds"] = 0.2
    params["mlflow"]["model_name"] = "tiny-digits"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, prefect_server, mlflow_server):
    base = tmp_path_factory.mktemp("pipeline")
    data = make_demo_dataset(base / "digits", per_class=30)
    project = make_project(base / "project", data)
    env = {
        **os.environ,
        **prefect_server,
        "MLFLOW_TRACKING_URI": mlflow_server.uri,
        "PYTHONPATH": str(project),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # as after `source .venv/bin/activate`
    }
    start = time.monotonic()
    run = subprocess.run(
        [str(BIN / "edgeops"), "run"], cwd=project, env=env, capture_output=True, text=True, timeout=1200
    )
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return {"project": project, "env": env, "stdout": run.stdout, "seconds": seconds, "data": data}


def test_every_variant_is_a_working_ir_with_the_contract(pipeline_run):
    project = pipeline_run["project"]
    manifest = json.loads((project / "data/prepared/manifest.json").read_text())
    test_files = manifest["splits"]["test"]
    assert manifest["image_size"] == 16 and manifest["extra_sizes"] == [24]
    train_json = json.loads((project / f"metrics/train/{KEY}.json").read_text())
    assert (train_json["name"], train_json["model"], train_json["image_size"]) == (
        "small_cnn@24",
        "small_cnn",
        24,
    )
    for variant in [*VARIANTS, "selected"]:
        folder = project / "models" / (variant if variant == "selected" else f"{KEY}/{variant}")
        contract = read_model_json(folder)  # verifies sha256 of model.xml/model.bin
        assert contract["format_version"] == MODEL_FORMAT_VERSION
        assert contract["task"] == manifest["task"] == "classification" and contract["metric"] == "accuracy"
        assert contract["labels"] == manifest["classes"]
        assert (contract["model"], contract["candidate"]) == ("small_cnn", KEY)
        assert contract["input"]["shape"] == [1, 24, 24, 3]
        assert contract["output"]["name"] == "logits" and contract["output"]["shape"] == [
            1,
            len(manifest["classes"]),
        ]
        compiled = compile_model(folder)
        hits = [
            int(np.argmax(compiled([load_rgb(Path(manifest["source"]) / path, 24)[None]])[0])) == label
            for path, label in test_files
        ]
        # accuracy from raw files the way an edge app reads them == what the pipeline recorded
        assert abs(float(np.mean(hits)) - contract["metrics"]["accuracy"]) < 1e-9, variant
        if variant != "selected":  # evaluate's pictures of the test results: the confusion matrix
            assert (project / "plots/pictures" / KEY / variant / "confusion.png").stat().st_size > 0, variant


def test_int8_is_close_to_fp32_and_much_better_than_chance(pipeline_run):
    project = pipeline_run["project"]
    results = {v: json.loads((project / f"metrics/variants/{KEY}/{v}.json").read_text()) for v in VARIANTS}
    assert {r["metric"] for r in results.values()} == {"accuracy"}
    acc = {v: r["score"] for v, r in results.items()}
    assert all(r["metrics"]["accuracy"] == r["score"] for r in results.values())
    assert acc["fp32"] > 0.5, acc  # 10 classes: chance is 0.1
    for v in ("ptq", "ptq_ac", "qat", "prune_int8"):
        assert acc[v] >= acc["fp32"] - 0.06, acc
    timing = json.loads((project / "reports/pipeline_timing.json").read_text())
    assert set(timing["stages_run"]) >= {
        "prepare",
        f"train@{KEY}",
        f"compress@{KEY}-ptq",
        f"evaluate@{KEY}-qat",
        "select",
        "register",
    }


def test_mlflow_has_runs_metrics_and_the_registered_version(pipeline_run, mlflow_server):
    from mlflow import MlflowClient

    project = pipeline_run["project"]
    registration = json.loads((project / "reports/registration.json").read_text())
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    version = client.get_model_version("tiny-digits", registration["version"])
    selected = json.loads((project / "models/selected/model.json").read_text())
    assert version.run_id == selected["mlflow_run_id"]
    assert version.tags["variant"] == registration["variant"] == selected["variant"]
    assert (
        version.tags["candidate"] == registration["candidate"] == KEY and version.tags["model"] == "small_cnn"
    )
    assert version.tags["dataset_fingerprint"] == selected["dataset_fingerprint"]
    assert version.tags["task"] == "classification" and version.tags["metric"] == "accuracy"
    chosen = json.loads((project / f"metrics/variants/{KEY}/{registration['variant']}.json").read_text())
    assert abs(float(version.tags["score"]) - chosen["score"]) < 1e-6
    parent = client.get_run(registration["pipeline_run_id"])
    assert parent.data.tags["dataset_fingerprint"] == selected["dataset_fingerprint"]
    assert parent.data.tags["data_dvc_md5"].endswith(".dir")
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(f"{KEY}/{v}" for v in VARIANTS)
    for child in children:
        assert 0 <= child.data.metrics["accuracy"] <= 1
        assert child.data.metrics["latency_ms_p50.f32"] > 0
    files = {f.path for f in client.list_artifacts(version.run_id, "model")}
    assert files == {"model/model.xml", "model/model.bin", "model/model.json"}


def test_mlflow_run_lasts_the_pipeline_with_curves_and_dataset(pipeline_run, mlflow_server):
    from mlflow import MlflowClient

    project = pipeline_run["project"]
    registration = json.loads((project / "reports/registration.json").read_text())
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name("edgeops")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    parent = client.get_run(registration["pipeline_run_id"])
    assert parent.info.status == "FINISHED"
    duration = (parent.info.end_time - parent.info.start_time) / 1000
    # the pipeline's wall time as `edgeops run` reports it: from its process start to the flow's end
    wall = json.loads((project / "reports/pipeline_timing.json").read_text())["wall_seconds"]
    assert abs(duration - wall) < 5, (duration, wall, pipeline_run["seconds"])
    epochs = yaml.safe_load((project / "params.yaml").read_text())["by_task"]["classification"]["epochs"]
    for key in ("train_loss", "val_accuracy", "lr"):
        steps = [m.step for m in client.get_metric_history(parent.info.run_id, key)]
        assert steps == list(range(1, epochs + 1)), (key, steps)
    manifest = json.loads((project / "data/prepared/manifest.json").read_text())
    [dataset_input] = parent.inputs.dataset_inputs
    assert dataset_input.dataset.digest == manifest["fingerprint"][:32]
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags["fingerprint"] == manifest["fingerprint"]
    assert {tags[f"{split}_images"] for split in ("train", "val", "test")} == {
        str(n) for n in manifest["counts"].values()
    }
    qat = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.variant = 'qat'",
    )[0]
    assert [m.step for m in client.get_metric_history(qat.info.run_id, "finetune_val_accuracy")] == [1]
    version = client.get_model_version("tiny-digits", registration["version"])
    assert version.source == registration["model_uri"] and "gates" in version.description
    assert "classification" in client.get_registered_model("tiny-digits").description


def _test_images(data: Path, per_class: int = 2) -> list[Path]:
    return [p for folder in sorted(data.iterdir()) for p in sorted(folder.iterdir())[:per_class]]


def _rgb(path: Path) -> np.ndarray:
    """The image as an app holds it: u8 RGB at its own size."""
    from PIL import Image

    from edgeops.images import to_rgb

    with Image.open(path) as image:
        return np.asarray(to_rgb(image))


def test_registered_version_is_an_mlflow_model_that_predicts_like_edgeops(pipeline_run, mlflow_server):
    import mlflow

    project, env = pipeline_run["project"], pipeline_run["env"]
    registration = json.loads((project / "reports/registration.json").read_text())
    promote = subprocess.run(
        [str(BIN / "edgeops"), "promote", "tiny-digits", "--version", registration["version"]]
        + ["--to", "production", "--no-publish", "--reason", "integration test"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert promote.returncode == 0, promote.stdout + promote.stderr
    images = _test_images(pipeline_run["data"])
    predicted = subprocess.run(
        [str(BIN / "edgeops"), "predict", "--json", *map(str, images)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [json.loads(line)["label"] for line in predicted.stdout.splitlines() if line.startswith("{")]
    mlflow.set_tracking_uri(mlflow_server.uri)
    model = mlflow.pyfunc.load_model("models:/tiny-digits@production")
    answers = [model.predict(_rgb(path)[None])[0]["label"] for path in images]
    assert answers == expected and len(answers) == len(images)


def test_mlflow_models_serve_answers(pipeline_run, mlflow_server, tmp_path):
    port = free_port()
    env = {**pipeline_run["env"], "MLFLOW_TRACKING_URI": mlflow_server.uri}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/tiny-digits@production"]
            + ["--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/ping", proc, log, seconds=120)
        image = _rgb(_test_images(pipeline_run["data"], 1)[0])
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": image[None].tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            [answer] = json.loads(response.read())["predictions"]
        assert answer["label"] in {p.name for p in pipeline_run["data"].iterdir()}
        assert 0 < answer["score"] <= 1
    finally:
        stop_process_group(proc)


def test_prefect_recorded_one_task_per_dvc_stage(pipeline_run, prefect_server, mlflow_server):
    from mlflow import MlflowClient

    from edgeops.orchestration.dvcgraph import stage_order

    project = pipeline_run["project"]
    code = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        "        runs = await c.read_flow_runs()\n"
        "        tasks = await c.read_task_runs()\n"
        "        print(json.dumps({'flows': [r.state_type.value for r in runs], 'tasks': [t.name for t in tasks],\n"
        "                          'names': {str(r.id): r.name for r in runs}}))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=pipeline_run["env"], capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "COMPLETED" in seen["flows"]
    stages = stage_order(project)
    assert set(stages) <= set(seen["tasks"]), (stages, seen["tasks"])
    # the MLflow pipeline run is named after its flow run and points at it
    registration = json.loads((project / "reports/registration.json").read_text())
    parent = MlflowClient(tracking_uri=mlflow_server.uri).get_run(registration["pipeline_run_id"])
    flow_run_id = parent.data.tags["prefect_flow_run_id"]
    assert seen["names"][flow_run_id] == parent.info.run_name
    assert parent.info.run_name.startswith("pipeline-")


def test_second_repro_is_a_noop_and_registers_nothing(pipeline_run, mlflow_server):
    from mlflow import MlflowClient

    project, env = pipeline_run["project"], pipeline_run["env"]
    status = subprocess.run(
        [str(BIN / "dvc"), "status"], cwd=project, env=env, capture_output=True, text=True, check=True
    )
    assert "up to date" in status.stdout, status.stdout  # the Prefect run left nothing for dvc to do
    again = subprocess.run(
        [str(BIN / "dvc"), "repro"], cwd=project, env=env, capture_output=True, text=True, check=True
    )
    assert "Running stage" not in again.stdout, again.stdout
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    versions = client.search_model_versions("name = 'tiny-digits'")
    assert len(versions) == 1


def test_changing_one_variant_reruns_only_that_variant(pipeline_run):
    project, env = pipeline_run["project"], pipeline_run["env"]
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["compress"]["variants"]["ptq"]["subset_size"] = 50
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = subprocess.run(
            [str(BIN / "dvc"), "status"], cwd=project, env=env, capture_output=True, text=True, check=True
        )
    finally:
        params_file.write_text(original)
    changed = {
        line.rstrip(":").strip()
        for line in status.stdout.splitlines()
        if line.endswith(":") and not line.startswith("\t")
    }
    assert f"compress@{KEY}-ptq" in changed
    assert not {f"compress@{KEY}-qat", f"compress@{KEY}-fp32", f"train@{KEY}", "prepare"} & changed, (
        status.stdout
    )


def test_adding_a_candidate_adds_its_stages_and_leaves_the_others_up_to_date(pipeline_run):
    project, env = pipeline_run["project"], pipeline_run["env"]
    params_file, plan_file = project / "params.yaml", project / "candidates.yaml"
    original, original_plan = params_file.read_text(), plan_file.read_text()
    params = yaml.safe_load(original)
    params["by_task"]["classification"]["model"] = ["small_cnn@24", "small_cnn"]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        # a plain `dvc repro` expanded dvc.yaml from the old list: its first stage updates the list and stops
        stale = subprocess.run(
            [str(BIN / "dvc"), "repro"], cwd=project, env=env, capture_output=True, text=True
        )
        assert stale.returncode != 0
        assert "candidates.yaml is updated now: run `dvc repro` again" in stale.stdout + stale.stderr
        assert "Traceback" not in stale.stdout + stale.stderr
        assert "small_cnn:" in plan_file.read_text()
        status = subprocess.run(
            [str(BIN / "dvc"), "status"], cwd=project, env=env, capture_output=True, text=True, check=True
        )
    finally:
        params_file.write_text(original)
        plan_file.write_text(original_plan)
    changed = {
        line.rstrip(":").strip()
        for line in status.stdout.splitlines()
        if line.endswith(":") and not line.startswith("\t")
    }
    assert {"train@small_cnn", "compress@small_cnn-qat", "evaluate@small_cnn-fp32"} <= changed, status.stdout
    assert not {s for s in changed if KEY in s}, status.stdout  # the kept candidate's stages stay up to date


def test_dvc_experiment_sweep_reruns_one_variant_and_logs_to_mlflow(pipeline_run, mlflow_server):
    from mlflow import MlflowClient

    project, env = pipeline_run["project"], pipeline_run["env"]
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"],
    ):
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    runs_before = len(client.search_runs(client.get_experiment_by_name("edgeops").experiment_id))
    exp = subprocess.run(
        [str(BIN / "dvc"), "exp", "run", "-S", "compress.variants.prune_int8.ratio=0.3", "-n", "sparse30"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exp.returncode == 0, exp.stdout[-3000:] + exp.stderr[-3000:]
    ran = {line.split("'")[1] for line in exp.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {f"compress@{KEY}-prune_int8", f"evaluate@{KEY}-prune_int8", "select", "register"}, (
        exp.stdout
    )
    show = subprocess.run(
        [str(BIN / "dvc"), "exp", "show", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    experiments = {
        exp_rev["name"]: exp_rev["data"]
        for baseline in json.loads(show.stdout)
        for experiment in baseline.get("experiments") or []
        for exp_rev in experiment["revs"]
    }
    # DVC's metrics are the headline numbers only (metrics/summary.json), the full evaluations are outputs
    assert set(experiments["sparse30"]["metrics"]) == {f"metrics/train/{KEY}.json", "metrics/summary.json"}
    recorded = experiments["sparse30"]["metrics"]["metrics/summary.json"]["data"]
    evaluated = json.loads((project / f"metrics/variants/{KEY}/prune_int8.json").read_text())
    assert abs(evaluated["compression"]["sparsity"] - 0.3) < 0.02
    # the experiment's own metrics
    assert recorded[KEY]["prune_int8"]["score"] == pytest.approx(evaluated["score"], abs=1e-5)
    runs_after = len(client.search_runs(client.get_experiment_by_name("edgeops").experiment_id))
    # a new pipeline run with exactly one nested run: the variant DVC re-ran
    assert runs_after == runs_before + 2


def test_bad_dataset_fails_with_one_line_and_keeps_outputs(pipeline_run, tmp_path):
    project, env = pipeline_run["project"], pipeline_run["env"]
    before = (project / "data/prepared/manifest.json").read_text()
    broken = tmp_path / "broken"
    shutil.copytree(pipeline_run["data"], broken)
    (broken / "three" / "oops.png").write_bytes(b"not a png")
    params_before = (project / "params.yaml").read_text()
    try:
        run = subprocess.run(
            [str(BIN / "edgeops"), "run", "--data", str(broken)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        (project / "params.yaml").write_text(params_before)
    assert run.returncode != 0
    assert "oops.png" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: stage prepare failed")
    assert (project / "data/prepared/manifest.json").read_text() == before


def test_serve_creates_a_deployment_with_scheduled_runs(prefect_server, tmp_path):
    env = {**os.environ, **prefect_server, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(
            [str(BIN / "edgeops"), "serve", "--cron", "0 3 * * *", "--name", "nightly-test"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    code = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        "        d = await c.read_deployment_by_name('edgeops-pipeline/nightly-test')\n"
        "        runs = await c.read_flow_runs(deployment_filter=DeploymentFilter(id={'any_': [d.id]}))\n"
        "        crons = [s.schedule.cron for s in d.schedules]\n"
        "        print(json.dumps({'crons': crons, 'runs': [[r.state_type.value, r.expected_start_time.isoformat()]"
        " for r in runs]}))\n"
        "asyncio.run(main())\n"
    )
    try:
        deadline = time.monotonic() + 120
        seen: dict = {}
        while time.monotonic() < deadline:
            probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if probe.returncode == 0:
                seen = json.loads(probe.stdout.strip().splitlines()[-1])
                if seen["runs"]:
                    break
            assert serve.poll() is None, log.read_text()[-3000:]
            time.sleep(2)
        assert seen.get("crons") == ["0 3 * * *"], (seen, log.read_text()[-3000:])
        assert seen["runs"] and all(state == "SCHEDULED" for state, _ in seen["runs"]), seen
        assert all("T03:00:00" in start for _, start in seen["runs"]), seen
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)


def test_serve_rejects_a_bad_cron():
    result = subprocess.run(
        [str(BIN / "edgeops"), "serve", "--cron", "every night"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "not a valid cron expression" in result.stderr
