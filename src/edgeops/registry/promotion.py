"""Promotion of registered OpenVINO models by MLflow alias + legacy stage, with gates and an audit trail.

Registry conventions (see tracking.py): one registered model per project; each version's source
is `<run artifacts>/model` (model.xml, model.bin, model.json) and carries tags such as `task`, `metric`, `score`,
`score_drop`, `latency_ms_p50`, `size_mb`, `dataset_fingerprint`, `git_commit`, `variant`.

What a promotion writes:
- alias `@staging` / `@production` (the current MLflow way) and the legacy stage (the UI's column);
- version tags `promotion.<n>.{from,to,when,who,reason,gates,forced,action,replaces}`;
- a model-level event `edgeops.history.<seq>` (JSON): the ordered log `history` and `--rollback` use;
- the model files on every edge target configured for that stage (pointer written last).

Concurrency: the whole read-check-publish-write runs under the model's promotion lock (lock.py: a
PostgreSQL advisory lock shared by every machine when EDGEOPS_LOCK_URL is set, else a local file lock),
and the alias is re-read afterwards, so two promotions at once leave one consistent result.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from edgeops.config import GatesConfig, Params
from edgeops.errors import EdgeopsError
from edgeops.pipeline.gates import GateResult, Measured, check_gates
from edgeops.registry.audit import history, record_event, record_version, rollback_target
from edgeops.registry.client import (
    get_model,
    get_version,
    make_client,
    registry_errors,
    registry_failure,
    who,
)
from edgeops.registry.fanout import PointerUndo, publish_to_targets, undo_pointers
from edgeops.registry.lock import promotion_lock
from edgeops.registry.queries import tag_float

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

STAGES = ("staging", "production")
MAX_REASON = 500


# --------------------------------------------------------------------------- gates


def measured_from_tags(tags: dict[str, str]) -> Measured:
    """What a registered version's tags say about it, for the gates `select` used too."""
    drop = tag_float(tags, "score_drop")
    score, fp32 = tag_float(tags, "score"), tag_float(tags, "fp32_score")
    if drop is None and score is not None and fp32 is not None:
        drop = fp32 - score
    return Measured(
        tags.get("metric", "score"),
        score,
        drop,
        tag_float(tags, "latency_ms_p50"),
        tag_float(tags, "size_mb"),
    )


def version_gates(tags: dict[str, str], gates: GatesConfig) -> list[GateResult]:
    return check_gates(measured_from_tags(tags), gates)


# --------------------------------------------------------------------------- promote / rollback


@dataclass
class PromotionResult:
    name: str
    version: str
    to: str
    action: str
    replaces: str | None
    forced: bool
    gates: list[GateResult] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _set_stage(client: MlflowClient, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3 but still drive the UI column
        warnings.simplefilter("ignore")
        client.transition_model_version_stage(
            name, version, stage.capitalize(), archive_existing_versions=True
        )


def _apply(
    client: MlflowClient,
    params: Params,
    name: str,
    mv: ModelVersion,
    result: PromotionResult,
    reason: str,
    actor: str,
    publish: bool,
) -> PromotionResult:
    stage = result.to
    undo: list[PointerUndo] = []
    if publish:
        result.published = publish_to_targets(
            client,
            params.mlflow.tracking_uri,
            name,
            result.version,
            stage,
            getattr(params.targets, stage),
            undo,
        )
    if not result.changed:
        return result
    alias_moved = False
    try:
        event = record_version(client, name, mv, result, reason, actor)  # a trace even if we crash
        client.set_registered_model_alias(name, stage, result.version)
        alias_moved = True
        _set_stage(client, name, result.version, stage)
        record_event(client, name, event)  # last: history/--rollback only replay completed promotions
    except Exception as e:  # registry down / restarting after the targets moved
        message = registry_failure(params.mlflow.tracking_uri, e)
        if alias_moved:  # the registry names the new version, like the targets: keep them
            if message is None and not isinstance(e, EdgeopsError):
                raise
            raise EdgeopsError(
                f"{message or e}; @{stage} of '{name}' already names v{result.version} and the targets "
                "agree, but its stage or history event was not written: re-run the promotion with "
                "--force once the registry is back"
            ) from None
        if message is None and not isinstance(e, EdgeopsError):
            undo_pointers(undo)
            raise
        put_back = undo_pointers(undo)
        raise EdgeopsError(
            f"{message or e}; promotion of v{result.version} to {stage} not completed"
            + (f" ({put_back})" if put_back else "")
            + ": re-run it once the registry is back"
        ) from None
    now = get_model(client, name).aliases.get(stage)
    if str(now) != result.version:  # someone without the lock moved it: say so, don't pretend
        raise EdgeopsError(
            f"@{stage} of '{name}' is v{now} right after setting v{result.version}: a concurrent change "
            "outside edgeops; check `edgeops models history` and re-run"
        )
    return result


def _check_stage(stage: str) -> str:
    stage = stage.lower()
    if stage not in STAGES:
        raise EdgeopsError(f"unknown stage '{stage}': use staging or production")
    return stage


def promote(
    params: Params,
    name: str,
    version: str | int,
    to: str,
    *,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
    client: MlflowClient | None = None,
    publish: bool = True,
) -> PromotionResult:
    """Check gates, publish to the stage's targets, move the alias + stage, write the audit trail."""
    stage, version = _check_stage(to), str(version)
    client = client or make_client(params.mlflow.tracking_uri)
    actor = actor or who()
    reason = (reason or "").strip()[:MAX_REASON]
    with promotion_lock(params.mlflow.tracking_uri, name), registry_errors(params.mlflow.tracking_uri):
        model = get_model(client, name)
        mv = get_version(client, name, version)
        gates = version_gates(dict(mv.tags or {}), params.gates)
        failed = [g for g in gates if not g.ok]
        if failed and not force:
            raise EdgeopsError(
                f"refusing to promote {name} v{version} to {stage}: "
                + "; ".join(f"{g.gate}: {g.detail}" for g in failed)
                + " (fix the model or the gates in params.yaml, or pass --force; forcing is recorded)"
            )
        current = model.aliases.get(stage)
        current = str(current) if current is not None else None
        result = PromotionResult(
            name,
            version,
            stage,
            "promote",
            current,
            force and bool(failed),
            gates,
            changed=current != version or force,
        )
        return _apply(client, params, name, mv, result, reason, actor, publish)


def rollback(
    params: Params,
    name: str,
    stage: str,
    *,
    reason: str = "",
    actor: str | None = None,
    client: MlflowClient | None = None,
    publish: bool = True,
) -> PromotionResult:
    """Put back the version that held `stage` before the current one (no gates: it passed them then)."""
    stage = _check_stage(stage)
    client = client or make_client(params.mlflow.tracking_uri)
    actor = actor or who()
    with promotion_lock(params.mlflow.tracking_uri, name), registry_errors(params.mlflow.tracking_uri):
        model = get_model(client, name)
        current = model.aliases.get(stage)
        current = str(current) if current is not None else None
        target = rollback_target(history(client, name), stage, current)
        if target is None:
            raise EdgeopsError(
                f"'{name}' has no earlier {stage} version to roll back to (now: "
                f"{'v' + current if current else 'none'}); see `edgeops models history {name}`"
            )
        mv = get_version(client, name, target)
        result = PromotionResult(name, target, stage, "rollback", current, False, [])
        text = (reason or f"rollback of v{current}").strip()[:MAX_REASON]
        return _apply(client, params, name, mv, result, text, actor, publish)
