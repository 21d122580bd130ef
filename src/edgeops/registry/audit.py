"""The promotion audit trail: version tags and model-level history events; replaying them for --rollback."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from edgeops.registry.client import (
    get_model,
    utc_now,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from edgeops.registry.promotion import PromotionResult

HISTORY_PREFIX = "edgeops.history."


# --------------------------------------------------------------------------- history


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Model-level promotion events, oldest first."""
    model = get_model(client, name)
    events = []
    for key, value in (model.tags or {}).items():
        if key.startswith(HISTORY_PREFIX):
            with contextlib.suppress(ValueError):
                events.append(json.loads(value))
    return sorted(events, key=lambda e: int(e.get("seq", 0)))


def _stack(events: list[dict[str, Any]], stage: str) -> list[str]:
    """Replay the stage's events: promotions push, rollbacks pop back to the version they restored."""
    stack: list[str] = []
    for e in events:
        if e.get("to") != stage:
            continue
        version = str(e["version"])
        if e.get("action") == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(version)
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def rollback_target(events: list[dict[str, Any]], stage: str, current: str | None) -> str | None:
    stack = _stack(events, stage)
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def record_version(
    client: MlflowClient, name: str, mv: ModelVersion, result: PromotionResult, reason: str, actor: str
) -> dict[str, Any]:
    """The version's own audit tags; returns the model-level event to write once the alias moved."""
    tags = dict(mv.tags or {})
    n = int(tags.get("promotion.count", "0") or 0) + 1
    before = [a for a, v in (get_model(client, name).aliases or {}).items() if str(v) == str(mv.version)]
    when = utc_now()
    gates = [asdict(g) for g in result.gates]
    values = {
        "action": result.action,
        "from": ",".join(sorted(before)) or str(mv.current_stage or "None"),
        "to": result.to,
        "replaces": result.replaces or "none",
        "when": when,
        "who": actor,
        "reason": reason,
        "forced": str(result.forced).lower(),
        "gates": json.dumps(gates, separators=(",", ":")),
    }
    for key, value in values.items():
        client.set_model_version_tag(name, mv.version, f"promotion.{n}.{key}", value)
    client.set_model_version_tag(name, mv.version, "promotion.count", str(n))
    return {
        "action": result.action,
        "version": result.version,
        "to": result.to,
        "replaces": result.replaces,
        "when": when,
        "who": actor,
        "reason": reason,
        "forced": result.forced,
        "gates": {g["gate"]: g["ok"] for g in gates},
    }


def record_event(client: MlflowClient, name: str, event: dict[str, Any]) -> None:
    """The model-level history event: what `models history` shows and `--rollback` replays."""
    seq = len(history(client, name)) + 1
    client.set_registered_model_tag(
        name, f"{HISTORY_PREFIX}{seq:06d}", json.dumps({"seq": seq, **event}, separators=(",", ":"))
    )
