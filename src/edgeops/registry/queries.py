"""Reading the registry for `edgeops models list/show`: versions with their metrics, aliases, promotions."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from edgeops.registry.client import (
    get_model,
    get_version,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def tag_float(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- listing


def _aliases_by_version(model: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        out.setdefault(str(version), []).append(alias)
    return {v: sorted(a) for v, a in out.items()}


def _row(mv: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    tags = dict(mv.tags or {})
    count = int(tags.get("promotion.count", "0") or 0)
    last = None
    if count:
        p = f"promotion.{count}."
        last = (
            f"{tags.get(p + 'action', 'promote')} → {tags.get(p + 'to')} {tags.get(p + 'when', '')}".strip()
        )
    return {
        "name": mv.name,
        "version": str(mv.version),
        "aliases": aliases,
        "stage": mv.current_stage,
        "variant": tags.get("variant"),
        "precision": tags.get("precision"),
        "task": tags.get("task"),
        "metric": tags.get("metric"),
        "score": tag_float(tags, "score"),
        "score_drop": tag_float(tags, "score_drop"),
        "latency_ms_p50": tag_float(tags, "latency_ms_p50"),
        "size_mb": tag_float(tags, "size_mb"),
        "dataset_fingerprint": tags.get("dataset_fingerprint"),
        "git_commit": tags.get("git_commit"),
        "run_id": mv.run_id,
        "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(
            timespec="seconds"
        )
        if mv.creation_timestamp
        else None,
        "promotions": count,
        "last_promotion": last,
    }


def _search_versions(client: MlflowClient, name: str | None) -> list[ModelVersion]:
    flt = f"name = '{name}'" if name else None
    out: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(flt, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def list_versions(client: MlflowClient, name: str | None = None) -> list[dict[str, Any]]:
    """One row per version (of one model or all), newest first within a model."""
    models = [get_model(client, name)] if name else list(client.search_registered_models(max_results=1000))
    rows: list[dict[str, Any]] = []
    for model in models:
        aliases = _aliases_by_version(model)
        versions = _search_versions(client, model.name)
        for mv in sorted(versions, key=lambda m: -int(m.version)):
            rows.append(_row(mv, aliases.get(str(mv.version), [])))
    return rows


def version_promotions(tags: dict[str, str]) -> list[dict[str, Any]]:
    count = int(tags.get("promotion.count", "0") or 0)
    out = []
    for n in range(1, count + 1):
        p = f"promotion.{n}."
        entry: dict[str, Any] = {"n": n}
        for key in ("action", "from", "to", "replaces", "when", "who", "reason", "forced", "gates"):
            if p + key in tags:
                entry[key] = tags[p + key]
        if "gates" in entry:
            with contextlib.suppress(ValueError):
                entry["gates"] = json.loads(entry["gates"])
        out.append(entry)
    return out


def show_version(client: MlflowClient, name: str, version: str) -> dict[str, Any]:
    model = get_model(client, name)
    mv = get_version(client, name, version)
    info = _row(mv, _aliases_by_version(model).get(str(mv.version), []))
    tags = dict(mv.tags or {})
    info["source"] = mv.source
    info["tags"] = {k: v for k, v in sorted(tags.items()) if not k.startswith("promotion.")}
    info["promotion_history"] = version_promotions(tags)
    return info
