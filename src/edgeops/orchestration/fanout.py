"""Team mode: the model candidates of one pipeline run, trained on several workers at once.

The flow run of the pipeline (the parent) runs the shared stages (demo, prepare) and pushes their
outputs. Then it queues one flow run of the `candidate` deployment (a helper) for every other candidate,
with its dvc.lock, and runs its own candidate's stages meanwhile. A helper, on whichever worker is free,
checks out the same commit with the same params and that dvc.lock in its own workspace: its shared stages
are up to date and their outputs are pulled, it runs its candidate's train, compress and evaluate stages,
logging into the parent's MLflow run, and pushes them with DVC's run cache.

When its own candidate is done, the parent cancels the helpers no worker has started yet (all busy) and
waits for the others. Its last pass, over every stage, restores what the helpers ran from the run cache
(`dvc repro --pull`) and runs the rest itself (helpers it cancelled, or that failed). So helpers only ever
save time: the result and dvc.lock are those of the same run on one worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

CANDIDATE_FLOW = "edgeops-team-candidate"
CANDIDATE = f"{CANDIDATE_FLOW}/candidate"  # the helpers' deployment (`edgeops deploy` registers it)
Log = Callable[[str], None]


def candidate_of(stage: str, keys: Iterable[str]) -> str | None:
    """The candidate a stage belongs to (`train@small_cnn`, `compress@small_cnn-qat`), else None."""
    _, at, item = stage.partition("@")
    if not at:
        return None
    found = [key for key in keys if item == key or item.startswith(key + "-")]
    return max(found, key=len, default=None)  # `small_cnn_24-qat` is small_cnn_24's, not small_cnn's


@dataclass(frozen=True)
class Arrangement:
    shared: list[str]  # before any candidate's stage: what the helpers restore from the run cache
    own: list[str]  # the parent's candidate (the first)
    helped: dict[str, list[str]]  # every other candidate's stages
    final: list[str]  # after the candidates (select, register)


def arrange(stages: list[str], keys: list[str]) -> Arrangement:
    """Split the pipeline's stages (in run order) by candidate; keys[0] stays with the parent."""
    shared: list[str] = []
    final: list[str] = []
    by_key: dict[str, list[str]] = {key: [] for key in keys}
    for stage in stages:
        key = candidate_of(stage, keys)
        if key is not None:
            by_key[key].append(stage)
        elif any(by_key.values()):
            final.append(stage)
        else:
            shared.append(stage)
    own, *others = keys
    return Arrangement(shared, by_key[own], {key: by_key[key] for key in others}, final)


def helper_stages(stages: list[str], keys: list[str], key: str) -> list[str]:
    """What a helper for candidate `key` runs: the shared stages, then that candidate's."""
    arrangement = arrange(stages, [key, *[k for k in keys if k != key]])
    return arrangement.shared + arrangement.own


def submit(parameters: dict[str, Any], keys: list[str], parent_id: str, log: Log) -> dict[str, str]:
    """One helper flow run per candidate, as subflows of the running flow; returns candidate -> run id.

    A retried parent finds its helpers again (idempotency key), instead of queueing more."""
    from prefect.deployments import run_deployment

    runs = {}
    for key in keys:
        run: Any = run_deployment(
            CANDIDATE,
            parameters={**parameters, "candidate": key},
            timeout=0,  # queued: the parent goes on with its own candidate
            idempotency_key=f"{parent_id}:{key}",
            flow_run_name=f"candidate-{key}",
        )
        runs[key] = str(run.id)
        log(f"helper queued for {key}: flow run {run.name} ({run.id})")
    return runs


def collect(runs: dict[str, str], timeout: float, log: Log, poll: float = 3) -> dict[str, str]:
    """Cancel the helpers no worker has started, wait for the rest; returns candidate -> final state
    name. A helper still running after `timeout` seconds is cancelled; the parent runs what it left."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Cancelling

    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for key, run_id in runs.items():
            run = client.read_flow_run(run_id)  # type: ignore[arg-type]
            if run.state is not None and run.state.type == StateType.SCHEDULED:
                cancelled: Any = Cancelled(
                    message="no worker was free: the pipeline's flow run did it itself"
                )
                result = client.set_flow_run_state(run_id, cancelled)
                if str(result.status.value) == "ACCEPT":
                    states[key] = "not started"
                    log(f"helper for {key}: no worker free, the pipeline's worker runs it")
        deadline = time.monotonic() + timeout
        while len(states) < len(runs):
            for key, run_id in runs.items():
                if key in states:
                    continue
                run = client.read_flow_run(run_id)  # type: ignore[arg-type]
                if run.state is not None and run.state.is_final():
                    states[key] = str(run.state.name)
                    log(f"helper for {key}: {run.state.name}")
                elif time.monotonic() > deadline:
                    client.set_flow_run_state(run_id, Cancelling(message=f"not done after {timeout:.0f} s"))
                    states[key] = "timed out"
                    log(f"helper for {key}: not done after {timeout:.0f} s, cancelled")
            if len(states) < len(runs):
                time.sleep(poll)
    return states


def cancel(runs: dict[str, str]) -> None:
    """The parent failed: stop its helpers that are not done (their work would be thrown away)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Cancelling

    with get_client(sync_client=True) as client:
        for run_id in runs.values():
            run = client.read_flow_run(run_id)  # type: ignore[arg-type]
            if run.state is None or run.state.is_final():
                continue
            stop: Any = Cancelled() if run.state.type == StateType.SCHEDULED else Cancelling()
            client.set_flow_run_state(run_id, stop)
