"""The pipeline as a Prefect flow that drives the DVC stages of dvc.yaml, one task per stage.

DVC decides what is up to date (unchanged stages are skipped), so a flow run and `dvc repro`
produce the same cached outputs; Prefect adds retries, logs per stage, schedules and deployments."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as prefect_run

from edgeops.config import load_params
from edgeops.console import process_seconds
from edgeops.errors import EdgeopsError
from edgeops.orchestration import fanout, workspace
from edgeops.orchestration.dvc_worker import DvcWorker, discard_prestarted, prestart
from edgeops.orchestration.dvcgraph import stage_order
from edgeops.orchestration.prefect_local import TemporaryServer
from edgeops.pipeline import plan
from edgeops.registry import live

TIMINGS = Path("reports/pipeline_timing.json")
STAGE_LOG = Path("reports/pipeline_timing.jsonl")  # each stage appends its own time (edgeops.console)
USER_ERROR = 2  # exit code of a stage that failed on bad input: retrying cannot help
# The DVC worker of each running flow, by project folder. Tasks get the folder (a plain, serialisable
# parameter) and find the live process here: the flow's tasks run in the flow's process.
_WORKERS: dict[str, DvcWorker] = {}


class StageFailed(Exception):
    def __init__(self, stage: str, code: int, last_line: str) -> None:
        super().__init__(f"stage {stage} failed: {last_line}")
        self.code = code


def _retry_unless_user_error(task, task_run, state) -> bool:  # noqa: ANN001 (Prefect's signature)
    try:
        state.result()
    except StageFailed as e:
        return e.code != USER_ERROR
    except Exception:
        return True
    return False


@task(
    retries=1,
    retry_delay_seconds=10,  # a server that did not answer gets a moment more
    retry_condition_fn=_retry_unless_user_error,
    task_run_name="{stage}",
    cache_policy=NO_CACHE,  # DVC decides what is up to date
)
def run_stage(stage: str, project_dir: str) -> float:
    """`dvc repro --single-item STAGE` in the project (by the flow's DVC worker), its output streamed into
    this task's log."""
    logger = get_run_logger()
    worker = _WORKERS[project_dir]
    errors = {"user": "", "other": ""}

    def forward(line: str) -> None:
        line = line.rstrip()
        if not line or "Warning" in line or "warnings.warn" in line:
            return
        if line.startswith("error: "):  # edgeops' one-line message for bad input (console.fail)
            errors["user"] = line.removeprefix("error: ")
        elif line.startswith(("internal error: ", "unavailable: ", "ERROR: ")):  # worth a retry
            errors["other"] = errors["other"] or line
        logger.info(line)

    start = time.perf_counter()
    code = worker.reproduce(stage, forward)
    if code != 0:
        # DVC fails with 255 whatever the stage did: our own error line tells input errors from the rest
        if errors["user"]:
            raise StageFailed(stage, USER_ERROR, errors["user"])
        raise StageFailed(stage, code, errors["other"] or "see the log above")
    return time.perf_counter() - start


# the flow run's name, which the pipeline's MLflow run takes too: one name in both UIs
@flow(name="edgeops-pipeline", log_prints=True, flow_run_name=live.pipeline_run_name)
def pipeline(project_dir: str = ".", pull: bool = False, helpers: dict[str, Any] | None = None) -> dict:
    """Every stage of dvc.yaml in dependency order; returns the timing summary. Works in project_dir
    without changing this process's current folder.

    pull: restore stages from the DVC remote's run cache (`dvc repro --pull`; team mode). helpers: the
    team flow's parameters, to run the other model candidates on other workers (edgeops.orchestration.fanout)."""
    project = Path(project_dir).resolve()
    wall_start = time.perf_counter()
    expand_candidates(project)
    stages = stage_order(project)
    keys = list(plan.read(project)) if helpers is not None else []
    with stage_session(project, pull) as env:
        if len(keys) > 1:
            task_seconds = run_with_helpers(project, stages, keys, env, helpers or {})
        else:
            task_seconds = {stage: run_stage(stage, str(project)) for stage in stages}
    summary = timing_summary(time.perf_counter() - wall_start, task_seconds, project / STAGE_LOG)
    (project / TIMINGS).write_text(json.dumps(summary, indent=2))
    return summary


@contextmanager
def stage_session(
    project: Path, pull: bool, joined_run: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """The DVC worker and environment of one flow run's stages (yields the environment); at the end, the
    flow run's MLflow run is ended (a helper that joined another run ends only its variant runs)."""
    (project / STAGE_LOG).parent.mkdir(parents=True, exist_ok=True)
    (project / STAGE_LOG).unlink(missing_ok=True)
    env = {
        **stage_env(project),
        "EDGEOPS_TIMINGS": str(project / STAGE_LOG),
        # every stage of this flow run logs into one MLflow run, which starts when this command did
        live.PIPELINE_ID_ENV: uuid.uuid4().hex,
        live.PIPELINE_START_ENV: os.environ.get(live.PIPELINE_START_ENV)
        or str(time.time() - process_seconds()),
        live.PIPELINE_NAME_ENV: str(prefect_run.name or ""),
        live.PREFECT_RUN_ENV: str(prefect_run.id or ""),
    }
    if joined_run is not None:
        live.join_pipeline_run(joined_run, env[live.PIPELINE_ID_ENV], project)
    status = "FAILED"
    try:
        with DvcWorker.for_project(project, env, pull) as worker:
            _WORKERS[str(project)] = worker
            yield env
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _WORKERS.pop(str(project), None)
        end_mlflow_run(project, env[live.PIPELINE_ID_ENV], status)


def run_with_helpers(
    project: Path, stages: list[str], keys: list[str], env: dict[str, str], helpers: dict[str, Any]
) -> dict[str, float]:
    """The stages, with every candidate but the first run by a helper flow run where a worker is free."""
    parts = fanout.arrange(stages, keys)
    seconds = {stage: run_stage(stage, str(project)) for stage in parts.shared}
    logger = get_run_logger()
    try:
        pipeline_run = share_pipeline_run(project, env)
        push_stages(str(project), parts.shared)
        # the helpers start from this pipeline's state: its shared stages' outputs come from the remote
        shared = {"pipeline_run": pipeline_run, "dvc_lock": (project / "dvc.lock").read_text()}
        runs = fanout.submit({**helpers, **shared}, list(parts.helped), str(prefect_run.id), logger.info)
    except Exception as e:  # helpers only save time: without them the candidates run here
        logger.warning(f"no helpers ({e}): every candidate runs on this worker, one after the other")
        runs = {}
    try:
        seconds |= {stage: run_stage(stage, str(project)) for stage in parts.own}
        timeout = load_params(project / "params.yaml").team.helper_timeout_seconds
        fanout.collect(runs, timeout, logger.info)
    except BaseException:
        fanout.cancel(runs)
        raise
    # what the helpers ran comes back from the run cache; what they did not is run here
    rest = [stage for key in parts.helped for stage in parts.helped[key]] + parts.final
    return seconds | {stage: run_stage(stage, str(project)) for stage in rest}


def share_pipeline_run(project: Path, env: dict[str, str]) -> dict[str, str]:
    """This flow run's MLflow run (started now if no stage has yet), for the helpers to log into."""
    done = subprocess.run(
        [sys.executable, "-m", "edgeops.registry.live"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise EdgeopsError(f"starting the pipeline's MLflow run for its helpers: {lines[-1]}")
    state = json.loads(done.stdout.strip().splitlines()[-1])
    return {key: str(state[key]) for key in ("run_id", "experiment_id", "tracking_uri")}


@task(retries=2, retry_delay_seconds=[10, 30], timeout_seconds=1800, cache_policy=NO_CACHE)
def push_stages(project_dir: str, stages: list[str]) -> None:
    """The stages' outputs and DVC's run cache, to the DVC remote (edgeops.orchestration.fanout)."""
    workspace.push_stages(Path(project_dir), stages, get_run_logger().info)


def run_candidate(
    project_dir: str, key: str, pipeline_run: dict[str, str], dvc_lock: str
) -> dict[str, float]:
    """A helper's stages, from the parent's dvc.lock: the shared ones (pulled from the DVC remote) and
    candidate `key`'s, logged into the parent's MLflow run; then pushed with the run cache."""
    project = Path(project_dir).resolve()
    expand_candidates(project)
    (project / "dvc.lock").write_text(dvc_lock)
    stages = fanout.helper_stages(stage_order(project), list(plan.read(project)), key)
    with stage_session(project, pull=True, joined_run=pipeline_run):
        seconds = {stage: run_stage(stage, str(project)) for stage in stages}
    push_stages(str(project), stages)
    return seconds


def expand_candidates(project: Path) -> None:
    """candidates.yaml from params.yaml, before DVC expands the per-candidate stages of dvc.yaml from it
    (without a params.yaml, the first stage that needs it says so)."""
    if (project / "params.yaml").is_file():
        plan.write(load_params(project / "params.yaml"), project)


def stage_env(project: Path) -> dict[str, str]:
    """The environment of every stage, but what only a flow run knows."""
    # dvc.yaml says `python`: make it this environment's interpreter even if the venv is not activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    # the stages import the project's own code (a worker's workspace may hold another commit than the
    # installed edgeops)
    python_path = os.pathsep.join([str(project / "src"), str(project), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PATH": path,
        "PYTHONPATH": python_path.rstrip(os.pathsep),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # progress bars are noise in the stage logs
        # unattended: ride out a tracking-server restart (~2 min of backoff) instead of failing the stage
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "8"),
    }


def end_mlflow_run(project: Path, pipeline_id: str, status: str) -> None:
    """End the pipeline's MLflow run if a stage started it and `register` did not end it (nothing to
    register, or a stage failed)."""
    state = live.read_state(project)
    if state is not None and state.get("owner") == pipeline_id:
        try:
            live.end_pipeline_run(status, project, state)
        except Exception as e:  # the run stays RUNNING; the next pipeline run closes it as FAILED
            get_run_logger().warning(f"could not end the MLflow run {state['run_id']}: {e}")


def timing_summary(wall: float, task_seconds: dict[str, float], stage_log: Path = STAGE_LOG) -> dict:
    """Work = the stages' own processes (imports included), except the MLflow `register` stage;
    overhead = everything else: Prefect (server start, task runs), DVC (hashing, locks), MLflow."""
    work: dict[str, float] = {}
    if stage_log.exists():
        for line in stage_log.read_text().splitlines():
            row = json.loads(line)
            work[row["stage"]] = row["seconds"]
    work_seconds = sum(s for stage, s in work.items() if stage != "register")
    return {
        "wall_seconds": wall,
        "stage_task_seconds": task_seconds,
        "stage_work_seconds": work,
        "work_seconds": work_seconds,
        "overhead_seconds": wall - work_seconds,
        "overhead_fraction": (wall - work_seconds) / wall if wall > 0 else 0.0,
        "stages_run": sorted(work),
    }


class _NoTraceback(logging.Filter):
    """A failed stage already printed its one-line reason; Prefect's traceback of our own raise adds noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], StageFailed | EdgeopsError):
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_stage_failures() -> None:
    if os.environ.get("EDGEOPS_DEBUG"):
        return
    for name in ("prefect", "prefect.task_runs", "prefect.flow_runs"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_NoTraceback())


def run_pipeline(api: TemporaryServer) -> dict:
    """Entry point for the CLI: a flow run, with Prefect failures turned into one clear line."""
    _quiet_stage_failures()
    expand_candidates(Path("."))
    stage_order(".")  # a broken dvc.yaml fails here, while the Prefect server starts
    project = Path(".").resolve()
    prestart(project, stage_env(project))  # the DVC worker's imports overlap the server's start too
    try:
        api.wait_ready()
        flow_summary = pipeline()
    except StageFailed as e:
        raise EdgeopsError(str(e)) from None
    finally:
        discard_prestarted()
    # the same summary over the whole command, from its process start: imports and Prefect's
    # server start-up are overhead too
    summary = timing_summary(process_seconds(), flow_summary["stage_task_seconds"])
    summary["flow_only_wall_seconds"] = flow_summary["wall_seconds"]
    TIMINGS.write_text(json.dumps(summary, indent=2))
    return summary
