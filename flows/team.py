"""Team mode: the flows that Prefect workers run for the `pipeline`, `retrain`, `promote` and `candidate`
deployments (`edgeops deploy` registers them).

Each flow run works in its own workspace on the worker (edgeops.orchestration.workspace): the
repository at the deployment's commit, data pulled from the DVC remote, results pushed back. The
pipeline itself is the same flow `edgeops run` uses (flows/pipeline.py), as a subflow: one task per
DVC stage. With several model candidates, the others run at once on free workers, as `candidate` flow
runs (edgeops.orchestration.fanout). Steps that talk to the network (git, DVC remote, MLflow registry)
retry with backoff and have timeouts; one training per worker comes from the worker's `--limit 1`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# A worker runs the deployment's commit, which Prefect cloned next to this file: its flows/ and its edgeops
# library, not whichever version the worker has installed (a worker outlives many deployments).
_CHECKOUT = Path(__file__).resolve().parents[1]
for _path in (_CHECKOUT / "src", _CHECKOUT):
    if str(_path) not in sys.path[:2]:
        sys.path.insert(0, str(_path))

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from edgeops.orchestration import workspace as ws  # noqa: E402
from edgeops.orchestration.fanout import CANDIDATE_FLOW  # noqa: E402
from flows.pipeline import pipeline, run_candidate  # noqa: E402

NETWORK = {"retries": 3, "retry_delay_seconds": [10, 30, 60], "cache_policy": NO_CACHE}


def _log(message: str) -> None:
    get_run_logger().info(message)


@task(**NETWORK, timeout_seconds=900)
def checkout(repo: str, commit: str) -> str:
    """The workspace: the repository at the deployment's commit (found again when the flow run retries)."""
    return str(ws.checkout(repo, commit, str(flow_run.get_id() or "local"), _log))


@task(**NETWORK, timeout_seconds=1800)
def pull_data(workspace: str, data: str) -> None:
    ws.pull_data(Path(workspace), data, _log)


@task(**NETWORK, timeout_seconds=1800)
def push_results(workspace: str, data: str) -> bool:
    return ws.push_results(Path(workspace), data, _log)


@task(cache_policy=NO_CACHE)
def configure(
    workspace: str,
    data: str | None,
    task_name: str | None,
    model: str | None,
    variants: list[str] | None,
    overrides: dict[str, Any] | None,
) -> str:
    """The workspace's DVC remote and cache, and this run's choices written into its params.yaml;
    returns the dataset path the pipeline trains on."""
    path = Path(workspace)
    remote = ws.configure_dvc(path)
    _log(f"DVC remote: {remote or 'none (set ' + ws.DVC_REMOTE_ENV + ')'}")
    for line in ws.apply_choices(path, data, task_name, model, variants, overrides):
        _log(f"params: {line}")
    from edgeops.config import load_params

    return load_params(path / "params.yaml").data.path


@flow(name="edgeops-team-pipeline", log_prints=True)
def team_pipeline(
    repo: str,
    commit: str,
    data: str | None = None,
    task: str | None = None,
    model: str | None = None,
    variants: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict:
    """The pipeline on a worker: checkout, `dvc pull`, every DVC stage (one task each), `dvc push`.

    data: a path in the repository (DVC-tracked: `data/x` with `data/x.dvc` committed), or an absolute
    path the worker can read; default params.yaml's. overrides: dotted params.yaml keys for this run,
    e.g. {"compress.variants.prune_int8.ratio": 0.7}."""
    workspace = checkout(repo, commit)
    dataset = configure(workspace, data, task, model, variants, overrides)
    pull_data(workspace, dataset)
    choices = {"repo": repo, "commit": commit, "data": data, "task": task, "model": model}
    helpers = {**choices, "variants": variants, "overrides": overrides} if fan_out(workspace) else None
    summary = pipeline(project_dir=workspace, pull=bool(os.environ.get(ws.DVC_REMOTE_ENV)), helpers=helpers)
    summary["pushed"] = push_results(workspace, dataset)
    summary["commit"] = commit
    if summary["pushed"]:  # else the workspace holds the only copy of the DVC outputs
        ws.remove(Path(workspace))
    return summary


def fan_out(workspace: str) -> bool:
    """Whether the other model candidates go to helper flow runs: more than one candidate, helpers on, and
    a DVC remote to bring their results back through."""
    from edgeops.config import load_params
    from edgeops.pipeline import plan

    params = load_params(Path(workspace) / "params.yaml")
    several = len(plan.resolve(params)) > 1
    if several and params.team.parallel_candidates and not os.environ.get(ws.DVC_REMOTE_ENV):
        _log(f"the model candidates run one after the other: helpers need a DVC remote ({ws.DVC_REMOTE_ENV})")
        return False
    return several and params.team.parallel_candidates


@flow(name=CANDIDATE_FLOW, log_prints=True)
def team_candidate(
    repo: str,
    commit: str,
    candidate: str,
    pipeline_run: dict[str, str],
    dvc_lock: str,
    data: str | None = None,
    task: str | None = None,
    model: str | None = None,
    variants: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict:
    """A helper of a `pipeline` flow run: one model candidate's stages on this worker, in its own workspace
    with the same commit, choices and dvc.lock (`dvc_lock`, after the shared stages), logged into the
    pipeline's MLflow run (`pipeline_run`) and pushed to the DVC remote's run cache, which the pipeline's
    flow run restores them from."""
    workspace = checkout(repo, commit)
    dataset = configure(workspace, data, task, model, variants, overrides)
    pull_data(workspace, dataset)
    seconds = run_candidate(workspace, candidate, pipeline_run, dvc_lock)
    ws.remove(Path(workspace))
    return {"candidate": candidate, "stage_task_seconds": seconds}


@task(retries=2, retry_delay_seconds=[10, 30], timeout_seconds=900, cache_policy=NO_CACHE)
def promote_version(workspace: str, name: str, version: int, stage: str, reason: str) -> dict:
    from edgeops.registry.cli import _params
    from edgeops.registry.promotion import promote

    params = _params(Path(workspace) / "params.yaml")
    result = promote(params, name, version, stage, reason=reason)
    for line in result.published:
        _log(f"published {line}")
    verb = "promoted" if result.changed else "already there; targets checked:"
    _log(f"{verb} {name} v{result.version} -> @{result.to}")
    return result.to_dict()


@flow(name="edgeops-team-promote", log_prints=True)
def team_promote(repo: str, commit: str, name: str, version: int, stage: str, reason: str = "") -> dict:
    """Promote a registered version (gates, alias, audit, edge targets) with the gates and targets of
    params.yaml at the deployment's commit."""
    workspace = checkout(repo, commit)
    result = promote_version(workspace, name, version, stage, reason or "promote deployment")
    ws.remove(Path(workspace))
    return result
