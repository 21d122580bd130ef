"""Team mode's Prefect deployments (`edgeops deploy`) and sweeps fanned out as flow runs (`edgeops sweep`).

The deployments point at the repository and commit they were made from (Prefect clones it for the
worker); the flows (flows/team.py) make their own workspace from the same repository and commit."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeops.config import Params
from edgeops.errors import EdgeopsError
from edgeops.orchestration.fanout import CANDIDATE
from edgeops.orchestration.workspace import current_commit

PIPELINE = "edgeops-team-pipeline/pipeline"
RETRAIN = "edgeops-team-pipeline/retrain"
PROMOTE = "edgeops-team-promote/promote"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    repo: str
    commit: str


def default_repo(project: Path) -> str:
    """The `origin` remote a team shares; without one, the project folder itself (one machine)."""
    done = subprocess.run(
        ["git", "remote", "get-url", "origin"], cwd=project, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else str(project.resolve())


def source_of(project: Path, repo: str | None, commit: str | None, log: Log) -> Source:
    from edgeops.config import load_params
    from edgeops.paths import CANDIDATES
    from edgeops.pipeline import plan

    head, dirty = current_commit(project)
    if dirty and commit is None:
        log("warning: uncommitted changes are not deployed: workers run the last commit " + head[:12])
    if (project / "params.yaml").is_file() and plan.read(project) != plan.resolve(
        load_params(project / "params.yaml")
    ):
        log(
            f"warning: {CANDIDATES} is not what params.yaml says: workers rewrite it, so their runs' git commit "
            f"ends in -dirty; run `edgeops plan` and commit {CANDIDATES}"
        )
    return Source(repo or default_repo(project), commit or head)


def require_server() -> str:
    """PREFECT_API_URL, once it answers; else one line saying how to get a server."""
    import urllib.request

    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        raise EdgeopsError(
            "team mode needs a Prefect server: `make up`, then `source .team/env` (sets PREFECT_API_URL)"
        )
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=10):
            return url
    except OSError as e:
        raise EdgeopsError(
            f"the Prefect server at PREFECT_API_URL={url} is not reachable ({getattr(e, 'reason', e)}): "
            "`make up`, or fix PREFECT_API_URL"
        ) from None


def check_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise EdgeopsError(
                f"work pool {pool!r} does not exist on {os.environ.get('PREFECT_API_URL')}: `make up` creates "
                f"it, or `prefect work-pool create {pool} --type process`"
            ) from None


ZOMBIE_AUTOMATION = "edgeops: flow runs without a heartbeat crashed"
ZOMBIE_SECONDS = 90


def ensure_zombie_automation(log: Log) -> None:
    """A flow run whose worker died stays Running for ever; this Prefect automation marks it Crashed after
    ZOMBIE_SECONDS without a heartbeat (workers send one every 30 s), so it can be retried (Prefect's own
    recipe: docs.prefect.io, "detect zombie flows")."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        existing: Any = Automation.read(name=ZOMBIE_AUTOMATION)  # sync context: the object itself
        log(f"automation: {existing.name} (already there)")
        return
    except ValueError:  # not there yet
        pass
    automation: Any = Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=ZOMBIE_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {ZOMBIE_SECONDS} s: its worker or machine died; retry it",
            )
        ],
    )
    automation.create()
    log(f"automation: {ZOMBIE_AUTOMATION} (after {ZOMBIE_SECONDS} s)")


def deploy_all(params: Params, source: Source, log: Log) -> dict[str, str]:
    """Register (or update) the `pipeline`, `retrain`, `promote` and `candidate` deployments; returns
    name -> id."""
    from prefect import Flow
    from prefect.runner.storage import GitRepository
    from prefect.schedules import Cron

    pool = params.team.work_pool
    require_server()
    check_pool(pool)

    def storage() -> GitRepository:
        return GitRepository(url=source.repo, commit_sha=source.commit)

    base = {"repo": source.repo, "commit": source.commit}
    common: dict[str, Any] = {
        "work_pool_name": pool,
        "build": False,
        "push": False,
        "print_next_steps": False,
        "ignore_warnings": True,  # Prefect's hint that process pools run flows locally: that is the point
        "version": source.commit[:12],
        "tags": ["edgeops"],
    }
    try:  # Prefect clones the source here too, to read the flows: the commit must be in `repo`
        # sync context: Prefect returns the objects, not coroutines
        pipeline: Any = Flow.from_source(storage(), "flows/team.py:team_pipeline")
        promote: Any = Flow.from_source(storage(), "flows/team.py:team_promote")
        candidate: Any = Flow.from_source(storage(), "flows/team.py:team_candidate")
    except subprocess.CalledProcessError:
        raise EdgeopsError(
            f"commit {source.commit[:12]} is not in {source.repo}, which the workers clone: push it "
            "(`git push`), or pass --repo / --commit"
        ) from None
    schedules = (
        [Cron(params.team.retrain_cron, timezone=params.team.timezone)] if params.team.retrain_cron else []
    )
    # Prefect prints a table per deployment; our own lines below say the same, with the commit
    with contextlib.redirect_stdout(io.StringIO()):
        ids = {
            PIPELINE: pipeline.deploy(
                name="pipeline",
                parameters=base,
                description="The whole pipeline on a worker: parameters data, task, model, variants, overrides.",
                **common,
            ),
            RETRAIN: pipeline.deploy(
                name="retrain",
                parameters={**base, "data": params.data.path, "task": params.task},
                schedules=schedules,
                description=f"Scheduled retraining on {params.data.path} ({params.team.retrain_cron or 'no schedule'}).",
                **common,
            ),
            PROMOTE: promote.deploy(
                name="promote",
                parameters=base,
                description="Promote a registered version (name, version, stage) behind the gates.",
                **common,
            ),
            CANDIDATE: candidate.deploy(
                name="candidate",
                parameters=base,
                description="One model candidate of a pipeline run, on another worker (queued by the pipeline).",
                **common,
            ),
        }
    ensure_zombie_automation(log)
    for name, deployment_id in ids.items():
        log(f"deployed {name} ({deployment_id}) on pool {pool}: {source.repo} @ {source.commit[:12]}")
    return {name: str(i) for name, i in ids.items()}


def parse_point(text: str) -> dict[str, Any]:
    """`compress.variants.prune_int8.ratio=0.7,train.patience=3` -> dotted overrides (YAML values)."""
    import yaml

    point: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EdgeopsError(f"sweep point {text!r}: write KEY=VALUE[,KEY=VALUE…], e.g. train.patience=3")
        point[key.strip()] = yaml.safe_load(value)
    return point


def submit_sweep(points: list[dict[str, Any]], parameters: dict[str, Any], log: Log) -> list[str]:
    """One `pipeline` flow run per point, queued for whichever workers are free; returns the run ids."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    require_server()
    ids = []
    for point in points:
        try:
            run: Any = run_deployment(
                PIPELINE, parameters={**parameters, "overrides": point}, timeout=0, as_subflow=False
            )
        except ObjectNotFound:
            raise EdgeopsError(
                f"no deployment {PIPELINE} on this Prefect server: `edgeops deploy` first"
            ) from None
        ids.append(str(run.id))
        log(f"queued {run.name} ({run.id}): {point}")
    return ids


def wait_for(run_ids: list[str], log: Log, timeout: float = 3600) -> dict[str, str]:
    """Block until every flow run is final; returns id -> state name."""
    import time

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while True:
            for run_id in run_ids:
                run = client.read_flow_run(run_id)  # type: ignore[arg-type]
                if run.state is not None and run.state.is_final() and run_id not in states:
                    states[run_id] = str(run.state.name)
                    log(f"{run.name}: {run.state.name}")
            if len(states) == len(run_ids):
                return states
            if time.monotonic() > deadline:
                raise EdgeopsError(
                    f"{len(run_ids) - len(states)} flow runs not finished after {timeout:.0f}s"
                )
            time.sleep(5)
