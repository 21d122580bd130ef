"""One MLflow run per pipeline run, live while the pipeline runs, whatever drives the stages.

Every stage is its own process (DVC runs them, under `dvc repro` or the Prefect flow), so the run id
travels in a small state file next to the project, never in a DVC output (those stay deterministic):

    .edgeops/mlflow_run.json   {"owner", "run_id", "experiment_id", "tracking_uri", "variants": {candidate/variant: run id}}

The first stage that does work starts the run; later stages of the same pipeline run add to it; the
`register` stage (or the flow, if register had nothing to do) ends it. "The same pipeline run" is the
`owner`: EDGEOPS_PIPELINE_ID when the flow sets it, else the `dvc` process that runs the stages. A
state file left by another owner (a pipeline that crashed or was killed) is closed as FAILED and a new
run starts, so a stage re-run by DVC adds to the run of the pipeline that re-ran it.

Each variant gets one nested run: compress starts it (fine-tuning curves), evaluate finishes it.

A team helper (edgeops.orchestration.fanout), which runs one model candidate in its own workspace, joins
the pipeline run of the flow run it helps: its state file names that run with `"joined": true`, so its
stages log into it and its variant runs nest under it, and ending the helper ends only its variant runs."""

from __future__ import annotations

import getpass
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeops.config import Params
from edgeops.files import write_json_atomic
from edgeops.registry.tracking import mlflow_call

STATE = Path(".edgeops/mlflow_run.json")
PIPELINE_ID_ENV = "EDGEOPS_PIPELINE_ID"  # set by the flow: every stage of one flow run shares it
PIPELINE_START_ENV = "EDGEOPS_PIPELINE_START"  # epoch seconds when the command that drives the stages started
PIPELINE_NAME_ENV = "EDGEOPS_PIPELINE_NAME"  # the flow run's name: the MLflow run takes it
PREFECT_RUN_ENV = "EDGEOPS_PREFECT_FLOW_RUN"  # the flow run's id: tagged on the MLflow run


@dataclass
class LiveRun:
    """A run to log into, by id (the client API never ends a run by leaving a `with` block)."""

    client: Any
    run_id: str
    experiment_id: str

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._log_batch(
            "logging metrics", metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self._log_batch("logging params", params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def _log_batch(
        self, what: str, metrics: list[Any] | None = None, params: list[Any] | None = None
    ) -> None:
        """In chunks MLflow's REST API accepts (1000 metrics / 100 params per request)."""
        metrics, params = metrics or [], params or []
        for start in range(0, max(len(metrics), len(params)), 100):
            chunk_m, chunk_p = metrics[start : start + 100], params[start : start + 100]
            mlflow_call(what, lambda: self.client.log_batch(self.run_id, metrics=chunk_m, params=chunk_p))  # noqa: B023

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        rows = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        mlflow_call("setting tags", lambda: self.client.log_batch(self.run_id, tags=rows))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            mlflow_call(
                f"uploading {path}", lambda: self.client.log_artifacts(self.run_id, str(path), artifact_path)
            )
        elif path.exists():
            mlflow_call(
                f"uploading {path}", lambda: self.client.log_artifact(self.run_id, str(path), artifact_path)
            )


# --------------------------------------------------------------------------- who drives the stages


def _dvc_ancestor() -> str | None:
    """`dvc:<pid>:<start time>` of the nearest `dvc` process above this one (the one running the stages)."""
    import psutil

    try:
        proc = psutil.Process().parent()
        for _ in range(6):
            if proc is None:
                return None
            cmdline = " ".join(proc.cmdline()[:3])
            if "dvc" in Path(cmdline.split(" ")[0]).name or " -m dvc" in cmdline or "/dvc " in cmdline + " ":
                return f"dvc:{proc.pid}:{proc.create_time():.0f}"
            proc = proc.parent()
    except (psutil.Error, OSError):
        return None
    return None


def pipeline_owner() -> str:
    return os.environ.get(PIPELINE_ID_ENV) or _dvc_ancestor() or f"pid:{os.getpid()}"


def _pipeline_start_ms() -> int:
    from edgeops.console import process_seconds

    started = os.environ.get(PIPELINE_START_ENV)
    seconds = float(started) if started else time.time() - process_seconds()
    return int(seconds * 1000)


# --------------------------------------------------------------------------- state file


def read_state(root: Path = Path(".")) -> dict[str, Any] | None:
    try:
        state = json.loads((root / STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "run_id" in state else None


def _write_state(state: dict[str, Any], root: Path = Path(".")) -> None:
    (root / STATE).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / STATE, state)


def _clear_state(root: Path = Path(".")) -> None:
    (root / STATE).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the pipeline run


def open_pipeline_run(params: Params, root: Path = Path(".")) -> LiveRun:
    """The MLflow run of the pipeline run this stage belongs to: resumed, or started now."""
    from mlflow import MlflowClient

    from edgeops.registry.tracking import connect

    experiment_id = connect(params.mlflow, root)
    client = MlflowClient()
    owner = pipeline_owner()
    state = read_state(root)
    if state is not None:
        if state.get("owner") == owner and state.get("experiment_id") == experiment_id:
            run = mlflow_call("reading the pipeline run", lambda: _get_run(client, state["run_id"]))
            if run is not None and run.info.status == "RUNNING":
                return LiveRun(client, state["run_id"], experiment_id)
        else:
            close_stale_run(root)
    return mlflow_call(
        "starting the pipeline run", lambda: _start(client, params, experiment_id, owner, root)
    )


def pipeline_run_name() -> str:
    """`pipeline-YYYYMMDD-HHMMSS`: the MLflow run's name, and the Prefect flow run's under `edgeops run`."""
    return f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"


def _get_run(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None  # deleted, or another store


def _start(client: Any, params: Params, experiment_id: str, owner: str, root: Path) -> LiveRun:
    from edgeops.console import git_commit
    from edgeops.registry.tracking import flatten

    commit = git_commit() or "unknown"
    driver = "edgeops run" if os.environ.get(PIPELINE_ID_ENV) else "dvc repro"
    from edgeops.pipeline.plan import resolve

    model = ",".join(entry["name"] for entry in resolve(params).values())  # register tags the selected one
    tags = {
        "mlflow.source.name": driver,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": commit,
        "mlflow.user": _user(),
        "mlflow.note.content": f"edgeops pipeline run ({driver}): {params.task}, {model}, "
        f"data {params.data.path}",
        "edgeops.kind": "pipeline",
        "task": params.task,
        "model": model,
        "data_path": params.data.path,
        "git_commit": commit,
    }
    if os.environ.get(PREFECT_RUN_ENV):
        tags["prefect_flow_run_id"] = os.environ[PREFECT_RUN_ENV]
    run = client.create_run(
        experiment_id,
        start_time=_pipeline_start_ms(),
        run_name=os.environ.get(PIPELINE_NAME_ENV) or pipeline_run_name(),
        tags=tags,
    )
    live = LiveRun(client, run.info.run_id, experiment_id)
    live.log_params(flatten("", params.model_dump(exclude={"targets"})))
    state = {
        "owner": owner,
        "run_id": run.info.run_id,
        "experiment_id": experiment_id,
        "tracking_uri": client.tracking_uri,
        "variants": {},
    }
    _write_state(state, root)
    return live


def join_pipeline_run(run: dict[str, str], owner: str, root: Path = Path(".")) -> None:
    """Make root's stages (of pipeline `owner`) log into another workspace's pipeline run: `run` is
    that workspace's state file (run_id, experiment_id, tracking_uri)."""
    keys = ("run_id", "experiment_id", "tracking_uri")
    _write_state({"owner": owner, **{k: run[k] for k in keys}, "variants": {}, "joined": True}, root)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def close_stale_run(root: Path = Path(".")) -> None:
    """A state file of a pipeline that never finished: mark its run FAILED (if still running), forget it."""
    state = read_state(root)
    if state is None:
        return
    try:
        end_pipeline_run("FAILED", root, state)
    except Exception:  # its store is gone or unreachable (e.g. the project moved to another server)
        _clear_state(root)


def end_pipeline_run(status: str, root: Path = Path("."), state: dict[str, Any] | None = None) -> str | None:
    """End the pipeline's run (and any variant run it left running) as FINISHED / FAILED / KILLED."""
    state = state or read_state(root)
    if state is None:
        return None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=state.get("tracking_uri"))
    own = [] if state.get("joined") else [state["run_id"]]  # a helper never ends the run it joined
    for run_id in [*state.get("variants", {}).values(), *own]:
        run = _get_run(client, run_id)
        if run is not None and run.info.status == "RUNNING":
            client.set_terminated(run_id, status)
    _clear_state(root)
    return str(state["run_id"])


# --------------------------------------------------------------------------- variant runs


def variant_run(
    live: LiveRun, candidate: str, variant: str, settings: dict[str, Any], root: Path = Path(".")
) -> LiveRun:
    """The nested run of one variant of one model candidate in this pipeline run (named `small_cnn/qat`):
    the one compress started, or a new one (with the variant's settings as params)."""
    from edgeops.paths import variant_id

    name = variant_id(candidate, variant)
    state = read_state(root) or {}
    known = state.get("variants", {}).get(name)
    if known and state.get("run_id") == live.run_id:
        run = _get_run(live.client, known)
        if run is not None and run.info.status == "RUNNING":
            return LiveRun(live.client, known, live.experiment_id)
    tags = {"mlflow.parentRunId": live.run_id, "edgeops.kind": "variant"}
    parent_tags = mlflow_call("reading the pipeline run", lambda: live.client.get_run(live.run_id).data.tags)
    tags |= {
        k: parent_tags[k]
        for k in ("task", "data_path", "git_commit", "dataset_fingerprint")
        if k in parent_tags
    }
    tags |= {k: parent_tags[k] for k in ("mlflow.source.git.commit", "mlflow.user") if k in parent_tags}
    tags |= {"variant": variant, "candidate": candidate}
    run = mlflow_call(
        f"starting the {name} run",
        lambda: live.client.create_run(live.experiment_id, run_name=name, tags=tags),
    )
    if state.get("run_id") == live.run_id:
        state.setdefault("variants", {})[name] = run.info.run_id
        _write_state(state, root)
    child = LiveRun(live.client, run.info.run_id, live.experiment_id)
    from edgeops.registry.tracking import flatten

    child.log_params({"candidate": candidate, "variant": variant, **flatten("settings", settings)})
    return child


def finish_variant_run(run: LiveRun, status: str = "FINISHED") -> None:
    mlflow_call("ending a variant run", lambda: run.client.set_terminated(run.run_id, status))


# --------------------------------------------------------------------------- the dataset


def log_dataset(live: LiveRun, manifest: dict[str, Any], data_path: str) -> None:
    """The prepared dataset as an MLflow input: name, source, digest = its fingerprint, split sizes."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    fingerprint = manifest["fingerprint"]
    tags = mlflow_call("reading the pipeline run", lambda: live.client.get_run(live.run_id).data.tags)
    if tags.get("dataset_fingerprint") == fingerprint:
        return  # logged by an earlier stage of this pipeline run
    with warnings.catch_warnings():  # MLflow registers its local source twice and warns of the "ambiguity"
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        source = resolve_dataset_source(_dataset_uri(data_path))
    name = Path(data_path).name or "dataset"
    dataset = MetaDataset(source, name=name, digest=fingerprint[:32])  # type: ignore[abstract]
    counts = {f"{split}_images": str(n) for split, n in manifest.get("counts", {}).items()}
    input_tags = {
        "mlflow.data.context": "training",
        "fingerprint": fingerprint,
        "task": manifest.get("task", ""),
    }
    entity = DatasetInput(
        dataset._to_mlflow_entity(),
        tags=[InputTag(k, v) for k, v in (input_tags | counts).items()],
    )
    mlflow_call("logging the dataset", lambda: live.client.log_inputs(live.run_id, datasets=[entity]))
    live.set_tags({"dataset_fingerprint": fingerprint, "dataset_classes": len(manifest.get("classes", []))})
    live.log_metrics({f"dataset.{k}": float(v) for k, v in counts.items()})


def _dataset_uri(data_path: str) -> str:
    """The DVC remote URL when the dataset is tracked by DVC with a remote, else the local folder."""
    path = Path(data_path)
    if Path(f"{data_path}.dvc").exists():
        try:
            import dvc.api

            return str(dvc.api.get_url(data_path))
        except Exception:  # no remote configured: the local folder is the truth
            pass
    return path.resolve().as_uri()


def epoch_logger(run: LiveRun, metric: str, prefix: str = "") -> Callable[[dict], None]:
    """fit()'s on_epoch: each epoch's loss, validation metric, lr and time as MLflow step metrics.

    A stage retried into the same run (the flow retries a stage that lost its tracking server) trains again
    from the same seed: the epochs an earlier attempt already logged are not logged twice."""
    from edgeops.registry.tracking import metric_safe

    val_key = f"{prefix}val_{metric_safe(metric)}"
    history = mlflow_call(
        "reading the training curve", lambda: run.client.get_metric_history(run.run_id, val_key)
    )
    logged = {int(m.step) for m in history}

    def log_epoch(row: dict) -> None:
        metrics = {
            f"{prefix}train_loss": row["train_loss"],
            val_key: row["val_score"],
            f"{prefix}lr": row["lr"],
            f"{prefix}epoch_seconds": row["seconds"],
        }
        step = int(row["epoch"])
        if step not in logged:
            mlflow_call("logging a training epoch", lambda: run.log_metrics(metrics, step=step))
            logged.add(step)
        if row.get("stopped"):  # why training ended: max_epochs, budget or patience
            what = prefix or "train_"
            run.set_tags({f"{what}stopped": row["stopped"], f"{what}epochs_trained": row["epoch"]})

    return log_epoch


if __name__ == "__main__":
    # `python -m edgeops.registry.live` in a project: open its pipeline run as its next stage would, and
    # print the state file (the team flow shares it with its helpers before any stage started the run)
    from edgeops.config import load_params

    open_pipeline_run(load_params())
    print(json.dumps(read_state()))
