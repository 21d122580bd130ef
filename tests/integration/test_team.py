"""Team mode end to end, on real servers started by `scripts/team/up.sh` (what `make up` runs): PostgreSQL,
radosgw (S3), an MLflow server on both, a Prefect server and two process workers.

A user's clone with a small DVC-tracked dataset is deployed with `edgeops deploy`; the pipeline runs through
a worker in its own workspace; results land in MLflow (PostgreSQL + S3), the DVC remote and, after the
`promote` deployment, an S3 edge target an edge agent syncs from. Then the faults: a sweep on two workers at
once, the MLflow server restarting mid-run, a worker killed mid-stage and its flow run retried."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.unit.edge_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
UP, DOWN = ROOT / "scripts" / "team" / "up.sh", ROOT / "scripts" / "team" / "down.sh"
PIPELINE, PROMOTE = "edgeops-team-pipeline/pipeline", "edgeops-team-promote/promote"
MODEL = "edgeops-classification"
BUCKET = "edgeops"


def _missing() -> str | None:
    if not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "PostgreSQL not installed: apt-get install -y --no-install-recommends postgresql"
    if not shutil.which("radosgw"):
        return "radosgw not installed: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
    return None


@dataclass
class Team:
    folder: Path
    env: dict[str, str]  # the test's environment + .team/env, as a user has after `source .team/env`
    up_seconds: float
    up_env: dict[str, str]  # what up.sh was started with (ports, TEAM_DIR), to restart a server

    def run(self, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        uri = self.env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value
    return env


@pytest.fixture(scope="module")
def team() -> Iterator[Team]:
    missing = _missing()
    if missing:
        if "1" in (os.environ.get("EDGEOPS_REQUIRE_RGW"), os.environ.get("EDGEOPS_REQUIRE_POSTGRES")):
            pytest.fail(missing)
        pytest.skip(missing)
    # not pytest's tmp_path (0700): the postgres user must reach the database folder
    folder = Path(tempfile.mkdtemp(prefix="edgeops-team-"))
    folder.chmod(0o755)
    up_env = {
        **os.environ,
        "TEAM_DIR": str(folder / "team"),
        "WORKERS": "2",
        "PG_PORT": str(free_port()),
        "S3_PORT": str(free_port(pair=True)),
        "MLFLOW_PORT": str(free_port()),
        "PREFECT_PORT": str(free_port()),
    }
    start = time.perf_counter()
    up = subprocess.run([str(UP)], env=up_env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        env = {**os.environ, **_read_env_file(folder / "team" / "env")}
        env.pop("EDGEOPS_DEBUG", None)
        yield Team(folder, env, seconds, up_env)
    finally:
        subprocess.run([str(DOWN)], env=up_env, capture_output=True, timeout=300)
        shutil.rmtree(folder, ignore_errors=True)


def _tiny_dataset(root: Path) -> None:
    """3 classes a small CNN tells apart in 2 epochs: bright red, green, blue blobs on noise."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(0, 90, (24, 24, 3), dtype=np.uint8)
            y, x = rng.integers(2, 12, 2)
            pixels[y : y + 10, x : x + 10, c] = 230
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")


@pytest.fixture(scope="module")
def clone(team: Team, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's clone: the project at HEAD, a DVC-tracked dataset pushed to the team remote, small settings."""
    from edgeops.orchestration.workspace import apply_choices

    repo = tmp_path_factory.mktemp("team") / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    _tiny_dataset(repo / "data" / "tiny")
    apply_choices(
        repo,
        data="data/tiny",
        task="classification",
        variants=["fp32", "ptq"],
        overrides={
            "by_task.classification.epochs": 2,
            "by_task.classification.image_size": 24,
            "compress.variants.ptq.subset_size": 64,
            "benchmark.seconds": 0.2,
            "gates.max_score_drop": 1.0,
            "targets.staging": [{"uri": f"s3://{BUCKET}/edge/staging"}],
            "targets.production": [{"uri": f"s3://{BUCKET}/edge/production"}],
        },
    )
    dvc = [str(Path(sys.executable).parent / "dvc")]
    for args in (
        ["remote", "add", "--local", "-d", "team", team.env["EDGEOPS_DVC_REMOTE"]],
        ["add", "-q", "data/tiny"],
        ["push", "-q"],
    ):
        done = team.run(*dvc, *args, cwd=repo)
        assert done.returncode == 0, done.stderr
    git = ["git", "-c", "user.name=tester", "-c", "user.email=tester@example.com"]
    subprocess.run(
        [*git, "add", "params.yaml", "candidates.yaml", "data/tiny.dvc", "data/.gitignore"],
        cwd=repo,
        check=True,
    )
    subprocess.run([*git, "commit", "-qm", "tiny dataset"], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="module")
def deployed(team: Team, clone: Path) -> str:
    done = team.run(str(Path(sys.executable).parent / "edgeops"), "deploy", "--repo", str(clone), cwd=clone)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("deployed ") == 4, done.stdout
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()


def _prefect(team: Team) -> Any:
    """A sync Prefect client on the team server (this process's PREFECT_API_URL is set per call)."""
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(team.env["PREFECT_API_URL"])


def _start(team: Team, deployment: str, parameters: dict[str, Any]) -> str:
    with _prefect(team) as client:
        found = client.read_deployment_by_name(deployment)
        run = client.create_flow_run_from_deployment(found.id, parameters=parameters)
        return str(run.id)


def _wait(team: Team, run_id: str, timeout: float = 900) -> Any:
    deadline = time.monotonic() + timeout
    with _prefect(team) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)  # type: ignore[arg-type]
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(3)
    raise AssertionError(f"flow run {run_id} not final after {timeout}s: {_logs(team, run_id)[-3000:]}")


def _logs(team: Team, run_id: str) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with _prefect(team) as client:
        ids = [run_id] + [str(r.id) for r in _subflows(client, run_id)]
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200)
        logs += client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200, offset=200)
    return "\n".join(f"{log.timestamp} {log.message}" for log in sorted(logs, key=lambda x: x.timestamp))


def _subflows(client: Any, run_id: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))
    )


def _descendants(client: Any, run_id: str) -> list[Any]:
    runs = _subflows(client, run_id)
    return runs + [d for r in runs for d in _descendants(client, str(r.id))]


def _own_logs(team: Team, run_id: str) -> list[Any]:
    """The log records of one flow run alone, oldest first."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    records: list[Any] = []
    with _prefect(team) as client:
        while True:
            page = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200, offset=len(records)
            )
            records += page
            if len(page) < 200:
                return sorted(records, key=lambda r: r.timestamp)


def _wait_for_log(team: Team, run_id: str, text: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in _logs(team, run_id):
            return
        time.sleep(2)
    raise AssertionError(f"no log line with {text!r} after {timeout}s")


def _pipeline_runs(team: Team) -> list[Any]:
    client = team.mlflow()
    experiment = client.get_experiment_by_name("edgeops")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    return [r for r in runs if r.data.tags.get("edgeops.kind") == "pipeline"]


def _versions(team: Team) -> list[Any]:
    return list(team.mlflow().search_model_versions(f"name='{MODEL}'"))


def test_make_up_is_healthy_and_env_has_no_secrets_in_git(team: Team) -> None:
    up_json = json.loads((team.folder / "team" / "up.json").read_text())
    assert up_json["seconds"] > 0
    assert team.env["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    assert (team.folder / "team" / "env").stat().st_mode & 0o077 == 0  # only the owner reads the keys
    ignored = subprocess.run(["git", "check-ignore", "-q", ".team/env"], cwd=ROOT)
    assert ignored.returncode == 0, ".team/ must be ignored by git"


def test_deploy_registers_pipeline_retrain_and_promote_and_retrain_is_scheduled(
    team: Team, deployed: str
) -> None:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    with _prefect(team) as client:
        names = {f"{d.name}": d for d in client.read_deployments()}
        assert {"pipeline", "retrain", "promote"} <= set(names)
        retrain = names["retrain"]
        assert retrain.parameters["commit"] == deployed
        assert retrain.schedules and retrain.schedules[0].schedule.cron == "0 3 * * 1"
        deadline, scheduled = time.monotonic() + 120, []
        while not scheduled and time.monotonic() < deadline:  # the server's scheduler fills them in
            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[retrain.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"]))
                ),
            )
            time.sleep(3)
    assert scheduled, "the retrain deployment has no scheduled runs"
    assert all(r.expected_start_time.weekday() == 0 for r in scheduled)  # Mondays


@pytest.fixture(scope="module")
def first_run(team: Team, deployed: str) -> Any:
    run_id = _start(team, PIPELINE, {})
    run = _wait(team, run_id)
    assert run.state.is_completed(), _logs(team, run_id)[-4000:]
    return run


def test_pipeline_runs_on_a_worker_and_lands_in_mlflow_postgres_s3_and_the_dvc_remote(
    team: Team, clone: Path, first_run: Any
) -> None:
    import psycopg2

    logs = _logs(team, str(first_run.id))
    workspace = next(
        line.split("workspace ")[1].split(":")[0] for line in logs.splitlines() if "workspace " in line
    )
    assert str(clone) not in workspace and Path(workspace).name == str(first_run.id)
    assert "Running stage 'train@small_cnn'" in logs  # each stage is a task with its own log
    assert not Path(workspace).exists()  # pushed, so the workspace was removed

    runs = _pipeline_runs(team)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["data_path"] == "data/tiny"
    versions = _versions(team)
    assert [v.version for v in versions] == ["1"]
    # the MLflow server keeps runs in PostgreSQL ...
    with (
        psycopg2.connect(team.env["EDGEOPS_LOCK_URL"].rsplit("/", 1)[0] + "/mlflow") as db,
        db.cursor() as cur,
    ):
        cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (runs[0].info.run_id,))
        assert cur.fetchall() == [("FINISHED",)]
    # ... and artifacts in S3
    s3 = team.s3()
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith("mlflow/") and k.endswith("model.xml") for k in keys), keys[:20]
    # the DVC remote has the dataset and the pipeline's outputs (the trained checkpoint among them)
    assert sum(k.startswith("dvc/files/md5/") for k in keys) > 30


def test_dvc_pull_of_the_data_works_from_a_users_clone(team: Team, clone: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(clone), str(other)], check=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    assert (
        team.run(
            dvc, "remote", "add", "--local", "-d", "team", team.env["EDGEOPS_DVC_REMOTE"], cwd=other
        ).returncode
        == 0
    )
    done = team.run(dvc, "pull", "-q", "data/tiny.dvc", cwd=other)
    assert done.returncode == 0, done.stderr
    assert len(list((other / "data" / "tiny").rglob("*.png"))) == 90


def test_promote_deployment_publishes_and_an_edge_agent_syncs_it(
    team: Team, deployed: str, first_run: Any, tmp_path: Path
) -> None:
    run_id = _start(team, PROMOTE, {"name": MODEL, "version": 1, "stage": "staging"})
    run = _wait(team, run_id, timeout=300)
    assert run.state.is_completed(), _logs(team, run_id)[-3000:]
    assert team.mlflow().get_registered_model(MODEL).aliases.get("staging") == "1"
    agent = tmp_path / "device"
    done = team.run(
        str(Path(sys.executable).parent / "edgeops"), "edge", "sync", "--target", f"s3://{BUCKET}/edge/staging",
        "--model", MODEL, "--channel", "staging", "--dir", str(agent), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(
        team.run(str(Path(sys.executable).parent / "edgeops"), "edge", "status", "--dir", str(agent), "--json", cwd=tmp_path).stdout
    )  # fmt: skip
    assert str(status["version"]) == "1" and status["channel"] == "staging", status
    assert status["git_commit"] == deployed  # lineage: trained in a workspace at the deployed commit


def test_a_sweep_runs_on_two_workers_at_once_in_separate_workspaces(team: Team, first_run: Any) -> None:
    before = len(_pipeline_runs(team))
    done = team.run(
        str(Path(sys.executable).parent / "edgeops"), "sweep",
        "--point", "compress.variants.ptq.subset_size=32", "--point", "compress.variants.ptq.subset_size=48",
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [
        line.split("(")[1].split(")")[0] for line in done.stdout.splitlines() if line.startswith("queued ")
    ]
    assert len(ids) == 2
    runs = [_wait(team, i) for i in ids]
    assert all(r.state.is_completed() for r in runs), [_logs(team, i)[-2000:] for i in ids]
    # at the same time, on two workers: each started before the other ended
    a, b = runs
    assert a.start_time < b.end_time and b.start_time < a.end_time
    workspaces = {
        line.split("workspace ")[1].split(":")[0]
        for i in ids
        for line in _logs(team, i).splitlines()
        if "workspace " in line
    }
    assert len(workspaces) == 2
    after = _pipeline_runs(team)
    assert len(after) == before + 2
    sizes = {r.data.params.get("compress.variants.ptq.subset_size") for r in after[:2]}
    assert sizes == {"32", "48"}, sizes


def test_model_candidates_train_on_two_workers_at_once_and_the_run_restores_them(
    team: Team, first_run: Any
) -> None:
    """Two candidates: the pipeline's worker trains small_cnn while a helper flow run trains small_cnn@32
    on the other worker; the pipeline restores the helper's stages from DVC's run cache, and MLflow has
    one pipeline run with every candidate's variant runs nested under it."""
    runs_before, versions_before = len(_pipeline_runs(team)), len(_versions(team))
    run_id = _start(
        team, PIPELINE, {"overrides": {"by_task.classification.model": ["small_cnn", "small_cnn@32"]}}
    )
    run = _wait(team, run_id, timeout=1200)
    with _prefect(team) as client:
        flows = _descendants(client, run_id)
    assert run.state.is_completed(), _logs(team, run_id)[-4000:]
    pipeline_flow = next(f for f in flows if f.name.startswith("pipeline-"))
    parent = _own_logs(team, str(pipeline_flow.id))
    helpers = [f for f in flows if f.name == "candidate-small_cnn_32"]
    assert len(helpers) == 1, [
        line for line in _logs(team, run_id).splitlines() if "elper" in line or "andidate" in line
    ]
    helper = helpers[0]
    assert helper.state.is_completed()
    parent_text = "\n".join(r.message for r in parent)
    helper_text = "\n".join(r.message for r in _own_logs(team, str(helper.id)))
    # the helper trained and compressed its candidate; the pipeline's worker did not, it restored them
    assert "Running stage 'train@small_cnn_32'" in helper_text
    assert "Running stage 'train@small_cnn_32'" not in parent_text
    assert "Stage 'train@small_cnn_32' is cached - skipping run" in parent_text, parent_text[-3000:]
    assert "Stage 'evaluate@small_cnn_32-ptq' is cached - skipping run" in parent_text, [
        line for line in parent_text.splitlines() if "small_cnn_32" in line
    ]
    assert "Running stage 'train@small_cnn'" in parent_text
    # at the same time: the helper started before the pipeline's worker finished its own candidate
    own_last = next(r for r in reversed(parent) if "Running stage 'evaluate@small_cnn-" in r.message)
    assert helper.start_time < own_last.timestamp, (helper.start_time, own_last.timestamp)
    # one pipeline run in MLflow, every candidate x variant nested under it, and one new version
    runs = _pipeline_runs(team)
    assert len(runs) == runs_before + 1
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED"
    children = team.mlflow().search_runs(
        [newest.info.experiment_id], f"tags.mlflow.parentRunId = '{newest.info.run_id}'"
    )
    assert sorted((c.data.tags["candidate"], c.data.tags["variant"]) for c in children) == [
        ("small_cnn", "fp32"), ("small_cnn", "ptq"), ("small_cnn_32", "fp32"), ("small_cnn_32", "ptq"),
    ]  # fmt: skip
    assert all(c.info.status == "FINISHED" for c in children)
    assert all("accuracy_drop" in c.data.metrics for c in children if c.data.tags["variant"] == "ptq")
    assert len(_versions(team)) == versions_before + 1


def _restart(team: Team, name: str) -> None:
    """Kill a team server's process group (as a crash would), then `make up` again, which restarts it."""
    pid = int((Path(team.up_env["TEAM_DIR"]) / "pids" / name).read_text())
    os.killpg(pid, signal.SIGKILL)
    time.sleep(2)
    up = subprocess.run([str(UP)], env=team.up_env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr[-2000:]


def test_mlflow_server_restarting_mid_run_loses_and_duplicates_nothing(team: Team, first_run: Any) -> None:
    runs_before, versions_before = len(_pipeline_runs(team)), len(_versions(team))
    run_id = _start(team, PIPELINE, {"overrides": {"seed": 7}})
    _wait_for_log(team, run_id, "Running stage 'train@small_cnn'")
    _restart(team, "mlflow")
    run = _wait(team, run_id)
    assert run.state.is_completed(), _logs(team, run_id)[-4000:]
    runs = _pipeline_runs(team)
    assert len(runs) == runs_before + 1
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED" and newest.data.params["seed"] == "7"
    history = team.mlflow().get_metric_history(newest.info.run_id, "val_accuracy")
    steps = [m.step for m in history]
    assert steps == sorted(set(steps)) and len(steps) == 2  # every epoch once
    children = team.mlflow().search_runs(
        [newest.info.experiment_id], f"tags.mlflow.parentRunId = '{newest.info.run_id}'"
    )
    assert sorted(c.data.tags.get("variant") for c in children) == ["fp32", "ptq"]
    assert len(_versions(team)) == versions_before + 1


def test_a_worker_killed_mid_stage_crashes_its_run_and_a_retry_finishes_from_the_cache(
    team: Team, first_run: Any
) -> None:
    run_id = _start(team, PIPELINE, {"overrides": {"seed": 11}})
    _wait_for_log(team, run_id, "Running stage 'train@small_cnn'")
    for worker in sorted((Path(team.up_env["TEAM_DIR"]) / "pids").glob("worker-*")):
        os.killpg(int(worker.read_text()), signal.SIGKILL)
    # no heartbeat: `edgeops deploy`'s automation marks the run Crashed (after 90 s), so it can be retried
    crashed = _wait(team, run_id, timeout=300)
    assert crashed.state.type.value == "CRASHED", crashed.state
    up = subprocess.run([str(UP)], env=team.up_env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr[-2000:]
    retry = team.run(str(Path(sys.executable).parent / "prefect"), "flow-run", "retry", run_id, cwd=ROOT)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    time.sleep(5)
    run = _wait(team, run_id)
    logs = _logs(team, run_id)
    assert run.state.is_completed(), logs[-4000:]
    assert "reused (a retry" in logs
    assert "Stage 'prepare' didn't change, skipping" in logs
